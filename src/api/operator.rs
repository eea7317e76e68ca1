//! The operator token that guards the console and the manual transcode POST, and the api-side
//! policy check of manual requests (used by the console's routes and by the api's POST).
//!
//! Access, when `--operator-token` is set:
//! - the page, its assets and `/v1/console/*` need the token, either as `Authorization: Bearer
//!   <token>` or as the session cookie the login form sets (`HttpOnly; SameSite=Strict`; its
//!   value is an HMAC of the token, not the token);
//! - `POST /v1/videos/{id}/transcode` needs it too. With the cookie, the request must also carry
//!   the header `X-Live2vod-Console: 1` and, when the browser sends `Origin`, come from the api's
//!   own origin: a cross-site form can neither set a custom header nor pass the origin check,
//!   and `SameSite=Strict` keeps the cookie off cross-site requests to begin with (CSRF);
//! - the JSON GETs (`/v1/videos…`, `/v1/streams…`) and `/metrics` stay open, for internal
//!   callers: put the api behind a network policy or a proxy if they must not be.
//!
//! Without a token everything is open, as the api was before the console.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::domain::lattice::{OriginKind, StreamKey};
use crate::domain::policy::{Action, Policy};
use crate::vod::client::Secret;

/// Name of the console's session cookie.
pub const COOKIE: &str = "live2vod_console";
/// Header the console's own POSTs carry (CSRF: a cross-site form cannot set it).
pub const CSRF_HEADER: &str = "x-live2vod-console";

/// What the console adds to the api: the operator token and the policy manual requests are
/// checked against. `Debug` never shows the token.
#[derive(Clone, Default, Debug)]
pub struct Console {
    pub(super) token: Option<Secret>,
    pub(super) policy: Option<Arc<Policy>>,
}

impl Console {
    /// `token`: the operator token (`None`: open). `policy`: refuse manual requests the policy
    /// refuses (`None`: the api accepts them all and the fold decides, as before).
    pub fn new(token: Option<Secret>, policy: Option<Policy>) -> Self {
        Console {
            token: token.filter(|t| !t.expose().is_empty()),
            policy: policy.map(Arc::new),
        }
    }

    /// The cookie value that proves the login (an HMAC of the token, so the cookie does not
    /// carry the token itself).
    pub(super) fn session_value(token: &Secret) -> String {
        let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(token.expose().as_bytes()) {
            Ok(m) => m,
            // HMAC takes keys of any length; keep the type checker honest without a panic.
            Err(_) => return String::new(),
        };
        mac.update(b"live2vod console session v1");
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn bearer_ok(&self, token: &Secret, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| ct_eq(given.trim().as_bytes(), token.expose().as_bytes()))
    }

    fn cookie_ok(&self, token: &Secret, headers: &HeaderMap) -> bool {
        let want = Self::session_value(token);
        !want.is_empty()
            && headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .any(|(k, v)| k == COOKIE && ct_eq(v.as_bytes(), want.as_bytes()))
    }

    /// May this request see the page and `/v1/console/*`?
    pub fn may_read(&self, headers: &HeaderMap) -> bool {
        match &self.token {
            None => true,
            Some(t) => self.bearer_ok(t, headers) || self.cookie_ok(t, headers),
        }
    }

    /// May this request POST a transcode? `Err` says why not (the status and message).
    pub fn may_post(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        let Some(t) = &self.token else {
            return Ok(());
        };
        if self.bearer_ok(t, headers) {
            return Ok(());
        }
        if !self.cookie_ok(t, headers) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "the operator token is required (Authorization: Bearer, or log in on the console)",
            ));
        }
        if !headers.contains_key(CSRF_HEADER) || !same_origin(headers) {
            return Err((
                StatusCode::FORBIDDEN,
                "cross-site request refused: the console's requests carry X-Live2vod-Console and come from its own origin",
            ));
        }
        Ok(())
    }

    /// Why the policy refuses a manual transcode of the video with this JSON view, if it does.
    /// A video whose origin is not known yet is not refused: the fold holds the request until
    /// the origin says which policy applies.
    pub fn refusal(&self, view: &Value) -> Option<String> {
        manual_refusal(self.policy.as_deref()?, view)
    }

    /// What the console shows next to a video's transcode button.
    pub fn manual_transcode(&self, view: &Value) -> Value {
        let Some(policy) = self.policy.as_deref() else {
            return json!({"allowed": true, "reason": null, "template_group": null, "priority": null});
        };
        let refusal = manual_refusal(policy, view);
        let (group, priority) =
            match origin_of(view).map(|(k, kind)| policy.for_stream(&k).action(kind).clone()) {
                Some(Action::Transcode {
                    template_group,
                    priority,
                }) => (Some(template_group), priority),
                _ => (None, None),
            };
        json!({"allowed": refusal.is_none(), "reason": refusal,
               "template_group": group, "priority": priority})
    }
}

