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
pub use super::video::{command_id, command_key};
use super::video::{CommandKey, VideoAggregate, HEX};
use super::vocab::CommandKind;
use crate::proto::{command, Command, RefreshPlayInfo, SubmitTranscode, TrackCompose};

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

/// Why a generation of a (video, group) transcode exists.
struct Cause<'a> {
    cause: String,
    at: i64,
    priority: Option<&'a str>,
    auto: bool,
    not_before: i64,
}

/// Most generations one (video, group) may reach: a bound on the chain, far above what a
/// retry budget (at most [`super::policy::MAX_RETRIES`]) plus operators' requests make.
pub const MAX_GENERATIONS: u32 = 1000;

/// Key of generation `generation` of the SubmitTranscode for (video, group). Generation 0 keeps
/// the id live2vod always gave (ids never change across versions).
pub fn transcode_key_gen(video_id: &str, template_group: &str, generation: u32) -> CommandKey {
    if generation == 0 {
        return transcode_key(video_id, template_group);
    }
    let g = format!("g{generation}");
    key_of(
        CommandKind::SubmitTranscode.key_byte(),
        &[video_id, template_group, &g],
    )
}

/// When the job of generation `key` (spelled `id`) ended in a terminal failure, if it did:
/// the earliest failed TranscodeComplete attributed to it (by `Extend`), or the worker's
/// TranscodeRejected.
fn failed_at(video: &VideoAggregate, key: &CommandKey, id: &str) -> Option<i64> {
    let ended = video
        .attempt_ends
        .iter()
        .filter(|e| e.key == *key && e.failed())
        .map(|e| e.at_ms)
        .min();
    let rejected = video
        .submissions
        .binary_search_by(|s| (*s.command_id).cmp(id))
        .ok()
        .map(|i| &video.submissions[i].reg)
        .filter(|r| r.value.status == Status::Fail)
        .map(|r| r.at_ms);
    ended.into_iter().chain(rejected).min()
}

/// The manual requests for `group` that may cause a generation (`usable`: the policy honours
/// them and the source is ready).
fn requests_of<'a>(
    video: &'a VideoAggregate,
    group: &'a str,
    usable: bool,
) -> impl Iterator<Item = &'a super::video::TranscodeRequest> + Clone + 'a {
    video
        .requests
        .iter()
        .filter(move |r| usable && *r.template_group == *group)
}

/// The generations of (video, group): generation 0 from `first`, and each next one only once
/// the previous one failed for good, caused by the retry budget (`retry`: retries, backoff
/// seconds) while it lasts, else by a manual request made after that failure. A request made
/// while a generation is in flight (or waiting for its retry) starts nothing new.
fn chain<'a>(
    out: &mut Projection,
    video: &VideoAggregate,
    group: &str,
    first: Cause<'a>,
    requests: impl Iterator<Item = &'a super::video::TranscodeRequest> + Clone,
    retry: Option<(u32, u64)>,
) {
    let mut cause = first;
    let mut generation = 0u32;
    loop {
        let key = transcode_key_gen(&video.id, group, generation);
        let id = command_id(&key);
        let failed = failed_at(video, &key, &id);
        out.push(Warranted {
            key,
            command: Command {
                command_id: id,
                video_id: video.id.to_string(),
                cause: cause.cause,
                cause_time_ms: cause.at,
                kind: Some(command::Kind::SubmitTranscode(SubmitTranscode {
                    template_group_id: group.to_string(),
                    priority: cause.priority.unwrap_or("").to_string(),
                    not_before_ms: cause.not_before,
                    generation,
                })),
            },
            auto_group: cause.auto.then(|| group.to_string()),
        });
        let Some(failed) = failed else {
            return;
        };
        if generation + 1 >= MAX_GENERATIONS {
            return;
        }
        cause = match retry.filter(|(n, _)| generation < *n) {
            Some((_, backoff)) => Cause {
                cause: format!("retry:{}", generation + 1),
                at: failed,
                priority: cause.priority,
                auto: true,
                not_before: failed.saturating_add((backoff as i64).saturating_mul(1000)),
            },
            None => {
                let Some(r) = requests
                    .clone()
                    .filter(|r| r.at_ms > failed)
                    .min_by_key(|r| r.at_ms)
                else {
                    return;
                };
                Cause {
                    cause: format!("manual:{}", r.request_id.as_deref().unwrap_or("")),
                    at: r.at_ms,
                    priority: r.priority.as_deref(),
                    auto: false,
                    not_before: 0,
                }
            }
        };
        generation += 1;
    }
}

impl Projection {
    fn push(&mut self, w: Warranted) {
        if !self.commands.iter().any(|c| c.key == w.key) {
            self.commands.push(w);
        }
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
            out.push(w);
        }
        let action = sp.action(o.kind);
        // A manual request goes to VOD once the source is there: VOD answers
        // Forbidden.IllegalStatus for a composed video still uploading. Both facts only grow,
        // so waiting keeps the projector monotone.
        let source_ready = match o.kind {
            OriginKind::LiveSegment => o.status.is_success(),
            OriginKind::Composed => video.source_success_ms.is_some(),
        };
        let manual_ok = *action != Action::None;
        if !manual_ok && !video.requests.is_empty() {
            out.refused = true;
        }
        let usable = manual_ok && source_ready;
        let mut auto = None;
        if let Action::Transcode {
            template_group,
            priority,
            retries,
            retry_backoff_secs,
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
                auto = Some(template_group.as_str());
                let first = Cause {
                    cause: cause.into(),
                    at,
                    priority: priority.as_deref(),
                    auto: true,
                    not_before: 0,
                };
                chain(
                    &mut out,
                    video,
                    template_group,
                    first,
                    requests_of(video, template_group, usable),
                    Some((*retries, *retry_backoff_secs)),
                );
            }
        }
        // Manual requests of the other groups: one chain per group, from its earliest request
        // (requests are sorted by group, then time).
        let mut last: Option<&str> = None;
        for r in video.requests.iter().filter(|_| usable) {
            let g = &*r.template_group;
            if last == Some(g) || auto == Some(g) {
                continue;
            }
            last = Some(g);
            let first = Cause {
                cause: format!("manual:{}", r.request_id.as_deref().unwrap_or("")),
                at: r.at_ms,
                priority: r.priority.as_deref(),
                auto: false,
                not_before: 0,
            };
            chain(
                &mut out,
                video,
                g,
                first,
                requests_of(video, g, usable),
                None,
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
        out.push(w);
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
