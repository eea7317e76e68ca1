//! Secrets never reach logs, `--help` or metrics: the callback auth keys (current and
//! previous), the VOD AccessKey secret and STS token, Kafka SASL passwords and the api's
//! operator token, given by flag or environment variable.
//!
//! The binary runs as `relay`, `worker`, `run` and `sim` with distinctive secrets and
//! `RUST_LOG=trace`; errors that tend to print configuration or requests are provoked (bad
//! and missing callback signatures, VOD throttling from the simulator, a misspelt Kafka
//! setting, `--help` with the env vars set). Every secret, and its base64, hex and
//! URL-encoded forms, is then looked for in stdout, stderr and `/metrics`. Each check is
//! paired with proof that the secret was in use (signed callbacks accepted with both keys,
//! the simulator verified VOD calls signed with the AccessKey secret), so a check cannot pass
//! because the secret never got anywhere.
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use live2vod::vod::callback_auth::sign;
use support::*;

const AUTH: &str = "S3CR3T-auth+current/7f3a";
const AUTH_PREV: &str = "S3CR3T-auth+previous/91bc";
const AK_SECRET: &str = "S3CR3T-ak+secret/c0de";
const STS_TOKEN: &str = "S3CR3T-sts+token/5eed";
const SASL: &str = "S3CR3T-sasl+password/beef";
const OPERATOR: &str = "S3CR3T-operator+token/0b5e";
const ALL: [&str; 6] = [AUTH, AUTH_PREV, AK_SECRET, STS_TOKEN, SASL, OPERATOR];

/// The forms a secret could plausibly appear in.
fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let b = secret.as_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let pct: String = b
        .iter()
        .map(|&x| match x {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (x as char).to_string()
            }
            _ => format!("%{x:02X}"),
        })
        .collect();
    vec![
        ("raw", secret.to_string()),
        (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(b),
        ),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
        ),
        ("hex", hex.clone()),
        ("HEX", hex.to_uppercase()),
        ("urlencoded", pct),
    ]
}

/// Every (secret, form) found in `text`.
fn leaks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in ALL {
        for (form, f) in forms(s) {
            if text.contains(&f) {
                out.push(format!("{s} ({form})"));
            }
        }
    }
    out
}

fn assert_no_leak(what: &str, text: &str) {
    let found = leaks(text);
    assert!(
        found.is_empty(),
        "{what} shows secrets {found:?}:\n{}",
        tail(text, 60)
    );
}

#[test]
fn the_leak_check_finds_every_form() {
    for s in ALL {
        for (form, f) in forms(s) {
            assert_eq!(
                leaks(&format!("x {f} y")).len(),
                1.max(leaks(&f).len()),
                "{form}"
            );
            assert!(!leaks(&format!("x {f} y")).is_empty(), "{s} {form}");
        }
    }
    assert!(leaks("S3CR3T-other").is_empty());
}

/// The secrets as environment variables of every role.
fn secret_env() -> Vec<(&'static str, String)> {
    vec![
        ("LIVE2VOD_AUTH_KEY", AUTH.into()),
        ("LIVE2VOD_AUTH_KEY_PREVIOUS", AUTH_PREV.into()),
        ("LIVE2VOD_ACCESS_KEY_SECRET", AK_SECRET.into()),
        ("LIVE2VOD_SECURITY_TOKEN", STS_TOKEN.into()),
        (
            "LIVE2VOD_KAFKA",
            format!("sasl.username=svc,sasl.password={SASL}"),
        ),
        ("LIVE2VOD_SIM_AUTH_KEY", AUTH.into()),
        ("LIVE2VOD_SIM_ACCESS_KEY_SECRET", AK_SECRET.into()),
        ("LIVE2VOD_OPERATOR_TOKEN", OPERATOR.into()),
    ]
}

#[test]
fn help_does_not_show_secret_env_values() {
    for role in ["relay", "worker", "run", "sim", "fold", "api", "replay"] {
        let out = Command::new(bin())
            .args([role, "--help"])
            .envs(secret_env())
            // A value that is not secret: clap does show env values, so the check means
            // something.
            .env("LIVE2VOD_TOPIC_PREFIX", "visible-prefix.")
            .env("LIVE2VOD_SIM_SEED", "424242")
            .output()
            .expect("run --help");
        assert!(out.status.success(), "{role} --help");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("visible-prefix.") || text.contains("424242"),
            "{role} --help shows env values (else this check proves nothing):\n{text}"
        );
        assert_no_leak(&format!("{role} --help"), &text);
    }
}

