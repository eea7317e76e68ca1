//! The console's listing endpoints (`GET /v1/streams`, `GET /v1/videos`) over 100,000
//! aggregates: 1,000 streams with 99 videos each, real protobuf snapshots made by the domain's
//! engine and applied straight into the api's store (not through Kafka, so the test measures
//! the listing, not the broker). Checks that walking every page with the cursor returns every
//! aggregate once, in order, with the filters right; prints page times and the memory the
//! store and the listing index hold per aggregate (figures, not timed assertions).
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use live2vod::api::{self, Config, Store};
use live2vod::bench::fold::bytes_left_by;
use live2vod::domain::time::format_rfc3339;
use live2vod::domain::{Engine, InputPos, Policy};
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use serde_json::Value;

const STREAMS: usize = 1_000;
const VIDEOS_PER_STREAM: usize = 99;
const DOMAIN: &str = "live.example.com";
const APP: &str = "record";

/// What the generator made of one video, to check the pages against.
struct Made {
    id: String,
    stream: String,
    last_ms: i64,
    status: &'static str,
}

fn pos(offset: i64) -> InputPos {
    InputPos {
        partition: 0,
        offset,
    }
}

/// Snapshots of every aggregate, and what each video is. Video `i` of the run has its last
/// event `i` seconds after `base_ms`; one in ten is transcoding (waiting on VOD), one in ten
/// failed, the rest recorded (stored only).
fn generate(base_ms: i64) -> (Vec<(String, Vec<u8>)>, Vec<Made>) {
    let mut snapshots = Vec::with_capacity(STREAMS * (VIDEOS_PER_STREAM + 1));
    let mut made = Vec::with_capacity(STREAMS * VIDEOS_PER_STREAM);
    for s in 0..STREAMS {
        let stream = format!("cam-{s:04}");
        let mut e = Engine::new(Policy::default());
        let mut off = 0;
        let mut stream_key = None;
        for v in 0..VIDEOS_PER_STREAM {
            let n = s * VIDEOS_PER_STREAM + v;
            let id = format!("{:08x}{:024x}", n, n as u128 * 2_654_435_761);
            let t = base_ms + n as i64 * 1000;
            let (status, ok) = match v % 10 {
                6 => ("transcoding", "success"),
                7 => ("failed", "fail"),
                _ => ("recorded", "success"),
            };
            let start = format_rfc3339(t - 600_000);
            let end = format_rfc3339(t - 1000);
            let acr = format!(
                r#"{{"EventTime":"{end}","EventType":"AddLiveRecordVideoComplete","VideoId":"{id}","Status":"{ok}","StreamName":"{stream}","DomainName":"{DOMAIN}","AppName":"{APP}","RecordStartTime":"{start}","RecordEndTime":"{end}"}}"#
            );
            let applied = e.apply(&id, acr.as_bytes(), pos(off)).expect("folds");
            off += 1;
            for (k, fact) in &applied.derived {
                e.apply(k, fact, pos(off)).expect("stream fact folds");
                off += 1;
                stream_key = Some(k.clone());
            }
            let last = if status == "transcoding" {
                let stc = format!(
                    r#"{{"EventTime":"{}","EventType":"StreamTranscodeComplete","VideoId":"{id}","Status":"success","Definition":"HD","Format":"m3u8","FileUrl":"https://play.example.com/{id}/hd.m3u8","JobId":"j{n}"}}"#,
                    format_rfc3339(t)
                );
                e.apply(&id, stc.as_bytes(), pos(off)).expect("folds");
                off += 1;
                t
            } else {
                t - 1000
            };
            snapshots.push((id.clone(), e.snapshot_bytes(&id).expect("snapshot")));
            made.push(Made {
                id,
                stream: format!("{DOMAIN}/{APP}/{stream}"),
                last_ms: last,
                status,
            });
        }
        let key = stream_key.expect("the stream got facts");
        snapshots.push((
            key.clone(),
            e.snapshot_bytes(&key).expect("stream snapshot"),
        ));
    }
    (snapshots, made)
}

struct Timer(Vec<f64>);

