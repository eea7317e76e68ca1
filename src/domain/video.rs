//! The per-VideoId aggregate: everything the callbacks (and live2vod's own events) say about one
//! video, kept as a join-semilattice so that the order and repetition of events do not matter.
//!
//! State part (order-independent, see [`super::lattice`]): registers for origin, source, cover,
//! observed VOD status; keyed registers for snapshots, renditions, play URLs and worker
//! submissions; grow-only sets for TranscodeComplete outcomes, manual requests, commands emitted,
//! auto-submitted template groups and event dedup keys; `last_event_ms` is a max.
//! Per-delivery part ([`Meta`]): deliveries, duplicates and the input position last applied. It
//! depends on how often Kafka delivered things, so it is kept apart and excluded from the
//! order-independence guarantee.
use std::borrow::Cow;

pub use super::compact::packed::{InfoRef, PackedInfo, RenditionInfo};
use super::compact::text::Text;
use super::event::{Event, EventBody, StreamFact, StreamInfo};
use super::lattice::{join_keyed, join_reg, set_insert, Origin, OriginKind, Reg, Status, F64};
use super::vocab::Fact;

/// Position of an input record on the callbacks topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputPos {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Per-delivery bookkeeping of an aggregate (not part of the folded state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Records applied (including duplicates, excluding re-deliveries of applied positions).
    pub deliveries: u64,
    /// Records whose event was already folded (same dedup key).
    pub duplicates: u64,
    /// The input position last applied. An aggregate's records all come from one partition, and
    /// offsets only grow there, so a record at or before it is a re-delivery after a crash.
    pub last_applied: Option<InputPos>,
}

impl Meta {
    /// Whether `pos` was already applied to this aggregate.
    pub fn already_applied(&self, pos: InputPos) -> bool {
        matches!(self.last_applied, Some(last) if last.partition == pos.partition && pos.offset <= last.offset)
    }
}

/// The source file (`FileUploadComplete`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    /// Outcome (absent on old events means success).
    pub status: Status,
    /// `Size` in bytes.
    pub size: Option<i64>,
    /// `FileUrl`.
    pub file_url: Option<Text>,
}

/// Latest report of one snapshot type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// `SnapshotType` (CoverSnapshot, NormalSnapshot, SpriteSnapshot; empty if absent).
    pub snapshot_type: Box<str>,
    /// Outcome and `SnapshotCount`.
    pub reg: Reg<(Status, Option<i64>)>,
}

/// One rendition, keyed by definition and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// `Definition` (as VOD spells it, e.g. `HD` or `HD-MP4`).
    pub definition: Box<str>,
    /// `Format` (mp4, m3u8).
    pub format: Box<str>,
    /// The latest report (per the conflict rule).
    pub reg: Reg<PackedInfo>,
}

/// A manual transcode request (`live2vod.TranscodeRequested`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TranscodeRequest {
    /// `TemplateGroupId`.
    pub template_group: Box<str>,
    /// Event time of the request.
    pub at_ms: i64,
    /// `RequestId`.
    pub request_id: Option<Box<str>>,
    /// `Priority`.
    pub priority: Option<Box<str>>,
}

/// The worker's outcome for one SubmitTranscode command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SubmissionInfo {
    /// Template group submitted.
    pub template_group: Box<str>,
    /// Success (submitted) or fail (rejected).
    pub status: Status,
    /// `TranscodeTaskId` when submitted.
    pub task_id: Option<Box<str>>,
    /// `ErrorCode` when rejected.
    pub error_code: Option<Box<str>>,
}

/// A worker submission outcome keyed by command id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// `CommandId`.
    pub command_id: Box<str>,
    /// Latest outcome.
    pub reg: Reg<SubmissionInfo>,
}

/// What GetVideoInfo said (`live2vod.VideoInfoObserved`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Observed {
    /// `Video.Status` (Uploading, UploadFail, UploadSucc, Transcoding, TranscodeFail, Blocked, Normal).
    pub video_status: Box<str>,
    /// `Size`.
    pub size: Option<i64>,
}

/// A resolved play URL (`live2vod.PlayInfoResolved`), keyed by definition and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayUrl {
    /// `Definition`.
    pub definition: Box<str>,
    /// `Format`.
    pub format: Box<str>,
    /// `PlayURL` (CDN-accelerated).
    pub reg: Reg<Text>,
}

