//! The API's JSON views (shapes fixed in ARCHITECTURE.md).
//!
//! A video's view is shaped from its protobuf state, the form the api holds (the decoded
//! snapshot): no compact form ([`Text`](super::compact::text::Text), packed renditions) is built
//! just to be unpacked again. [`video_json`] of an in-memory aggregate goes through the same
//! shaper (via [`video_to_proto`]), so there is one view whatever its source.
use serde_json::{json, Value};

use super::aggregate::Aggregate;
use super::codec::{
    emitted_from, origin_from, requests_from, sorted, stream_from_proto, submissions_from,
    transcodes_from, video_to_proto, CodecError,
};
use super::lattice::{OriginKind, Status};
use super::projector::command_id;
use super::stream::StreamAggregate;
use super::time::format_rfc3339;
use super::video::{Facts, Meta, VideoAggregate};
use super::vocab::CommandKind;
use crate::proto as pb;

fn time(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t)))
}

/// `GET /v1/videos/{id}`. `events` counts distinct events, `duplicates` deliveries of events
/// already seen. `play_urls` are GetPlayInfo's URLs per (definition, format), completed by the
/// file URL of successful renditions GetPlayInfo has not (yet) reported. `transcode.reason` (not
/// in the original contract, additive) says why a transcode was `rejected`.
pub fn video_json(v: &VideoAggregate) -> Value {
    // An aggregate always encodes to a state the shaper accepts (its command keys are 17 bytes
    // and its origin kind is one of the two).
    video_state_json(video_to_proto(v), &v.meta).unwrap_or(Value::Null)
}

/// The video view of a protobuf state, with the checks `decode_snapshot` makes of it.
fn video_state_json(mut p: pb::VideoState, meta: &Meta) -> Result<Value, CodecError> {
    let origin_reg = p.origin.take().map(origin_from).transpose()?;
    let emitted = emitted_from(std::mem::take(&mut p.emitted))?;
    let submissions = submissions_from(std::mem::take(&mut p.submissions));
    let requests = requests_from(std::mem::take(&mut p.requests));
    let transcodes = transcodes_from(std::mem::take(&mut p.transcodes));
    let auto_groups: Vec<Box<str>> = sorted(
        std::mem::take(&mut p.auto_groups)
            .into_iter()
            .map(Into::into)
            .collect(),
    );
    let source_status = p.source.as_ref().map(|s| Status::parse(&s.status));
    let facts = Facts {
        origin: origin_reg.as_ref(),
        source_status: source_status.as_ref(),
        latest_transcode: transcodes.last(),
        observed: p.observed.as_ref().map(|o| o.video_status.as_str()),
        has_renditions: !p.renditions.is_empty(),
        submissions: &submissions,
        requests: &requests,
        auto_groups: &auto_groups,
        policy_refused: p.policy_refused,
    };

    let origin = origin_reg.as_ref().map_or(Value::Null, |o| {
        let composed = o.value.kind == OriginKind::Composed;
        json!({
            "kind": o.value.kind.as_str(),
            "status": o.value.status.as_str(),
            "domain": &*o.value.stream.domain,
            "app": &*o.value.stream.app,
            "stream": &*o.value.stream.stream,
            "record_start": time(o.value.record_start_ms),
            "record_end": time(o.value.record_end_ms),
            "compose_started_at": time(composed.then_some(o.at_ms)),
        })
    });
    let source = match (&p.source, &source_status) {
        (Some(s), Some(status)) => {
            json!({"status": status.as_str(), "size": s.size, "file_url": s.file_url})
        }
        _ => Value::Null,
    };
    // Sorted by (definition, format) as the aggregate keeps them (a stable sort, as decoding).
    let mut renditions: Vec<(&pb::RenditionReg, Status)> = p
        .renditions
        .iter()
        .map(|r| (r, Status::parse(&r.status)))
        .collect();
    renditions.sort_by(|a, b| (&a.0.definition, &a.0.format).cmp(&(&b.0.definition, &b.0.format)));
    let rendition_json: Vec<Value> = renditions
        .iter()
        .map(|(r, status)| {
            json!({
                "definition": r.definition,
                "format": r.format,
                "status": status.as_str(),
                "file_url": r.file_url,
                "bitrate": r.bitrate,
                "width": r.width,
                "height": r.height,
                "duration": r.duration,
                "size": r.size,
                "job_id": r.job_id,
                "error_code": r.error_code,
            })
        })
        .collect();
    // One entry per stream: callbacks may say `HD-MP4` where GetPlayInfo says `HD`.
    let mut play: Vec<(&str, &str, &str)> = p
        .play_urls
        .iter()
        .map(|u| {
            let d = plain_definition(&u.definition, &u.format);
            (d, u.format.as_str(), u.url.as_str())
        })
        .collect();
    for (r, status) in &renditions {
        let d = plain_definition(&r.definition, &r.format);
        if status.is_success() && !play.iter().any(|p| p.0 == d && p.1 == r.format) {
            if let Some(u) = &r.file_url {
                play.push((d, &r.format, u));
            }
        }
    }
    play.sort_unstable();
    play.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let play_urls: Vec<Value> = play
        .into_iter()
        .map(|(d, f, u)| json!({"definition": d, "format": f, "url": u}))
        .collect();
    let mut command_ids: Vec<String> = emitted
        .iter()
        .filter(|k| k[0] == CommandKind::SubmitTranscode.key_byte())
        .map(command_id)
        .collect();
    command_ids.extend(submissions.iter().map(|s| s.command_id.to_string()));
    command_ids.sort();
    command_ids.dedup();
    let mut dedup = std::mem::take(&mut p.dedup_keys);
    dedup.sort_unstable();
    dedup.dedup();
    Ok(json!({
        "video_id": p.id,
        "status": facts.status().as_str(),
        "origin": origin,
        "source": source,
        "cover_url": p.cover.as_ref().map(|c| c.value.as_str()),
        "renditions": rendition_json,
        "transcode": {
            "status": facts.transcode_status(),
            "template_group_id": facts.template_group(),
            "task_id": facts.task_id(),
            "command_ids": command_ids,
            "reason": facts.transcode_rejection(),
        },
        "play_urls": play_urls,
        "events": dedup.len(),
        "duplicates": meta.duplicates,
        "last_event_time": time(p.last_event_ms),
    }))
}

