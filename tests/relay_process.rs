//! The binary as scripts use it: `live2vod broker` in the background, `topics create`
//! against it, then `live2vod relay` with `--metrics-listen`, stopped by SIGTERM.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_live2vod");

/// Kills the child (by its own pid) if the test fails midway.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_topics_and_relay_processes_work_together() {
    let dir = std::env::temp_dir().join(format!("live2vod-relay-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bootstrap_file = dir.join("bootstrap");

    let mut broker = Guard(
        Command::new(BIN)
            .args(["broker", "--partitions", "2", "--bootstrap-file"])
            .arg(&bootstrap_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("broker starts"),
    );
    let stdout = broker.0.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    let bootstrap = first.trim().to_string();
    assert!(bootstrap.contains(':'), "bootstrap address: {bootstrap:?}");
    assert_eq!(
        std::fs::read_to_string(&bootstrap_file)
            .expect("bootstrap file")
            .trim(),
        bootstrap
    );

    // The broker created the topics: `topics create` finds them all.
    let out = Command::new(BIN)
        .args(["topics", "create", "--brokers", &bootstrap])
        .output()
        .expect("topics create runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    for t in [
        "callbacks",
        "commands",
        "aggregates",
        "dlq",
        "worker-ledger",
        "reconcile-positions",
    ] {
        assert!(
            report.contains(&format!("live2vod.{t}: existing")),
            "{t}: {report}"
        );
    }
    // The mock cluster cannot create topics: a clear refusal, non-zero exit.
    let out = Command::new(BIN)
        .args([
            "topics",
            "create",
            "--brokers",
            &bootstrap,
            "--topic-prefix",
            "other.",
        ])
        .output()
        .expect("topics create runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create topics"), "{err}");

    let listen = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let url = "https://relay.example.com/cb";
    let relay = Guard(
        Command::new(BIN)
            .args([
                "relay",
                "--brokers",
                &bootstrap,
                "--listen",
                &listen,
                "--metrics-listen",
                &metrics,
                "--callback-url",
                url,
                "--relay-id",
                "relay-proc",
            ])
            .env("LIVE2VOD_AUTH_KEY", "process-key")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay starts"),
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // Readiness on the metrics listener: wait for it (bounded), like a kubelet would.
    let mut ready = false;
    for _ in 0..150 {
        if let Ok(r) = client.get(format!("http://{metrics}/readyz")).send().await {
            if r.status().as_u16() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "relay never became ready");

    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let sig = live2vod::vod::callback_auth::sign(url, &ts, "process-key");
    let body = r#"{"EventType":"FileUploadComplete","VideoId":"proc-1","Size":1,"FileUrl":"x"}"#;
    let mut status = 0;
    for _ in 0..20 {
        status = client
            .post(format!("http://{listen}/callbacks/vod"))
            .header("X-VOD-TIMESTAMP", &ts)
            .header("X-VOD-SIGNATURE", &sig)
            .body(body)
            .send()
            .await
            .expect("relay answers")
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
    let unsigned = client
        .post(format!("http://{listen}/callbacks/vod"))
        .body(body)
        .send()
        .await
        .expect("relay answers");
    assert_eq!(unsigned.status().as_u16(), 401);

    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("live2vod_relay_requests_total{outcome=\"ok\"}")),
        "{text}"
    );
    assert!(text.contains("outcome=\"unauthorized\""), "{text}");
    // With --metrics-listen, the ops routes are not on the callback listener.
    let on_main = client
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .expect("answers");
    assert_eq!(on_main.status().as_u16(), 404);

    let mut relay = relay;
    sigterm(&relay.0);
    let exit = relay.0.wait().expect("relay exits");
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    sigterm(&broker.0);
    let exit = broker.0.wait().expect("broker exits");
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
