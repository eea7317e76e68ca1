//! Every Prometheus metric live2vod exports, named in one place (all prefixed `live2vod_`).
//!
//! Roles record through the `metrics` facade with these names; [`install`] sets up the
//! Prometheus recorder once per process and [`render`] produces the exposition text.
//! `deploy/grafana/live2vod.json` and `deploy/prometheus/alerts.yml` reference only names
//! listed in [`ALL`] (a test checks it).
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

// --- relay ---
/// Counter; labels `outcome` = ok | unauthorized | bad_request | too_large | body_timeout |
/// unavailable.
pub const RELAY_REQUESTS: &str = "live2vod_relay_requests_total";
/// Histogram (seconds) of callback handling, from request to answer; label `outcome`.
pub const RELAY_LATENCY: &str = "live2vod_relay_request_duration_seconds";
/// Counter; label `key_version` = current | previous | none (auth disabled).
pub const RELAY_VERIFIED: &str = "live2vod_relay_verified_total";

// --- fold ---
/// Counter; label `event_type`.
pub const FOLD_EVENTS: &str = "live2vod_fold_events_total";
/// Counter of events whose dedup key was already folded into their aggregate.
pub const FOLD_DUPLICATES: &str = "live2vod_fold_duplicates_total";
/// Histogram (seconds) of one fold batch: poll to offsets committed.
pub const FOLD_BATCH_LATENCY: &str = "live2vod_fold_batch_duration_seconds";
/// Histogram (seconds): relay receipt of a callback to the command it caused being durable.
pub const CALLBACK_TO_COMMAND_LATENCY: &str = "live2vod_callback_to_command_seconds";
/// Counter; label `kind` = submit_transcode | track_compose | refresh_play_info.
pub const COMMANDS_EMITTED: &str = "live2vod_commands_emitted_total";
/// Gauge; labels `topic`, `partition`: high watermark minus the committed/next offset.
pub const CONSUMER_LAG: &str = "live2vod_consumer_lag";
/// Histogram (seconds): RecordEndTime of a segment (or compose start) to the video being ready.
pub const RECORD_TO_PLAYABLE: &str = "live2vod_record_to_playable_seconds";
/// Gauge; label `status` (recorded, composing, source_ready, transcoding, ready, failed).
pub const VIDEOS_BY_STATUS: &str = "live2vod_videos";
/// Counter of compose deadlines that passed without the composed source being ready.
pub const COMPOSE_DEADLINE_MISSED: &str = "live2vod_compose_deadline_missed_total";
/// Counter; labels `role`, `reason`: records sent to the dead-letter topic.
pub const DLQ_RECORDS: &str = "live2vod_dlq_records_total";
/// Gauge 0/1: the DLQ circuit breaker is open (processing halted).
pub const DLQ_BREAKER_OPEN: &str = "live2vod_dlq_breaker_open";

// --- worker ---
/// Counter; labels `kind`, `outcome` = ok | rejected | skipped_done | error.
pub const COMMANDS_EXECUTED: &str = "live2vod_commands_executed_total";
/// Counter; labels `action`, `code` (`ok` on success, else VOD's error code or `timeout`/`http`).
pub const VOD_API_CALLS: &str = "live2vod_vod_api_calls_total";
/// Histogram (seconds) of VOD API calls; label `action`.
pub const VOD_API_LATENCY: &str = "live2vod_vod_api_duration_seconds";

// --- api ---
/// Counter; labels `route`, `status`.
pub const API_REQUESTS: &str = "live2vod_api_requests_total";
/// Gauge: aggregates held by the api.
pub const API_AGGREGATES: &str = "live2vod_api_aggregates";

// --- replay ---
/// Counter of events replayed.
pub const REPLAY_EVENTS: &str = "live2vod_replay_events_total";

// --- reconcile ---
/// Counter; label `what` = recording | compose | source | transcode | cover
/// ([`crate::domain::vocab::Fact`]): facts an observation event of reconcile brought to the
/// fold before any callback did (a callback VOD lost or never sent). Exported by the fold,
/// the only role that knows whether a callback came first.
pub const RECONCILE_RECOVERED: &str = "live2vod_reconcile_recovered_total";
/// Counter; labels `kind` = stream | app, `outcome` = ok | error: ListLiveRecordVideo sweeps.
pub const RECONCILE_SWEEPS: &str = "live2vod_reconcile_sweeps_total";
/// Counter; labels `action`, `outcome` = ok | VOD's error code: calls made by reconcile.
pub const RECONCILE_API_CALLS: &str = "live2vod_reconcile_api_calls_total";
/// Histogram (seconds, fold): a recovered fact's source time (RecordEndTime, CreationTime) to
/// the moment the fold folded its observation.
pub const RECONCILE_RECOVERY_DELAY: &str = "live2vod_reconcile_source_to_recovery_seconds";
/// Counter; label `what`: observation events written (recovered or confirming).
pub const RECONCILE_OBSERVATIONS: &str = "live2vod_reconcile_observations_total";

// --- state store (fold --state-dir) ---
/// Counter; label `partition`: changelog records a restore applied to the partition's store.
pub const STATE_RESTORE_RECORDS: &str = "live2vod_state_restore_records_total";
/// Gauge; label `partition`: changelog records a running restore still has to read (0 when
/// restored).
pub const STATE_RESTORE_LAG: &str = "live2vod_state_restore_lag_records";
/// Counter; label `reason` = untrusted | ahead_of_topic | bad_value: partition stores deleted
/// and rebuilt from the topic.
pub const STATE_STORE_REBUILT: &str = "live2vod_state_store_rebuilt_total";
/// Gauge: estimated bytes of the aggregates the fold holds in memory (bounded by
/// `--state-cache-mb` with a state store).
pub const STATE_CACHE_BYTES: &str = "live2vod_state_cache_bytes";
/// Counter: aggregates loaded from the state store into the cache (cache misses).
pub const STATE_CACHE_LOADS: &str = "live2vod_state_cache_loads_total";

/// Every metric name above, for the dashboard/alert consistency test.
pub const ALL: &[&str] = &[
    RELAY_REQUESTS,
    RELAY_LATENCY,
    RELAY_VERIFIED,
    FOLD_EVENTS,
    FOLD_DUPLICATES,
    FOLD_BATCH_LATENCY,
    CALLBACK_TO_COMMAND_LATENCY,
    COMMANDS_EMITTED,
    CONSUMER_LAG,
    RECORD_TO_PLAYABLE,
    VIDEOS_BY_STATUS,
    COMPOSE_DEADLINE_MISSED,
    DLQ_RECORDS,
    DLQ_BREAKER_OPEN,
    COMMANDS_EXECUTED,
    VOD_API_CALLS,
    VOD_API_LATENCY,
    API_REQUESTS,
    API_AGGREGATES,
    REPLAY_EVENTS,
    RECONCILE_RECOVERED,
    RECONCILE_SWEEPS,
    RECONCILE_API_CALLS,
    RECONCILE_RECOVERY_DELAY,
    RECONCILE_OBSERVATIONS,
    STATE_RESTORE_RECORDS,
    STATE_RESTORE_LAG,
    STATE_STORE_REBUILT,
    STATE_CACHE_BYTES,
    STATE_CACHE_LOADS,
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SLO_BUCKETS: &[f64] = &[
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (idempotent) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(RECORD_TO_PLAYABLE.into()), SLO_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(RECONCILE_RECOVERY_DELAY.into()),
                        SLO_BUCKETS,
                    )
                })
                .expect("static bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); then ours only renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Prometheus exposition text of everything recorded in this process.
pub fn render() -> String {
    install().render()
}
