//! HTTP dates. Written with `httpdate`; read as nginx reads them, which is
//! more leniently than `httpdate` does (observed):
//!
//! - the weekday is whatever comes before the first `,` or space, unchecked;
//! - after a comma: `DD Mon YYYY HH:MM:SS` or `DD-Mon-YY HH:MM:SS` (a year
//!   under 70 is 20YY, else 19YY); after a space, asctime's
//!   `Mon D HH:MM:SS YYYY` (the day as ` D`, `D` or `DD`);
//! - spaces may follow the weekday; anything may follow the time (or the
//!   asctime year), "GMT" or not;
//! - a month is told by its initial, and a second letter where needed (so
//!   `Jux` is July, `MAY` is May);
//! - the date must exist (day 0 counts as the month's eve) and lie after
//!   1970.

use std::time::{Duration, SystemTime};

/// `secs` since the epoch as an HTTP date.
pub(super) fn format(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The current time as an HTTP date.
pub(super) fn now() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

/// Seconds since the epoch of an HTTP date, if nginx would read it.
pub(super) fn parse(value: &[u8]) -> Option<u64> {
    let split = value.iter().position(|&b| b == b',' || b == b' ')?;
    let comma = value[split] == b',';
    let mut s = Cursor(&value[split + 1..]);
    s.spaces();
    let (day, month, year, time) = if comma {
        let day = s.digits(2)?;
        let long = match s.byte()? {
            b' ' => true,
            b'-' => false,
            _ => return None,
        };
        let month = s.month()?;
        s.expect(if long { b' ' } else { b'-' })?;
        let year = if long {
            s.digits(4)?
        } else {
            let yy = s.digits(2)?;
            yy + if yy < 70 { 2000 } else { 1900 }
        };
        s.expect(b' ')?;
        (day, month, year, s.time()?)
    } else {
        let month = s.month()?;
        s.expect(b' ')?;
        if s.peek() == Some(b' ') {
            s.byte();
        }
        let day = s.digits(2).or_else(|| s.digits(1))?;
        s.expect(b' ')?;
        let time = s.time()?;
        s.expect(b' ')?;
        (day, month, s.digits(4)?, time)
    };
    let (hour, minute, second) = time;
    if year < 1970 || day > days_in(month, year) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_before_year(year) + days_before_month(month, year) + day;
    // Day 0 is the last day of the month before.
    (days * 86_400 + hour * 3600 + minute * 60 + second).checked_sub(86_400)
}

/// Bytes read left to right.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.byte()? == want).then_some(())
    }

    fn spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.byte();
        }
    }

    /// Exactly `n` digits (not followed by another).
    fn digits(&mut self, n: usize) -> Option<u64> {
        let run = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if run < n || (n < 4 && run > n) {
            return None;
        }
        let value = self.0[..n]
            .iter()
            .fold(0, |v, d| v * 10 + u64::from(d - b'0'));
        self.0 = &self.0[n..];
        Some(value)
    }

    /// `HH:MM:SS`.
    fn time(&mut self) -> Option<(u64, u64, u64)> {
        let hour = self.digits(2)?;
        self.expect(b':')?;
        let minute = self.digits(2)?;
        self.expect(b':')?;
        Some((hour, minute, self.digits(2)?))
    }

    /// A month's three letters, as a number from 1. nginx tells months by
    /// their (upper-case) initial, and only where that is shared by one
    /// more letter (observed: `Ja?` is January, `J?n` June, any other `J`
    /// July; `M?r` March, any other `M` May; `Ap?` April, any other `A`
    /// August); the other letters may be anything.
    fn month(&mut self) -> Option<u64> {
        let &[first, second, third] = self.0.get(..3)? else {
            return None;
        };
        let month = match first {
            b'J' if second == b'a' => 1,
            b'J' if third == b'n' => 6,
            b'J' => 7,
            b'F' => 2,
            b'M' if third == b'r' => 3,
            b'M' => 5,
            b'A' if second == b'p' => 4,
            b'A' => 8,
            b'S' => 9,
            b'O' => 10,
            b'N' => 11,
            b'D' => 12,
            _ => return None,
        };
        self.0 = &self.0[3..];
        Some(month)
    }
}

