//! The VOD OpenAPI (RPC style, `Version=2017-03-21`) as far as the worker uses it, on `/`:
//! GET with a query string or POST with a form body, signature v1 checked, answers in VOD's
//! JSON shapes and error codes: SubmitTranscodeJobs, GetVideoInfo, GetPlayInfo,
//! GetMezzanineInfo, GetTranscodeSummary and ListLiveRecordVideo (see [`super::listing`]), all answered from VOD's
//! state as it is at that moment, including what VOD did without a callback reaching
//! live2vod. Throttling is injected at a configured rate so the worker's retries get
//! exercised.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use rand::Rng;
use serde_json::{json, Value};

use super::listing::{self, InvalidParameter, ListQuery};
use super::scenario::{hex_id, transcode_events, ScenarioEvent, VideoCtx};
use super::time::{fmt_utc, now_ms, parse_utc};
use super::{Shared, TaskRecord};
use crate::vod::sign;

const HOST_ID: &str = "vod.cn-shanghai.aliyuncs.com";

/// A VOD error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn missing(name: &str) -> Self {
        ApiError::new(
            400,
            "MissingParameter",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    }

    /// A poisoned lock (a panic elsewhere): VOD's generic server error.
    fn internal() -> Self {
        ApiError::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error.",
        )
    }

    fn video_not_found() -> Self {
        ApiError::new(404, "InvalidVideo.NotFound", "The video does not exist.")
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/", any(rpc)).with_state(shared)
}

fn request_id(sh: &Shared) -> String {
    let (a, b): (u64, u64) = sh
        .rng
        .lock()
        .map(|mut r| (r.random(), r.random()))
        .unwrap_or((0, 0));
    let h = format!("{a:016X}{b:016X}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn rpc(
    State(sh): State<Arc<Shared>>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let rid = request_id(&sh);
    let (action, result) = match handle(&sh, &method, query.as_deref(), &body) {
        Ok(done) => done,
        Err((action, e)) => (action, Err(e)),
    };
    let code = match &result {
        Ok(_) => "OK".to_string(),
        Err(e) => e.code.to_string(),
    };
    if let Ok(mut calls) = sh.calls.lock() {
        *calls.entry((action.clone(), code)).or_default() += 1;
    }
    match result {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("RequestId".into(), json!(rid));
            }
            json_response(200, v)
        }
        Err(e) => {
            tracing::debug!(action, code = e.code, "sim OpenAPI error");
            json_response(
                e.status,
                json!({"RequestId": rid, "HostId": HOST_ID, "Code": e.code, "Message": e.message}),
            )
        }
    }
}