/// A command remembered as emitted: one kind byte (`t`, `c`, `p`) and the 16-byte hash that
/// the command id spells in hex (see [`super::projector`]). 17 bytes instead of a 35-char string.
pub type CommandKey = [u8; 17];

/// Derived status of a video (see [`VideoAggregate::status`] for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    /// Known to VOD (recorded segment, or nothing more specific known).
    Recorded,
    /// Composed video whose source is not ready yet.
    Composing,
    /// Source file ready, not transcoding.
    SourceReady,
    /// A transcode is under way.
    Transcoding,
    /// The latest TranscodeComplete succeeded: playable.
    Ready,
    /// Something failed for good.
    Failed,
}

impl VideoStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [VideoStatus; 6] = [
        VideoStatus::Recorded,
        VideoStatus::Composing,
        VideoStatus::SourceReady,
        VideoStatus::Transcoding,
        VideoStatus::Ready,
        VideoStatus::Failed,
    ];

    /// API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Recorded => "recorded",
            VideoStatus::Composing => "composing",
            VideoStatus::SourceReady => "source_ready",
            VideoStatus::Transcoding => "transcoding",
            VideoStatus::Ready => "ready",
            VideoStatus::Failed => "failed",
        }
    }
}

/// The aggregate of one VideoId (also MediaId/ImageId events fold here, keyed by that id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoAggregate {
    /// The routing id.
    pub id: Box<str>,
    /// Segment (AddLiveRecordVideoComplete) or composed (LiveRecordVideoComposeStart); for a
    /// composed video `at_ms` is the compose start time.
    pub origin: Option<Reg<Origin>>,
    /// Source file (FileUploadComplete). Boxed: only composed videos have one.
    pub source: Option<Box<Reg<Source>>>,
    /// Earliest time a FileUploadComplete reported success: a grow-only fact (unlike the
    /// `source` register, a later failure does not erase it), which keeps the projector monotone.
    pub source_success_ms: Option<i64>,
    /// `CoverUrl` of SnapshotComplete.
    pub cover: Option<Reg<Text>>,
    /// Per snapshot type, sorted by type.
    pub snapshots: Vec<SnapshotEntry>,
    /// Per (definition, format), sorted.
    pub renditions: Vec<Rendition>,
    /// Every TranscodeComplete seen: `value` is its dedup key, `rank` its status. Sorted set.
    pub transcodes: Vec<Reg<u64>>,
    /// Manual requests, sorted set.
    pub requests: Vec<TranscodeRequest>,
    /// Worker submission outcomes per command id, sorted.
    pub submissions: Vec<Submission>,
    /// What GetVideoInfo said last. Boxed: only videos the worker tracked have one.
    pub observed: Option<Box<Reg<Observed>>>,
    /// Resolved play URLs per (definition, format), sorted.
    pub play_urls: Vec<PlayUrl>,
    /// Commands already emitted, sorted set: the projector never emits one of these again.
    pub emitted: Vec<CommandKey>,
    /// Template groups the policy submits automatically for this video, sorted set.
    pub auto_groups: Vec<Box<str>>,
    /// A manual request was refused because the policy says `none` for this video.
    pub policy_refused: bool,
    /// Dedup keys of distinct events folded, sorted set.
    pub dedup: Vec<u64>,
    /// Greatest event time seen.
    pub last_event_ms: Option<i64>,
    /// Per-delivery bookkeeping (not part of the folded state).
    pub meta: Meta,
}

fn bs(s: Option<Cow<'_, str>>) -> Option<Box<str>> {
    s.map(Into::into)
}

/// [`join_reg`] for a boxed register.
fn join_boxed<T: Ord>(slot: &mut Option<Box<Reg<T>>>, new: Reg<T>) -> bool {
    match slot {
        Some(cur) if **cur >= new => false,
        _ => {
            *slot = Some(Box::new(new));
            true
        }
    }
}

fn rank_of(s: &Option<Status>) -> (u8, Status) {
    let st = s.clone().unwrap_or(Status::Other("".into()));
    (st.rank(), st)
}

