//! What the api's handlers share: their state, the error every route answers with, and the
//! request counter (used by `handler.rs`, `listing.rs` and `console.rs`).
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;

use super::command::BodyError;
use super::decode::SnapshotDecoder;
use super::operator::Console;
use super::store::{DecodeError, Store};
use crate::kafka::producer::AckError;
use crate::metrics::API_REQUESTS;

/// Shared state of the api handlers.
#[derive(Clone)]
pub struct ApiState {
    pub(super) inner: Arc<Inner>,
}

/// What the handlers share (built by [`super::start`]).
pub(super) struct Inner {
    pub(super) store: Store,
    pub(super) decoder: SnapshotDecoder,
    pub(super) producer: FutureProducer,
    pub(super) callbacks_topic: String,
    pub(super) ack_timeout: Duration,
    pub(super) instance: String,
    pub(super) caught_up: watch::Receiver<bool>,
    /// Set once the producer hit a fatal error: the api then stops (and is restarted).
    pub(super) fatal: watch::Sender<Option<String>>,
    /// Operator token and policy of the console (see `console.rs`).
    pub(super) console: Console,
}

impl ApiState {
    pub(super) fn new(inner: Inner) -> Self {
        ApiState {
            inner: Arc::new(inner),
        }
    }
}

/// Why a request failed; each maps to one status and a `{"error": ...}` body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown video")]
    UnknownVideo,
    #[error("unknown stream")]
    UnknownStream,
    #[error("no such route")]
    NoRoute,
    #[error("{0}")]
    BadBody(#[from] BodyError),
    #[error("cannot read the body: {0}")]
    Unreadable(String),
    #[error("the api is still loading the aggregates topic; retry shortly")]
    CatchingUp,
    #[error("{0}")]
    Corrupt(#[from] DecodeError),
    #[error("the broker did not take the request: {0}")]
    Unavailable(#[from] AckError),
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    PolicyRefused(String),
    #[error("the operator token is required")]
    Unauthorized,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownVideo | ApiError::UnknownStream | ApiError::NoRoute => {
                StatusCode::NOT_FOUND
            }
            ApiError::BadBody(_) | ApiError::Unreadable(_) | ApiError::BadQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PolicyRefused(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::CatchingUp | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "api request failed");
        }
        (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// Counts the request by route template and status, and turns the outcome into a response.
pub(super) fn observe(route: &'static str, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    metrics::counter!(API_REQUESTS, "route" => route, "status" => response.status().as_u16().to_string())
        .increment(1);
    response
}

/// [`observe`] for the listing routes.
pub(super) fn observe_list(
    route: &'static str,
    result: Result<Json<serde_json::Value>, ApiError>,
) -> Response {
    observe(route, result.map(IntoResponse::into_response))
}

pub(super) fn caught_up(st: &Inner) -> Result<(), ApiError> {
    if *st.caught_up.borrow() {
        Ok(())
    } else {
        Err(ApiError::CatchingUp)
    }
}