type Handled = Result<(String, Result<Value, ApiError>), (String, ApiError)>;

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn handle(sh: &Arc<Shared>, method: &Method, query: Option<&str>, body: &[u8]) -> Handled {
    let unknown = "-".to_string();
    let mut params = match sign::decode_query(query.unwrap_or("")) {
        Some(p) => p,
        None => {
            return Err((
                unknown,
                ApiError::new(
                    400,
                    "InvalidParameter",
                    "The query string cannot be decoded.",
                ),
            ))
        }
    };
    if *method == Method::POST && !body.is_empty() {
        let form = std::str::from_utf8(body).ok().and_then(sign::decode_query);
        match form {
            Some(f) => params.extend(f),
            None => {
                return Err((
                    unknown,
                    ApiError::new(400, "InvalidParameter", "The form body cannot be decoded."),
                ))
            }
        }
    } else if *method != Method::GET && *method != Method::POST {
        return Err((
            unknown,
            ApiError::new(
                400,
                "UnsupportedHTTPMethod",
                "Specified http method is not supported.",
            ),
        ));
    }
    let action = get(&params, "Action").unwrap_or("-").to_string();
    let fail = |e: ApiError| Err((action.clone(), e));
    let Some(key_id) = get(&params, "AccessKeyId") else {
        return fail(ApiError::missing("AccessKeyId"));
    };
    if key_id != sh.cfg.access_key_id {
        return fail(ApiError::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    let Some(ts) = get(&params, "Timestamp") else {
        return fail(ApiError::missing("Timestamp"));
    };
    let Some(ts_ms) = parse_utc(ts).filter(|_| ts.ends_with('Z')) else {
        return fail(ApiError::new(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        ));
    };
    let now = now_ms();
    if (now - ts_ms).abs() > sh.cfg.timestamp_window_secs * 1000 {
        return fail(ApiError::new(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    if get(&params, "SignatureMethod") != Some("HMAC-SHA1")
        || get(&params, "SignatureVersion") != Some("1.0")
    {
        return fail(ApiError::new(
            400,
            "InvalidParameter",
            "SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0.",
        ));
    }
    if !sign::verify(&sh.cfg.access_key_secret, method.as_str(), &params) {
        return fail(ApiError::new(
            400,
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        ));
    }
    let Some(nonce) = get(&params, "SignatureNonce") else {
        return fail(ApiError::missing("SignatureNonce"));
    };
    if let Ok(mut nonces) = sh.nonces.lock() {
        let horizon = now - 2 * sh.cfg.timestamp_window_secs * 1000;
        if nonces.len() > 10_000 {
            nonces.retain(|_, t| *t > horizon);
        }
        if nonces.insert(nonce.to_string(), now).is_some() {
            return fail(ApiError::new(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
    }
    if !get(&params, "Format").is_some_and(|f| f.eq_ignore_ascii_case("JSON")) {
        // VOD would answer XML; the simulator refuses so a client that forgets Format=JSON
        // fails loudly in tests instead of in production.
        return fail(ApiError::new(
            400,
            "InvalidParameter",
            "The simulator only answers Format=JSON (VOD's default is XML).",
        ));
    }
    let throttled = sh.cfg.throttle_rate > 0.0
        && sh
            .rng
            .lock()
            .map(|mut r| r.random_bool(sh.cfg.throttle_rate.clamp(0.0, 1.0)))
            .unwrap_or(false);
    if throttled {
        return fail(ApiError::new(
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        ));
    }
    let result = match action.as_str() {
        "SubmitTranscodeJobs" => submit_transcode_jobs(sh, &params),
        "GetVideoInfo" => get_video_info(sh, &params),
        "GetPlayInfo" => get_play_info(sh, &params),
        "ListLiveRecordVideo" => list_live_record_video(sh, &params),
        "GetMezzanineInfo" => get_mezzanine_info(sh, &params),
        "GetTranscodeSummary" => get_transcode_summary(sh, &params),
        "-" => Err(ApiError::missing("Action")),
        _ => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    };
    Ok((action, result))
}

fn submit_transcode_jobs(sh: &Arc<Shared>, p: &[(String, String)]) -> Result<Value, ApiError> {
    let video_id = get(p, "VideoId").ok_or_else(|| ApiError::missing("VideoId"))?;
    let group = get(p, "TemplateGroupId").ok_or_else(|| ApiError::missing("TemplateGroupId"))?;
    let session = get(p, "SessionId");
    if session.is_some_and(|s| s.len() > 50 || s.is_empty()) {
        return Err(ApiError::new(
            400,
            "InvalidParameter",
            "The specified parameter \"SessionId\" is not valid.",
        ));
    }
    if let Some(prio) = get(p, "Priority") {
        if !prio.parse::<u8>().is_ok_and(|n| (1..=10).contains(&n)) {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "The specified parameter \"Priority\" is not valid.",
            ));
        }
    }
    let answer = |t: &TaskRecord| {
        json!({
            "TranscodeTaskId": t.task_id,
            "TranscodeJobs": {"TranscodeJob": t.job_ids.iter().map(|j| json!({"JobId": j})).collect::<Vec<_>>()},
        })
    };
    // The session map lock is held across the whole check-and-start so two concurrent
    // submissions with one SessionId cannot both start a job.
    let mut sessions = sh.sessions.lock().map_err(|_| ApiError::internal())?;
    if let Some(s) = session {
        if let Some(t) = sessions.get(s) {
            sh.session_dedup_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(answer(t));
        }
    }
    let extend = get(p, "UserData")
        .and_then(|u| serde_json::from_str::<Value>(u).ok())
        .and_then(|u| u.get("Extend").cloned());
    let events = {
        let mut model = sh.model.lock().map_err(|_| ApiError::internal())?;
        let v = model
            .video(video_id)
            .ok_or_else(ApiError::video_not_found)?;
        if !v.transcodable() {
            return Err(ApiError::new(
                403,
                "Forbidden.IllegalStatus",
                format!("Status of the video is illegal: {}.", v.status()),
            ));
        }
        let ctx_stream = v.stream.clone();
        let flow = sh
            .scenario
            .streams
            .iter()
            .find(|s| s.key() == ctx_stream)
            .map(|s| s.flow)
            .unwrap_or(super::scenario::Flow::StoreOnly);
        let plan = sh
            .scenario
            .transcode_plan(video_id)
            .cloned()
            .unwrap_or_else(|| super::scenario::TranscodePlan {
                renditions: Vec::new(),
            });
        model.start_job(video_id, group);
        let ctx = VideoCtx {
            video_id,
            stream: &ctx_stream,
            flow,
        };
        let delay = sh.cfg.transcode_delay.as_millis() as i64;
        let mut rng = sh.rng.lock().map_err(|_| ApiError::internal())?;
        let mut evs = transcode_events(
            &mut *rng,
            &ctx,
            &plan,
            now_ms() + delay,
            delay.max(1),
            extend.as_ref(),
        );
        for e in &mut evs {
            e.id = sh.next_event_id.fetch_add(1, Ordering::Relaxed);
        }
        let task_id = hex_id(&mut *rng);
        let job_ids: Vec<String> = evs
            .iter()
            .filter_map(|e| match &e.effect {
                super::scenario::Effect::Rendition(r) => Some(r.job_id.clone()),
                _ => None,
            })
            .collect();
        (evs, TaskRecord { task_id, job_ids })
    };
    let (evs, task) = events;
    let out = answer(&task);
    if let Some(s) = session {
        sessions.insert(s.to_string(), task);
    }
    drop(sessions);
    tracing::info!(video_id, group, "sim: transcode job started");
    play(sh, evs);
    Ok(out)
}

/// Plays a transcode's callbacks like VOD: each at its event time plus a random lag (so they
/// arrive in any order), some twice, through the shared delivery machinery.
fn play(sh: &Arc<Shared>, evs: Vec<ScenarioEvent>) {
    let mut items = Vec::new();
    {
        let Ok(mut rng) = sh.rng.lock() else { return };
        for e in evs {
            let e = Arc::new(e);
            let lag = rng.random_range(0..=sh.cfg.runtime_shuffle_ms.max(0));
            items.push((e.clone(), false, lag));
            if rng.random_bool(sh.cfg.duplicate_rate.clamp(0.0, 1.0)) {
                let lag2 = lag + rng.random_range(0..=sh.cfg.runtime_shuffle_ms.max(0));
                items.push((e, true, lag2));
            }
        }
    }
    sh.deliverer.schedule(items.len() as u64);
    for (e, dup, lag) in items {
        let d = sh.deliverer.clone();
        tokio::spawn(async move {
            let wait = (e.time_ms - now_ms()).max(0) + lag;
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
            d.deliver_scheduled(&e, dup).await;
        });
    }
}

fn get_video_info(sh: &Arc<Shared>, p: &[(String, String)]) -> Result<Value, ApiError> {
    let video_id = get(p, "VideoId").ok_or_else(|| ApiError::missing("VideoId"))?;
    let model = sh.model.lock().map_err(|_| ApiError::internal())?;
    let v = model
        .video(video_id)
        .ok_or_else(ApiError::video_not_found)?;
    Ok(json!({ "Video": v.video_json() }))
}

fn get_play_info(sh: &Arc<Shared>, p: &[(String, String)]) -> Result<Value, ApiError> {
    let video_id = get(p, "VideoId").ok_or_else(|| ApiError::missing("VideoId"))?;
    let model = sh.model.lock().map_err(|_| ApiError::internal())?;
    let v = model
        .video(video_id)
        .ok_or_else(ApiError::video_not_found)?;
    let infos: Vec<Value> = v
        .renditions
        .values()
        .filter(|r| r.plan.success)
        .map(|r| {
            json!({
                "PlayURL": r.file_url,
                "Definition": r.plan.definition,
                "Format": r.plan.format,
                "Bitrate": r.plan.bitrate_kbps.to_string(),
                "Duration": format!("{:.3}", r.plan.duration_s),
                "Size": r.plan.size,
                "Width": r.plan.width,
                "Height": r.plan.height,
                "Fps": r.plan.fps.to_string(),
                "JobId": r.job_id,
                "Status": "Normal",
                "StreamType": "video",
                "Encrypt": 0,
                "CreationTime": fmt_utc(v.created_ms),
            })
        })
        .collect();
    if infos.is_empty() {
        return Err(ApiError::new(
            404,
            "InvalidVideo.NoneStream",
            "The video has no stream for playing.",
        ));
    }
    Ok(json!({
        "VideoBase": {
            "VideoId": v.video_id,
            "Title": v.title(),
            "Status": v.status(),
            "Duration": format!("{:.3}", v.duration_s()),
            "CoverURL": v.cover_url.clone().unwrap_or_default(),
            "CreationTime": fmt_utc(v.created_ms),
            "MediaType": "video",
            "OutputType": "cdn",
        },
        "PlayInfoList": { "PlayInfo": infos },
    }))
}

fn list_live_record_video(sh: &Arc<Shared>, p: &[(String, String)]) -> Result<Value, ApiError> {
    let q = ListQuery::parse(|name| get(p, name)).map_err(|InvalidParameter(name)| {
        ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid."),
        )
    })?;
    let model = sh.model.lock().map_err(|_| ApiError::internal())?;
    Ok(listing::list(&model, &q, sh.cfg.list_cap))
}

/// GetTranscodeSummary: up to 10 comma-separated `VideoIds`; per video its latest transcode
/// with one job summary per rendition (`TranscodeSuccess` / `TranscodeFail`), unknown ids in
/// `NonExistVideoIds`. A video never transcoded has no summary.
fn get_transcode_summary(sh: &Arc<Shared>, p: &[(String, String)]) -> Result<Value, ApiError> {
    let ids = get(p, "VideoIds").ok_or_else(|| ApiError::missing("VideoIds"))?;
    let ids: Vec<&str> = ids.split(',').filter(|s| !s.is_empty()).collect();
    if ids.is_empty() || ids.len() > 10 {
        return Err(ApiError::new(
            400,
            "InvalidParameter",
            "The specified parameter \"VideoIds\" is not valid.",
        ));
    }
    let model = sh.model.lock().map_err(|_| ApiError::internal())?;
    let mut summaries = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        let Some(v) = model.video(id) else {
            missing.push(id.to_string());
            continue;
        };
        if v.jobs_started == 0 {
            continue;
        }
        let jobs: Vec<Value> = v
            .renditions
            .values()
            .map(|r| {
                json!({
                    "Definition": r.plan.definition,
                    "Format": r.plan.format,
                    "TranscodeJobStatus": if r.plan.success { "TranscodeSuccess" } else { "TranscodeFail" },
                    "TranscodeTemplateId": format!("tpl-{}-{}", r.plan.definition, r.plan.format),
                    "CreationTime": fmt_utc(v.created_ms),
                    "CompleteTime": fmt_utc(v.modified_ms),
                    "Duration": format!("{:.3}", r.plan.duration_s),
                    "Filesize": r.plan.size,
                    "Width": r.plan.width.to_string(),
                    "Height": r.plan.height.to_string(),
                    "Fps": r.plan.fps.to_string(),
                    "Bitrate": r.plan.bitrate_kbps.to_string(),
                })
            })
            .collect();
        let ok = v.renditions.values().filter(|r| r.plan.success).count();
        let status = if v.jobs_started > v.jobs_done {
            if v.renditions.is_empty() {
                "Processing"
            } else {
                "Partial"
            }
        } else if ok == v.renditions.len() && ok > 0 {
            "CompleteAllSucc"
        } else if ok == 0 {
            "CompleteAllFail"
        } else {
            "CompletePartialSucc"
        };
        summaries.push(json!({
            "VideoId": v.video_id,
            "TranscodeStatus": status,
            "TranscodeTemplateGroupId": v.template_group.clone().unwrap_or_default(),
            "CreationTime": fmt_utc(v.created_ms),
            "CompleteTime": fmt_utc(v.modified_ms),
            "TranscodeJobInfoSummaryList": jobs,
        }));
    }
    Ok(json!({ "TranscodeSummaryList": summaries, "NonExistVideoIds": missing }))
}

fn get_mezzanine_info(sh: &Arc<Shared>, p: &[(String, String)]) -> Result<Value, ApiError> {
    let video_id = get(p, "VideoId").ok_or_else(|| ApiError::missing("VideoId"))?;
    let model = sh.model.lock().map_err(|_| ApiError::internal())?;
    let v = model
        .video(video_id)
        .ok_or_else(ApiError::video_not_found)?;
    Ok(json!({ "Mezzanine": v.mezzanine_json() }))
}
