//! Which commands a video's state warrants. Pure, and **monotone in the event set**: every input
//! it reads only grows as events arrive (a request, a successful TranscodeComplete, a successful
//! upload, the origin), so a command once warranted stays warranted, and the union of what was
//! emitted over any order equals `project(final state)`. The one assumption: a VideoId has one
//! origin (VOD never reports an id as both a segment and a compose, or with two streams).
//!
//! Command ids (<= 50 chars, they become VOD's `SessionId`):
//! - `tc-` + 32 hex of sha1(`video_id|template_group`): one per (video, group), whatever the cause.
//! - `ct-` + 32 hex of sha1(`video_id`).
//! - `pi-` + 32 hex of sha1(`video_id|<16-hex dedup key of the TranscodeComplete>`).
use sha1::{Digest, Sha1};

use super::lattice::{OriginKind, Status};
use super::policy::{Action, Policy};
use super::video::{CommandKey, VideoAggregate};
use super::vocab::CommandKind;
use crate::proto::{command, Command, RefreshPlayInfo, SubmitTranscode, TrackCompose};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn key_of(kind: u8, parts: &[&str]) -> CommandKey {
    let mut h = Sha1::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"|");
        }
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut k = [0u8; 17];
    k[0] = kind;
    k[1..].copy_from_slice(&d[..16]);
    k
}

