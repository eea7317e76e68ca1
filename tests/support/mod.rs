//! Helpers for tests that run the built binary as separate processes, on the embedded mock
//! cluster (`live2vod broker`) or on a real broker process (tansu 0.6 at `~/.cargo/bin/tansu`
//! or `$LIVE2VOD_TANSU`; `tests/run-all.sh` does not install it yet).
//!
//! Knobs for investigating a failure: `LIVE2VOD_TEST_SEED` (replay a seeded test),
//! `LIVE2VOD_KEEP_TEST_DIRS` (keep logs), `LIVE2VOD_TEST_KAFKA_DEBUG` (librdkafka debug
//! contexts for every role), `LIVE2VOD_TEST_TANSU_LOG` (tansu's RUST_LOG; `info` is verbose).
#![allow(dead_code)]

pub mod reconcile;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `live2vod` binary cargo built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_live2vod")
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A scratch directory removed on drop (kept when LIVE2VOD_KEEP_TEST_DIRS is set).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "live2vod-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ (free_port() as u128)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("LIVE2VOD_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed (SIGKILL) on drop; its output goes to `<dir>/<name>.log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited on its own (and is reaped).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM and wait (up to `timeout`) for a graceful exit; returns whether it exited.
    pub fn term(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `url` answers 200 (GET), or panics after `timeout` with `what`'s log.
pub fn wait_http_ok(url: &str, timeout: Duration, what: &Proc) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_get_status(url) == Some(200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{url} not ready after {timeout:?}; log of {}:\n{}",
        what.name,
        what.log_text()
    );
}

/// Minimal blocking HTTP/1.0 GET returning the status code (no client dependency needed).
pub fn http_get_status(url: &str) -> Option<u16> {
    http_get(url).map(|(status, _)| status)
}

/// The body of a GET of `url` when it answered 200.
pub fn http_get_body(url: &str) -> Option<String> {
    http_get(url).and_then(|(status, body)| (status == 200).then_some(body))
}

/// Minimal blocking HTTP/1.0 GET: status code and body.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

/// `live2vod broker` as a process: the embedded mock cluster shared by other processes.
pub fn start_mock_broker(dir: &Path) -> (Proc, String) {
    let file = dir.join("bootstrap");
    let p = Proc::spawn(
        dir,
        "broker",
        bin(),
        &[
            "broker",
            "--bootstrap-file",
            file.to_str().expect("utf-8 path"),
            // As many as `Pipeline::start` creates on other brokers (the mock cluster cannot
            // create topics for clients, so the broker process creates them).
            "--partitions",
            "6",
            // The target of the crash tests' `replay --to-topic`.
            "--extra-topic",
            "live2vod.crash-matrix-rebuilt",
        ],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(s) = std::fs::read_to_string(&file) {
            if !s.trim().is_empty() {
                return (p, s.trim().to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "broker did not publish its bootstrap address:\n{}",
        p.log_text()
    );
}

/// Path of the tansu binary (`cargo install tansu@0.6.0 --locked --features libsql,dynostore`).
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LIVE2VOD_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let p = PathBuf::from(home).join(".cargo/bin/tansu");
    assert!(
        p.exists(),
        "tansu is not installed at {}: install it with `cargo install tansu@0.6.0 --locked --features libsql,dynostore` (or point LIVE2VOD_TANSU at the binary)",
        p.display()
    );
    p
}

/// A tansu broker process persisting to a SQLite file in `dir`; restartable with its data.
pub struct Tansu {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

impl Tansu {
    pub fn start(dir: &Path) -> Tansu {
        let port = free_port();
        let proc = Self::spawn(dir, port);
        let mut t = Tansu {
            proc,
            port,
            dir: dir.to_path_buf(),
        };
        t.wait_listening();
        t
    }

    fn spawn(dir: &Path, port: u16) -> Proc {
        // tansu resolves the sqlite path against its working directory (even an absolute
        // one: `sqlite:///tmp/x` opened `<cwd>/tmp/x`), and the process runs in `dir`.
        let url = format!("tcp://127.0.0.1:{port}");
        let storage = "sqlite://tansu.db".to_string();
        let bin = tansu_bin();
        Proc::spawn(
            dir,
            "tansu",
            bin.to_str().expect("utf-8 path"),
            &[
                "broker",
                "--storage-engine",
                &storage,
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--cluster-id",
                "live2vod-test",
            ],
            // Set LIVE2VOD_TEST_TANSU_LOG (e.g. `info`) to see the broker's own log.
            &[(
                "RUST_LOG",
                &std::env::var("LIVE2VOD_TEST_TANSU_LOG").unwrap_or_else(|_| "error".into()),
            )],
        )
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL the broker and start it again on the same port and data.
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc = Self::spawn(&self.dir, self.port);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.proc.child.try_wait() {
                panic!(
                    "tansu exited ({status}) before listening on {}:\n{}",
                    self.port,
                    self.proc.log_text()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "tansu did not listen on {}:\n{}",
            self.port,
            self.proc.log_text()
        );
    }
}