/// A definition without the `-<format>` suffix some callbacks add (`HD-MP4` with format
/// `mp4` is `HD`, as GetPlayInfo spells it); any other spelling is kept as it is.
pub fn plain_definition<'a>(definition: &'a str, format: &str) -> &'a str {
    match definition.rsplit_once('-') {
        Some((d, suffix)) if !d.is_empty() && suffix.eq_ignore_ascii_case(format) => d,
        _ => definition,
    }
}

/// `GET /v1/streams/{domain}/{app}/{stream}` (sessions as derived by
/// [`StreamAggregate::sessions`]). `events` counts facts that changed the stream, `duplicates`
/// facts that did not; both depend on delivery order (they are counters, not state).
pub fn stream_json(s: &StreamAggregate) -> Value {
    let sessions: Vec<Value> = s
        .sessions()
        .into_iter()
        .map(|x| {
            json!({
                "start": format_rfc3339(x.start_ms),
                "end": format_rfc3339(x.end_ms),
                "segments": x.segments,
                "composed_video_id": x.composed_video_id,
                "compose_status": x.compose_status.as_str(),
            })
        })
        .collect();
    json!({
        "domain": &*s.key.domain,
        "app": &*s.key.app,
        "stream": &*s.key.stream,
        "sessions": sessions,
        "events": s.meta.deliveries - s.meta.duplicates,
        "duplicates": s.meta.duplicates,
    })
}

/// The JSON view of any aggregate.
pub fn aggregate_json(a: &Aggregate) -> Value {
    match a {
        Aggregate::Video(v) => video_json(v),
        Aggregate::Stream(s) => stream_json(s),
    }
}

/// For the api: decode a snapshot from the aggregates topic into (key, JSON view). Accepts and
/// refuses exactly what [`super::codec::decode_snapshot`] does.
pub fn snapshot_json(bytes: &[u8]) -> Result<(String, Value), CodecError> {
    let (state, meta) = super::codec::decode_envelope(bytes)?;
    match state {
        pb::aggregate_snapshot::State::Video(v) => {
            let key = v.id.clone();
            Ok((key, video_state_json(v, &meta)?))
        }
        // A stream holds no compact forms: its view is shaped from the decoded aggregate.
        pb::aggregate_snapshot::State::Stream(s) => {
            let mut s = stream_from_proto(s)?;
            s.meta = meta;
            Ok((s.key.aggregate_key(), stream_json(&s)))
        }
    }
}

