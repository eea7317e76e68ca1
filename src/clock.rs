//! The one adapter onto the system clock and the host's identity. The domain never reads
//! either: adapters call these and hand the values to it as data.
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now as UTC `YYYY-MM-DDThh:mm:ssZ` (whole seconds), the shape of VOD's `Timestamp` and
/// `EventTime`.
pub fn utc_now() -> String {
    format_utc_secs(now_ms().div_euclid(1000))
}

/// UTC `YYYY-MM-DDThh:mm:ssZ` of seconds since the Unix epoch.
pub fn format_utc_secs(secs: i64) -> String {
    // Whole seconds: the domain's formatter writes no fraction then.
    crate::domain::time::format_rfc3339(secs.saturating_mul(1000))
}

/// The host name (`$HOSTNAME`, else the kernel's), `None` when neither can be read. Used
/// for the relay id, the api's instance name and the fold's default transactional id.
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(format_utc_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_secs(1_507_636_974), "2017-10-10T12:02:54Z");
        assert_eq!(format_utc_secs(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn now_is_after_2020_and_formats_as_vod_does() {
        assert!(now_ms() > 1_577_836_800_000);
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z'), "{s}");
    }
}