impl VideoAggregate {
    /// An empty aggregate for `id`.
    pub fn new(id: &str) -> Self {
        VideoAggregate {
            id: id.into(),
            ..Default::default()
        }
    }

    /// Whether the state holds `fact`, whichever event brought it.
    pub fn has_fact(&self, fact: Fact) -> bool {
        let origin = |k: OriginKind| self.origin.as_ref().is_some_and(|o| o.value.kind == k);
        match fact {
            Fact::Recording => origin(OriginKind::LiveSegment),
            Fact::Compose => origin(OriginKind::Composed),
            Fact::Source => self.source.is_some(),
            Fact::Transcode => !self.transcodes.is_empty(),
            Fact::Cover => self.cover.is_some(),
        }
    }

    /// Whether an event with this dedup key was folded already.
    pub fn has_event(&self, dedup_key: u64) -> bool {
        self.dedup.binary_search(&dedup_key).is_ok()
    }

    /// Folds one event (not yet seen: callers check [`Self::has_event`]) into the state.
    /// Returns whether the state changed. Events of other aggregates' kinds are only recorded.
    pub fn fold(&mut self, ev: &Event<'_>) -> bool {
        self.fold_owned(ev.clone())
    }

    /// Like [`Self::fold`], but moves the event's strings into the state instead of copying
    /// them (the engine's hot path).
    pub fn fold_owned(&mut self, ev: Event<'_>) -> bool {
        let mut changed = set_insert(&mut self.dedup, ev.dedup_key);
        let t = ev.event_time_ms;
        if self.last_event_ms.is_none_or(|l| t > l) {
            self.last_event_ms = Some(t);
            changed = true;
        }
        let (rank, status) = rank_of(&ev.status);
        changed |= match ev.body {
            EventBody::AddLiveRecordVideoComplete {
                stream,
                record_start_ms,
                record_end_ms,
            } => {
                let o = Origin {
                    kind: OriginKind::LiveSegment,
                    status,
                    stream,
                    record_start_ms,
                    record_end_ms,
                };
                join_reg(&mut self.origin, Reg::new(t, rank, o))
            }
            EventBody::LiveRecordVideoComposeStart { stream } => {
                let o = Origin {
                    kind: OriginKind::Composed,
                    status,
                    stream,
                    record_start_ms: None,
                    record_end_ms: None,
                };
                join_reg(&mut self.origin, Reg::new(t, rank, o))
            }
            EventBody::FileUploadComplete { size, file_url } => {
                let mut c = false;
                if status.is_success() && self.source_success_ms.is_none_or(|s| t < s) {
                    self.source_success_ms = Some(t);
                    c = true;
                }
                let src = Source {
                    status,
                    size,
                    file_url: file_url.as_deref().map(Text::new),
                };
                c | join_boxed(&mut self.source, Reg::new(t, rank, src))
            }
            EventBody::SnapshotComplete {
                cover_url,
                snapshots,
                ..
            } => {
                let mut c = false;
                if let Some(url) = cover_url {
                    c |= join_reg(&mut self.cover, Reg::new(t, rank, Text::new(&url)));
                }
                for s in snapshots {
                    let (r, st) = rank_of(&s.status);
                    let ty: Box<str> = s.snapshot_type.unwrap_or_default().into();
                    let reg = Reg::new(t, r, (st, s.count));
                    c |= join_keyed(
                        &mut self.snapshots,
                        &ty,
                        reg,
                        |e| &e.snapshot_type,
                        |e| &mut e.reg,
                        |reg| SnapshotEntry {
                            snapshot_type: ty.clone(),
                            reg,
                        },
                    );
                }
                c
            }
            EventBody::StreamTranscodeComplete(info) => self.join_rendition(t, info),
            EventBody::TranscodeComplete { stream_infos } => {
                let mut c = set_insert(&mut self.transcodes, Reg::new(t, rank, ev.dedup_key));
                for info in stream_infos {
                    c |= self.join_rendition(t, info);
                }
                c
            }
            EventBody::TranscodeRequested {
                template_group_id,
                request_id,
                priority,
            } => set_insert(
                &mut self.requests,
                TranscodeRequest {
                    template_group: template_group_id.into(),
                    at_ms: t,
                    request_id: bs(request_id),
                    priority: bs(priority),
                },
            ),
            EventBody::TranscodeSubmitted {
                command_id,
                template_group_id,
                task_id,
            } => self.join_submission(
                &command_id,
                Reg::new(
                    t,
                    Status::Success.rank(),
                    SubmissionInfo {
                        template_group: template_group_id.into(),
                        status: Status::Success,
                        task_id: bs(task_id),
                        error_code: None,
                    },
                ),
            ),
            EventBody::TranscodeRejected {
                command_id,
                template_group_id,
                error_code,
                ..
            } => self.join_submission(
                &command_id,
                Reg::new(
                    t,
                    Status::Fail.rank(),
                    SubmissionInfo {
                        template_group: template_group_id.into(),
                        status: Status::Fail,
                        task_id: None,
                        error_code: bs(error_code),
                    },
                ),
            ),
            EventBody::VideoInfoObserved {
                video_status, size, ..
            } => {
                let o = Observed {
                    video_status: video_status.unwrap_or_default().into(),
                    size,
                };
                join_boxed(&mut self.observed, Reg::new(t, rank, o))
            }
            EventBody::PlayInfoResolved { play_infos, .. } => {
                let mut c = false;
                for p in play_infos {
                    let Some(url) = p.play_url else { continue };
                    let key = (
                        p.definition.as_deref().unwrap_or(""),
                        p.format.as_deref().unwrap_or(""),
                    );
                    let reg = Reg::new(t, rank, Text::new(&url));
                    c |= match self
                        .play_urls
                        .binary_search_by(|e| (&*e.definition, &*e.format).cmp(&key))
                    {
                        Ok(i) => {
                            let cur = &mut self.play_urls[i].reg;
                            if *cur >= reg {
                                false
                            } else {
                                *cur = reg;
                                true
                            }
                        }
                        Err(i) => {
                            self.play_urls.reserve_exact(1);
                            self.play_urls.insert(
                                i,
                                PlayUrl {
                                    definition: key.0.into(),
                                    format: key.1.into(),
                                    reg,
                                },
                            );
                            true
                        }
                    };
                }
                c
            }
            // Facts belong to stream aggregates; the other VOD events carry nothing the video
            // view shows beyond their existence (dedup key, last event time).
            EventBody::StreamFact(_)
            | EventBody::VideoAnalysisComplete
            | EventBody::AiMediaAuditComplete { .. }
            | EventBody::ProduceMediaComplete { .. }
            | EventBody::DeleteMediaComplete { .. }
            | EventBody::ImageUploadComplete { .. }
            | EventBody::Unknown => false,
        };
        changed
    }

