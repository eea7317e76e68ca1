//! The operator console: a page at `/` (HTML, CSS and JS embedded in the binary, no CDN),
//! its small JSON endpoints under `/v1/console/`, the operator token that guards them and the
//! manual transcode POST, and the api-side policy check of manual requests.
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

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use super::handler::{ApiError, ApiState};
use crate::domain::lattice::{OriginKind, StreamKey};
use crate::domain::policy::{Action, Policy};
use crate::vod::client::Secret;

const INDEX_HTML: &str = include_str!("console/index.html");
const LOGIN_HTML: &str = include_str!("console/login.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// Name of the console's session cookie.
pub const COOKIE: &str = "live2vod_console";
/// Header the console's own POSTs carry (CSRF: a cross-site form cannot set it).
pub const CSRF_HEADER: &str = "x-live2vod-console";

/// What the console adds to the api: the operator token and the policy manual requests are
/// checked against. `Debug` never shows the token.
#[derive(Clone, Default, Debug)]
pub struct Console {
    token: Option<Secret>,
    policy: Option<Arc<Policy>>,
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
    fn session_value(token: &Secret) -> String {
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
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
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

/// The console's routes (merged into the api's router).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/console/app.js", get(app_js))
        .route("/console/app.css", get(app_css))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/v1/console/stats", get(stats))
        .with_state(state)
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let page = LOGIN_HTML.replace("{{message}}", message);
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

fn asset(st: &ApiState, headers: &HeaderMap, kind: &'static str, body: &'static str) -> Response {
    if !st.inner.console.may_read(headers) {
        return login_page(StatusCode::UNAUTHORIZED, "");
    }
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    let mut r = asset(&st, &headers, "text/html; charset=utf-8", INDEX_HTML);
    if r.status().is_success() {
        // The page is never framed by another site (clickjacking of the transcode button).
        r.headers_mut()
            .insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    r
}

async fn app_js(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    asset(&st, &headers, "text/javascript; charset=utf-8", APP_JS)
}

async fn app_css(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    asset(&st, &headers, "text/css; charset=utf-8", APP_CSS)
}

/// `token=<value>` of an `application/x-www-form-urlencoded` body.
fn form_token(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let raw = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")?
        .1;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

async fn login(State(st): State<ApiState>, body: Bytes) -> Response {
    let Some(token) = &st.inner.console.token else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    let given = form_token(&body).unwrap_or_default();
    if !ct_eq(given.trim().as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("console login refused: wrong operator token");
        return login_page(StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        Console::session_value(token)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

/// Sum of the samples of counter `name` in this process's metrics; `None` when the process
/// has none (the role that counts it does not run here, or counted nothing yet).
fn counter_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum)
}

async fn stats(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    if !st.inner.console.may_read(&headers) {
        return ApiError::Unauthorized.into_response();
    }
    let totals = st
        .inner
        .store
        .index()
        .map(|i| i.totals())
        .unwrap_or_default();
    let by_status: serde_json::Map<String, Value> = super::listing::STATUSES
        .iter()
        .zip(totals.by_status)
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    let metrics = crate::metrics::render();
    Json(json!({
        "caught_up": *st.inner.caught_up.borrow(),
        "aggregates": st.inner.store.len(),
        "streams": totals.streams,
        "videos": totals.videos,
        "by_status": by_status,
        "waiting": totals.waiting,
        "problems": totals.problems,
        "undecodable": totals.undecodable,
        // Counted by the roles that run in this process (all of them in `run` and `demo`);
        // null when none here counts them: see Prometheus for a split deployment.
        "recovered_by_reconciliation": counter_sum(&metrics, "live2vod_reconcile_recovered_total"),
        "dead_letters": counter_sum(&metrics, crate::metrics::DLQ_RECORDS),
        "token_required": st.inner.console.token.is_some(),
        "policy_loaded": st.inner.console.policy.is_some(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn form_tokens_are_url_decoded_and_counters_summed() {
        assert_eq!(form_token(b"token=a%2Bb+c&x=1").as_deref(), Some("a+b c"));
        assert_eq!(form_token(b"x=1"), None);
        let text = "# TYPE x counter\nlive2vod_dlq_records_total{role=\"fold\"} 2\nlive2vod_dlq_records_total{role=\"worker\"} 3\nlive2vod_dlq_records_total_other 9\n";
        assert_eq!(counter_sum(text, "live2vod_dlq_records_total"), Some(5.0));
        assert_eq!(
            counter_sum(text, "live2vod_reconcile_recovered_total"),
            None
        );
    }
}
