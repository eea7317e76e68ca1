//! Executes one command record: decode, skip if the ledger knows it, call VOD, produce the
//! outcome event, append to the ledger. Each record runs as its own task; the consumer loop
//! only learns whether it is done (commit past it) or abandoned (shutdown: leave it for the
//! next owner).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

use super::ledger::Ledger;
use super::outcome::{self, Kind, LedgerRecord, Outcome, StreamRef};
use crate::clock::{now_ms, utc_now};
use crate::kafka::dlq::DeadLetter;
use crate::kafka::Topics;
use crate::metrics::{COMMANDS_EXECUTED, COMPOSE_DEADLINE_MISSED, DLQ_RECORDS};
use crate::proto::{command, Command};
use crate::retry::{retry, GaveUp, Jitter, RetryPolicy};
use crate::vod::client::{VodClient, VodError};

/// How one record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Fully handled (executed, skipped, or dead-lettered): its offset may be committed.
    Done,
    /// Given up because of shutdown: its offset must not be committed.
    Abandoned,
}

/// Shared state of the command tasks.
pub struct Executor {
    pub vod: VodClient,
    pub producer: FutureProducer,
    pub topics: Topics,
    pub ledger: Arc<Ledger>,
    /// Bounds concurrent VOD work (`--concurrency`); TrackCompose waits for its deadline
    /// without holding a permit.
    pub permits: Arc<Semaphore>,
    /// Set when shutdown is requested: waits and retry loops give up.
    pub stop: watch::Receiver<bool>,
    /// Cap of the pause between rounds when a command keeps failing retryably.
    pub retry_max_backoff: Duration,
    /// `message.max.bytes` of the producer: dead letters are cut to fit it.
    pub dlq_max_message: usize,
    /// Per command id: one execution at a time, so a duplicate record waits for the first and
    /// then finds it in the ledger instead of calling VOD again.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The command could not be executed now but may be later.
struct Transient(String);

/// Why one round of a command did not produce an outcome.
enum Round {
    /// The call failed retryably (after the client's own retries).
    Transient(Transient),
    /// The permits were closed: the worker is going away.
    Closed,
}

impl Executor {
    pub fn new(
        vod: VodClient,
        producer: FutureProducer,
        topics: Topics,
        ledger: Arc<Ledger>,
        concurrency: usize,
        stop: watch::Receiver<bool>,
        retry_max_backoff: Duration,
    ) -> Self {
        Executor {
            vod,
            producer,
            topics,
            ledger,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            stop,
            retry_max_backoff,
            dlq_max_message: crate::kafka::dlq::DEFAULT_MAX_MESSAGE_BYTES,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Rounds of a command or of a write that keeps failing: no cap (the record stays
    /// uncommitted until it succeeds or shutdown), 1 s doubling up to `retry_max_backoff`.
    fn round_policy(&self) -> RetryPolicy {
        RetryPolicy::forever(Duration::from_secs(1), self.retry_max_backoff)
    }

    /// Sleeps `d` unless shutdown is requested first; `false` when interrupted.
    async fn pause(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// Handles one record of the commands topic.
    pub async fn handle(self: Arc<Self>, msg: OwnedMessage) -> Finish {
        let cmd = match msg.payload().map(Command::decode) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                return self
                    .dead_letter(&msg, "undecodable", &format!("not a protobuf Command: {e}"))
                    .await
            }
            None => {
                return self
                    .dead_letter(&msg, "undecodable", "no value (tombstone), not a Command")
                    .await
            }
        };
        let Some(kind) = Kind::of(&cmd) else {
            return self
                .dead_letter(&msg, "invalid_command", "Command without a kind")
                .await;
        };
        if cmd.command_id.is_empty() || cmd.video_id.is_empty() {
            return self
                .dead_letter(
                    &msg,
                    "invalid_command",
                    "Command without command_id or video_id",
                )
                .await;
        }
        let span = tracing::info_span!(
            "worker.command",
            command_id = %cmd.command_id,
            video_id = %cmd.video_id,
            kind = kind.name(),
            partition = msg.partition(),
            offset = msg.offset(),
        );
        self.run_command(cmd, kind).instrument(span).await
    }

    async fn run_command(&self, cmd: Command, kind: Kind) -> Finish {
        // Already finished before the (costly) wait for a compose deadline: skip at once.
        if self.ledger.contains(&cmd.command_id) {
            return skipped(kind);
        }
        if let Some(command::Kind::TrackCompose(tc)) = &cmd.kind {
            let now_ms = now_ms();
            if tc.deadline_ms > now_ms {
                let wait = Duration::from_millis((tc.deadline_ms - now_ms) as u64);
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the compose deadline"
                );
                if !self.pause(wait).await {
                    return Finish::Abandoned;
                }
            }
        }

        let lock = self.lock_for(&cmd.command_id);
        let finish = {
            let _guard = lock.lock().await;
            self.execute_once(&cmd, kind).await
        };
        self.release_lock(&cmd.command_id, lock);
        finish
    }

    async fn execute_once(&self, cmd: &Command, kind: Kind) -> Finish {
        if self.ledger.contains(&cmd.command_id) {
            return skipped(kind);
        }
        // The command stays uncommitted and is retried until VOD recovers: dropping it would
        // lose a transcode, and its id keeps the retry harmless. Each round is one VOD call
        // with the client's own (short, jittered) retries inside.
        let outcome = retry(
            &self.round_policy(),
            Jitter::None,
            Some(&self.stop),
            || async {
                let permit = self.permits.acquire().await.map_err(|_| Round::Closed)?;
                let result = self.call_vod(cmd).await;
                drop(permit);
                result.map_err(Round::Transient)
            },
            |e| matches!(e, Round::Transient(_)),
            |e, failure| {
                if let (Round::Transient(Transient(why)), Some(backoff)) = (e, failure.backoff) {
                    metrics::counter!(COMMANDS_EXECUTED, "kind" => kind.name(), "outcome" => "error")
                        .increment(1);
                    let round = failure.attempt - 1;
                    tracing::warn!(error = %why, round, backoff_ms = backoff.as_millis() as u64, "command failed, will retry");
                }
            },
        )
        .await;
        let Ok(outcome) = outcome else {
            return Finish::Abandoned;
        };

        let event_time = utc_now();
        let mut headers = OwnedHeaders::new();
        headers = headers
            .insert(Header {
                key: crate::domain::vocab::header::EVENT_TYPE,
                value: Some(outcome.event_type),
            })
            .insert(Header {
                key: crate::domain::vocab::header::COMMAND_ID,
                value: Some(cmd.command_id.as_str()),
            });
        let body = outcome.to_bytes();
        if !self
            .produce_durably(&self.topics.callbacks, &cmd.video_id, &body, &headers)
            .await
        {
            return Finish::Abandoned;
        }

        let record = LedgerRecord {
            command_id: cmd.command_id.clone(),
            video_id: cmd.video_id.clone(),
            kind: kind.name().into(),
            outcome: outcome.result.into(),
            event_type: outcome.event_type.into(),
            finished_at: event_time,
        };
        if !self
            .produce_durably(
                &self.topics.ledger,
                &cmd.command_id,
                &record.to_bytes(),
                &OwnedHeaders::new(),
            )
            .await
        {
            return Finish::Abandoned;
        }
        self.ledger.insert(&cmd.command_id, outcome.result);

        metrics::counter!(COMMANDS_EXECUTED, "kind" => kind.name(), "outcome" => outcome.result)
            .increment(1);
        if kind == Kind::TrackCompose && outcome.body.get("DeadlineMissed") == Some(&true.into()) {
            metrics::counter!(COMPOSE_DEADLINE_MISSED).increment(1);
        }
        tracing::info!(
            event_type = outcome.event_type,
            outcome = outcome.result,
            "command executed"
        );
        Finish::Done
    }

    /// Calls VOD for `cmd` and shapes the outcome; permanent VOD errors become outcomes too
    /// (rejected), retryable ones that outlived the client's retries are `Transient`.
    async fn call_vod(&self, cmd: &Command) -> Result<Outcome, Transient> {
        // Outcome times in whole seconds (VOD's own resolution), as ms since the epoch.
        let now = || crate::clock::now_ms() / 1000 * 1000;
        let (vid, cid) = (cmd.video_id.as_str(), cmd.command_id.as_str());
        match &cmd.kind {
            Some(command::Kind::SubmitTranscode(st)) => {
                let priority = Some(st.priority.as_str()).filter(|p| !p.is_empty());
                match self
                    .vod
                    .submit_transcode_jobs(vid, &st.template_group_id, cid, priority, None)
                    .await
                {
                    Ok(r) => Ok(outcome::transcode_submitted(
                        vid,
                        cid,
                        &st.template_group_id,
                        &r,
                        now(),
                    )),
                    Err(e) if e.is_retryable() => Err(Transient(e.to_string())),
                    Err(e) => Ok(outcome::transcode_rejected(
                        vid,
                        cid,
                        &st.template_group_id,
                        &error_code(&e),
                        &e.message(),
                        now(),
                    )),
                }
            }
            Some(command::Kind::TrackCompose(tc)) => {
                let stream = StreamRef {
                    domain: &tc.domain,
                    app: &tc.app,
                    stream: &tc.stream,
                };
                match self.vod.get_video_info(vid).await {
                    Ok(info) => Ok(outcome::video_info_observed(
                        vid,
                        cid,
                        &info,
                        &stream,
                        now(),
                    )),
                    Err(e) if e.is_retryable() => Err(Transient(e.to_string())),
                    Err(e) => Ok(outcome::video_info_failed(
                        vid,
                        cid,
                        &error_code(&e),
                        &e.message(),
                        &stream,
                        now(),
                    )),
                }
            }
            Some(command::Kind::RefreshPlayInfo(_)) => match self.vod.get_play_info(vid).await {
                Ok(infos) => Ok(outcome::play_info_resolved(vid, cid, &infos, now())),
                Err(e) if e.is_retryable() => Err(Transient(e.to_string())),
                Err(e) => Ok(outcome::play_info_failed(
                    vid,
                    cid,
                    &error_code(&e),
                    &e.message(),
                    now(),
                )),
            },
            None => Err(Transient("command without a kind".into())),
        }
    }

    /// Produces and waits for the broker's acknowledgement, retrying until it succeeds or
    /// shutdown is requested (`false`).
    async fn produce_durably(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &OwnedHeaders,
    ) -> bool {
        retry(
            &self.round_policy(),
            Jitter::None,
            Some(&self.stop),
            || {
                let record = FutureRecord::to(topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers.clone());
                self.producer.send(record, Duration::from_secs(5))
            },
            |_| true,
            |(e, _), _| tracing::warn!(topic, error = %e, "produce failed, will retry"),
        )
        .await
        .is_ok()
    }

    /// Sends an unprocessable record to the DLQ with headers naming its origin and the reason.
    async fn dead_letter(&self, msg: &OwnedMessage, reason: &str, error: &str) -> Finish {
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            reason,
            error,
            "command dead-lettered"
        );
        // A tombstone stays one (no value), so the DLQ shows the record as it was.
        let key_len = msg.key().map_or(0, <[u8]>::len);
        let (payload, truncated_from) = match msg.payload() {
            Some(p) => {
                let (kept, from) = crate::kafka::dlq::fit_value(p, key_len, self.dlq_max_message);
                (Some(kept), from)
            }
            None => (None, None),
        };
        let headers = DeadLetter {
            role: "worker",
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            reason,
            error: error.to_string(),
            truncated_from,
        }
        .headers();
        let sent = retry(
            &self.round_policy(),
            Jitter::None,
            Some(&self.stop),
            || {
                let mut record =
                    FutureRecord::<[u8], [u8]>::to(&self.topics.dlq).headers(headers.clone());
                if let Some(p) = payload {
                    record = record.payload(p);
                }
                if let Some(k) = msg.key() {
                    record = record.key(k);
                }
                self.producer.send(record, Duration::from_secs(5))
            },
            |_| true,
            |(e, _), _| tracing::warn!(error = %e, "DLQ produce failed, will retry"),
        )
        .await;
        if let Err(GaveUp::Stopped | GaveUp::Failed(_)) = sent {
            return Finish::Abandoned;
        }
        metrics::counter!(DLQ_RECORDS, "role" => "worker", "reason" => reason.to_string())
            .increment(1);
        Finish::Done
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn release_lock(&self, id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Clones are taken under this mutex, so 2 (the map's and ours) means nobody waits.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(id);
        }
    }
}

fn skipped(kind: Kind) -> Finish {
    metrics::counter!(COMMANDS_EXECUTED, "kind" => kind.name(), "outcome" => "skipped_done")
        .increment(1);
    tracing::debug!("command already finished (ledger): skipped");
    Finish::Done
}

fn error_code(e: &VodError) -> String {
    e.code()
        .map(str::to_string)
        .unwrap_or_else(|| e.metric_code())
}
