//! VOD callback authentication: `X-VOD-SIGNATURE = md5_hex("<callback URL>|<X-VOD-TIMESTAMP>|<AuthKey>")`.
//!
//! The URL is the callback URL exactly as configured in VOD, never rebuilt from the request.
//! The body is not signed, so a captured request can be replayed inside the timestamp window;
//! processing downstream is idempotent for that reason. Pure: `now` comes in as a parameter.
use md5::{Digest, Md5};

/// Which configured key verified a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    Current,
    Previous,
}

impl KeyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyVersion::Current => "current",
            KeyVersion::Previous => "previous",
        }
    }
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing X-VOD-TIMESTAMP or X-VOD-SIGNATURE header")]
    Missing,
    #[error("X-VOD-TIMESTAMP is not a unix time in seconds")]
    BadTimestamp,
    #[error("X-VOD-TIMESTAMP is {skew_secs} s away from now, outside the {window_secs} s window")]
    Stale { skew_secs: i64, window_secs: i64 },
    #[error("X-VOD-SIGNATURE does not match")]
    Mismatch,
}

/// Verifies callbacks against the configured callback URL and one or two keys.
#[derive(Clone)]
pub struct CallbackVerifier {
    callback_url: String,
    key: String,
    previous_key: Option<String>,
    window_secs: i64,
}

impl std::fmt::Debug for CallbackVerifier {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackVerifier")
            .field("callback_url", &self.callback_url)
            .field("key", &"<redacted>")
            .field(
                "previous_key",
                &self.previous_key.as_ref().map(|_| "<redacted>"),
            )
            .field("window_secs", &self.window_secs)
            .finish()
    }
}

impl CallbackVerifier {
    pub fn new(
        callback_url: impl Into<String>,
        key: impl Into<String>,
        previous_key: Option<String>,
        window_secs: i64,
    ) -> Self {
        CallbackVerifier {
            callback_url: callback_url.into(),
            key: key.into(),
            previous_key,
            window_secs,
        }
    }

    /// Checks the two headers (as received, `None` when absent) at time `now_secs`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        now_secs: i64,
    ) -> Result<KeyVersion, AuthError> {
        let (Some(ts), Some(sig)) = (timestamp, signature) else {
            return Err(AuthError::Missing);
        };
        let ts_secs: i64 = ts.trim().parse().map_err(|_| AuthError::BadTimestamp)?;
        let skew = now_secs.saturating_sub(ts_secs);
        if skew.abs() > self.window_secs {
            return Err(AuthError::Stale {
                skew_secs: skew,
                window_secs: self.window_secs,
            });
        }
        let sig = sig.trim().to_ascii_lowercase();
        if constant_time_eq(
            sign(&self.callback_url, ts.trim(), &self.key).as_bytes(),
            sig.as_bytes(),
        ) {
            return Ok(KeyVersion::Current);
        }
        if let Some(prev) = &self.previous_key {
            if constant_time_eq(
                sign(&self.callback_url, ts.trim(), prev).as_bytes(),
                sig.as_bytes(),
            ) {
                return Ok(KeyVersion::Previous);
            }
        }
        Err(AuthError::Mismatch)
    }
}

/// `md5_hex("<url>|<timestamp>|<key>")`, lowercase, as VOD sends it.
pub fn sign(callback_url: &str, timestamp: &str, key: &str) -> String {
    let digest = Md5::digest(format!("{callback_url}|{timestamp}|{key}").as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://www.example.com/your/callback";

    #[test]
    fn doc_test_vector() {
        assert_eq!(
            sign(URL, "1519375990", "test123"),
            "c72b60894140fa98920f1279219b7ed4"
        );
    }

    #[test]
    fn current_and_previous_keys_are_told_apart() {
        let v = CallbackVerifier::new(URL, "new-key", Some("test123".into()), 300);
        let now = 1519375990 + 10;
        assert_eq!(
            v.verify(
                Some("1519375990"),
                Some("c72b60894140fa98920f1279219b7ed4"),
                now
            ),
            Ok(KeyVersion::Previous)
        );
        let sig = sign(URL, "1519375990", "new-key");
        assert_eq!(
            v.verify(Some("1519375990"), Some(&sig.to_uppercase()), now),
            Ok(KeyVersion::Current)
        );
    }

    #[test]
    fn refusals_say_why() {
        let v = CallbackVerifier::new(URL, "test123", None, 300);
        let good = "c72b60894140fa98920f1279219b7ed4";
        assert_eq!(
            v.verify(None, Some(good), 1519375990),
            Err(AuthError::Missing)
        );
        assert_eq!(
            v.verify(Some("abc"), Some(good), 1519375990),
            Err(AuthError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some("1519375990"), Some(good), 1519375990 + 301),
            Err(AuthError::Stale {
                skew_secs: 301,
                window_secs: 300
            })
        );
        assert_eq!(
            v.verify(
                Some("1519375990"),
                Some("c72b60894140fa98920f1279219b7ed5"),
                1519375990
            ),
            Err(AuthError::Mismatch)
        );
        let other_url =
            CallbackVerifier::new("https://www.example.com/other", "test123", None, 300);
        assert_eq!(
            other_url.verify(Some("1519375990"), Some(good), 1519375990),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let v = CallbackVerifier::new(URL, "supersecret", Some("oldsecret".into()), 300);
        let s = format!("{v:?}");
        assert!(
            !s.contains("supersecret") && !s.contains("oldsecret"),
            "{s}"
        );
    }
}
