//! The HTTP `Range` header for one byte range (`bytes=A-B`, `bytes=A-`, `bytes=-N`), which is
//! all a player seeking in an MP4 or a resuming download sends. Pure parsing, no I/O.

/// A satisfiable byte range, both ends inclusive (as in `Content-Range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub first: u64,
    /// Last byte (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a range holds at least one byte (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What to do with a request's `Range` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, or one this server ignores (another unit, several ranges): send everything
    /// with 200, as RFC 9110 allows.
    Whole,
    /// Send this part with 206.
    Part(ByteRange),
    /// The range starts past the end: 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// Interprets `header` for a body of `total_len` bytes.
pub fn parse_range(header: Option<&str>, total_len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // bytes=-N: the last N bytes.
        return match number(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if total_len == 0 => RangeRequest::Unsatisfiable,
            Some(suffix) => RangeRequest::Part(ByteRange {
                first: total_len.saturating_sub(suffix),
                last: total_len - 1,
            }),
            None => RangeRequest::Whole,
        };
    }
    let Some(first) = number(first) else {
        return RangeRequest::Whole;
    };
    if first >= total_len {
        return RangeRequest::Unsatisfiable;
    }
    let last = if last.is_empty() {
        total_len - 1
    } else {
        match number(last) {
            Some(last) if last >= first => last.min(total_len - 1),
            _ => return RangeRequest::Whole,
        }
    };
    RangeRequest::Part(ByteRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> RangeRequest {
        RangeRequest::Part(ByteRange { first, last })
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(parse_range(Some("bytes=0-99"), 1000), part(0, 99));
        assert_eq!(parse_range(Some("bytes=500-"), 1000), part(500, 999));
        assert_eq!(parse_range(Some("bytes=-100"), 1000), part(900, 999));
        assert_eq!(parse_range(Some("bytes=900-5000"), 1000), part(900, 999));
        assert_eq!(parse_range(Some("bytes=-5000"), 1000), part(0, 999));
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=1000-"), 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 1000),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn what_is_not_understood_gets_the_whole_body() {
        for header in [
            None,
            Some("items=0-1"),
            Some("bytes=0-1,5-6"),
            Some("bytes=9-3"),
            Some("bytes=a-b"),
            Some("bytes=-"),
            Some("bytes=1"),
            Some("bytes=99999999999999999999999-"),
        ] {
            assert_eq!(parse_range(header, 1000), RangeRequest::Whole, "{header:?}");
        }
    }

    #[test]
    fn length_counts_both_ends() {
        assert_eq!(ByteRange { first: 3, last: 3 }.len(), 1);
    }
}
