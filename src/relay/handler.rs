//! `POST /callbacks/vod`: authenticate, validate, produce the raw body, answer after the ack.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use tracing::Instrument;

use super::{Auth, Config};
use crate::domain::event::{event_type_of, route, EventError};
use crate::kafka::producer::{fatal_error, produce_acked, AckError};
use crate::metrics::{RELAY_LATENCY, RELAY_REQUESTS, RELAY_VERIFIED};
use crate::vod::callback_auth::AuthError;

/// Record headers (see docs/ARCHITECTURE.md).
pub const HEADER_RECEIVED_AT_MS: &str = crate::domain::vocab::header::RECEIVED_AT_MS;
pub const HEADER_RELAY_ID: &str = crate::domain::vocab::header::RELAY_ID;
pub const HEADER_KEY_VERSION: &str = crate::domain::vocab::header::KEY_VERSION;
pub const HEADER_EVENT_TYPE: &str = crate::domain::vocab::header::EVENT_TYPE;

/// Event types in this namespace are produced by live2vod itself, never accepted from outside.
const INTERNAL_NAMESPACE: &str = crate::domain::vocab::event_type::LIVE2VOD_PREFIX;

/// The Kafka key of an authentic JSON object that names no id live2vod routes by (no VideoId,
/// MediaId, ImageId, AttachedMediaId or JobId): it is written all the same and answered 200,
/// because VOD would retry a refusal 3 times and then drop a genuine callback; the fold cannot
/// fold it and keeps it in its dead-letter topic with the reason.
pub const UNROUTED_KEY: &str = "";

/// Shared state of the callback handler.
#[derive(Clone)]
pub struct RelayState {
    inner: Arc<Inner>,
}

struct Inner {
    producer: FutureProducer,
    topic: String,
    auth: Auth,
    ack_timeout: Duration,
    body_timeout: Duration,
    relay_id: String,
    max_body_bytes: usize,
    /// Set once the producer hit a fatal error: the relay then stops (and is restarted).
    fatal: tokio::sync::watch::Sender<Option<String>>,
}

impl RelayState {
    pub(super) fn new(
        cfg: &Config,
        producer: FutureProducer,
        topic: String,
        fatal: tokio::sync::watch::Sender<Option<String>>,
    ) -> Self {
        RelayState {
            inner: Arc::new(Inner {
                producer,
                topic,
                auth: cfg.auth.clone(),
                ack_timeout: cfg.ack_timeout,
                body_timeout: cfg.body_timeout,
                relay_id: cfg.relay_id.clone(),
                max_body_bytes: cfg.max_body_bytes,
                fatal,
            }),
        }
    }
}

/// The callback route (`POST /callbacks/vod`), with the body size limit applied.
pub fn router(state: RelayState) -> Router {
    let limit = state.inner.max_body_bytes;
    Router::new()
        .route("/callbacks/vod", post(callback))
        .layer(DefaultBodyLimit::max(limit))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": "no such route; VOD callbacks go to POST /callbacks/vod" })),
            )
        })
        .with_state(state)
}

