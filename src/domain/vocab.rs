//! The wire vocabulary, each name defined once: Kafka header names, event types (VOD's and
//! live2vod's `live2vod.*`), and command kinds. Every layer (relay, fold, worker, api, replay,
//! DLQ) refers to these constants; tests keep literals on purpose, since they pin the wire format.
use crate::proto::{command, Command};

/// Kafka header names on live2vod's records.
pub mod header {
    /// Callbacks topic: when the relay (or api) received the body, ms since the epoch.
    pub const RECEIVED_AT_MS: &str = "live2vod-received-at-ms";
    /// Callbacks topic: the relay instance that wrote the record.
    pub const RELAY_ID: &str = "live2vod-relay-id";
    /// Callbacks topic: which auth key verified the body (`current`/`previous`/`none`).
    pub const KEY_VERSION: &str = "live2vod-key-version";
    /// Callbacks topic: the body's `EventType`.
    pub const EVENT_TYPE: &str = "live2vod-event-type";
    /// Commands topic and worker outcomes: the command id.
    pub const COMMAND_ID: &str = "live2vod-command-id";
    /// Commands topic: the command kind ([`super::CommandKind::name`]).
    pub const COMMAND_KIND: &str = "live2vod-command-kind";
    /// DLQ: the role that dead-lettered the record.
    pub const DLQ_ROLE: &str = "live2vod-dlq-role";
    /// DLQ: the record's original topic.
    pub const DLQ_TOPIC: &str = "live2vod-dlq-topic";
    /// DLQ: the record's original partition.
    pub const DLQ_PARTITION: &str = "live2vod-dlq-partition";
    /// DLQ: the record's original offset.
    pub const DLQ_OFFSET: &str = "live2vod-dlq-offset";
    /// DLQ: the reason (a metric label).
    pub const DLQ_REASON: &str = "live2vod-dlq-reason";
    /// DLQ: the error text.
    pub const DLQ_ERROR: &str = "live2vod-dlq-error";
    /// DLQ: the original value's size when it was cut to fit.
    pub const DLQ_TRUNCATED_FROM: &str = "live2vod-dlq-truncated-from";
}

/// `EventType` values: VOD's callbacks and live2vod's own events on the callbacks topic.
pub mod event_type {
    /// VOD: one recording cycle was added as a video.
    pub const ADD_LIVE_RECORD_VIDEO_COMPLETE: &str = "AddLiveRecordVideoComplete";
    /// VOD: auto-compose started (the event's VideoId is the new composed video).
    pub const LIVE_RECORD_VIDEO_COMPOSE_START: &str = "LiveRecordVideoComposeStart";
    /// VOD: the source file is uploaded (for a composed video: composing finished).
    pub const FILE_UPLOAD_COMPLETE: &str = "FileUploadComplete";
    /// VOD: snapshots done.
    pub const SNAPSHOT_COMPLETE: &str = "SnapshotComplete";
    /// VOD: one rendition done.
    pub const STREAM_TRANSCODE_COMPLETE: &str = "StreamTranscodeComplete";
    /// VOD: all renditions done.
    pub const TRANSCODE_COMPLETE: &str = "TranscodeComplete";
    /// VOD: video analysis done.
    pub const VIDEO_ANALYSIS_COMPLETE: &str = "VideoAnalysisComplete";
    /// VOD: AI audit done.
    pub const AI_MEDIA_AUDIT_COMPLETE: &str = "AIMediaAuditComplete";
    /// VOD: online editing produced a media.
    pub const PRODUCE_MEDIA_COMPLETE: &str = "ProduceMediaComplete";
    /// VOD: a media was deleted.
    pub const DELETE_MEDIA_COMPLETE: &str = "DeleteMediaComplete";
    /// VOD: an image was uploaded.
    pub const IMAGE_UPLOAD_COMPLETE: &str = "ImageUploadComplete";

