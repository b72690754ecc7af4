//! The one form every stored time takes, `2024-01-01T00:00:00.000000Z` (RFC 3339, microseconds,
//! `Z`), written and read without a general-purpose formatter: ingest handles several per span,
//! and chrono's RFC 3339 formatting and parsing cost more than the rest of a field's handling.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// Where the canonical form has its separators.
const SEPARATORS: [(usize, u8); 7] = [
    (4, b'-'),
    (7, b'-'),
    (10, b'T'),
    (13, b':'),
    (16, b':'),
    (19, b'.'),
    (26, b'Z'),
];

/// Whether `text` has the canonical form's length and separators (digits are not checked).
/// Two such texts of valid times order as the times do, so they compare without parsing.
pub fn has_form(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 27 && SEPARATORS.iter().all(|&(at, byte)| bytes[at] == byte)
}

/// `time` in the canonical form (microseconds, truncated).
///
/// ```
/// use axion_model::canonical_time;
///
/// let time = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
/// assert_eq!(canonical_time::format(time), "2023-11-14T22:13:20.123456Z");
/// assert_eq!(canonical_time::parse("2023-11-14T22:13:20.123456Z").unwrap().timestamp_subsec_micros(), 123_456);
/// ```
pub fn format(time: DateTime<Utc>) -> String {
    // The naive UTC value once: each accessor on the `DateTime` applies the offset again.
    let naive = time.naive_utc();
    let year = naive.year();
    if !(0..=9999).contains(&year) {
        return time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    }
    let mut out = [0u8; 27];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut value = value;
        for index in (at..at + width).rev() {
            out[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, naive.month(), 2);
    put(8, naive.day(), 2);
    put(11, naive.hour(), 2);
    put(14, naive.minute(), 2);
    put(17, naive.second(), 2);
    // A leap second shows as nanoseconds past 1e9; RFC 3339 writes it as second 60.
    let nanos = naive.nanosecond();
    if nanos >= 1_000_000_000 {
        return time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    }
    put(20, nanos / 1000, 6);
    for (at, byte) in SEPARATORS {
        out[at] = byte;
    }
    // Digits and separators only: always ASCII.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// A time in exactly the canonical form; `None` for anything else (other forms need a full
/// RFC 3339 parser).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    if !has_form(text) {
        return None;
    }
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes[from..to].iter().try_fold(0u32, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
    let time = date.and_hms_micro_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 26)?,
    )?;
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_chrono_both_ways() {
        for (seconds, nanos) in [
            (0i64, 0u32),
            (1_700_000_000, 999_999_999),
            (1_767_225_600, 1_000),
            (-1, 5_000),
            (253_402_300_799, 0), // 9999-12-31T23:59:59
            (253_402_300_800, 0), // year 10000: chrono's form
            (-62_167_219_200, 0), // 0000-01-01
            (-62_167_219_201, 0), // before year 0
        ] {
            let time = DateTime::from_timestamp(seconds, nanos).unwrap();
            let expected = time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(format(time), expected);
            if expected.len() == 27 {
                let parsed = parse(&expected).unwrap();
                assert_eq!(parsed, DateTime::parse_from_rfc3339(&expected).unwrap());
            }
        }
    }

    #[test]
    fn other_forms_and_impossible_dates_are_not_canonical() {
        for text in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.000000+00:00",
            "2024-02-30T00:00:00.000000Z",
            "2024-01-01T24:00:00.000000Z",
            "2024-01-01T00:00:60.000000Z",
            "2024-01-01 00:00:00.000000Z",
            "2024-01-01T00:00:00.00000aZ",
            "+024-01-01T00:00:00.000000Z",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }
}
