//! A file's validators and the conditional headers that test them, by
//! nginx's observed rules.
//!
//! The `ETag` is `"<mtime hex>-<length hex>"`. A failed `If-Unmodified-Since`
//! (the file is newer, or the date unreadable) or `If-Match` (no listed tag
//! equal, `W/` tags never) is 412. `If-Modified-Since` (the very same
//! second) and `If-None-Match` (`*` alone, or a listed tag, `W/` allowed):
//! when those present both hold, 304. `If-Range` keeps a `Range` only for
//! the exact `ETag` or `Last-Modified`.
//!
//! Tag lists are read as nginx does: a tag counts when it is followed by
//! the end or a comma (spaces and tabs between), and after a comma spaces
//! and tabs are skipped; anything else makes that entry miss.

use super::dates;
use super::fields::Once;

/// The `ETag` of a file of `len` bytes last modified at `mtime`.
pub(super) fn etag(mtime: u64, len: u64) -> String {
    format!("\"{mtime:x}-{len:x}\"")
}

/// What the conditional headers make of a request for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Send it (or the ranges asked for).
    Send,
    NotModified,
    PreconditionFailed,
}

/// Tests the conditional headers against a file's validators.
pub(super) fn check(once: &Once, etag: &str, mtime: u64) -> Verdict {
    if let Some(date) = &once.if_unmodified_since
        && dates::parse(date).is_none_or(|date| mtime > date)
    {
        return Verdict::PreconditionFailed;
    }
    if let Some(tags) = &once.if_match
        && !(tags == b"*" || lists(tags, etag, false))
    {
        return Verdict::PreconditionFailed;
    }
    let unchanged = once
        .if_modified_since
        .as_ref()
        .map(|date| dates::parse(date) == Some(mtime));
    let matching = once
        .if_none_match
        .as_ref()
        .map(|tags| tags == b"*" || lists(tags, etag, true));
    match (unchanged, matching) {
        (None, None) | (Some(false), _) | (_, Some(false)) => Verdict::Send,
        _ => Verdict::NotModified,
    }
}

/// Whether an `If-Range` (if any) lets a `Range` apply.
pub(super) fn range_applies(if_range: Option<&[u8]>, etag: &str, mtime: u64) -> bool {
    match if_range {
        None => true,
        Some(tag) if tag.first() == Some(&b'"') => tag == etag.as_bytes(),
        Some(date) => dates::parse(date) == Some(mtime),
    }
}

/// Whether a comma-separated list of entity tags names `etag`.
fn lists(tags: &[u8], etag: &str, weak: bool) -> bool {
    let etag = etag.as_bytes();
    let mut entry = tags;
    loop {
        let tag = match entry.strip_prefix(b"W/") {
            Some(rest) if weak => rest,
            _ => entry,
        };
        if let Some(after) = tag.strip_prefix(etag) {
            let after = skip_blanks(after);
            if after.is_empty() || after[0] == b',' {
                return true;
            }
        }
        match entry.iter().position(|&b| b == b',') {
            Some(comma) => entry = skip_blanks(&entry[comma + 1..]),
            None => return false,
        }
    }
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"663881d9-f\"";
    /// Mon, 06 May 2024 07:08:09 GMT.
    const MTIME: u64 = 0x6638_81d9;

    fn with(set: impl FnOnce(&mut Once)) -> Verdict {
        let mut once = Once::default();
        set(&mut once);
        check(&once, TAG, MTIME)
    }

    fn v(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn etags_are_mtime_and_length_in_hex() {
        assert_eq!(etag(MTIME, 15), TAG);
    }

    #[test]
    fn tag_lists() {
        for yes in [
            TAG,
            "\"a\",\"663881d9-f\"",
            "  \"a\" ,  \"663881d9-f\"",
            ",\"663881d9-f\"",
            "\"663881d9-f\",",
            "\"a\",\t\"663881d9-f\"",
            "\"663881d9-f\"\t",
        ] {
            assert!(
                lists(yes.trim_start_matches(' ').as_bytes(), TAG, false),
                "{yes}"
            );
        }
        for no in [
            "\"a\" \"663881d9-f\"",
            "\"663881d9-f\"x",
            "\"663881d9-f\" x",
            "x\"663881d9-f\"",
            "\t\"663881d9-f\"",
            "\"a\";\"663881d9-f\"",
            "\"663881d9-F\"",
        ] {
            assert!(!lists(no.as_bytes(), TAG, true), "{no}");
        }
        assert!(lists(b"\"a\",W/\"663881d9-f\"", TAG, true));
        assert!(!lists(b"\"a\", W/ \"663881d9-f\"", TAG, true));
        assert!(!lists(b"W/\"663881d9-f\"", TAG, false));
        assert!(!lists(b"w/\"663881d9-f\"", TAG, true));
    }

    #[test]
    fn verdicts() {
        assert_eq!(with(|_| {}), Verdict::Send);
        assert_eq!(with(|o| o.if_none_match = v("*")), Verdict::NotModified);
        assert_eq!(with(|o| o.if_none_match = v("\"a\", *")), Verdict::Send);
        let date = "Mon, 06 May 2024 07:08:09 GMT";
        assert_eq!(
            with(|o| o.if_modified_since = v(date)),
            Verdict::NotModified
        );
        assert_eq!(
            with(|o| {
                o.if_modified_since = v(date);
                o.if_none_match = v("\"x\"");
            }),
            Verdict::Send
        );
        assert_eq!(
            with(|o| o.if_modified_since = v("Mon, 06 May 2024 07:08:10 GMT")),
            Verdict::Send
        );
        assert_eq!(with(|o| o.if_match = v("*")), Verdict::Send);
        assert_eq!(
            with(|o| o.if_match = v("\"x\"")),
            Verdict::PreconditionFailed
        );
        assert_eq!(
            with(|o| o.if_unmodified_since = v("garbage")),
            Verdict::PreconditionFailed
        );
        assert_eq!(with(|o| o.if_unmodified_since = v(date)), Verdict::Send);
        assert_eq!(
            with(|o| {
                o.if_match = v("\"x\"");
                o.if_none_match = v("*");
            }),
            Verdict::PreconditionFailed
        );
    }

    #[test]
    fn if_range() {
        assert!(range_applies(None, TAG, MTIME));
        assert!(range_applies(Some(TAG.as_bytes()), TAG, MTIME));
        assert!(!range_applies(Some(b"W/\"663881d9-f\""), TAG, MTIME));
        assert!(!range_applies(Some(b"\"663881d9-f\"x"), TAG, MTIME));
        assert!(range_applies(
            Some(b"Mon, 06 May 2024 07:08:09 GMTxx"),
            TAG,
            MTIME
        ));
        assert!(!range_applies(Some(b"garbage"), TAG, MTIME));
    }
}