/// Why a callback was not accepted; each maps to one HTTP status and a `{"error": ...}` body.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] AuthError),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot read the body: {0}")]
    BadBody(String),
    #[error("the body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("{0}")]
    NoRoute(#[from] EventError),
    #[error("EventType {0:?} is in the internal live2vod. namespace and cannot be posted")]
    InternalEventType(String),
    #[error("the broker did not take the write: {0}")]
    Unavailable(#[from] AckError),
}

impl RelayError {
    fn status(&self) -> StatusCode {
        match self {
            RelayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RelayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RelayError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RelayError::BadBody(_) | RelayError::NoRoute(_) | RelayError::InternalEventType(_) => {
                StatusCode::BAD_REQUEST
            }
            RelayError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `outcome` label of `live2vod_relay_requests_total`.
    fn outcome(&self) -> &'static str {
        match self {
            RelayError::Unauthorized(_) => "unauthorized",
            RelayError::TooLarge(_) => "too_large",
            RelayError::BodyTimeout(_) => "body_timeout",
            RelayError::BadBody(_) | RelayError::NoRoute(_) | RelayError::InternalEventType(_) => {
                "bad_request"
            }
            RelayError::Unavailable(_) => "unavailable",
        }
    }
}

impl IntoResponse for RelayError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

async fn callback(
    State(st): State<RelayState>,
    req: Request,
) -> Result<Json<serde_json::Value>, RelayError> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "relay.callback",
        video_id = tracing::field::Empty,
        event_type = tracing::field::Empty
    );
    let result = accept(&st, req).instrument(span.clone()).await;
    let outcome = match &result {
        Ok((_, outcome)) => *outcome,
        Err(e) => e.outcome(),
    };
    metrics::counter!(RELAY_REQUESTS, "outcome" => outcome).increment(1);
    metrics::histogram!(RELAY_LATENCY, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if matches!(result, Err(RelayError::Unavailable(_))) {
        if let Some(reason) = fatal_error(&st.inner.producer) {
            span.in_scope(|| tracing::error!(%reason, "Kafka producer hit a fatal error; the relay stops so it can be restarted with a new one"));
            st.inner.fatal.send_replace(Some(reason));
        }
    }
    span.in_scope(|| match &result {
        Ok((_, OUTCOME_UNROUTED)) => tracing::warn!(
            "callback acknowledged without a routing id: written with an empty key, the fold dead-letters it"
        ),
        Ok(_) => tracing::debug!("callback acknowledged"),
        Err(e @ RelayError::Unavailable(_)) => tracing::warn!(error = %e, "callback answered 503"),
        Err(e) => tracing::info!(error = %e, status = e.status().as_u16(), "callback refused"),
    });
    result.map(|(body, _)| body)
}

/// The `outcome` label of an acknowledged body that names no routing id.
const OUTCOME_UNROUTED: &str = "unrouted";

/// Verifies, reads and writes one callback; the JSON answer and the `outcome` label.
async fn accept(
    st: &RelayState,
    req: Request,
) -> Result<(Json<serde_json::Value>, &'static str), RelayError> {
    let st = &st.inner;
    let headers = req.headers();
    let received_at_ms = crate::clock::now_ms();
    let key_version = match &st.auth {
        Auth::Disabled => "none",
        Auth::Verify(v) => v
            .verify(
                header_str(headers, "x-vod-timestamp"),
                header_str(headers, "x-vod-signature"),
                received_at_ms / 1000,
            )?
            .as_str(),
    };
    metrics::counter!(RELAY_VERIFIED, "key_version" => key_version).increment(1);

    // Read only once the sender is authenticated, and only for so long: a client that
    // trickles its body would otherwise hold the connection (the header timeout has passed).
    let body = tokio::time::timeout(st.body_timeout, Bytes::from_request(req, &()))
        .await
        .map_err(|_| RelayError::BodyTimeout(st.body_timeout))?
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                RelayError::TooLarge(st.max_body_bytes)
            } else {
                RelayError::BadBody(rejection.body_text())
            }
        })?;
    let (key, event_type, unrouted) = match route(&body) {
        Ok(r) => (r.key, r.event_type, None),
        // Authentic (verified above) and a JSON object, but naming no id: kept, see
        // UNROUTED_KEY.
        Err(e @ EventError::NoRoutingId) => {
            (UNROUTED_KEY.to_string(), event_type_of(&body), Some(e))
        }
        // Not JSON, not an object, or an id in the reserved `stream:` namespace.
        Err(e) => return Err(RelayError::NoRoute(e)),
    };
    let span = tracing::Span::current();
    span.record("video_id", key.as_str());
    if let Some(t) = &event_type {
        span.record("event_type", t.as_str());
        if t.trim()
            .to_ascii_lowercase()
            .starts_with(INTERNAL_NAMESPACE)
        {
            return Err(RelayError::InternalEventType(t.clone()));
        }
    }

    let received = received_at_ms.to_string();
    let mut record_headers = OwnedHeaders::new()
        .insert(Header {
            key: HEADER_RECEIVED_AT_MS,
            value: Some(received.as_str()),
        })
        .insert(Header {
            key: HEADER_RELAY_ID,
            value: Some(st.relay_id.as_str()),
        })
        .insert(Header {
            key: HEADER_KEY_VERSION,
            value: Some(key_version),
        });
    if let Some(t) = &event_type {
        record_headers = record_headers.insert(Header {
            key: HEADER_EVENT_TYPE,
            value: Some(t.as_str()),
        });
    }
    let delivery = produce_acked(
        &st.producer,
        &st.topic,
        &key,
        &body,
        record_headers,
        st.ack_timeout,
    )
    .await?;
    match unrouted {
        None => Ok((
            Json(serde_json::json!({
                "status": "ok",
                "partition": delivery.partition,
                "offset": delivery.offset,
            })),
            "ok",
        )),
        Some(e) => Ok((
            Json(serde_json::json!({
                "status": "ok",
                "partition": delivery.partition,
                "offset": delivery.offset,
                "routed": false,
                "reason": e.to_string(),
            })),
            OUTCOME_UNROUTED,
        )),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