    fn join_rendition(&mut self, t: i64, info: StreamInfo<'_>) -> bool {
        let (rank, status) = rank_of(&info.status);
        let key = (
            info.definition.as_deref().unwrap_or(""),
            info.format.as_deref().unwrap_or(""),
        );
        let found = self
            .renditions
            .binary_search_by(|e| (&*e.definition, &*e.format).cmp(&key));
        if let Ok(i) = found {
            // Loses on (time, rank) alone: no need to build and pack the value.
            let cur = &self.renditions[i].reg;
            if (cur.at_ms, cur.rank) > (t, rank) {
                return false;
            }
        }
        let ri: RenditionInfo<&str, &str> = RenditionInfo {
            status,
            file_url: info.file_url.as_deref(),
            bitrate: info.bitrate.as_deref(),
            width: info.width,
            height: info.height,
            duration: info.duration.map(F64),
            size: info.size,
            job_id: info.job_id.as_deref(),
            error_code: info.error_code.as_deref(),
        };
        let reg = Reg::new(t, rank, PackedInfo::pack(&ri));
        match found {
            Ok(i) => {
                let cur = &mut self.renditions[i].reg;
                if *cur >= reg {
                    false
                } else {
                    *cur = reg;
                    true
                }
            }
            Err(i) => {
                self.renditions.reserve_exact(1);
                self.renditions.insert(
                    i,
                    Rendition {
                        definition: key.0.into(),
                        format: key.1.into(),
                        reg,
                    },
                );
                true
            }
        }
    }

