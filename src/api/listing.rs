//! Listing of streams and videos for the operator console (`GET /v1/streams`, `GET /v1/videos`):
//! the routes over the [`Index`] (`index.rs`, which says how a page is a range read).
use std::collections::HashMap;

use serde_json::json;

use super::index::{status_index, Index, Pos, VideoQuery, DEFAULT_LIMIT, MAX_LIMIT, STATUSES};
use super::state::{observe_list, ApiError, ApiState, Inner as ApiInner};
use crate::domain::lattice::STREAM_KEY_PREFIX;

/// `GET /v1/streams` and `GET /v1/videos` (merged into the api's router; open like the other
/// JSON GETs).
pub fn router(state: ApiState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(ROUTE_STREAMS, get(list_streams))
        .route(ROUTE_VIDEOS, get(list_videos))
        .with_state(state)
}

const ROUTE_STREAMS: &str = "/v1/streams";
const ROUTE_VIDEOS: &str = "/v1/videos";

type Params = axum::extract::Query<HashMap<String, String>>;

fn limit_of(p: &HashMap<String, String>) -> Result<usize, ApiError> {
    match p.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(l) => match l.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::BadQuery(format!(
                "limit must be an integer from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

fn cursor_of(p: &HashMap<String, String>) -> Result<Option<Pos>, ApiError> {
    match p.get("cursor").or_else(|| p.get("page_token")) {
        None => Ok(None),
        Some(c) if c.is_empty() => Ok(None),
        Some(c) => Pos::decode(c)
            .map(Some)
            .ok_or_else(|| ApiError::BadQuery("cursor is not one this api returned".into())),
    }
}

fn index_of(st: &ApiInner) -> Result<&Index, ApiError> {
    if !*st.caught_up.borrow() {
        return Err(ApiError::CatchingUp);
    }
    st.store
        .index()
        .ok_or_else(|| ApiError::BadQuery("this api keeps no listing index".into()))
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

async fn list_streams(
    axum::extract::State(st): axum::extract::State<ApiState>,
    axum::extract::Query(p): Params,
) -> axum::response::Response {
    let result = (|| {
        let st = &st.inner;
        let index = index_of(st)?;
        let limit = limit_of(&p)?;
        let after = match cursor_of(&p)? {
            None => None,
            Some(Pos::Stream(name)) => Some(name),
            Some(_) => {
                return Err(ApiError::BadQuery(
                    "cursor is not one of /v1/streams".into(),
                ))
            }
        };
        let prefix = p.get("prefix").map_or("", |s| s.as_str());
        let (page, more) = index.streams_page(prefix, after.as_deref(), limit);
        let next = if more {
            page.last()
                .map(|(name, _)| Pos::Stream(name.clone()).encode())
        } else {
            None
        };
        let mut items = Vec::with_capacity(page.len());
        for (name, counts) in page {
            let mut parts = name.splitn(3, '/');
            let (d, a, s) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let view = st
                .store
                .get(&format!("{STREAM_KEY_PREFIX}{name}"), &st.decoder)?;
            let sessions = view
                .as_ref()
                .and_then(|v| v["sessions"].as_array())
                .cloned()
                .unwrap_or_default();
            let last = sessions.last();
            items.push(json!({
                "name": name,
                "domain": d, "app": a, "stream": s,
                "sessions": sessions.len(),
                "segments": sessions.iter().map(|x| x["segments"].as_array().map_or(0, Vec::len)).sum::<usize>(),
                "last_session_start": last.map(|x| x["start"].clone()),
                "last_session_end": last.map(|x| x["end"].clone()),
                "last_compose_status": last.map(|x| x["compose_status"].clone()),
                "videos": counts["videos"], "by_status": counts["by_status"],
                "waiting": counts["waiting"], "problems": counts["problems"],
            }));
        }
        Ok(axum::Json(json!({"items": items, "next_cursor": next})))
    })();
    observe_list(ROUTE_STREAMS, result)
}

async fn list_videos(
    axum::extract::State(st): axum::extract::State<ApiState>,
    axum::extract::Query(p): Params,
) -> axum::response::Response {
    let result = (|| {
        let st = &st.inner;
        let index = index_of(st)?;
        let limit = limit_of(&p)?;
        let status = match p.get("status").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(status_index(s).ok_or_else(|| {
                ApiError::BadQuery(format!("status must be one of {}", STATUSES.join(", ")))
            })?),
        };
        let stream = p
            .get("stream")
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_start_matches(STREAM_KEY_PREFIX).to_string());
        if stream.as_deref().is_some_and(|s| s.split('/').count() != 3) {
            return Err(ApiError::BadQuery(
                "stream must be domain/app/stream".into(),
            ));
        }
        let stuck_for_secs = match p.get("stuck_for_secs").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.trim().parse::<u64>().map_err(|_| {
                ApiError::BadQuery("stuck_for_secs must be a number of seconds".into())
            })?),
        };
        let q = VideoQuery {
            status,
            stream,
            stuck_for_secs,
        };
        let after = cursor_of(&p)?;
        let now = now_ms();
        let (ids, next) = index.videos_page(&q, after.as_ref(), limit, now);
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            // Deleted between the index read and this one: not listed.
            let Some(mut view) = st.store.get(&id, &st.decoder)? else {
                continue;
            };
            let manual = st.console.manual_transcode(&view);
            if let Some(m) = view.as_object_mut() {
                m.insert("manual_transcode".into(), manual);
            }
            items.push(view);
        }
        Ok(axum::Json(json!({
            "items": items,
            "next_cursor": next.map(|p| p.encode()),
            "now": crate::domain::time::format_rfc3339(now),
        })))
    })();
    observe_list(ROUTE_VIDEOS, result)
}