fn origin_of(view: &Value) -> Option<(StreamKey, OriginKind)> {
    let o = &view["origin"];
    let kind = match o["kind"].as_str()? {
        "composed" => OriginKind::Composed,
        _ => OriginKind::LiveSegment,
    };
    let key = StreamKey::new(
        o["domain"].as_str()?,
        o["app"].as_str()?,
        o["stream"].as_str()?,
    );
    key.is_complete().then_some((key, kind))
}

/// The policy's refusal of a manual request for this video (same rule as the fold's
/// projector: `none` for the video's class refuses manual requests).
pub fn manual_refusal(policy: &Policy, view: &Value) -> Option<String> {
    let (key, kind) = origin_of(view)?;
    let action = policy.for_stream(&key).action(kind);
    (*action == Action::None).then(|| {
        let class = match kind {
            OriginKind::LiveSegment => "segments",
            OriginKind::Composed => "composed videos",
        };
        format!(
            "the policy says `none` for {class} of {}: manual transcode requests are refused",
            key.path()
        )
    })
}

/// Equality in time independent of where the inputs differ (the length is not hidden).
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// No `Origin`, or an `Origin` whose host is the request's `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && origin_host == host
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn the_token_is_needed_and_a_cookie_post_must_be_same_site() {
        let c = Console::new(Some(Secret::new("tok-1")), None);
        assert!(!c.may_read(&headers(&[])));
        assert!(!c.may_read(&headers(&[("authorization", "Bearer tok-2")])));
        assert!(c.may_read(&headers(&[("authorization", "Bearer tok-1")])));
        let cookie = format!(
            "a=b; {COOKIE}={}",
            Console::session_value(&Secret::new("tok-1"))
        );
        assert!(!cookie.contains("tok-1"));
        assert!(c.may_read(&headers(&[("cookie", &cookie)])));
        assert_eq!(
            c.may_post(&headers(&[])).map_err(|e| e.0),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            c.may_post(&headers(&[("cookie", &cookie)]))
                .map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
        let own = [
            ("cookie", cookie.as_str()),
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
        ];
        assert!(c.may_post(&headers(&own)).is_ok());
        let mut cross = own;
        cross[3] = ("origin", "http://evil.example");
        assert!(c.may_post(&headers(&cross)).is_err());
        assert!(c
            .may_post(&headers(&[("authorization", "Bearer tok-1")]))
            .is_ok());
        assert!(Console::default().may_post(&headers(&[])).is_ok());
        assert!(!format!("{c:?}").contains("tok-1"));
    }

    #[test]
    fn the_policy_refusal_follows_the_projector_rule() {
        let p = Policy::parse(
            "[defaults]\nsegments = { action = \"none\" }\n[[rules]]\nstreams = \"d/a/store-*\"\nsegments = { action = \"manual\" }\n",
        )
        .expect("policy");
        let c = Console::new(None, Some(p));
        let seg = |s: &str| json!({"origin": {"kind": "live_segment", "domain": "d", "app": "a", "stream": s}});
        assert_eq!(c.refusal(&seg("store-1")), None);
        let why = c.refusal(&seg("other")).expect("refused");
        assert!(why.contains("d/a/other"), "{why}");
        assert_eq!(c.manual_transcode(&seg("other"))["allowed"], false);
        // Origin unknown: the fold waits, so the api does not refuse.
        assert_eq!(c.refusal(&json!({"origin": null})), None);
        assert_eq!(Console::default().refusal(&seg("other")), None);
    }
}