    fn join_submission(&mut self, command_id: &str, reg: Reg<SubmissionInfo>) -> bool {
        match self
            .submissions
            .binary_search_by(|e| (*e.command_id).cmp(command_id))
        {
            Ok(i) => {
                let cur = &mut self.submissions[i].reg;
                if *cur >= reg {
                    false
                } else {
                    *cur = reg;
                    true
                }
            }
            Err(i) => {
                self.submissions.reserve_exact(1);
                self.submissions.insert(
                    i,
                    Submission {
                        command_id: command_id.into(),
                        reg,
                    },
                );
                true
            }
        }
    }

    /// The latest TranscodeComplete (greatest `(at_ms, rank, dedup)`).
    pub fn latest_transcode(&self) -> Option<&Reg<u64>> {
        self.transcodes.last()
    }

    /// What the derived statuses are computed from: this video's own fields, borrowed.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            origin: self.origin.as_ref(),
            source_status: self.source.as_ref().map(|s| &s.value.status),
            latest_transcode: self.latest_transcode(),
            observed: self.observed.as_ref().map(|o| &*o.value.video_status),
            has_renditions: !self.renditions.is_empty(),
            submissions: &self.submissions,
            requests: &self.requests,
            auto_groups: &self.auto_groups,
            policy_refused: self.policy_refused,
        }
    }

    /// The latest worker submission outcome.
    pub fn latest_submission(&self) -> Option<&Submission> {
        self.facts().latest_submission()
    }

    /// Derived status (see [`Facts::status`]).
    pub fn status(&self) -> VideoStatus {
        self.facts().status()
    }

    /// Overall transcode status (see [`Facts::transcode_status`]).
    pub fn transcode_status(&self) -> &'static str {
        self.facts().transcode_status()
    }

    /// Why the transcode was rejected (see [`Facts::transcode_rejection`]).
    pub fn transcode_rejection(&self) -> Option<String> {
        self.facts().transcode_rejection()
    }

    /// The template group to show (see [`Facts::template_group`]).
    pub fn template_group(&self) -> Option<&str> {
        self.facts().template_group()
    }

    /// The transcode task id of the latest successful submission.
    pub fn task_id(&self) -> Option<&str> {
        self.facts().task_id()
    }

    /// What this video contributes to its stream aggregate, if its origin (and so its stream) is
    /// known. For composed videos the source status is included: it is the compose outcome.
    pub fn stream_fact(&self) -> Option<StreamFact> {
        let origin = self.origin.as_ref()?;
        if !origin.value.stream.is_complete() {
            return None;
        }
        let source = match origin.value.kind {
            OriginKind::LiveSegment => None,
            OriginKind::Composed => self
                .source
                .as_ref()
                .map(|s| Reg::new(s.at_ms, s.rank, s.value.status.clone())),
        };
        Some(StreamFact {
            video_id: self.id.to_string(),
            origin: origin.clone(),
            source,
        })
    }
}

/// What a video's derived statuses are computed from, borrowed: from the aggregate
/// ([`VideoAggregate::facts`]) or, in the api's view, from a decoded snapshot (no compact forms
/// rebuilt). The rules exist once, here.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The origin register.
    pub origin: Option<&'a Reg<Origin>>,
    /// The source (`FileUploadComplete`) status.
    pub source_status: Option<&'a Status>,
    /// The latest TranscodeComplete (greatest `(at_ms, rank, dedup)`).
    pub latest_transcode: Option<&'a Reg<u64>>,
    /// GetVideoInfo's `Video.Status`.
    pub observed: Option<&'a str>,
    /// Whether any rendition was reported.
    pub has_renditions: bool,
    /// Worker submission outcomes, sorted by command id.
    pub submissions: &'a [Submission],
    /// Manual requests, sorted.
    pub requests: &'a [TranscodeRequest],
    /// Auto-submitted template groups, sorted.
    pub auto_groups: &'a [Box<str>],
    /// The policy refused a manual request.
    pub policy_refused: bool,
}