    /// The namespace of live2vod's own event types (the relay refuses it from outside).
    pub const LIVE2VOD_PREFIX: &str = "live2vod.";
    /// api: an operator asked for a transcode.
    pub const TRANSCODE_REQUESTED: &str = "live2vod.TranscodeRequested";
    /// worker: SubmitTranscodeJobs accepted the job.
    pub const TRANSCODE_SUBMITTED: &str = "live2vod.TranscodeSubmitted";
    /// worker: SubmitTranscodeJobs refused the job for good.
    pub const TRANSCODE_REJECTED: &str = "live2vod.TranscodeRejected";
    /// worker: GetVideoInfo at a compose deadline.
    pub const VIDEO_INFO_OBSERVED: &str = "live2vod.VideoInfoObserved";
    /// worker: GetPlayInfo after a successful transcode.
    pub const PLAY_INFO_RESOLVED: &str = "live2vod.PlayInfoResolved";
    /// fold: what a video contributes to its stream aggregate.
    pub const STREAM_FACT: &str = "live2vod.StreamFact";
    /// reconcile: a recording found by a ListLiveRecordVideo sweep.
    pub const RECORDING_OBSERVED: &str = "live2vod.RecordingObserved";
    /// reconcile: a source file's state found by a probe (GetMezzanineInfo, else GetVideoInfo).
    pub const SOURCE_OBSERVED: &str = "live2vod.SourceObserved";
    /// reconcile: a transcode's outcome found by a probe (GetVideoInfo + GetPlayInfo).
    pub const TRANSCODE_OBSERVED: &str = "live2vod.TranscodeObserved";
    /// reconcile: a composed video found by a sweep (its LiveRecordVideoComposeStart lost).
    pub const COMPOSE_OBSERVED: &str = "live2vod.ComposeObserved";
    /// reconcile: a video's cover found by a probe (GetVideoInfo `CoverURL`).
    pub const SNAPSHOT_OBSERVED: &str = "live2vod.SnapshotObserved";

    /// Every event type the fold understands (the rest fold as unknown events).
    pub const KNOWN: [&str; 22] = [
        ADD_LIVE_RECORD_VIDEO_COMPLETE,
        LIVE_RECORD_VIDEO_COMPOSE_START,
        FILE_UPLOAD_COMPLETE,
        SNAPSHOT_COMPLETE,
        STREAM_TRANSCODE_COMPLETE,
        TRANSCODE_COMPLETE,
        VIDEO_ANALYSIS_COMPLETE,
        AI_MEDIA_AUDIT_COMPLETE,
        PRODUCE_MEDIA_COMPLETE,
        DELETE_MEDIA_COMPLETE,
        IMAGE_UPLOAD_COMPLETE,
        TRANSCODE_REQUESTED,
        TRANSCODE_SUBMITTED,
        TRANSCODE_REJECTED,
        VIDEO_INFO_OBSERVED,
        PLAY_INFO_RESOLVED,
        STREAM_FACT,
        RECORDING_OBSERVED,
        SOURCE_OBSERVED,
        TRANSCODE_OBSERVED,
        COMPOSE_OBSERVED,
        SNAPSHOT_OBSERVED,
    ];
}

/// A fact about a video that one kind of VOD callback brings and one kind of observation event
/// (`live2vod reconcile`) can stand in for. The unit in which VOD's losses and reconciliation's
/// recoveries are counted: a lost callback whose fact another delivered callback carried (a
/// StreamTranscodeComplete whose rendition the TranscodeComplete lists too, a second copy) loses
/// nothing, and one recovered fact may stand for several lost callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fact {
    /// The segment exists (AddLiveRecordVideoComplete / `live2vod.RecordingObserved`).
    Recording,
    /// The composed video exists (LiveRecordVideoComposeStart / `live2vod.ComposeObserved`).
    Compose,
    /// The composed video's source upload ended (FileUploadComplete / `live2vod.SourceObserved`).
    Source,
    /// A transcode ended (TranscodeComplete / `live2vod.TranscodeObserved`).
    Transcode,
    /// The cover exists (SnapshotComplete / `live2vod.SnapshotObserved`).
    Cover,
}

impl Fact {
    /// Every fact.
    pub const ALL: [Fact; 5] = [
        Fact::Recording,
        Fact::Compose,
        Fact::Source,
        Fact::Transcode,
        Fact::Cover,
    ];

    /// The `what` label of the reconcile metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Fact::Recording => "recording",
            Fact::Compose => "compose",
            Fact::Source => "source",
            Fact::Transcode => "transcode",
            Fact::Cover => "cover",
        }
    }

    /// The fact a VOD callback of this `EventType` brings. StreamTranscodeComplete has none of
    /// its own: VOD always follows it with the TranscodeComplete that lists every rendition.
    pub fn of_callback(ty: &str) -> Option<Fact> {
        use event_type as t;
        Some(match ty {
            t::ADD_LIVE_RECORD_VIDEO_COMPLETE => Fact::Recording,
            t::LIVE_RECORD_VIDEO_COMPOSE_START => Fact::Compose,
            t::FILE_UPLOAD_COMPLETE => Fact::Source,
            t::TRANSCODE_COMPLETE => Fact::Transcode,
            t::SNAPSHOT_COMPLETE => Fact::Cover,
            _ => return None,
        })
    }

    /// The fact an observation event of this `EventType` stands in for.
    pub fn of_observation(ty: &str) -> Option<Fact> {
        use event_type as t;
        Some(match ty {
            t::RECORDING_OBSERVED => Fact::Recording,
            t::COMPOSE_OBSERVED => Fact::Compose,
            t::SOURCE_OBSERVED => Fact::Source,
            t::TRANSCODE_OBSERVED => Fact::Transcode,
            t::SNAPSHOT_OBSERVED => Fact::Cover,
            _ => return None,
        })
    }
}

