//! Event times: VOD's `EventTime` strings <-> milliseconds since the Unix epoch (UTC).
//!
//! Hand-written civil-date arithmetic (Howard Hinnant's `days_from_civil`), so the pure core needs
//! no date crate. Accepted shapes, all UTC unless an offset is given:
//! `2017-12-08T09:26:17Z`, `2017-12-08T09:26:17.540Z`, VOD's quirk `2017-12-08T09:29:46:540Z`,
//! a space instead of `T`, 1..9 fraction digits (truncated to ms), `+08:00`/`+0800` offsets, and
//! no zone at all (taken as UTC, which is what VOD means).
use thiserror::Error;

/// Why a time string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid time {value:?}: {reason}")]
pub struct TimeError {
    /// The offending text.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn err(value: &str, reason: &'static str) -> TimeError {
    TimeError {
        value: value.to_string(),
        reason,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    let mut v = 0i64;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Parses an event time to milliseconds since the Unix epoch (see the module doc for shapes).
pub fn parse_event_time(s: &str) -> Result<i64, TimeError> {
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() < 19 {
        return Err(err(s, "too short for YYYY-MM-DDTHH:MM:SS"));
    }
    let year = digits(b, 0, 4).ok_or_else(|| err(s, "bad year"))?;
    let month = digits(b, 5, 2).ok_or_else(|| err(s, "bad month"))? as u32;
    let day = digits(b, 8, 2).ok_or_else(|| err(s, "bad day"))? as u32;
    let hour = digits(b, 11, 2).ok_or_else(|| err(s, "bad hour"))?;
    let minute = digits(b, 14, 2).ok_or_else(|| err(s, "bad minute"))?;
    let second = digits(b, 17, 2).ok_or_else(|| err(s, "bad second"))?;
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(err(s, "bad date/time separators"));
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err(s, "expected 'T' between date and time"));
    }
    if !(1..=12).contains(&month) {
        return Err(err(s, "month out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(err(s, "day out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(err(s, "time of day out of range"));
    }
    let mut i = 19;
    let mut millis = 0i64;
    // Fraction: '.' per RFC 3339, or ':' as VOD writes it in one event type.
    if i < b.len() && (b[i] == b'.' || b[i] == b',' || b[i] == b':') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return Err(err(s, "bad fraction of a second"));
        }
        for k in 0..3 {
            millis = millis * 10
                + if k < n {
                    i64::from(b[start + k] - b'0')
                } else {
                    0
                };
        }
    }
    let offset_min = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let hh = digits(b, i + 1, 2).ok_or_else(|| err(s, "bad zone offset"))?;
            let rest = &b[i + 3..];
            let mm = match rest {
                [b':', _, _] => digits(b, i + 4, 2),
                [_, _] => digits(b, i + 3, 2),
                [] => Some(0),
                _ => None,
            }
            .ok_or_else(|| err(s, "bad zone offset"))?;
            if hh > 23 || mm > 59 {
                return Err(err(s, "zone offset out of range"));
            }
            let m = hh * 60 + mm;
            if sign == b'+' {
                m
            } else {
                -m
            }
        }
        Some(_) => return Err(err(s, "unexpected text after the time")),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(secs * 1000 + millis)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC: `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm`
/// only when the milliseconds are not zero (so whole-second VOD times round-trip textually).
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
    if (0..=9999).contains(&y) {
        // Written by hand: derived stream facts carry four of these, and `format!` costs
        // several times the rest of the conversion.
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, i64::from(m));
        put(8, 2, i64::from(d));
        put(11, 2, hh);
        put(14, 2, mm);
        put(17, 2, ss);
        let len = if millis == 0 {
            b[19] = b'Z';
            20
        } else {
            put(20, 3, millis);
            24
        };
        // Only ASCII digits and separators were written.
        return String::from_utf8_lossy(&b[..len]).into_owned();
    }
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vod_sample_time() {
        // 2017-12-08T09:26:17Z = 1512725177 s (checked with `date -u -d`).
        assert_eq!(
            parse_event_time("2017-12-08T09:26:17Z").unwrap(),
            1_512_725_177_000
        );
    }

    #[test]
    fn parses_millis_with_dot_and_with_vod_colon_quirk() {
        let base = parse_event_time("2017-12-08T09:29:46Z").unwrap();
        assert_eq!(
            parse_event_time("2017-12-08T09:29:46:540Z").unwrap(),
            base + 540
        );
        assert_eq!(
            parse_event_time("2017-12-08T09:29:46.540Z").unwrap(),
            base + 540
        );
        assert_eq!(
            parse_event_time("2017-12-08T09:29:46.5Z").unwrap(),
            base + 500
        );
        assert_eq!(
            parse_event_time("2017-12-08T09:29:46.123456789Z").unwrap(),
            base + 123
        );
    }

    #[test]
    fn offsets_and_missing_zone() {
        let utc = parse_event_time("2017-12-08T09:26:17Z").unwrap();
        assert_eq!(parse_event_time("2017-12-08T17:26:17+08:00").unwrap(), utc);
        assert_eq!(parse_event_time("2017-12-08T17:26:17+0800").unwrap(), utc);
        assert_eq!(parse_event_time("2017-12-08 09:26:17").unwrap(), utc);
        assert_eq!(parse_event_time("2017-12-08T08:26:17-01:00").unwrap(), utc);
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2017-12-08",
            "2017-13-08T09:26:17Z",
            "2017-02-29T09:26:17Z",
            "2017-12-08T24:00:00Z",
            "2017-12-08T09:26:17.Z",
            "2017-12-08T09:26:17Zjunk",
            "2017/12/08T09:26:17Z",
            "abcd-12-08T09:26:17Z",
        ] {
            assert!(parse_event_time(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_event_time("2016-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn format_round_trips_and_hides_zero_millis() {
        assert_eq!(format_rfc3339(1_512_725_177_000), "2017-12-08T09:26:17Z");
        assert_eq!(
            format_rfc3339(1_512_725_386_540),
            "2017-12-08T09:29:46.540Z"
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        // Every day across several leap cycles round-trips through the civil conversion.
        for day in -800_000i64..800_000 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        for ms in [
            1_512_725_177_000,
            951_782_400_123,
            4_102_444_799_999,
            -86_400_000,
        ] {
            assert_eq!(parse_event_time(&format_rfc3339(ms)).unwrap(), ms);
        }
    }

    #[test]
    fn hand_written_format_matches_the_format_macro() {
        let reference = |ms: i64| {
            let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
            if millis == 0 {
                format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
            } else {
                format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
            }
        };
        let mut ms = -62_200_000_000_000i64; // year -2
        while ms < 260_000_000_000_000 {
            for t in [ms, ms + 7, ms + 999, ms + 1000] {
                assert_eq!(format_rfc3339(t), reference(t), "{t}");
            }
            ms += 3_999_999_937;
        }
    }
}
