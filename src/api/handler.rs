//! The api's HTTP routes: aggregates out, manual transcode requests in.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rdkafka::message::{Header, OwnedHeaders};

use super::command::{new_request_id, parse_body, transcode_command_id, transcode_requested};
use super::state::{caught_up, observe, ApiError, ApiState, Inner};
use crate::kafka::producer::{fatal_error, produce_acked};

const ROUTE_VIDEO: &str = "/v1/videos/{video_id}";
const ROUTE_STREAM: &str = "/v1/streams/{domain}/{app}/{stream}";
const ROUTE_TRANSCODE: &str = "/v1/videos/{video_id}/transcode";

/// `/v1/...` routes, with a JSON 404 for everything else.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(ROUTE_VIDEO, get(get_video))
        .route(ROUTE_STREAM, get(get_stream))
        .route(ROUTE_TRANSCODE, post(post_transcode))
        .with_state(state.clone())
        .merge(super::listing::router(state.clone()))
        .merge(super::console::router(state))
        .fallback(fallback)
}

fn video(st: &Inner, video_id: &str) -> Result<serde_json::Value, ApiError> {
    caught_up(st)?;
    // Stream aggregates share the key space; they are not videos.
    if video_id.starts_with("stream:") {
        return Err(ApiError::UnknownVideo);
    }
    st.store
        .get(video_id, &st.decoder)?
        .ok_or(ApiError::UnknownVideo)
}

async fn get_video(State(st): State<ApiState>, Path(video_id): Path<String>) -> Response {
    observe(
        ROUTE_VIDEO,
        video(&st.inner, &video_id).map(|v| Json(v).into_response()),
    )
}

async fn get_stream(
    State(st): State<ApiState>,
    Path((domain, app, stream)): Path<(String, String, String)>,
) -> Response {
    let result = (|| {
        caught_up(&st.inner)?;
        let key = format!("stream:{domain}/{app}/{stream}");
        st.inner
            .store
            .get(&key, &st.inner.decoder)?
            .ok_or(ApiError::UnknownStream)
            .map(|v| Json(v).into_response())
    })();
    observe(ROUTE_STREAM, result)
}

async fn post_transcode(
    State(st): State<ApiState>,
    Path(video_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err((status, reason)) = st.inner.console.may_post(&headers) {
        let r = (status, Json(serde_json::json!({ "error": reason }))).into_response();
        return observe(ROUTE_TRANSCODE, Ok(r));
    }
    let result = transcode(&st.inner, &video_id, body).await;
    if matches!(result, Err(ApiError::Unavailable(_))) {
        if let Some(reason) = fatal_error(&st.inner.producer) {
            tracing::error!(%reason, "Kafka producer hit a fatal error; the api stops so it can be restarted with a new one");
            st.inner.fatal.send_replace(Some(reason));
        }
    }
    observe(ROUTE_TRANSCODE, result)
}

async fn transcode(
    st: &Inner,
    video_id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::Unreadable(r.body_text()))?;
    let req = parse_body(&body)?;
    let view = video(st, video_id)?;
    if let Some(reason) = st.console.refusal(&view) {
        return Err(ApiError::PolicyRefused(reason));
    }
    let now_ms = crate::clock::now_ms();
    let request_id = new_request_id();
    let event = transcode_requested(video_id, &req, &request_id, now_ms / 1000 * 1000);
    let payload = event.to_string();
    let command_id = transcode_command_id(video_id, &req.template_group_id);
    let received = now_ms.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: crate::relay::HEADER_RECEIVED_AT_MS,
            value: Some(received.as_str()),
        })
        .insert(Header {
            key: crate::relay::HEADER_RELAY_ID,
            value: Some(st.instance.as_str()),
        })
        .insert(Header {
            key: crate::relay::HEADER_KEY_VERSION,
            value: Some("none"),
        })
        .insert(Header {
            key: crate::relay::HEADER_EVENT_TYPE,
            value: Some(crate::domain::vocab::event_type::TRANSCODE_REQUESTED),
        });
    let delivery = produce_acked(
        &st.producer,
        &st.callbacks_topic,
        video_id,
        payload.as_bytes(),
        headers,
        st.ack_timeout,
    )
    .await?;
    tracing::info!(
        %video_id, template_group_id = %req.template_group_id, %command_id, %request_id,
        partition = delivery.partition, offset = delivery.offset,
        "manual transcode requested"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "command_id": command_id, "request_id": request_id })),
    )
        .into_response())
}

async fn fallback() -> Response {
    observe("other", Err(ApiError::NoRoute))
}
