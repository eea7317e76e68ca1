//! The API's JSON views (shapes fixed in ARCHITECTURE.md).
use serde_json::{json, Value};

use super::codec::{decode_snapshot, CodecError};
use super::engine::Aggregate;
use super::lattice::OriginKind;
use super::projector::command_id;
use super::stream::StreamAggregate;
use super::text::Text;
use super::time::format_rfc3339;
use super::video::VideoAggregate;

fn time(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t)))
}

/// `GET /v1/videos/{id}`. `events` counts distinct events, `duplicates` deliveries of events
/// already seen. `play_urls` are GetPlayInfo's URLs per (definition, format), completed by the
/// file URL of successful renditions GetPlayInfo has not (yet) reported. `transcode.reason` (not
/// in the original contract, additive) says why a transcode was `rejected`.
pub fn video_json(v: &VideoAggregate) -> Value {
    let origin = v.origin.as_ref().map_or(Value::Null, |o| {
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
    let source = v.source.as_ref().map_or(Value::Null, |s| {
        json!({"status": s.value.status.as_str(), "size": s.value.size, "file_url": s.value.file_url.as_ref().map(Text::to_string)})
    });
    let renditions: Vec<Value> = v
        .renditions
        .iter()
        .map(|r| {
            let i = &r.reg.value.unpack();
            json!({
                "definition": &*r.definition,
                "format": &*r.format,
                "status": i.status.as_str(),
                "file_url": i.file_url.as_ref().map(Text::to_string),
                "bitrate": i.bitrate.as_deref(),
                "width": i.width,
                "height": i.height,
                "duration": i.duration.map(|d| d.0),
                "size": i.size,
                "job_id": i.job_id.as_ref().map(Text::to_string),
                "error_code": i.error_code.as_deref(),
            })
        })
        .collect();
    let mut play: Vec<(&str, &str, String)> = v
        .play_urls
        .iter()
        .map(|p| (&*p.definition, &*p.format, p.reg.value.to_string()))
        .collect();
    for r in &v.renditions {
        if r.reg.value.is_success()
            && !play
                .iter()
                .any(|p| p.0 == &*r.definition && p.1 == &*r.format)
        {
            if let Some(u) = r.reg.value.view().file_url {
                play.push((&r.definition, &r.format, u.decoded()));
            }
        }
    }
    play.sort_unstable();
    let play_urls: Vec<Value> = play
        .into_iter()
        .map(|(d, f, u)| json!({"definition": d, "format": f, "url": u}))
        .collect();
    let mut command_ids: Vec<String> = v
        .emitted
        .iter()
        .filter(|k| k[0] == b't')
        .map(command_id)
        .collect();
    command_ids.extend(v.submissions.iter().map(|s| s.command_id.to_string()));
    command_ids.sort();
    command_ids.dedup();
    json!({
        "video_id": &*v.id,
        "status": v.status().as_str(),
        "origin": origin,
        "source": source,
        "cover_url": v.cover.as_ref().map(|c| c.value.to_string()),
        "renditions": renditions,
        "transcode": {
            "status": v.transcode_status(),
            "template_group_id": v.template_group(),
            "task_id": v.task_id(),
            "command_ids": command_ids,
            "reason": v.transcode_rejection(),
        },
        "play_urls": play_urls,
        "events": v.dedup.len(),
        "duplicates": v.meta.duplicates,
        "last_event_time": time(v.last_event_ms),
    })
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

/// For the api: decode a snapshot from the aggregates topic into (key, JSON view).
pub fn snapshot_json(bytes: &[u8]) -> Result<(String, Value), CodecError> {
    let a = decode_snapshot(bytes)?;
    Ok((a.key(), aggregate_json(&a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Engine, InputPos, Policy};

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
    }
}