#[test]
fn a_misspelt_kafka_secret_setting_is_refused_without_echoing_it() {
    for (how, args, env) in [
        (
            "flag",
            vec!["--kafka".to_string(), format!("sasl.pasword={SASL}")],
            vec![],
        ),
        (
            "env",
            vec![],
            vec![("LIVE2VOD_KAFKA", format!("sasl.pasword={SASL}"))],
        ),
        (
            "bad value of a secret key",
            vec![
                "--kafka".to_string(),
                format!("ssl.key.password={SASL}\u{1}"),
            ],
            vec![],
        ),
    ] {
        let out = Command::new(bin())
            .args(["relay", "--brokers", "127.0.0.1:9", "--no-auth"])
            .args(&args)
            .envs(env)
            .env("RUST_LOG", "trace")
            .output()
            .expect("run relay");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if how != "bad value of a secret key" {
            assert!(
                !out.status.success(),
                "{how}: a misspelt setting must be refused"
            );
            assert!(
                text.contains("sasl.pasword"),
                "{how}: names the key:\n{text}"
            );
        }
        assert_no_leak(
            &format!("relay with a misspelt Kafka setting ({how})"),
            &text,
        );
    }
}

/// GET `url` and return the body (blocking; `/metrics`).
fn get_text(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    buf
}

fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_worker_run_and_sim_never_print_secrets() {
    let dir = Scratch::new("secrets");
    let (_broker, brokers) = start_mock_broker(dir.path());
    create_topics(&brokers, "live2vod.", 3);
    let policy = write_sim_policy(dir.path());
    let env: Vec<(&str, String)> = secret_env()
        .into_iter()
        .chain([("RUST_LOG", "trace".to_string())])
        .collect();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run_listen = format!("127.0.0.1:{}", free_port());
    let api_listen = format!("127.0.0.1:{}", free_port());
    let run_ops = format!("127.0.0.1:{}", free_port());
    let relay_listen = format!("127.0.0.1:{}", free_port());
    let worker_ops = format!("127.0.0.1:{}", free_port());
    let sim_listen = format!("127.0.0.1:{}", free_port());
    let vod = format!("http://{sim_listen}/");
    let run_callback = format!("http://{run_listen}/callbacks/vod");
    let relay_callback = format!("http://{relay_listen}/callbacks/vod");

    // `run`: secrets from env vars, the SASL password also as a flag.
    let run = Proc::spawn(
        dir.path(),
        "run",
        bin(),
        &[
            "run",
            "--brokers",
            &brokers,
            "--listen",
            &run_listen,
            "--api-listen",
            &api_listen,
            "--metrics-listen",
            &run_ops,
            "--callback-url",
            &run_callback,
            "--policy",
            policy.to_str().expect("utf-8"),
            "--vod-endpoint",
            &vod,
            "--access-key-id",
            AK_ID,
            "--kafka",
            &format!("sasl.password={SASL}"),
        ],
        &env_ref
            .iter()
            .copied()
            .filter(|(k, _)| *k != "LIVE2VOD_SECURITY_TOKEN")
            .collect::<Vec<_>>(),
    );
    // `relay` alone: keys by flag this time.
    let relay = Proc::spawn(
        dir.path(),
        "relay",
        bin(),
        &[
            "relay",
            "--brokers",
            &brokers,
            "--listen",
            &relay_listen,
            "--callback-url",
            &relay_callback,
            "--auth-key",
            AUTH,
            "--auth-key-previous",
            AUTH_PREV,
        ],
        &env_ref,
    );
    // `worker` alone in the same group as run's worker: shares the commands, signs with the
    // AccessKey secret given by flag.
    let worker = Proc::spawn(
        dir.path(),
        "worker",
        bin(),
        &[
            "worker",
            "--brokers",
            &brokers,
            "--vod-endpoint",
            &vod,
            "--access-key-id",
            AK_ID,
            "--access-key-secret",
            AK_SECRET,
            "--metrics-listen",
            &worker_ops,
        ],
        &env_ref
            .iter()
            .copied()
            .filter(|(k, _)| *k != "LIVE2VOD_SECURITY_TOKEN")
            .collect::<Vec<_>>(),
    );
    for (url, p) in [
        (format!("http://{run_ops}/readyz"), &run),
        (format!("http://{relay_listen}/readyz"), &relay),
        (format!("http://{worker_ops}/readyz"), &worker),
    ] {
        let p_log = p.log.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while http_get_status(&url) != Some(200) {
                assert!(
                    Instant::now() < deadline,
                    "{url} not ready:\n{}",
                    std::fs::read_to_string(&p_log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .expect("ready");
    }

    // The relay: both keys accepted, bad and missing signatures refused (401), a body that
    // is not JSON refused (400).
    let client = reqwest::Client::new();
    let body = r#"{"EventTime":"2026-11-01T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"secrets-v1","Status":"success","StreamName":"s","DomainName":"d.example.com","AppName":"a","RecordStartTime":"2026-11-01T08:26:17Z","RecordEndTime":"2026-11-01T09:26:17Z"}"#;
    let ts = now_secs();
    for (name, sig, body, want) in [
        (
            "current key",
            Some(sign(&relay_callback, &ts, AUTH)),
            body,
            200,
        ),
        (
            "previous key",
            Some(sign(&relay_callback, &ts, AUTH_PREV)),
            body,
            200,
        ),
        (
            "wrong key",
            Some(sign(&relay_callback, &ts, "wrong")),
            body,
            401,
        ),
        ("no signature", None, body, 401),
        (
            "not JSON",
            Some(sign(&relay_callback, &ts, AUTH)),
            "not json",
            400,
        ),
    ] {
        let mut req = client.post(&relay_callback).body(body);
        req = req.header("X-VOD-TIMESTAMP", &ts);
        if let Some(s) = sig {
            req = req.header("X-VOD-SIGNATURE", s);
        }
        let status = req.send().await.expect("relay answers").status().as_u16();
        assert_eq!(status, want, "{name}:\n{}", relay.log_text());
    }

    // The simulator drives `run` (callbacks signed with the auth key, OpenAPI calls checked
    // against the AccessKey secret, a third of them throttled) until the api matches its
    // truth: both secrets were in use.
    let api_url = format!("http://{api_listen}");
    let mut sim = Proc::spawn(
        dir.path(),
        "sim",
        bin(),
        &[
            "sim",
            "--relay-url",
            &run_callback,
            "--callback-url",
            &run_callback,
            "--listen",
            &sim_listen,
            "--access-key-id",
            AK_ID,
            "--sessions",
            "4",
            "--seed",
            "5",
            "--throttle-rate",
            "0.3",
            "--timeout",
            "60",
            "--verify",
            &api_url,
        ],
        &env_ref,
    );
    let deadline = Instant::now() + Duration::from_secs(75);
    let status = loop {
        if let Some(s) = sim.child.try_wait().expect("wait sim") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "sim did not finish:\n{}\n--- run ---\n{}",
            tail(&sim.log_text(), 30),
            tail(&run.log_text(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        status.success(),
        "sim --verify failed (are the secrets in use?):\n{}\n--- run ---\n{}",
        tail(&sim.log_text(), 40),
        tail(&run.log_text(), 40)
    );

    let mut metrics = Vec::new();
    for url in [
        format!("http://{run_ops}/metrics"),
        format!("http://{relay_listen}/metrics"),
        format!("http://{worker_ops}/metrics"),
    ] {
        let text = tokio::task::spawn_blocking(move || get_text(&url))
            .await
            .expect("metrics");
        metrics.push(text);
    }
    let relay_metrics = &metrics[1];
    assert!(
        relay_metrics.contains("key_version=\"previous\""),
        "the previous key verified a callback:\n{relay_metrics}"
    );
    assert!(
        metrics[0].contains("live2vod_vod_api_calls_total")
            || metrics[2].contains("live2vod_vod_api_calls_total"),
        "run's and the worker's workers made VOD calls"
    );
    for m in &metrics {
        assert_no_leak("/metrics", m);
    }

    let mut procs = [run, relay, worker];
    for p in procs.iter_mut() {
        p.term(Duration::from_secs(20));
    }
    for p in procs.iter().chain([&sim]) {
        let log = p.log_text();
        assert!(
            log.contains("TRACE") || log.contains("DEBUG") || p.name == "sim",
            "{} logged at trace level (else the check proves little):\n{}",
            p.name,
            tail(&log, 20)
        );
        assert_no_leak(&format!("the log of {}", p.name), &log);
        println!("{}: {} bytes of log checked", p.name, log.len());
    }
}

/// `Debug` of every configuration that holds a secret.
#[test]
fn debug_of_configurations_redacts_secrets() {
    use clap::Parser;
    use live2vod::{allinone, api, relay, sim, worker};

    #[derive(Parser, Debug)]
    enum Roles {
        Relay(relay::Args),
        Worker(worker::Args),
        Run(allinone::Args),
        Sim(sim::Args),
        Api(api::Args),
    }
    let kafka = format!("sasl.password={SASL}");
    let common = ["--kafka", kafka.as_str()];
    let parse = |args: &[&str]| {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Roles::try_parse_from(all).expect("flags parse")
    };
    let relay = parse(
        &[
            &[
                "relay",
                "--callback-url",
                "http://h/cb",
                "--auth-key",
                AUTH,
                "--auth-key-previous",
                AUTH_PREV,
            ][..],
            &common,
        ]
        .concat(),
    );
    let worker = parse(
        &[
            &[
                "worker",
                "--vod-endpoint",
                "http://h/",
                "--access-key-id",
                "id",
                "--access-key-secret",
                AK_SECRET,
                "--security-token",
                STS_TOKEN,
            ][..],
            &common,
        ]
        .concat(),
    );
    let run = parse(
        &[
            &[
                "run",
                "--callback-url",
                "http://h/cb",
                "--auth-key",
                AUTH,
                "--auth-key-previous",
                AUTH_PREV,
                "--access-key-id",
                "id",
                "--access-key-secret",
                AK_SECRET,
                "--security-token",
                STS_TOKEN,
            ][..],
            &common,
        ]
        .concat(),
    );
    let sim = parse(&[
        "sim",
        "--relay-url",
        "http://h/cb",
        "--callback-url",
        "http://h/cb",
        "--auth-key",
        AUTH,
        "--access-key-secret",
        AK_SECRET,
    ]);

    let api = parse(&[&["api", "--operator-token", OPERATOR][..], &common].concat());

    // The secrets were parsed (a Debug without them would prove nothing).
    let Roles::Relay(r) = &relay else { panic!() };
    assert_eq!(r.auth.auth_key.as_deref(), Some(AUTH));
    assert_eq!(r.kafka.client_config().get("sasl.password"), Some(SASL));
    let relay_cfg = r.auth.auth().expect("auth");
    let Roles::Worker(w) = &worker else { panic!() };
    let worker_cfg = worker::WorkerConfig::try_from(w).expect("worker config");
    assert_eq!(worker_cfg.vod.access_key_secret.expose(), AK_SECRET);
    let Roles::Sim(s) = &sim else { panic!() };
    assert_eq!(s.opts.access_key_secret.expose(), AK_SECRET);
    let mut sim_cfg = sim::SimConfig::new("http://h/cb", "http://h/cb", AUTH);
    sim_cfg.access_key_secret = AK_SECRET.into();
    let mut vod = live2vod::vod::client::VodConfig::new("cn-shanghai", "id", AK_SECRET);
    vod.security_token = Some(live2vod::vod::client::Secret::new(STS_TOKEN));
    let client = live2vod::vod::client::VodClient::new(vod.clone()).expect("client");
    let verifier = live2vod::vod::callback_auth::CallbackVerifier::new(
        "http://h/cb",
        AUTH,
        Some(AUTH_PREV.into()),
        300,
    );

    let Roles::Api(a) = &api else { panic!() };
    assert_eq!(
        a.operator_token.as_ref().map(|t| t.expose()),
        Some(OPERATOR)
    );
    let console = api::operator::Console::new(a.operator_token.clone(), None);

    let relay_config = relay::Config::new(r.kafka.clone(), relay_cfg.clone());
    for (what, shown) in [
        ("relay args", format!("{relay:?}")),
        ("relay config", format!("{relay_config:?}")),
        ("relay auth", format!("{relay_cfg:?}")),
        ("worker args", format!("{worker:?}")),
        ("worker config", format!("{worker_cfg:?}")),
        ("run args", format!("{run:?}")),
        ("sim args", format!("{sim:?}")),
        ("sim config", format!("{sim_cfg:?}")),
        ("vod config", format!("{vod:?}")),
        ("vod client", format!("{client:?}")),
        ("callback verifier", format!("{verifier:?}")),
        ("pretty relay args", format!("{relay:#?}")),
        ("api args", format!("{api:?}")),
        ("api console", format!("{console:?}")),
    ] {
        assert_no_leak(what, &shown);
    }
}
