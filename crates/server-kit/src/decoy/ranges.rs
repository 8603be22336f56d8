//! `Range: bytes=...`, by nginx's observed rules.
//!
//! - A value not starting with `bytes=` (any case), or with nothing after
//!   it, is ignored: the whole file.
//! - The rest is a comma-separated list of `first-last`, `first-` and
//!   `-suffix` (spaces allowed around the numbers, nothing else; numbers
//!   up to 2^63-1). Anything malformed, an empty entry included, is 416.
//! - An entry is dropped when it starts past the end, ends before it
//!   starts, or is a zero suffix; a last byte past the end is the end.
//! - Nothing left: 416 (but an empty file is sent whole). One range: 206.
//!   Several: a multipart 206, in the order asked, overlaps and all;
//!   unless they add up to more than the file, which is then sent whole.

/// What to send of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    Whole,
    Unsatisfiable,
    /// One or more ranges, `(first, last)` inclusive.
    Ranges(Vec<(u64, u64)>),
}

/// The plan for a file of `len` bytes and a `Range` value.
pub(super) fn plan(value: &[u8], len: u64) -> Plan {
    const UNIT: &[u8] = b"bytes=";
    let Some(unit) = value.get(..UNIT.len()) else {
        return Plan::Whole;
    };
    if !unit.eq_ignore_ascii_case(UNIT) || value.len() == UNIT.len() {
        return Plan::Whole;
    }
    let mut ranges = Vec::new();
    let mut total: u64 = 0;
    for entry in value[UNIT.len()..].split(|&b| b == b',') {
        let Some((first, last)) = read_entry(entry) else {
            return Plan::Unsatisfiable;
        };
        let range = match (first, last) {
            (None, Some(0)) | (None, None) => continue,
            (None, Some(suffix)) if len > 0 => (len - suffix.min(len), len - 1),
            (Some(first), last) if first < len && last.is_none_or(|last| first <= last) => {
                (first, last.map_or(len - 1, |last| last.min(len - 1)))
            }
            _ => continue,
        };
        total = total.saturating_add(range.1 - range.0 + 1);
        ranges.push(range);
    }
    if ranges.is_empty() {
        return if len == 0 {
            Plan::Whole
        } else {
            Plan::Unsatisfiable
        };
    }
    if total > len {
        return Plan::Whole;
    }
    Plan::Ranges(ranges)
}

/// One entry: `[first]-[last]`, at least one of them, spaces around.
/// `None` if malformed.
fn read_entry(entry: &[u8]) -> Option<(Option<u64>, Option<u64>)> {
    let dash = entry.iter().position(|&b| b == b'-')?;
    let first = number(&entry[..dash])?;
    let last = number(&entry[dash + 1..])?;
    if first.is_none() && last.is_none() {
        return None;
    }
    Some((first, last))
}

/// Spaces, optionally digits (at most 2^63-1), spaces. `Some(None)`: no
/// digits.
fn number(s: &[u8]) -> Option<Option<u64>> {
    let lead = s.iter().take_while(|&&b| b == b' ').count();
    let s = &s[lead..];
    let s = &s[..s.len() - s.iter().rev().take_while(|&&b| b == b' ').count()];
    if s.is_empty() {
        return Some(None);
    }
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = s.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    (n <= i64::MAX as u64).then_some(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(value: &str) -> Plan {
        plan(value.as_bytes(), 15)
    }

    fn ranges(list: &[(u64, u64)]) -> Plan {
        Plan::Ranges(list.to_vec())
    }

    #[test]
    fn satisfiable() {
        assert_eq!(p("bytes=0-1"), ranges(&[(0, 1)]));
        assert_eq!(p("Bytes= 0 - 1 "), ranges(&[(0, 1)]));
        assert_eq!(p("bytes=-100"), ranges(&[(0, 14)]));
        assert_eq!(p("bytes=14-"), ranges(&[(14, 14)]));
        assert_eq!(p("bytes=01-02"), ranges(&[(1, 2)]));
        assert_eq!(p("bytes=0-9223372036854775807"), ranges(&[(0, 14)]));
        assert_eq!(p("bytes=0-1,5-2"), ranges(&[(0, 1)]));
        assert_eq!(p("bytes=0-1,-0,20-30"), ranges(&[(0, 1)]));
        assert_eq!(p("bytes=14-100,0-0"), ranges(&[(14, 14), (0, 0)]));
        assert_eq!(p("bytes=0-7,0-6"), ranges(&[(0, 7), (0, 6)]));
    }

    #[test]
    fn whole_or_unsatisfiable() {
        for whole in [
            "bytes=",
            "bytes",
            "bytes =1-2",
            "items=0-1",
            "bytes=0-7,0-7",
            "bytes=0-4,2-100",
        ] {
            assert_eq!(p(whole), Plan::Whole, "{whole}");
        }
        for bad in [
            "bytes=abc",
            "bytes=15-",
            "bytes=5-2",
            "bytes=-0",
            "bytes=-",
            "bytes=0-1,,3-4",
            "bytes=,0-1",
            "bytes=0-1,",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=1 2-3",
            "bytes=1-2;x",
            "bytes=\t1-2",
            "bytes=1-2\t",
            "bytes=0-9223372036854775808",
            "bytes=0-1,99999999999999999999-",
        ] {
            assert_eq!(p(bad), Plan::Unsatisfiable, "{bad}");
        }
        assert_eq!(
            plan(b"bytes=0-", 0),
            Plan::Whole,
            "an empty file is sent whole"
        );
        assert_eq!(plan(b"bytes=abc", 0), Plan::Unsatisfiable);
    }
}