/// Reads the first line a process prints on stdout (for `live2vod broker` run with a pipe).
pub fn first_line(child: &mut Child) -> Option<String> {
    let out = child.stdout.take()?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

/// The seed of a test's random choices: `LIVE2VOD_TEST_SEED` when set (to replay a failure),
/// else a fresh one. Printed either way.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("LIVE2VOD_TEST_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("LIVE2VOD_TEST_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    println!("{test}: seed {seed} (replay with LIVE2VOD_TEST_SEED={seed})");
    seed
}

/// Kafka options of a test client on `brokers` with topic prefix `prefix`.
pub fn kafka_args(brokers: &str, prefix: &str) -> live2vod::kafka::KafkaArgs {
    let mut k = live2vod::kafka::KafkaArgs::for_brokers(brokers);
    k.topic_prefix = prefix.to_string();
    k
}

/// `live2vod topics create` for `prefix` with `partitions` partitions per topic.
pub fn create_topics(brokers: &str, prefix: &str, partitions: i32) {
    let out = Command::new(bin())
        .args([
            "topics",
            "create",
            "--brokers",
            brokers,
            "--topic-prefix",
            prefix,
            "--topic-partitions",
            &partitions.to_string(),
        ])
        .output()
        .expect("run topics create");
    assert!(
        out.status.success(),
        "topics create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every record of `topic` (all `partitions`), key and value, in offset order per partition.
pub fn read_topic(
    kafka: &live2vod::kafka::KafkaArgs,
    topic: &str,
    partitions: i32,
) -> Vec<(String, Vec<u8>)> {
    (0..partitions)
        .flat_map(|p| {
            live2vod::kafka::read::read_partition(kafka, topic, p)
                .unwrap_or_else(|e| panic!("read {topic}/{p}: {e}"))
        })
        .collect()
}

/// The latest value of every key of a (compacted) topic.
pub fn latest_per_key(
    kafka: &live2vod::kafka::KafkaArgs,
    topic: &str,
    partitions: i32,
) -> BTreeMap<String, Vec<u8>> {
    read_topic(kafka, topic, partitions).into_iter().collect()
}

/// Per partition of `topic`: (committed offset of `group`, high watermark).
pub fn group_positions(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer for offsets");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
    (0..partitions)
        .map(|p| {
            let off = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => o,
                _ => 0,
            };
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
            (off, high)
        })
        .collect()
}

/// Waits until `group` has committed every record of `topic` and the topic stopped growing
/// (two identical readings 2 s apart: records derived by a consumer land before it commits
/// their cause, so a stable, fully committed topic has nothing in flight). Panics after
/// `timeout` with the positions and `procs`' logs.
pub fn wait_drained(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    procs: &[&Proc],
) -> Vec<(i64, i64)> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Vec<(i64, i64)>> = None;
    loop {
        let now = group_positions(brokers, group, topic, partitions);
        let done = now.iter().all(|(c, h)| c == h);
        if done && last.as_ref() == Some(&now) {
            return now;
        }
        last = done.then_some(now.clone());
        if Instant::now() > deadline {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {} ---\n{}", p.name, tail(&p.log_text(), 30)))
                .collect();
            panic!(
                "group {group} did not consume {topic} within {timeout:?}: (committed, high) per partition {now:?}\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Writes the simulator's fold policy (`sim --print-policy`) to `<dir>/policy.toml`.
pub fn write_sim_policy(dir: &Path) -> PathBuf {
    write_policy(dir, &live2vod::sim::policy_toml())
}

/// Writes `text` as the fold policy `<dir>/policy.toml`.
pub fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, text).expect("write policy");
    policy
}

/// The simulator's policy with composed videos probed `secs` after their compose started
/// instead of 10 minutes (a test cannot wait for VOD's real deadline).
pub fn sim_policy_with_compose_deadline(secs: u64) -> String {
    let text = live2vod::sim::policy_toml();
    assert!(text.contains("compose_deadline_secs = 600"));
    text.replace(
        "compose_deadline_secs = 600",
        &format!("compose_deadline_secs = {secs}"),
    )
}

/// Callback auth key and OpenAPI credentials shared by the pipeline and the simulator.
pub const AUTH_KEY: &str = "e2e-callback-key";
pub const AK_ID: &str = "e2e-ak-id";
pub const AK_SECRET: &str = "e2e-ak-secret";

/// Librdkafka settings for group members that get SIGKILLed: the group notices a dead member
/// after 6 s instead of 45 s (6 s is the smallest session timeout Kafka accepts by default).
pub const FAST_GROUP: [&str; 4] = [
    "--kafka",
    "session.timeout.ms=6000",
    "--kafka",
    "heartbeat.interval.ms=500",
];

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn relay_args(brokers: &str, listen: &str) -> Vec<String> {
    let callback_url = format!("http://{listen}/callbacks/vod");
    strings(&[
        "relay",
        "--brokers",
        brokers,
        "--listen",
        listen,
        "--callback-url",
        &callback_url,
        "--auth-key",
        AUTH_KEY,
    ])
}

fn fold_args(brokers: &str, policy: &Path, metrics: &str) -> Vec<String> {
    strings(&[
        "fold",
        "--brokers",
        brokers,
        "--policy",
        policy.to_str().expect("utf-8"),
        "--metrics-listen",
        metrics,
    ])
}

fn api_args(brokers: &str, listen: &str) -> Vec<String> {
    strings(&["api", "--brokers", brokers, "--listen", listen])
}

/// relay, fold, worker(s) and api as separate processes on one broker, with their addresses.
pub struct Pipeline {
    pub dir: PathBuf,
    pub brokers: String,
    pub policy: PathBuf,
    pub relay: Proc,
    pub fold: Proc,
    /// The workers of the group (slot i holds the latest generation started there).
    pub workers: Vec<Proc>,
    pub api: Proc,
    pub relay_listen: String,
    pub api_listen: String,
    pub sim_listen: String,
    pub fold_metrics: String,
    /// Extra arguments of every role (e.g. [`FAST_GROUP`]).
    pub extra: Vec<String>,
    /// Workers started so far (names the log of each generation).
    pub worker_generation: u32,
}

impl Pipeline {
    /// Creates the topics (6 partitions) and starts every role, with `workers` workers in one
    /// group; returns once all are ready.
    pub fn start(dir: &Path, brokers: &str, workers: usize, extra: &[&str]) -> Pipeline {
        Self::start_with_policy(dir, brokers, workers, extra, &live2vod::sim::policy_toml())
    }

    /// [`Pipeline::start`] with the fold policy `policy` (TOML text).
    pub fn start_with_policy(
        dir: &Path,
        brokers: &str,
        workers: usize,
        extra: &[&str],
        policy: &str,
    ) -> Pipeline {
        let policy = write_policy(dir, policy);
        create_topics(brokers, "live2vod.", 6);
        let relay_listen = format!("127.0.0.1:{}", free_port());
        let api_listen = format!("127.0.0.1:{}", free_port());
        let sim_listen = format!("127.0.0.1:{}", free_port());
        let fold_metrics = format!("127.0.0.1:{}", free_port());
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Librdkafka debug contexts for every role, e.g. `cgrp` (to investigate a failure).
        if let Ok(d) = std::env::var("LIVE2VOD_TEST_KAFKA_DEBUG") {
            extra.extend(["--kafka".to_string(), format!("debug={d}")]);
        }
        let relay = Self::role(dir, "relay", &relay_args(brokers, &relay_listen), &extra);
        let fold = Self::role(
            dir,
            "fold",
            &fold_args(brokers, &policy, &fold_metrics),
            &extra,
        );
        let api = Self::role(dir, "api", &api_args(brokers, &api_listen), &extra);
        let mut p = Pipeline {
            dir: dir.to_path_buf(),
            brokers: brokers.to_string(),
            policy,
            relay,
            fold,
            workers: Vec::new(),
            api,
            relay_listen,
            api_listen,
            sim_listen,
            fold_metrics,
            extra,
            worker_generation: 0,
        };
        for _ in 0..workers {
            let w = p.start_worker();
            p.workers.push(w);
        }
        wait_http_ok(
            &format!("http://{}/readyz", p.relay_listen),
            Duration::from_secs(60),
            &p.relay,
        );
        wait_http_ok(
            &format!("http://{}/readyz", p.fold_metrics),
            Duration::from_secs(60),
            &p.fold,
        );
        wait_http_ok(
            &format!("http://{}/readyz", p.api_listen),
            Duration::from_secs(60),
            &p.api,
        );
        p
    }

    /// Starts another relay on this pipeline's address (its log `relay.log` is appended to).
    pub fn spawn_relay(&self) -> Proc {
        let args = relay_args(&self.brokers, &self.relay_listen);
        Self::role(&self.dir, "relay", &args, &self.extra)
    }

    /// Starts another fold with this pipeline's policy and metrics address.
    pub fn spawn_fold(&self) -> Proc {
        let args = fold_args(&self.brokers, &self.policy, &self.fold_metrics);
        Self::role(&self.dir, "fold", &args, &self.extra)
    }

    /// Starts one more fold of the group, named `name`, with a metrics address of its own
    /// (returned).
    pub fn spawn_extra_fold(&self, name: &str) -> (Proc, String) {
        let metrics = format!("127.0.0.1:{}", free_port());
        let args = fold_args(&self.brokers, &self.policy, &metrics);
        (Self::role(&self.dir, name, &args, &self.extra), metrics)
    }

    /// Starts another api on this pipeline's address.
    pub fn spawn_api(&self) -> Proc {
        let args = api_args(&self.brokers, &self.api_listen);
        Self::role(&self.dir, "api", &args, &self.extra)
    }

    /// Starts a reconcile instance against the simulator's OpenAPI with this pipeline's policy,
    /// its metrics on `metrics` (log `reconcile.log`, appended to), sweeping every 2 s over
    /// the simulator's whole history (its recordings started long before VOD reports them),
    /// probing after 5 s, at most `max_qps` calls a second; returns once it is ready.
    pub fn start_reconcile(&self, metrics: &str, max_qps: f64) -> Proc {
        let r = self.spawn_reconcile(metrics, max_qps);
        wait_http_ok(
            &format!("http://{metrics}/readyz"),
            Duration::from_secs(60),
            &r,
        );
        r
    }

    /// [`Pipeline::start_reconcile`] without waiting until it is ready.
    pub fn spawn_reconcile(&self, metrics: &str, max_qps: f64) -> Proc {
        let lookback = (86_400 * 30).to_string();
        let qps = max_qps.to_string();
        let mut args = self.vod_role_args("reconcile");
        args.extend(strings(&[
            "--policy",
            self.policy.to_str().expect("utf-8"),
            "--metrics-listen",
            metrics,
            "--sweep-interval-secs",
            "2",
            "--settle-secs",
            "1",
            "--initial-lookback-secs",
            &lookback,
            "--overlap-secs",
            &lookback,
            "--probe-after-secs",
            "5",
            "--probe-max-backoff-secs",
            "4",
            "--max-qps",
            &qps,
        ]));
        Self::role(&self.dir, "reconcile", &args, &self.extra)
    }

    /// `<role> --brokers B --vod-endpoint <the simulator> --access-key-id .. --access-key-secret ..`:
    /// the arguments of a role that calls VOD's OpenAPI (worker, reconcile).
    fn vod_role_args(&self, role: &str) -> Vec<String> {
        let vod_endpoint = format!("http://{}/", self.sim_listen);
        strings(&[
            role,
            "--brokers",
            &self.brokers,
            "--vod-endpoint",
            &vod_endpoint,
            "--access-key-id",
            AK_ID,
            "--access-key-secret",
            AK_SECRET,
        ])
    }

    fn role(dir: &Path, name: &str, args: &[String], extra: &[String]) -> Proc {
        let all: Vec<&str> = args.iter().chain(extra).map(String::as_str).collect();
        Proc::spawn(dir, name, bin(), &all, &[])
    }

    /// Starts a new worker (log `worker-<generation>.log`, a metrics port of its own) and
    /// waits until it is ready.
    pub fn start_worker(&mut self) -> Proc {
        let (w, metrics) = self.spawn_worker();
        wait_http_ok(
            &format!("http://{metrics}/readyz"),
            Duration::from_secs(60),
            &w,
        );
        w
    }

    /// Starts a new worker without waiting; returns it and its metrics address.
    pub fn spawn_worker(&mut self) -> (Proc, String) {
        self.worker_generation += 1;
        let name = format!("worker-{}", self.worker_generation);
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut args = self.vod_role_args("worker");
        args.extend(strings(&["--metrics-listen", &metrics]));
        (Self::role(&self.dir, &name, &args, &self.extra), metrics)
    }

    /// Starts `live2vod sim --verify` against this pipeline (`extra`: more sim flags).
    pub fn spawn_sim(&self, sessions: u32, seed: u64, extra: &[&str]) -> Proc {
        let callback_url = format!("http://{}/callbacks/vod", self.relay_listen);
        let api_url = format!("http://{}", self.api_listen);
        let sessions = sessions.to_string();
        let seed = seed.to_string();
        let mut args = vec![
            "sim",
            "--relay-url",
            &callback_url,
            "--callback-url",
            &callback_url,
            "--auth-key",
            AUTH_KEY,
            "--listen",
            &self.sim_listen,
            "--access-key-id",
            AK_ID,
            "--access-key-secret",
            AK_SECRET,
            "--sessions",
            &sessions,
            "--seed",
            &seed,
            "--verify",
            &api_url,
        ];
        args.extend(extra);
        Proc::spawn(&self.dir, "sim", bin(), &args, &[])
    }

    /// A simulator of the VOD this pipeline talks to: callbacks signed with [`AUTH_KEY`] to its
    /// relay, its OpenAPI on `sim_listen` with the workers' credentials, verified against its
    /// api; `sessions` sessions of scenario `seed % 1000`, the rest at the simulator's defaults.
    pub fn sim_config(&self, sessions: usize, seed: u64) -> live2vod::sim::SimConfig {
        let callback_url = format!("http://{}/callbacks/vod", self.relay_listen);
        let mut cfg = live2vod::sim::SimConfig::new(&callback_url, &callback_url, AUTH_KEY);
        cfg.listen = self.sim_listen.parse().expect("sim listen address");
        cfg.access_key_id = AK_ID.into();
        cfg.access_key_secret = AK_SECRET.into();
        cfg.sessions = sessions;
        cfg.seed = seed % 1000;
        cfg.api_url = Some(format!("http://{}", self.api_listen));
        cfg
    }

    /// The last lines of every role's log (for failure messages).
    pub fn logs(&self) -> String {
        [&self.relay, &self.fold, &self.api]
            .into_iter()
            .chain(&self.workers)
            .map(|p| format!("--- {} ---\n{}", p.name, tail(&p.log_text(), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The sum of every series of the metric `name` in a Prometheus text exposition `body`
/// (all label sets).
pub fn metric_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The distinct observation events reconcile wrote to the callbacks topic, by event type
/// (each is a fact some callback should have brought; repeated sweeps write the same bytes).
pub fn observations_on_topic(brokers: &str, partitions: i32) -> BTreeMap<String, usize> {
    use live2vod::domain::vocab::event_type as et;
    let kafka = kafka_args(brokers, "live2vod.");
    let observed = [
        et::RECORDING_OBSERVED,
        et::COMPOSE_OBSERVED,
        et::SOURCE_OBSERVED,
        et::TRANSCODE_OBSERVED,
        et::SNAPSHOT_OBSERVED,
    ];
    let bodies: std::collections::BTreeSet<Vec<u8>> =
        read_topic(&kafka, &kafka.topics().callbacks, partitions)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
    let mut by_type = BTreeMap::new();
    for b in bodies {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
            continue;
        };
        if let Some(t) = v["EventType"].as_str().filter(|t| observed.contains(t)) {
            *by_type.entry(t.to_string()).or_insert(0) += 1;
        }
    }
    by_type
}

/// Waits for the simulator to exit and asserts it verified (its report is returned).
pub fn expect_sim_verified(sim: &mut Proc, p: &Pipeline, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = sim.child.try_wait().expect("wait for sim") {
            break s;
        }
        if Instant::now() > deadline {
            panic!(
                "sim did not finish within {timeout:?}:\n{}\n{}",
                tail(&sim.log_text(), 40),
                p.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = sim.log_text();
    assert!(
        status.success(),
        "sim --verify failed:\n{}\n{}",
        tail(&report, 60),
        p.logs()
    );
    report
}

/// Command ids by kind on the commands topic, and command ids with an outcome event on the
/// callbacks topic; TrackCompose commands whose deadline is still ahead are left out (the
/// worker waits for the deadline before it looks).
pub fn commands_and_outcomes(
    brokers: &str,
) -> (BTreeMap<&'static str, BTreeSet<String>>, BTreeSet<String>) {
    use live2vod::proto::command::Kind;
    let kafka = kafka_args(brokers, "live2vod.");
    let t = kafka.topics();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut commands: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (_, v) in read_topic(&kafka, &t.commands, 6) {
        let c = <live2vod::proto::Command as prost::Message>::decode(v.as_slice())
            .expect("command decodes");
        let kind = match &c.kind {
            Some(Kind::SubmitTranscode(_)) => "SubmitTranscode",
            Some(Kind::RefreshPlayInfo(_)) => "RefreshPlayInfo",
            Some(Kind::TrackCompose(tc)) if tc.deadline_ms <= now_ms => "TrackCompose",
            Some(Kind::TrackCompose(_)) => "TrackCompose (deadline ahead, not checked)",
            None => "unknown",
        };
        commands.entry(kind).or_default().insert(c.command_id);
    }
    let outcomes = read_topic(&kafka, &t.callbacks, 6)
        .into_iter()
        .filter_map(|(_, v)| {
            let body: serde_json::Value = serde_json::from_slice(&v).ok()?;
            let ty = body.get("EventType")?.as_str()?;
            if !ty.starts_with("live2vod.") || ty == "live2vod.StreamFact" {
                return None;
            }
            Some(body.get("CommandId")?.as_str()?.to_string())
        })
        .collect();
    (commands, outcomes)
}

/// Asserts that every body in `acknowledged` (the callbacks the relay answered 200) is on the
/// callbacks topic (`partitions` partitions, prefix `live2vod.`), byte for byte; returns how
/// many records the topic holds.
pub fn assert_acknowledged_on_topic(
    brokers: &str,
    acknowledged: &[String],
    partitions: i32,
    seed: u64,
) -> usize {
    let kafka = kafka_args(brokers, "live2vod.");
    let records = read_topic(&kafka, &kafka.topics().callbacks, partitions);
    let n = records.len();
    let on_topic: BTreeSet<Vec<u8>> = records.into_iter().map(|(_, v)| v).collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|b| !on_topic.contains(b.as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: {} of {} acknowledged callbacks are not on the topic, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(3)]
    );
    n
}

/// Waits (up to 60 s: the last outcomes may still be on their way when the api converged) until
/// every command on the commands topic has its outcome event on the callbacks topic, and
/// asserts it; returns the command ids by kind.
pub fn assert_commands_finished(
    p: &Pipeline,
    seed: u64,
) -> BTreeMap<&'static str, BTreeSet<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (commands, outcomes) = commands_and_outcomes(&p.brokers);
        let missing: Vec<&String> = commands
            .iter()
            .filter(|(k, _)| !k.contains("not checked"))
            .flat_map(|(_, ids)| ids.iter())
            .filter(|id| !outcomes.contains(*id))
            .collect();
        if missing.is_empty() {
            return commands;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: {} commands have no outcome event after 60 s, e.g. {:?}\n{}",
            missing.len(),
            &missing[..missing.len().min(5)],
            p.logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts the simulator `cfg` on `rt`, in the test process (so its ground truth and job counts
/// can be read): it delivers every callback, then verifies the api (`cfg.api_url`) for up to
/// `verify`. Returns the simulator and the task that ends with the verification's report.
/// Starts the simulator with `cfg` and its delivery of the whole scenario (not verified: the
/// caller does that when it wants); the returned task ends when everything was delivered.
pub fn start_delivering(
    rt: &tokio::runtime::Runtime,
    cfg: live2vod::sim::SimConfig,
) -> (
    std::sync::Arc<live2vod::sim::SimHandle>,
    tokio::task::JoinHandle<live2vod::sim::Progress>,
) {
    let sim = std::sync::Arc::new(
        rt.block_on(live2vod::sim::Simulator::start(cfg))
            .expect("start the simulator"),
    );
    let task = {
        let sim = sim.clone();
        rt.spawn(async move { sim.deliver_all().await })
    };
    (sim, task)
}

pub fn start_sim(
    rt: &tokio::runtime::Runtime,
    cfg: live2vod::sim::SimConfig,
    verify: Duration,
) -> (
    std::sync::Arc<live2vod::sim::SimHandle>,
    tokio::task::JoinHandle<live2vod::sim::VerifyReport>,
) {
    let api_url = cfg
        .api_url
        .clone()
        .expect("a simulator to verify needs api_url");
    let sim = std::sync::Arc::new(
        rt.block_on(live2vod::sim::Simulator::start(cfg))
            .expect("start the simulator"),
    );
    let run = {
        let sim = sim.clone();
        rt.spawn(async move {
            sim.deliver_all().await;
            sim.verify(&api_url, verify).await
        })
    };
    (sim, run)
}
