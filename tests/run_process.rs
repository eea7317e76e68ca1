//! `live2vod run` (relay + fold + worker + api in one process) as a process of the built binary,
//! on the embedded cluster hosted by `live2vod broker`: a signed callback posted to the relay
//! becomes a video served by the api; the api refuses a manual transcode the `--policy` file
//! refuses (the same policy as the fold's); SIGTERM stops it cleanly.
mod support;

use std::time::{Duration, Instant};

use live2vod::vod::callback_auth::sign;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_folds_a_callback_and_serves_it() {
    let dir = Scratch::new("run");
    let (_broker, bootstrap) = start_mock_broker(dir.path());
    let relay = format!("127.0.0.1:{}", free_port());
    let api = format!("127.0.0.1:{}", free_port());
    let ops = format!("127.0.0.1:{}", free_port());
    let callback_url = format!("http://{relay}/callbacks/vod");
    // Segments of every stream: no transcodes, not even manual ones.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[defaults]\nsegments = { action = \"none\" }\n").expect("policy");
    let policy = policy.to_string_lossy().to_string();
    let mut run = Proc::spawn(
        dir.path(),
        "run",
        bin(),
        &[
            "run",
            "--brokers",
            &bootstrap,
            "--listen",
            &relay,
            "--api-listen",
            &api,
            "--metrics-listen",
            &ops,
            "--callback-url",
            &callback_url,
            "--auth-key",
            "k1",
            "--vod-endpoint",
            "http://127.0.0.1:9/",
            "--access-key-id",
            "id",
            "--access-key-secret",
            "secret",
            "--policy",
            &policy,
        ],
        &[],
    );
    let ready = format!("http://{ops}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = ready.clone();
        let status = tokio::task::spawn_blocking(move || http_get_status(&r))
            .await
            .expect("probe");
        if status == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run never ready:\n{}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let body = r#"{"EventTime":"2026-11-01T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"run-v1","Status":"success","StreamName":"s","DomainName":"d.example.com","AppName":"a","RecordStartTime":"2026-11-01T08:26:17Z","RecordEndTime":"2026-11-01T09:26:17Z"}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let client = reqwest::Client::new();
    let res = client
        .post(&callback_url)
        .header("X-VOD-TIMESTAMP", &ts)
        .header("X-VOD-SIGNATURE", sign(&callback_url, &ts, "k1"))
        .body(body)
        .send()
        .await
        .expect("relay answers");
    assert_eq!(res.status().as_u16(), 200, "{}", run.log_text());
    let bad = client
        .post(&callback_url)
        .header("X-VOD-TIMESTAMP", &ts)
        .header("X-VOD-SIGNATURE", sign(&callback_url, &ts, "wrong"))
        .body(body)
        .send()
        .await
        .expect("relay answers");
    assert_eq!(bad.status().as_u16(), 401);

    // Hang guard only: the fold needs a moment to join its group.
    let deadline = Instant::now() + Duration::from_secs(60);
    let video = loop {
        let r = client
            .get(format!("http://{api}/v1/videos/run-v1"))
            .send()
            .await
            .expect("api answers");
        if r.status().as_u16() == 200 {
            let text = r.text().await.expect("body");
            break serde_json::from_str::<serde_json::Value>(&text).expect("json");
        }
        assert!(
            Instant::now() < deadline,
            "video never served:\n{}",
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(video["status"], "recorded");
    assert_eq!(video["origin"]["stream"], "s");
    // `run` gives the api the fold's policy: the request is refused up front (409 with the
    // reason), not accepted with 202 and then recorded as rejected by the fold.
    let refused = client
        .post(format!("http://{api}/v1/videos/run-v1/transcode"))
        .header("content-type", "application/json")
        .body(r#"{"template_group_id":"tg-1"}"#)
        .send()
        .await
        .expect("api answers");
    assert_eq!(refused.status().as_u16(), 409, "{}", run.log_text());
    let why = refused.text().await.expect("body");
    assert!(why.contains("d.example.com/a/s"), "{why}");
    assert!(
        run.term(Duration::from_secs(30)),
        "run did not stop on SIGTERM:\n{}",
        run.log_text()
    );
    let status = run.child.wait().expect("exit status");
    assert!(
        status.success(),
        "run exited with {status}:\n{}",
        run.log_text()
    );
}
