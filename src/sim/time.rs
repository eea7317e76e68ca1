//! UTC formatting and parsing for the simulator: VOD's times are all `YYYY-MM-DDTHH:MM:SSZ`
//! (ListLiveRecordVideo also takes `YYYY-MM-DD HH:MM:SS`). The calendar arithmetic is the
//! domain's (`domain::time`).

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix time in milliseconds (sub-second part dropped, as VOD does).
pub fn fmt_utc(ms: i64) -> String {
    crate::domain::time::format_rfc3339(ms.div_euclid(1000) * 1000)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DDTHH:MM:SS.mmmZ` or `YYYY-MM-DD HH:MM:SS` (UTC) into
/// unix milliseconds.
pub fn parse_utc(s: &str) -> Option<i64> {
    crate::domain::time::parse_event_time(s).ok()
}

/// Milliseconds since the unix epoch by the system clock (adapters only; the scenario takes
/// its base time as a parameter).
pub fn now_ms() -> i64 {
    crate::clock::now_ms()
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
