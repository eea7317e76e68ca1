//! The VOD OpenAPI client against a local axum stand-in: signing, retries, error parsing.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use live2vod::vod::client::{RetryPolicy, VodClient, VodConfig, VodError};
use live2vod::vod::sign::{decode_query, verify};

const SECRET: &str = "stand-in-secret";

/// What the stand-in answers to the next request.
#[derive(Clone)]
enum Reply {
    Json(u16, &'static str),
    /// Answers nothing for this long (the client times out first).
    Hang(Duration),
}

/// One request the stand-in saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    content_type: String,
    params: Vec<(String, String)>,
    signature_ok: bool,
}

impl Seen {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct StandIn {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(
    State(s): State<StandIn>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> Response {
    let params = decode_query(&body).unwrap_or_default();
    let seen = Seen {
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        signature_ok: verify(SECRET, method.as_str(), &params),
        method,
        params,
    };
    s.seen.lock().unwrap().push(seen);
    let reply = s.replies.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Json(status, body)) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "{}").into_response()
        }
        None => (StatusCode::IM_A_TEAPOT, "no scripted reply").into_response(),
    }
}

/// Starts the stand-in with scripted replies; returns it and a client pointed at it.
async fn stand_in(replies: Vec<Reply>, max_attempts: u32) -> (StandIn, VodClient) {
    let s = StandIn::default();
    s.replies.lock().unwrap().extend(replies);
    let app = Router::new().route("/", any(handle)).with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut cfg = VodConfig::new("cn-shanghai", "test-key-id", SECRET);
    cfg.endpoint = Some(format!("http://{addr}/"));
    cfg.timeout = Duration::from_millis(300);
    cfg.security_token = Some("sts-token".to_string().into());
    cfg.retry = RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(30),
    };
    (s, VodClient::new(cfg).unwrap())
}

const SUBMIT_OK: &str = r#"{"RequestId":"req-1","TranscodeTaskId":"task-1","TranscodeJobs":{"TranscodeJob":[{"JobId":"job-a"},{"JobId":"job-b"}]}}"#;

#[tokio::test]
async fn submit_is_a_signed_post_form_with_session_id() {
    let (s, c) = stand_in(vec![Reply::Json(200, SUBMIT_OK)], 3).await;
    let r = c
        .submit_transcode_jobs("vid 1*", "tg-1", "tc-abc", Some("5"), None)
        .await
        .unwrap();
    assert_eq!(r.request_id, "req-1");
    assert_eq!(r.transcode_task_id, "task-1");
    assert_eq!(r.job_ids, vec!["job-a", "job-b"]);

    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.content_type, "application/x-www-form-urlencoded");
    assert!(req.signature_ok, "signature must verify: {:?}", req.params);
    assert_eq!(req.param("Action"), Some("SubmitTranscodeJobs"));
    assert_eq!(req.param("Format"), Some("JSON"));
    assert_eq!(req.param("Version"), Some("2017-03-21"));
    assert_eq!(req.param("SessionId"), Some("tc-abc"));
    assert_eq!(req.param("VideoId"), Some("vid 1*"));
    assert_eq!(req.param("TemplateGroupId"), Some("tg-1"));
    assert_eq!(req.param("Priority"), Some("5"));
    assert_eq!(req.param("SecurityToken"), Some("sts-token"));
    assert_eq!(req.param("AccessKeyId"), Some("test-key-id"));
    let ts = req.param("Timestamp").unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && &ts[10..11] == "T",
        "{ts}"
    );
    assert!(req.param("UserData").is_none());
}

