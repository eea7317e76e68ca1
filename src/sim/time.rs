//! UTC formatting and parsing for the simulator, without a date crate: VOD's times are all
//! `YYYY-MM-DDTHH:MM:SSZ` (ListLiveRecordVideo also takes `YYYY-MM-DD HH:MM:SS`).

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix time in milliseconds (sub-second part dropped, as VOD does).
pub fn fmt_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DDTHH:MM:SS.mmmZ` or `YYYY-MM-DD HH:MM:SS` (UTC) into
/// unix milliseconds.
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let rest = &s[19..];
    let millis = match rest {
        "" | "Z" => 0,
        _ => {
            let frac = rest.strip_prefix('.')?.strip_suffix('Z')?;
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let padded = format!("{frac:0<3}");
            padded[..3].parse::<i64>().ok()?
        }
    };
    if b[10] == b' ' && !rest.is_empty() {
        return None;
    }
    Some(((days_from_civil(y, mo, d) * 86_400) + h * 3600 + mi * 60 + se) * 1000 + millis)
}

/// Milliseconds since the unix epoch by the system clock (adapters only; the scenario takes
/// its base time as a parameter).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_vod_times() {
        // 2017-12-08T09:26:17Z, the doc's AddLiveRecordVideoComplete example.
        let ms = parse_utc("2017-12-08T09:26:17Z").expect("parses");
        assert_eq!(ms, 1_512_725_177_000);
        assert_eq!(fmt_utc(ms + 999), "2017-12-08T09:26:17Z");
        assert_eq!(parse_utc("2017-12-08 09:26:17"), Some(ms));
        assert_eq!(parse_utc("2017-12-08T09:26:17.540Z"), Some(ms + 540));
        assert_eq!(fmt_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_utc("2024-02-29T23:59:59Z").map(fmt_utc).as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(parse_utc("2017-13-08T09:26:17Z"), None);
        assert_eq!(parse_utc("yesterday"), None);
    }
}