/// The reference [`snapshot_json`] is tested against: decode the aggregate, then view it.
#[cfg(test)]
fn snapshot_json_via_aggregate(bytes: &[u8]) -> Result<(String, Value), CodecError> {
    let a = super::codec::decode_snapshot(bytes)?;
    Ok((a.key(), aggregate_json(&a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Engine, InputPos, Policy};

    #[test]
    fn a_stream_called_hd_mp4_by_its_callback_and_hd_by_get_play_info_is_listed_once() {
        let mut e = Engine::new(Policy::default());
        let bodies: [&[u8]; 2] = [
            br#"{"EventTime":"2017-12-08T09:30:00Z","EventType":"StreamTranscodeComplete","VideoId":"v1","Status":"success",
            "Definition":"HD-MP4","Format":"mp4","FileUrl":"http://x/hd.mp4","JobId":"j"}"#,
            br#"{"EventTime":"2017-12-08T09:31:00Z","EventType":"live2vod.PlayInfoResolved","VideoId":"v1","CommandId":"pi-1","Status":"success",
            "PlayInfos":[{"PlayURL":"https://cdn/hd.mp4","Definition":"HD","Format":"mp4"},{"PlayURL":"https://cdn/sd.m3u8","Definition":"SD","Format":"m3u8"}]}"#,
        ];
        for (offset, b) in bodies.iter().enumerate() {
            e.apply(
                "v1",
                b,
                InputPos {
                    partition: 0,
                    offset: offset as i64,
                },
            )
            .unwrap();
        }
        let v = video_json(e.video("v1").unwrap());
        let play: Vec<(&str, &str, &str)> = v["play_urls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["definition"].as_str().unwrap(),
                    p["format"].as_str().unwrap(),
                    p["url"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            play,
            [
                ("HD", "mp4", "https://cdn/hd.mp4"),
                ("SD", "m3u8", "https://cdn/sd.m3u8")
            ]
        );
        // The rendition keeps VOD's spelling.
        assert_eq!(v["renditions"][0]["definition"], "HD-MP4");
        assert_eq!(plain_definition("HD-MP4", "mp4"), "HD");
        assert_eq!(plain_definition("HD-H265", "mp4"), "HD-H265");
        assert_eq!(plain_definition("-mp4", "mp4"), "-mp4");
    }

    #[test]
    fn video_and_stream_views_have_the_documented_shape() {
        let mut e = Engine::new(Policy::default());
        let acr = br#"{"EventTime":"2017-12-08T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"v1","Status":"success",
            "StreamName":"s","DomainName":"d","AppName":"a","RecordStartTime":"2017-12-08T07:40:56Z","RecordEndTime":"2017-12-08T09:26:17Z"}"#;
        let stc = br#"{"EventTime":"2017-12-08T09:30:00.250Z","EventType":"StreamTranscodeComplete","VideoId":"v1","Status":"success",
            "Definition":"HD","Format":"m3u8","FileUrl":"http://x/hd.m3u8","Width":"1280","Height":720,"Duration":"12.5","Bitrate":"900","Size":7,"JobId":"j"}"#;
        let out = e
            .apply(
                "v1",
                acr,
                InputPos {
                    partition: 0,
                    offset: 0,
                },
            )
            .unwrap();
        e.apply(
            "v1",
            stc,
            InputPos {
                partition: 0,
                offset: 1,
            },
        )
        .unwrap();
        e.apply(
            "v1",
            stc,
            InputPos {
                partition: 0,
                offset: 2,
            },
        )
        .unwrap();
        let (k, fact) = &out.derived[0];
        e.apply(
            k,
            fact,
            InputPos {
                partition: 0,
                offset: 3,
            },
        )
        .unwrap();

        let v = video_json(e.video("v1").unwrap());
        assert_eq!(v["video_id"], "v1");
        assert_eq!(v["status"], "transcoding");
        assert_eq!(v["origin"]["kind"], "live_segment");
        assert_eq!(v["origin"]["record_start"], "2017-12-08T07:40:56Z");
        assert_eq!(v["origin"]["compose_started_at"], Value::Null);
        assert_eq!(v["source"], Value::Null);
        let r = &v["renditions"][0];
        assert_eq!(
            (
                r["definition"].as_str(),
                r["format"].as_str(),
                r["status"].as_str()
            ),
            (Some("HD"), Some("m3u8"), Some("success"))
        );
        assert_eq!(
            (
                r["width"].as_i64(),
                r["height"].as_i64(),
                r["duration"].as_f64()
            ),
            (Some(1280), Some(720), Some(12.5))
        );
        assert_eq!(r["bitrate"], "900");
        assert_eq!(v["transcode"]["status"], "submitted");
        assert_eq!(v["play_urls"][0]["url"], "http://x/hd.m3u8");
        assert_eq!(v["play_urls"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            (v["events"].as_u64(), v["duplicates"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(v["last_event_time"], "2017-12-08T09:30:00.250Z");

        let s = stream_json(e.stream("stream:d/a/s").unwrap());
        assert_eq!(
            (
                s["domain"].as_str(),
                s["app"].as_str(),
                s["stream"].as_str()
            ),
            (Some("d"), Some("a"), Some("s"))
        );
        assert_eq!(s["sessions"][0]["segments"][0], "v1");
        assert_eq!(s["sessions"][0]["start"], "2017-12-08T07:40:56Z");
        assert_eq!(s["sessions"][0]["composed_video_id"], Value::Null);
        assert_eq!(s["sessions"][0]["compose_status"], "none");

        let (key, json) = snapshot_json(&e.snapshot_bytes("v1").unwrap()).unwrap();
        assert_eq!(key, "v1");
        assert_eq!(json, v);
        assert!(snapshot_json(b"not a snapshot").is_err());
        for (k, _) in e.aggregates() {
            let bytes = e.snapshot_bytes(k).unwrap();
            assert_eq!(
                snapshot_json(&bytes).unwrap(),
                snapshot_json_via_aggregate(&bytes).unwrap()
            );
        }
    }
}
