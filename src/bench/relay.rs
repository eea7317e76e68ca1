//! `live2vod bench relay`: callbacks accepted per second and their latency, over loopback HTTP,
//! by a relay writing to the embedded mock cluster (acks=all, idempotent producer; every 200
//! means the broker acknowledged the record). Clients run in the same process and share the
//! machine's cores with the relay and the broker.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use serde_json::json;

use crate::kafka::mock::EmbeddedBroker;
use crate::kafka::KafkaArgs;
use crate::vod::callback_auth::{sign, CallbackVerifier};

/// Options of `live2vod bench relay`.
#[derive(ClapArgs, Debug, Clone)]
pub struct RelayArgs {
    /// Seconds of load after a 1 s warm-up.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent HTTP clients (keep-alive connections).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Partitions of the callbacks topic.
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
}

pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = args.partitions;
    broker.create_topics(&kafka.topics(), args.partitions)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}/callbacks/vod");
    let key = "bench-key";
    let verifier = CallbackVerifier::new(&url, key, None, 300);
    let relay = crate::relay::start(
        crate::relay::Config::new(kafka, crate::relay::Auth::Verify(verifier)),
        listener,
    )
    .await?;
    // Only VOD's own callbacks: the relay refuses live2vod.* events from outside (400).
    let corpus: Vec<(String, Vec<u8>)> = super::corpus::callbacks(200, 3)
        .into_iter()
        .filter(|(_, body)| {
            const INTERNAL: &[u8] = b"\"live2vod.";
            !body.windows(INTERNAL.len()).any(|w| w == INTERNAL)
        })
        .collect();
    let corpus = Arc::new(corpus);
    println!(
        "relay on {addr}, embedded mock cluster ({} partitions), {} clients, {} s; bodies from the shared corpus ({} distinct)",
        args.partitions, args.concurrency, args.seconds, corpus.len()
    );

    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Non-200 answers by status (0: no answer).
    let errors = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeMap::<u16, u64>::new(),
    ));
    let mut tasks = Vec::new();
    for c in 0..args.concurrency {
        let (corpus, measuring, stop, errors, url) = (
            corpus.clone(),
            measuring.clone(),
            stop.clone(),
            errors.clone(),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut lat = Vec::new();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let (_, body) = &corpus[i % corpus.len()];
                i += args_stride();
                let ts = now_secs().to_string();
                // Only requests started inside the measured window count.
                let counted = measuring.load(Ordering::Relaxed);
                let t0 = Instant::now();
                let res = client
                    .post(&url)
                    .header("X-VOD-TIMESTAMP", &ts)
                    .header("X-VOD-SIGNATURE", sign(&url, &ts, key))
                    .body(body.clone())
                    .send()
                    .await;
                let status = res.as_ref().map_or(0, |r| r.status().as_u16());
                if counted && measuring.load(Ordering::Relaxed) {
                    if status == 200 {
                        lat.push(t0.elapsed());
                    } else if let Ok(mut e) = errors.lock() {
                        *e.entry(status).or_default() += 1;
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    relay.shutdown().await?;
    drop(broker);
    lat.sort();
    let n = lat.len();
    anyhow::ensure!(n > 0, "no callback was accepted");
    let pct = |q: f64| lat[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1000.0;
    let rate = n as f64 / elapsed;
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    println!(
        "accepted {n} callbacks in {elapsed:.2}s = {rate:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; non-200 answers by status: {errors:?}",
        pct(0.50),
        pct(0.99),
        lat[n - 1].as_secs_f64() * 1000.0,
    );
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"callbacks_per_s": rate.round(), "p50_ms": r2(pct(0.50)), "p99_ms": r2(pct(0.99))})
    );
    Ok(())
}

/// Clients walk the corpus with a stride so they post different bodies.
fn args_stride() -> usize {
    7
}

fn now_secs() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}