/// The command id a [`CommandKey`] stands for (the kind's prefix + 32 hex).
pub fn command_id(key: &CommandKey) -> String {
    let prefix = CommandKind::from_key_byte(key[0]).map_or("xx-", CommandKind::id_prefix);
    let mut s = String::with_capacity(35);
    s.push_str(prefix);
    for b in &key[1..] {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// Parses a command id back into its key (None if it is not one of ours).
pub fn command_key(id: &str) -> Option<CommandKey> {
    let kind = CommandKind::from_command_id(id)?;
    let hex = &id[kind.id_prefix().len()..];
    if hex.len() != 32 {
        return None;
    }
    let mut k = [0u8; 17];
    k[0] = kind.key_byte();
    for i in 0..16 {
        k[1 + i] = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

/// Key of the SubmitTranscode command for (video, group).
pub fn transcode_key(video_id: &str, template_group: &str) -> CommandKey {
    key_of(
        CommandKind::SubmitTranscode.key_byte(),
        &[video_id, template_group],
    )
}

/// The SubmitTranscode command id for (video, group); the api answers it to manual requests.
pub fn transcode_command_id(video_id: &str, template_group: &str) -> String {
    command_id(&transcode_key(video_id, template_group))
}

/// The TrackCompose command id of a composed video.
pub fn track_compose_command_id(video_id: &str) -> String {
    command_id(&key_of(CommandKind::TrackCompose.key_byte(), &[video_id]))
}

/// The RefreshPlayInfo command id caused by the TranscodeComplete with this dedup key.
pub fn refresh_play_info_command_id(video_id: &str, transcode_dedup_key: u64) -> String {
    command_id(&refresh_key(video_id, transcode_dedup_key))
}

fn refresh_key(video_id: &str, dedup: u64) -> CommandKey {
    // `{dedup:016x}`, without the formatting machinery.
    let mut hex = [0u8; 16];
    for (i, h) in hex.iter_mut().enumerate() {
        *h = HEX[((dedup >> (60 - 4 * i)) & 15) as usize];
    }
    key_of(
        CommandKind::RefreshPlayInfo.key_byte(),
        &[video_id, std::str::from_utf8(&hex).unwrap_or_default()],
    )
}

/// A warranted command with its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Warranted {
    /// Key (what the aggregate remembers).
    pub key: CommandKey,
    /// The command.
    pub command: Command,
    /// Set when the policy (not an operator) causes this SubmitTranscode: its template group.
    pub auto_group: Option<String>,
}

/// Everything the projector concludes from a video's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    /// Commands warranted, in a deterministic order, each id once.
    pub commands: Vec<Warranted>,
    /// A manual request exists but the policy says `none` for this video.
    pub refused: bool,
}

fn submit(
    video: &VideoAggregate,
    group: &str,
    priority: Option<&str>,
    cause: String,
    at: i64,
    auto: bool,
) -> Warranted {
    // One sha1 per command: the id is spelled from the key.
    let key = transcode_key(&video.id, group);
    Warranted {
        key,
        command: Command {
            command_id: command_id(&key),
            video_id: video.id.to_string(),
            cause,
            cause_time_ms: at,
            kind: Some(command::Kind::SubmitTranscode(SubmitTranscode {
                template_group_id: group.to_string(),
                priority: priority.unwrap_or("").to_string(),
            })),
        },
        auto_group: auto.then(|| group.to_string()),
    }
}

/// The commands `video` warrants under `policy`:
/// - **TrackCompose** once ComposeStart did not fail: deadline = compose start event time +
///   the stream's `compose_deadline_secs`.
/// - **SubmitTranscode** (policy `transcode`): a segment once its AddLiveRecordVideoComplete
///   succeeded; a composed video once a FileUploadComplete succeeded.
/// - **SubmitTranscode** (manual `live2vod.TranscodeRequested`), unless the policy for the video
///   is `none` (then `refused`). Manual requests wait until the video's origin is known, because
///   only then is it known which policy governs them (and deciding earlier could not be undone),
///   and then until its source is ready (a segment's AddLiveRecordVideoComplete succeeded, a
///   composed video's FileUploadComplete succeeded), as VOD refuses to transcode before.
/// - **RefreshPlayInfo** for every successful TranscodeComplete.
///
/// Ids collide on purpose: policy and manual causes for the same group are one command.
pub fn project(video: &VideoAggregate, policy: &Policy) -> Projection {
    let mut out = Projection::default();
    let push = |out: &mut Projection, w: Warranted| {
        if !out.commands.iter().any(|c| c.key == w.key) {
            out.commands.push(w);
        }
    };
    if let Some(origin) = &video.origin {
        let o = &origin.value;
        let sp = policy.for_stream(&o.stream);
        if o.kind == OriginKind::Composed && o.status != Status::Fail {
            let deadline = origin
                .at_ms
                .saturating_add((sp.compose_deadline_secs as i64).saturating_mul(1000));
            let key = key_of(CommandKind::TrackCompose.key_byte(), &[&video.id]);
            let w = Warranted {
                key,
                command: Command {
                    command_id: command_id(&key),
                    video_id: video.id.to_string(),
                    cause: "compose_start".into(),
                    cause_time_ms: origin.at_ms,
                    kind: Some(command::Kind::TrackCompose(TrackCompose {
                        deadline_ms: deadline,
                        domain: o.stream.domain.to_string(),
                        app: o.stream.app.to_string(),
                        stream: o.stream.stream.to_string(),
                    })),
                },
                auto_group: None,
            };
            push(&mut out, w);
        }
        let action = sp.action(o.kind);
        if let Action::Transcode {
            template_group,
            priority,
        } = action
        {
            let cause = match o.kind {
                OriginKind::LiveSegment if o.status.is_success() => {
                    Some(("policy:segment", origin.at_ms))
                }
                OriginKind::Composed => video.source_success_ms.map(|t| ("policy:composed", t)),
                OriginKind::LiveSegment => None,
            };
            if let Some((cause, at)) = cause {
                push(
                    &mut out,
                    submit(
                        video,
                        template_group,
                        priority.as_deref(),
                        cause.into(),
                        at,
                        true,
                    ),
                );
            }
        }
        // A manual request goes to VOD once the source is there: VOD answers
        // Forbidden.IllegalStatus for a composed video still uploading, and the worker takes
        // that as final. Both facts only grow, so waiting keeps the projector monotone.
        let source_ready = match o.kind {
            OriginKind::LiveSegment => o.status.is_success(),
            OriginKind::Composed => video.source_success_ms.is_some(),
        };
        for r in &video.requests {
            if *action == Action::None {
                out.refused = true;
                continue;
            }
            if !source_ready {
                continue;
            }
            let cause = format!("manual:{}", r.request_id.as_deref().unwrap_or(""));
            push(
                &mut out,
                submit(
                    video,
                    &r.template_group,
                    r.priority.as_deref(),
                    cause,
                    r.at_ms,
                    false,
                ),
            );
        }
    }
    for tc in &video.transcodes {
        if tc.rank != Status::Success.rank() {
            continue;
        }
        let key = refresh_key(&video.id, tc.value);
        let w = Warranted {
            key,
            command: Command {
                command_id: command_id(&key),
                video_id: video.id.to_string(),
                cause: format!("transcode_complete:{:016x}", tc.value),
                cause_time_ms: tc.at_ms,
                kind: Some(command::Kind::RefreshPlayInfo(RefreshPlayInfo {})),
            },
            auto_group: None,
        };
        push(&mut out, w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_hex_and_short() {
        let id = transcode_command_id("43q9fjdhef****", "tg-record");
        assert!(
            id.starts_with("tc-") && id.len() == 35 && id.len() <= 50,
            "{id}"
        );
        assert!(id[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, transcode_command_id("43q9fjdhef****", "tg-other"));
        assert_eq!(command_key(&id).map(|k| command_id(&k)), Some(id.clone()));
        assert!(track_compose_command_id("v").starts_with("ct-"));
        assert!(refresh_play_info_command_id("v", 7).starts_with("pi-"));
        assert_eq!(command_key("zz-123"), None);
    }

    #[test]
    fn refresh_key_spells_the_dedup_key_as_format_does() {
        for d in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 63] {
            assert_eq!(
                refresh_key("v", d),
                key_of(b'p', &["v", &format!("{d:016x}")])
            );
        }
    }

    #[test]
    fn sha1_based_id_is_stable() {
        // `printf 'v|g' | sha1sum` = bab39fe3ccb91ec7befaedb68d286c2b47f32301: ids must never
        // change across versions, or the worker ledger and VOD's SessionId stop de-duplicating.
        assert_eq!(
            transcode_command_id("v", "g"),
            "tc-bab39fe3ccb91ec7befaedb68d286c2b"
        );
    }
}