fn leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in(month: u64, year: u64) -> u64 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_before_month(month: u64, year: u64) -> u64 {
    (1..month).map(|m| days_in(m, year)).sum()
}

fn days_before_year(year: u64) -> u64 {
    (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mon, 06 May 2024 07:08:09 GMT.
    const T: u64 = 0x6638_81d9;

    fn parsed(s: &str) -> Option<u64> {
        parse(s.as_bytes())
    }

    #[test]
    fn the_three_layouts_and_their_slack() {
        for s in [
            "Mon, 06 May 2024 07:08:09 GMT",
            "Monday, 06-May-24 07:08:09 GMT",
            "Mon May  6 07:08:09 2024",
            "Mon May 6 07:08:09 2024",
            "Mon May 06 07:08:09 2024x",
            "Xyz, 06 May 2024 07:08:09 UTC",
            "Mon,06 May 2024 07:08:09",
            "Mon,  06 May 2024 07:08:09GMT",
            ", 06 May 2024 07:08:09 GMT",
        ] {
            assert_eq!(parsed(s), Some(T), "{s}");
        }
        assert_eq!(format(T), "Mon, 06 May 2024 07:08:09 GMT");
    }

    #[test]
    fn what_nginx_does_not_read() {
        for s in [
            "Mon 06 May 2024 07:08:09 GMT",
            "Mon, 6 May 2024 07:08:09 GMT",
            "Mon, 06 May 2024 7:08:09 GMT",
            "Mon, 06 may 2024 07:08:09 GMT",
            "Mon, 06 Xay 2024 07:08:09 GMT",
            "Mon, 06-May-2024 07:08:09 GMT",
            "Mon, 06 May 24 07:08:09 GMT",
            "Mon, 06  May 2024 07:08:09 GMT",
            "Mon May   6 07:08:09 2024",
            "Mon May 6  07:08:09 2024",
            "Mon, 06 May 2024 07:08",
            "Mon, 31 Apr 2100 00:00:00 GMT",
            "Mon, 29 Feb 2100 00:00:00 GMT",
            "Mon, 06 May 2024 24:00:00 GMT",
            "Mon, 06 May 1969 07:08:09 GMT",
            "yesterday",
        ] {
            assert_eq!(parsed(s), None, "{s}");
        }
    }

    #[test]
    fn years_and_days() {
        assert_eq!(
            parsed("Monday, 06-May-69 07:08:09 GMT"),
            parsed("Mon, 06 May 2069 07:08:09 GMT")
        );
        assert_eq!(
            parsed("Monday, 06-May-70 07:08:09 GMT"),
            parsed("Mon, 06 May 1970 07:08:09 GMT")
        );
        assert_eq!(parsed("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parsed("Thu, 00 Jan 1970 00:00:00 GMT"), None, "before 1970");
        assert_eq!(
            parsed("Mon, 00 May 2024 07:08:09 GMT"),
            parsed("Mon, 30 Apr 2024 07:08:09 GMT")
        );
        assert!(parsed("Mon, 29 Feb 2104 00:00:00 GMT").is_some());
        for (loose, month) in [
            ("Jxn", "Jun"),
            ("JUL", "Jul"),
            ("Jax", "Jan"),
            ("MAY", "May"),
            ("Mxr", "Mar"),
            ("Auz", "Aug"),
            ("Sex", "Sep"),
        ] {
            assert_eq!(
                parsed(&format!("Mon, 06 {loose} 2024 07:08:09 GMT")),
                parsed(&format!("Mon, 06 {month} 2024 07:08:09 GMT")),
                "{loose}"
            );
        }
    }
}