impl Timer {
    fn add(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1000.0);
    }
    fn summary(&mut self) -> (f64, f64, usize) {
        self.0.sort_by(f64::total_cmp);
        let n = self.0.len();
        (self.0[n / 2], self.0[n - 1], n)
    }
}

async fn page(client: &reqwest::Client, url: &str, t: &mut Timer) -> Value {
    let started = Instant::now();
    let r = client.get(url).send().await.expect("api answers");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    t.add(started.elapsed());
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// Walks every page of `url` (which has a `?`), returning the items' `key` fields.
async fn walk(client: &reqwest::Client, url: &str, key: &str, t: &mut Timer) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let u = match &cursor {
            Some(c) => format!("{url}&cursor={c}"),
            None => url.to_string(),
        };
        let body = page(client, &u, t).await;
        for item in body["items"].as_array().expect("items") {
            out.push(item[key].as_str().expect("key field").to_string());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_over_100k_aggregates() {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    // Last events from 2 days ago onwards, one a second (99,000 s, about 27.5 h).
    let base_ms = now_ms - 2 * 86_400_000;
    let started = Instant::now();
    let (snapshots, made) = generate(base_ms);
    let snapshot_bytes: usize = snapshots.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "generated {} aggregates ({} videos, {} streams; {:.0} snapshot bytes each on average) in {:.1}s",
        snapshots.len(),
        made.len(),
        STREAMS,
        snapshot_bytes as f64 / snapshots.len() as f64,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(snapshots.len(), 100_000);

    // Memory of the plain store (what the api held before the console), then of the api's
    // store with its listing index.
    // Bytes are counted by the crate's counting allocator (librdkafka's C allocations are not
    // counted, which is what we want: only the store and the index grow with the aggregates).
    let (plain, store_bytes) = bytes_left_by(|| {
        let plain = Store::default();
        for (k, v) in &snapshots {
            plain.apply(k, Some(v));
        }
        plain
    });
    drop(plain);

    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 1;
    broker
        .create_topics(&kafka.topics(), 1)
        .expect("topics on the mock cluster");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = api::start(Config::new(kafka), listener)
        .await
        .expect("api starts");
    handle.caught_up().await;
    let store = handle.store();
    let started = Instant::now();
    let ((), with_index) = bytes_left_by(|| {
        for (k, v) in &snapshots {
            store.apply(k, Some(v));
        }
    });
    let load_secs = started.elapsed().as_secs_f64();
    let index_bytes = with_index - store_bytes;
    let per_agg_store = store_bytes as f64 / snapshots.len() as f64;
    let per_agg_index = index_bytes as f64 / snapshots.len() as f64;
    println!(
        "memory: store {:.1} MiB ({per_agg_store:.0} B per aggregate), listing index {:.1} MiB ({per_agg_index:.0} B per aggregate); store+index loaded in {load_secs:.1}s ({:.0} aggregates/s, one view decode each)",
        store_bytes as f64 / 1048576.0,
        index_bytes as f64 / 1048576.0,
        snapshots.len() as f64 / load_secs
    );

    let base = handle.base_url();
    let client = reqwest::Client::new();

    // Every video once, in id order, through 500-item pages.
    let mut t_all = Timer(Vec::new());
    let ids = walk(
        &client,
        &format!("{base}/v1/videos?limit=500"),
        "video_id",
        &mut t_all,
    )
    .await;
    let mut want: Vec<&str> = made.iter().map(|m| m.id.as_str()).collect();
    want.sort_unstable();
    assert_eq!(
        ids, want,
        "the cursor walk returns every video once, in id order"
    );

    // First pages of 50 (what the console asks for), by filter.
    let mut t_first = Timer(Vec::new());
    for _ in 0..20 {
        let body = page(&client, &format!("{base}/v1/videos?limit=50"), &mut t_first).await;
        assert_eq!(body["items"].as_array().map(Vec::len), Some(50));
    }
    let mut t_status = Timer(Vec::new());
    let failed = walk(
        &client,
        &format!("{base}/v1/videos?status=failed&limit=500"),
        "video_id",
        &mut t_status,
    )
    .await;
    assert_eq!(
        failed.len(),
        made.iter().filter(|m| m.status == "failed").count()
    );

    let one = &made[VIDEOS_PER_STREAM * 500].stream;
    let mut t_stream = Timer(Vec::new());
    let of_stream = walk(
        &client,
        &format!("{base}/v1/videos?limit=500&stream={one}"),
        "video_id",
        &mut t_stream,
    )
    .await;
    let want: BTreeSet<&str> = made
        .iter()
        .filter(|m| &m.stream == one)
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(
        of_stream
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        want
    );

    // The stuck view: transcoding for more than a day, plus every failed one, oldest first.
    let stuck_secs = 86_400;
    let asked_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut t_stuck = Timer(Vec::new());
    let stuck = walk(
        &client,
        &format!("{base}/v1/videos?limit=500&stuck_for_secs={stuck_secs}"),
        "video_id",
        &mut t_stuck,
    )
    .await;
    let mut want: Vec<&Made> = made
        .iter()
        .filter(|m| {
            m.status == "failed"
                || (m.status == "transcoding" && m.last_ms < asked_at - stuck_secs * 1000)
        })
        .collect();
    want.sort_by(|a, b| (a.last_ms, &a.id).cmp(&(b.last_ms, &b.id)));
    // Videos within a second of the cutoff may fall on either side between `asked_at` and
    // the api's own clock reading; compare away from the edge.
    let edge = |m: &&Made| (m.last_ms - (asked_at - stuck_secs * 1000)).abs() < 5_000;
    let stuck_set: BTreeSet<&str> = stuck.iter().map(String::as_str).collect();
    for m in want.iter().filter(|m| !edge(m)) {
        assert!(
            stuck_set.contains(m.id.as_str()),
            "{} missing from the stuck view",
            m.id
        );
    }
    assert!(
        stuck.len() <= want.len() + 5 && stuck.len() + 5 >= want.len(),
        "stuck view has {} videos, {} expected",
        stuck.len(),
        want.len()
    );

    // Streams: every one once, in name order; a prefix narrows them.
    let mut t_streams = Timer(Vec::new());
    let names = walk(
        &client,
        &format!("{base}/v1/streams?limit=50"),
        "name",
        &mut t_streams,
    )
    .await;
    let want: Vec<String> = (0..STREAMS)
        .map(|s| format!("{DOMAIN}/{APP}/cam-{s:04}"))
        .collect();
    assert_eq!(names, want);
    let mut t_prefix = Timer(Vec::new());
    let body = page(
        &client,
        &format!("{base}/v1/streams?prefix={DOMAIN}/{APP}/cam-012&limit=50"),
        &mut t_prefix,
    )
    .await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 10);
    assert_eq!(items[0]["videos"], VIDEOS_PER_STREAM);
    assert_eq!(items[0]["sessions"].as_u64().map(|n| n > 0), Some(true));

    let mut report = serde_json::Map::new();
    for (name, t) in [
        ("videos_walk_500", &mut t_all),
        ("videos_first_50", &mut t_first),
        ("videos_failed_500", &mut t_status),
        ("videos_of_stream_500", &mut t_stream),
        ("videos_stuck_500", &mut t_stuck),
        ("streams_walk_50", &mut t_streams),
        ("streams_prefix_50", &mut t_prefix),
    ] {
        let (median, max, n) = t.summary();
        println!("{name:>22}: {n:>4} pages, median {median:>7.2} ms, max {max:>7.2} ms");
        report.insert(
            name.into(),
            serde_json::json!({"pages": n, "median_ms": median, "max_ms": max}),
        );
    }
    report.insert("aggregates".into(), snapshots.len().into());
    report.insert(
        "store_bytes_per_aggregate".into(),
        per_agg_store.round().into(),
    );
    report.insert(
        "index_bytes_per_aggregate".into(),
        per_agg_index.round().into(),
    );
    println!("{}", Value::Object(report));
    handle.shutdown().await.expect("clean shutdown");
}