impl<'a> Facts<'a> {
    /// The latest worker submission outcome.
    pub fn latest_submission(&self) -> Option<&'a Submission> {
        self.submissions.iter().max_by(|a, b| a.reg.cmp(&b.reg))
    }

    /// Derived status, first rule that holds:
    /// 1. `ready`: the latest TranscodeComplete succeeded (VOD: at least one rendition did).
    /// 2. `failed`: the recording/compose start, the source upload or the latest
    ///    TranscodeComplete failed, or GetVideoInfo said UploadFail, TranscodeFail or Blocked.
    /// 3. `transcoding`: the worker submitted a transcode, a rendition was reported, or
    ///    GetVideoInfo said Transcoding.
    /// 4. `source_ready`: a FileUploadComplete succeeded, or GetVideoInfo said UploadSucc/Normal.
    /// 5. `composing`: a composed video (ComposeStart seen) without its source yet.
    /// 6. `recorded`: otherwise (a recorded segment, or nothing more specific is known).
    pub fn status(&self) -> VideoStatus {
        let latest_tc = self.latest_transcode;
        if latest_tc.is_some_and(|r| r.rank == Status::Success.rank()) {
            return VideoStatus::Ready;
        }
        let observed = self.observed;
        let failed = self
            .origin
            .as_ref()
            .is_some_and(|o| o.value.status == Status::Fail)
            || self.source_status == Some(&Status::Fail)
            || latest_tc.is_some()
            || matches!(observed, Some("UploadFail" | "TranscodeFail" | "Blocked"));
        if failed {
            return VideoStatus::Failed;
        }
        if self
            .submissions
            .iter()
            .any(|s| s.reg.value.status.is_success())
            || self.has_renditions
            || observed == Some("Transcoding")
        {
            return VideoStatus::Transcoding;
        }
        if self.source_status.is_some_and(Status::is_success)
            || matches!(observed, Some("UploadSucc" | "Normal"))
        {
            return VideoStatus::SourceReady;
        }
        match self.origin {
            Some(o) if o.value.kind == OriginKind::Composed => VideoStatus::Composing,
            _ => VideoStatus::Recorded,
        }
    }

    /// Overall transcode status, first rule that holds: the latest TranscodeComplete's outcome
    /// (`success`/`fail`); the latest worker outcome (`submitted`/`rejected`); `submitted` when VOD
    /// reported renditions on its own; `rejected` when the policy refused a manual request;
    /// `requested` when a transcode is wanted (manual request or policy); else `none`.
    pub fn transcode_status(&self) -> &'static str {
        if let Some(tc) = self.latest_transcode {
            return if tc.rank == Status::Success.rank() {
                "success"
            } else {
                "fail"
            };
        }
        if let Some(s) = self.latest_submission() {
            return if s.reg.value.status.is_success() {
                "submitted"
            } else {
                "rejected"
            };
        }
        if self.has_renditions {
            return "submitted";
        }
        if self.policy_refused {
            return "rejected";
        }
        if !self.requests.is_empty() || !self.auto_groups.is_empty() {
            return "requested";
        }
        "none"
    }

    /// Why the transcode was rejected (`policy`, or the worker's error code), if it was.
    pub fn transcode_rejection(&self) -> Option<String> {
        match self.transcode_status() {
            "rejected" => Some(match self.latest_submission() {
                Some(s) => s
                    .reg
                    .value
                    .error_code
                    .as_deref()
                    .unwrap_or("rejected")
                    .to_string(),
                None => "policy".to_string(),
            }),
            _ => None,
        }
    }

    /// The template group to show: the latest worker outcome's, else the latest manual
    /// request's, else the smallest auto-submitted group.
    pub fn template_group(&self) -> Option<&'a str> {
        if let Some(s) = self.latest_submission() {
            return Some(&s.reg.value.template_group);
        }
        if let Some(r) = self
            .requests
            .iter()
            .max_by(|a, b| (a.at_ms, &a.template_group).cmp(&(b.at_ms, &b.template_group)))
        {
            return Some(&r.template_group);
        }
        self.auto_groups.first().map(|g| &**g)
    }

    /// The transcode task id of the latest successful submission.
    pub fn task_id(&self) -> Option<&'a str> {
        self.submissions
            .iter()
            .filter(|s| s.reg.value.task_id.is_some())
            .max_by(|a, b| a.reg.cmp(&b.reg))
            .and_then(|s| s.reg.value.task_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::parse_event;

    fn fold_all(bodies: &[&str]) -> VideoAggregate {
        let mut v = VideoAggregate::new("v1");
        for b in bodies {
            let e = parse_event(b.as_bytes()).unwrap();
            if !v.has_event(e.dedup_key) {
                v.fold(&e);
            }
        }
        v
    }

    const ACR: &str = r#"{"EventTime":"2017-12-08T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"v1","Status":"success",
        "StreamName":"s","DomainName":"d","AppName":"a","RecordStartTime":"2017-12-08T07:40:56Z","RecordEndTime":"2017-12-08T09:26:17Z"}"#;
    const STC_OK: &str = r#"{"EventTime":"2017-12-08T09:30:00Z","EventType":"StreamTranscodeComplete","VideoId":"v1","Status":"success",
        "Definition":"HD","Format":"m3u8","FileUrl":"http://x/hd.m3u8","Size":"10"}"#;
    const STC_FAIL_SAME_TIME: &str = r#"{"EventTime":"2017-12-08T09:30:00Z","EventType":"StreamTranscodeComplete","VideoId":"v1","Status":"fail",
        "Definition":"HD","Format":"m3u8","ErrorCode":"X"}"#;
    const TC_OK: &str = r#"{"EventTime":"2017-12-08T09:31:00Z","EventType":"TranscodeComplete","VideoId":"v1","Status":"success",
        "StreamInfos":[{"Status":"success","Definition":"HD","Format":"m3u8","FileUrl":"http://x/hd.m3u8","Size":10}]}"#;

    #[test]
    fn segment_lifecycle_statuses() {
        assert_eq!(fold_all(&[ACR]).status(), VideoStatus::Recorded);
        assert_eq!(fold_all(&[ACR, STC_OK]).status(), VideoStatus::Transcoding);
        assert_eq!(fold_all(&[STC_OK, ACR, TC_OK]).status(), VideoStatus::Ready);
        assert_eq!(fold_all(&[TC_OK]).transcode_status(), "success");
    }

    #[test]
    fn rendition_conflict_at_equal_time_prefers_success_in_any_order() {
        let a = fold_all(&[STC_OK, STC_FAIL_SAME_TIME]);
        let b = fold_all(&[STC_FAIL_SAME_TIME, STC_OK]);
        assert_eq!(a, b);
        assert_eq!(a.renditions.len(), 1);
        assert_eq!(a.renditions[0].reg.value.unpack().status, Status::Success);
    }

    #[test]
    fn composed_video_statuses_and_fact() {
        let cs = r#"{"EventTime":"2018-01-01T10:00:00Z","EventType":"LiveRecordVideoComposeStart","VideoId":"v1","Status":"success",
            "DomainName":"d","AppName":"a","StreamName":"s"}"#;
        let fuc = r#"{"EventTime":"2018-01-01T10:05:00Z","EventType":"FileUploadComplete","VideoId":"v1","Size":5,"FileUrl":"u"}"#;
        let v = fold_all(&[cs]);
        assert_eq!(v.status(), VideoStatus::Composing);
        assert_eq!(v.stream_fact().and_then(|f| f.source), None);
        let v = fold_all(&[fuc]);
        assert_eq!(v.status(), VideoStatus::SourceReady);
        assert!(
            v.stream_fact().is_none(),
            "no stream known before ComposeStart"
        );
        let v = fold_all(&[fuc, cs]);
        assert_eq!(v.status(), VideoStatus::SourceReady);
        assert_eq!(
            v.stream_fact().and_then(|f| f.source).map(|s| s.value),
            Some(Status::Success)
        );
    }

    #[test]
    fn failed_recording_is_failed() {
        let v = fold_all(&[&ACR.replace("\"Status\":\"success\"", "\"Status\":\"fail\"")]);
        assert_eq!(v.status(), VideoStatus::Failed);
    }

    #[test]
    fn already_applied_positions() {
        let m = Meta {
            deliveries: 1,
            duplicates: 0,
            last_applied: Some(InputPos {
                partition: 3,
                offset: 10,
            }),
        };
        assert!(m.already_applied(InputPos {
            partition: 3,
            offset: 10
        }));
        assert!(m.already_applied(InputPos {
            partition: 3,
            offset: 2
        }));
        assert!(!m.already_applied(InputPos {
            partition: 3,
            offset: 11
        }));
        assert!(!m.already_applied(InputPos {
            partition: 4,
            offset: 1
        }));
    }
}