/// The kinds of [`Command`]: the one place a kind's name (log field, metric label, ledger
/// record, header value), its command-id prefix and its one-byte key tag are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandKind {
    /// `SubmitTranscodeJobs` for (video, template group).
    SubmitTranscode,
    /// `GetVideoInfo` at a composed video's deadline.
    TrackCompose,
    /// `GetPlayInfo` after a successful TranscodeComplete.
    RefreshPlayInfo,
}

impl CommandKind {
    /// Every kind.
    pub const ALL: [CommandKind; 3] = [
        CommandKind::SubmitTranscode,
        CommandKind::TrackCompose,
        CommandKind::RefreshPlayInfo,
    ];

    /// Label of a command without a kind (metrics, replay reports).
    pub const UNKNOWN: &'static str = "unknown";

    /// The kind's name: metric label, log field, ledger record, `live2vod-command-kind` header.
    pub const fn name(self) -> &'static str {
        match self {
            CommandKind::SubmitTranscode => "submit_transcode",
            CommandKind::TrackCompose => "track_compose",
            CommandKind::RefreshPlayInfo => "refresh_play_info",
        }
    }

    /// The command-id prefix (`tc-` + 32 hex, ...).
    pub const fn id_prefix(self) -> &'static str {
        match self {
            CommandKind::SubmitTranscode => "tc-",
            CommandKind::TrackCompose => "ct-",
            CommandKind::RefreshPlayInfo => "pi-",
        }
    }

    /// The byte that tags the kind in a remembered command key (see `projector::CommandKey`).
    pub const fn key_byte(self) -> u8 {
        match self {
            CommandKind::SubmitTranscode => b't',
            CommandKind::TrackCompose => b'c',
            CommandKind::RefreshPlayInfo => b'p',
        }
    }

    /// The kind a key byte tags.
    pub fn from_key_byte(b: u8) -> Option<CommandKind> {
        Self::ALL.into_iter().find(|k| k.key_byte() == b)
    }

    /// The kind whose prefix starts `command_id`.
    pub fn from_command_id(command_id: &str) -> Option<CommandKind> {
        Self::ALL
            .into_iter()
            .find(|k| command_id.starts_with(k.id_prefix()))
    }

    /// The kind of a protobuf command (`None` when it has none).
    pub fn of(c: &Command) -> Option<CommandKind> {
        Some(match c.kind.as_ref()? {
            command::Kind::SubmitTranscode(_) => CommandKind::SubmitTranscode,
            command::Kind::TrackCompose(_) => CommandKind::TrackCompose,
            command::Kind::RefreshPlayInfo(_) => CommandKind::RefreshPlayInfo,
        })
    }

    /// [`Self::name`] of a command's kind, or [`Self::UNKNOWN`].
    pub fn label(c: &Command) -> &'static str {
        Self::of(c).map_or(Self::UNKNOWN, Self::name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_has_one_callback_and_one_observation() {
        for f in Fact::ALL {
            let cbs: Vec<_> = event_type::KNOWN
                .iter()
                .filter(|t| Fact::of_callback(t) == Some(f))
                .collect();
            let obs: Vec<_> = event_type::KNOWN
                .iter()
                .filter(|t| Fact::of_observation(t) == Some(f))
                .collect();
            assert_eq!((cbs.len(), obs.len()), (1, 1), "{f:?}: {cbs:?} {obs:?}");
        }
        assert_eq!(
            Fact::of_callback(event_type::STREAM_TRANSCODE_COMPLETE),
            None
        );
    }

    #[test]
    fn kinds_are_told_apart_by_each_of_their_spellings() {
        for k in CommandKind::ALL {
            assert_eq!(CommandKind::from_key_byte(k.key_byte()), Some(k));
            let id = format!("{}{}", k.id_prefix(), "0".repeat(32));
            assert_eq!(CommandKind::from_command_id(&id), Some(k));
            assert_eq!(k.id_prefix().len(), 3);
        }
        let mut names: Vec<_> = CommandKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CommandKind::ALL.len());
        assert_eq!(CommandKind::label(&Command::default()), "unknown");
        assert!(event_type::KNOWN
            .iter()
            .filter(|t| t.starts_with(event_type::LIVE2VOD_PREFIX))
            .all(|t| t.len() > event_type::LIVE2VOD_PREFIX.len()));
    }
}