#[tokio::test]
async fn retryable_errors_are_retried_with_fresh_nonces_then_succeed() {
    let (s, c) = stand_in(
        vec![
            Reply::Json(
                400,
                r#"{"RequestId":"r1","HostId":"h","Code":"Throttling.User","Message":"slow down"}"#,
            ),
            Reply::Json(
                503,
                r#"{"RequestId":"r2","HostId":"h","Code":"ServiceUnAvailable","Message":"busy"}"#,
            ),
            Reply::Json(502, "<html>bad gateway</html>"),
            Reply::Json(200, SUBMIT_OK),
        ],
        5,
    )
    .await;
    let r = c
        .submit_transcode_jobs("v1", "tg", "tc-1", None, None)
        .await
        .unwrap();
    assert_eq!(r.transcode_task_id, "task-1");
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r.signature_ok));
    assert!(seen.iter().all(|r| r.param("SessionId") == Some("tc-1")));
    let nonces: std::collections::HashSet<_> = seen
        .iter()
        .map(|r| r.param("SignatureNonce").unwrap().to_string())
        .collect();
    assert_eq!(
        nonces.len(),
        4,
        "every attempt is signed with its own nonce"
    );
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_the_body_is_parsed() {
    let (s, c) = stand_in(
        vec![
            Reply::Json(
                403,
                r#"{"RequestId":"req-x","HostId":"vod.cn-shanghai.aliyuncs.com","Code":"Forbidden.IllegalStatus","Message":"Status of the video is illegal."}"#,
            ),
            Reply::Json(200, SUBMIT_OK),
        ],
        5,
    )
    .await;
    let err = c
        .submit_transcode_jobs("v1", "tg", "tc-1", None, None)
        .await
        .unwrap_err();
    match &err {
        VodError::Api {
            status,
            code,
            message,
            request_id,
            host_id,
            ..
        } => {
            assert_eq!(*status, 403);
            assert_eq!(code, "Forbidden.IllegalStatus");
            assert_eq!(message, "Status of the video is illegal.");
            assert_eq!(request_id, "req-x");
            assert_eq!(host_id, "vod.cn-shanghai.aliyuncs.com");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(s.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn each_permanent_code_is_final() {
    for code in [
        "InvalidParameter",
        "MissingParameter",
        "SignatureDoesNotMatch",
        "InvalidTimeStamp.Expired",
    ] {
        let body: &'static str = Box::leak(
            format!(r#"{{"RequestId":"r","HostId":"h","Code":"{code}","Message":"m"}}"#)
                .into_boxed_str(),
        );
        let (s, c) = stand_in(vec![Reply::Json(400, body), Reply::Json(200, SUBMIT_OK)], 4).await;
        let err = c.get_video_info("v").await.unwrap_err();
        assert_eq!(err.code(), Some(code));
        assert_eq!(
            s.seen.lock().unwrap().len(),
            1,
            "{code} must not be retried"
        );
    }
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let busy = r#"{"RequestId":"r","HostId":"h","Code":"InternalError","Message":"oops"}"#;
    let (s, c) = stand_in(vec![Reply::Json(500, busy); 5], 3).await;
    let err = c.get_play_info("v").await.unwrap_err();
    assert_eq!(err.code(), Some("InternalError"));
    assert!(err.is_retryable());
    assert_eq!(s.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn timeouts_are_retried() {
    let (s, c) = stand_in(
        vec![
            Reply::Hang(Duration::from_secs(5)),
            Reply::Json(
                200,
                r#"{"RequestId":"r","Video":{"VideoId":"v","Status":"Normal","Size":"1048576","Duration":"12.5"}}"#,
            ),
        ],
        3,
    )
    .await;
    let info = c.get_video_info("v").await.unwrap();
    assert_eq!(info.status, "Normal");
    assert_eq!(s.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn timeout_is_reported_as_such_when_attempts_run_out() {
    let (_s, c) = stand_in(vec![Reply::Hang(Duration::from_secs(5))], 1).await;
    let err = c.get_video_info("v").await.unwrap_err();
    assert!(matches!(err, VodError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn numbers_as_strings_are_tolerated() {
    let (_s, c) = stand_in(
        vec![
            Reply::Json(
                200,
                r#"{"RequestId":"r","Video":{"VideoId":"v","Status":"UploadSucc","Size":"1048576","Duration":"12.5"}}"#,
            ),
            Reply::Json(
                200,
                r#"{"RequestId":"r","VideoBase":{"VideoId":"v"},"PlayInfoList":{"PlayInfo":[
                  {"PlayURL":"https://cdn/v/hd.m3u8","Definition":"HD","Format":"m3u8","Bitrate":"1200.5",
                   "Duration":"12.50","Size":"2048","Width":"1280","Height":720,"JobId":"j1","Status":"Normal"},
                  {"PlayURL":"https://cdn/v/sd.mp4","Definition":"SD","Format":"mp4","Bitrate":800,
                   "Duration":12.5,"Size":1024,"Width":640,"Height":"360.0","JobId":"j2","Status":"Normal"}]}}"#,
            ),
        ],
        1,
    )
    .await;
    let info = c.get_video_info("v").await.unwrap();
    assert_eq!(info.status, "UploadSucc");
    assert_eq!(info.size, Some(1_048_576));
    assert_eq!(info.duration, Some(12.5));

    // GetPlayInfo's objects go into the outcome event as VOD wrote them; the fold's parser is
    // the one that tolerates numbers as strings.
    let raw = c.get_play_info("v").await.unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0]["Width"], "1280", "passed through unchanged");
    let body = live2vod::domain::outcome::play_info_resolved("v", "pi-1", &raw, 0);
    assert_eq!(body["PlayInfos"], serde_json::Value::Array(raw.clone()));
    let bytes = live2vod::domain::outcome::to_bytes(&body);
    let event = live2vod::domain::parse_event(&bytes).unwrap();
    let live2vod::domain::EventBody::PlayInfoResolved {
        play_infos: plays, ..
    } = event.body
    else {
        panic!("not a PlayInfoResolved: {:?}", event.body)
    };
    assert_eq!(plays.len(), 2);
    assert_eq!(plays[0].play_url.as_deref(), Some("https://cdn/v/hd.m3u8"));
    assert_eq!(plays[0].bitrate.as_deref(), Some("1200.5"));
    assert_eq!(plays[0].duration, Some(12.5));
    assert_eq!(plays[0].size, Some(2048));
    assert_eq!(plays[0].width, Some(1280));
    assert_eq!(plays[0].height, Some(720));
    assert_eq!(plays[1].bitrate.as_deref(), Some("800"));
    assert_eq!(plays[1].height, Some(360));
    assert_eq!(plays[1].job_id.as_deref(), Some("j2"));
}

#[tokio::test]
async fn list_live_record_video_reads_recordings() {
    let (s, c) = stand_in(
        vec![Reply::Json(
            200,
            r#"{"RequestId":"r","Total":"2","LiveRecordVideoList":{"LiveRecordVideo":[
              {"DomainName":"d","AppName":"a","StreamName":"s","RecordStartTime":"2026-01-01T00:00:00Z",
               "RecordEndTime":"2026-01-01T01:00:00Z","Video":{"VideoId":"v1","Status":"Normal","Size":"10"}},
              {"DomainName":"d","AppName":"a","StreamName":"s","Video":{"VideoId":"v2","Status":"UploadSucc"}}]}}"#,
        )],
        1,
    )
    .await;
    let list = c
        .list_live_record_video(
            "d",
            "a",
            "s",
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
        )
        .await
        .unwrap();
    assert_eq!(
        list.iter().map(|r| r.video_id.as_str()).collect::<Vec<_>>(),
        vec!["v1", "v2"]
    );
    assert_eq!(list[0].size, Some(10));
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen[0].param("Action"), Some("ListLiveRecordVideo"));
    assert_eq!(seen[0].param("StreamName"), Some("s"));
    assert!(seen[0].signature_ok);
}
