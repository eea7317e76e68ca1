//! `live2vod bench reconcile`: VOD API calls and wall time of one full sweep over N simulated
//! streams (10,000 by default), against the simulator's OpenAPI in process: once stream by
//! stream (what reconcile does for the streams the aggregates know) and once over the whole
//! app (what a policy `[reconcile] apps` entry costs, with the 5,000-result cap split).
use std::time::Instant;

use clap::Args as ClapArgs;
use serde_json::json;

use crate::reconcile::api::Api;
use crate::reconcile::sweep::{sweep, Unit};
use crate::sim::{SimConfig, Simulator};
use crate::vod::client::{VodClient, VodConfig};

/// Options of `live2vod bench reconcile`.
#[derive(ClapArgs, Debug, Clone)]
pub struct ReconcileArgs {
    /// Simulated streams (two live sessions each).
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// Seed of the scenario.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Sweeps running at once (each waits for its answer; reconcile itself runs one).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let mut cfg = SimConfig::new(
        "http://127.0.0.1:9/unused",
        "http://127.0.0.1:9/unused",
        "k",
    );
    cfg.sessions = args.streams * 2;
    cfg.seed = args.seed;
    cfg.throttle_rate = 0.0;
    cfg.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let generated = Instant::now();
    let sim = Simulator::start(cfg.clone()).await?;
    sim.emit_all_undelivered();
    let streams: Vec<String> = {
        let mut s: Vec<String> = sim.scenario().streams.iter().map(|s| s.key()).collect();
        s.sort();
        s.dedup();
        s
    };
    // What ListLiveRecordVideo lists: every recorded segment and every composed video.
    let listed_of = |event_type: &str| {
        sim.scenario()
            .events
            .iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| e.video_id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let segments = listed_of(crate::domain::vocab::event_type::ADD_LIVE_RECORD_VIDEO_COMPLETE);
    let composed = listed_of(crate::domain::vocab::event_type::LIVE_RECORD_VIDEO_COMPOSE_START);
    let recordings = segments + composed;
    println!(
        "scenario: {} streams, {recordings} listed videos ({segments} segments, {composed} composed; {:.1} s to generate)",
        streams.len(),
        generated.elapsed().as_secs_f64()
    );
    let (from, to) = {
        let times = sim.scenario().events.iter().map(|e| e.time_ms);
        let lo = times.clone().min().unwrap_or(0) - 86_400_000;
        (lo, times.max().unwrap_or(0) + 60_000)
    };
    let mut vod = VodConfig::new("cn-shanghai", &cfg.access_key_id, &cfg.access_key_secret);
    vod.endpoint = Some(sim.vod_endpoint());
    let api = Api::new(VodClient::new(vod.clone())?, 1.0e9);

    // Stream by stream.
    let started = Instant::now();
    let units: Vec<Unit> = streams
        .iter()
        .filter_map(|k| {
            let mut p = k.splitn(3, '/');
            Some(Unit {
                domain: p.next()?.to_string(),
                app: p.next()?.to_string(),
                stream: Some(p.next()?.to_string()),
            })
        })
        .collect();
    let mut found = 0usize;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for u in units {
        let (api, sem) = (api.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            sweep(&api, &u, from, to).await.map(|r| r.len())
        });
    }
    while let Some(r) = tasks.join_next().await {
        found += r??;
    }
    let per_stream_secs = started.elapsed().as_secs_f64();
    let per_stream_calls = api.calls();

    // The whole app at once.
    let app_api = Api::new(VodClient::new(vod)?, 1.0e9);
    let started = Instant::now();
    let app = Unit {
        domain: crate::sim::scenario::DOMAIN.into(),
        app: crate::sim::scenario::APP.into(),
        stream: None,
    };
    let app_found = sweep(&app_api, &app, from, to).await?.len();
    let app_secs = started.elapsed().as_secs_f64();
    let app_calls = app_api.calls();
    sim.shutdown().await;

    let default_qps = crate::reconcile::config::DEFAULT_MAX_QPS;
    println!(
        "per stream: {} calls, {found} recordings, {per_stream_secs:.2} s ({:.0} calls/s); at the default --max-qps {default_qps} one sweep takes {:.0} s",
        per_stream_calls,
        per_stream_calls as f64 / per_stream_secs.max(1e-9),
        per_stream_calls as f64 / default_qps
    );
    println!("whole app: {app_calls} calls, {app_found} recordings, {app_secs:.2} s");
    anyhow::ensure!(
        found == recordings && app_found == recordings,
        "sweeps found {found} / {app_found} of {recordings} listed videos"
    );
    println!(
        "{}",
        json!({
            "bench": "reconcile",
            "streams": streams.len(),
            "recordings": recordings,
            "segments": segments,
            "composed": composed,
            "per_stream_calls": per_stream_calls,
            "per_stream_wall_secs": per_stream_secs,
            "app_calls": app_calls,
            "app_wall_secs": app_secs,
            "default_max_qps": default_qps,
            "per_stream_sweep_secs_at_default_qps": per_stream_calls as f64 / default_qps,
        })
    );
    Ok(())
}
