//! Observation events never spoil what callbacks said, and fill in what they did not.
//!
//! For generated sessions (segments, a composed video, transcodes with failing renditions),
//! the observations reconcile would write from VOD's truth (`live2vod.RecordingObserved`,
//! `ComposeObserved`, `SourceObserved`, `TranscodeObserved`, `SnapshotObserved`, built by
//! `domain::observation`) are folded:
//! - together with **all** the callbacks, any subset of them, in any order, some repeated:
//!   the views (status, origin, source, renditions, transcode, play URLs, sessions) equal those
//!   of the callbacks alone, and so do the commands (transcodes, compose tracking);
//! - with some callbacks **dropped** (AddLiveRecordVideoComplete, LiveRecordVideoComposeStart,
//!   FileUploadComplete, SnapshotComplete, StreamTranscodeComplete, TranscodeComplete): the
//!   facts the dropped callbacks carried are there again (status, origin and record times,
//!   source status, the successful renditions, the cover, the sessions and compose outcome),
//!   and no second transcode is ever warranted.
use std::collections::{BTreeMap, BTreeSet};

use live2vod::domain::event::routing_key;
use live2vod::domain::observation::{
    compose_observed, recording_observed, snapshot_observed, source_observed, transcode_observed,
    Cover, PlayStream, Recording, SourceState, TranscodeState,
};
use live2vod::domain::time::format_rfc3339;
use live2vod::domain::view::aggregate_json;
use live2vod::domain::{Engine, InputPos, Policy};
use proptest::prelude::*;
use serde_json::{json, Value};

struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const POLICIES: [&str; 3] = [
    "",
    "[defaults]\nsegments = { action = \"transcode\", template_group = \"tg-rec\" }\ncomposed = { action = \"transcode\", template_group = \"tg-comp\" }\n",
    "[defaults]\nsegments = { action = \"manual\" }\ncomposed = { action = \"transcode\", template_group = \"tg-comp\" }\n",
];
const DEFS: [&str; 4] = ["LD", "SD", "HD", "FD"];

fn t(ms: i64) -> String {
    format_rfc3339(ms)
}

fn obj(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("json")
}

/// A callback, and whether reconcile can stand in for it when it is lost.
struct Callback {
    body: Vec<u8>,
    recoverable: bool,
}

/// The callbacks of a generated scenario and the observations VOD's answers would give.
struct Generated {
    callbacks: Vec<Callback>,
    observations: Vec<Vec<u8>>,
}

/// A transcode of `vid` (created by VOD at `created`) started at `at`.
fn transcode(
    g: &mut Generated,
    rng: &mut Rng,
    vid: &str,
    created: i64,
    at: i64,
    renditions: usize,
) {
    // The job's snapshot: SnapshotComplete, and the cover GetVideoInfo answers afterwards
    // (timed by the video's creation, which is never later than the callback).
    let cover = format!(
        "https://cdn.example.com/{vid}/cover-{}.jpg",
        rng.below(1000)
    );
    g.callbacks.push(Callback {
        body: obj(
            json!({"EventType":"SnapshotComplete","EventTime":t(at + 500),"VideoId":vid,
            "Status":"success","SubType":"SpecifiedTime","CoverUrl":cover,
            "SnapshotInfos":[{"Status":"success","SnapshotType":"CoverSnapshot","SnapshotCount":1,
            "SnapshotFormat":"jpg","JobId":format!("snap-{vid}")}]}),
        ),
        recoverable: true,
    });
    g.observations.push(snapshot_observed(&Cover {
        video_id: vid.into(),
        cover_url: cover,
        created_ms: created,
    }));
    let mut infos = Vec::new();
    let mut ok_streams = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for (i, def) in DEFS.iter().take(renditions).enumerate() {
        let ok = !rng.chance(15);
        let fmt = if i % 2 == 0 { "m3u8" } else { "mp4" };
        let done = at + 1000 * (1 + rng.below(3) as i64);
        let info = if ok {
            json!({"Status":"success","Definition":def,"Format":fmt,"Bitrate":format!("{}", 400 * (i + 1)),
                   "Duration":61.5,"Width":320 * (i + 1),"Height":180,"Size":1000 + i,
                   "FileUrl":format!("http://outin.example.com/{vid}/{def}.{fmt}"),"JobId":format!("job-{vid}-{i}")})
        } else {
            json!({"Status":"fail","Definition":def,"Format":fmt,"ErrorCode":"InvalidParameter","JobId":format!("job-{vid}-{i}")})
        };
        let mut flat = info.clone();
        flat["EventType"] = json!("StreamTranscodeComplete");
        flat["EventTime"] = json!(t(done));
        flat["VideoId"] = json!(vid);
        g.callbacks.push(Callback {
            body: obj(flat),
            recoverable: true,
        });
        if !ok {
            failed.push((def.to_string(), fmt.to_string()));
        }
        if ok {
            ok_streams.push(PlayStream {
                definition: def.to_string(),
                format: fmt.to_string(),
                play_url: Some(format!("https://cdn.example.com/{vid}/{def}.{fmt}")),
                bitrate: Some(format!("{}", 400 * (i + 1))),
                duration: Some(61.5),
                size: Some(1000 + i as i64),
                width: Some(320 * (i as i64 + 1)),
                height: Some(180),
                job_id: Some(format!("job-{vid}-{i}")),
            });
        }
        infos.push(info);
    }
    let any_ok = !ok_streams.is_empty();
    g.callbacks.push(Callback {
        body: obj(
            json!({"EventType":"TranscodeComplete","EventTime":t(at + 5000),"VideoId":vid,
            "Status": if any_ok {"success"} else {"fail"},"StreamInfos":infos}),
        ),
        recoverable: true,
    });
    ok_streams.sort_by(|a, b| (&a.definition, &a.format).cmp(&(&b.definition, &b.format)));
    // GetPlayInfo's streams were created when the job started: never later than the callbacks.
    g.observations.push(transcode_observed(&TranscodeState {
        video_id: vid.into(),
        success: any_ok,
        vod_status: if any_ok { "Normal" } else { "TranscodeFail" }.into(),
        streams: ok_streams,
        failed,
        at_ms: at,
    }));
}

fn generate(
    seed: u64,
    segments: usize,
    renditions: usize,
    composed: bool,
    auto: bool,
) -> Generated {
    let mut rng = Rng::new(seed);
    let mut g = Generated {
        callbacks: Vec::new(),
        observations: Vec::new(),
    };
    let (domain, app, stream) = ("live.example.com", "app", format!("s-{}", seed % 3));
    let mut end = 1_700_000_000_000 + (seed % 1000) as i64 * 86_400_000;
    let mut first_start = None;
    for n in 0..segments {
        let vid = format!("seg{seed}-{n}");
        let start = end + 1000 * rng.below(170) as i64;
        end = start + 600_000;
        first_start.get_or_insert(start);
        // VOD sends the recording's callback after the recording ended.
        let acr_at = end + 1000 * (1 + rng.below(5) as i64);
        g.callbacks.push(Callback {
            body: obj(
                json!({"EventType":"AddLiveRecordVideoComplete","EventTime":t(acr_at),"VideoId":vid,
                "Status":"success","DomainName":domain,"AppName":app,"StreamName":stream,
                "RecordStartTime":t(start),"RecordEndTime":t(end)}),
            ),
            recoverable: true,
        });
        g.observations.push(recording_observed(&Recording {
            video_id: vid.clone(),
            domain: domain.into(),
            app: app.into(),
            stream: stream.clone(),
            record_start_ms: start,
            record_end_ms: end,
            video_status: Some("Normal".into()),
            created_ms: Some(end),
        }));
        if auto {
            transcode(&mut g, &mut rng, &vid, end, acr_at + 30_000, renditions);
        }
    }
    if composed {
        let cid = format!("comp{seed}");
        let cs_at = end + 181_000 + 1000 * rng.below(60) as i64;
        g.callbacks.push(Callback {
            body: obj(
                json!({"EventType":"LiveRecordVideoComposeStart","EventTime":t(cs_at),"VideoId":cid,
                "Status":"success","DomainName":domain,"AppName":app,"StreamName":stream}),
            ),
            recoverable: true,
        });
        // ListLiveRecordVideo lists the composed video over its session's window, created
        // when the compose started.
        g.observations.push(compose_observed(&Recording {
            video_id: cid.clone(),
            domain: domain.into(),
            app: app.into(),
            stream: stream.clone(),
            record_start_ms: first_start.unwrap_or(end),
            record_end_ms: end,
            video_status: Some("Normal".into()),
            created_ms: Some(cs_at),
        }));
        let fuc_at = cs_at + 120_000;
        let ok = !rng.chance(20);
        let url = format!("http://outin.example.com/{cid}/src.mp4");
        if ok {
            g.callbacks.push(Callback {
                body: obj(
                    json!({"EventType":"FileUploadComplete","EventTime":t(fuc_at),"VideoId":cid,
                    "Status":"success","Size":123_456_789,"FileUrl":url}),
                ),
                recoverable: true,
            });
        }
        // A failed upload sends no callback at all: only the probe can tell.
        g.observations.push(source_observed(&SourceState {
            video_id: cid.clone(),
            success: ok,
            vod_status: if ok { "Normal" } else { "UploadFail" }.into(),
            size: ok.then_some(123_456_789),
            file_url: ok.then_some(url),
            created_ms: cs_at,
        }));
        if ok && auto {
            transcode(&mut g, &mut rng, &cid, cs_at, fuc_at + 30_000, renditions);
        }
    }
    g
}

/// Folds `bodies` in the given order, routing derived stream facts back in; returns the
/// views without per-delivery counters and the (command id -> video) emitted.
fn fold(
    bodies: Vec<Vec<u8>>,
    policy: &Policy,
    rng: &mut Rng,
) -> (BTreeMap<String, Value>, BTreeMap<String, String>) {
    let mut pending = bodies;
    let mut engine = Engine::new(policy.clone());
    let mut commands = BTreeMap::new();
    let mut offset = 0;
    while let Some(body) = pending.pop() {
        let key = routing_key(&body).expect("key");
        offset += 1;
        let out = engine
            .apply(
                &key,
                &body,
                InputPos {
                    partition: 0,
                    offset,
                },
            )
            .expect("apply");
        for c in out.commands {
            let prev = commands.insert(c.command_id.clone(), c.video_id.clone());
            assert!(prev.is_none(), "command {} emitted twice", c.command_id);
        }
        for (_, b) in out.derived {
            let at = rng.below(pending.len() as u64 + 1) as usize;
            pending.insert(at, b);
        }
    }
    let views = engine
        .aggregates()
        .map(|(k, a)| (k.to_string(), facts(aggregate_json(a))))
        .collect();
    (views, commands)
}

/// The facts of a view: everything but the per-delivery counters, the last event time and
/// the RefreshPlayInfo ids (an observed transcode outcome warrants its own harmless refresh).
fn facts(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["events", "duplicates", "last_event_time"] {
            o.remove(k);
        }
    }
    v
}

fn shuffled(mut items: Vec<Vec<u8>>, rng: &mut Rng) -> Vec<Vec<u8>> {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    items
}

fn transcodes(commands: &BTreeMap<String, String>) -> BTreeSet<&String> {
    commands.keys().filter(|c| c.starts_with("tc-")).collect()
}

fn successful_renditions(v: &Value) -> BTreeSet<(String, String)> {
    v["renditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "success")
        .map(|r| {
            (
                r["definition"].as_str().unwrap_or("").to_string(),
                r["format"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn observations_never_change_what_the_callbacks_said(
        seed in any::<u64>(), order in any::<u64>(), segments in 1usize..=6,
        renditions in 1usize..=4, composed in any::<bool>(), auto in any::<bool>(),
        policy in 0usize..POLICIES.len(),
    ) {
        let policy = Policy::parse(POLICIES[policy]).expect("policy");
        let g = generate(seed, segments, renditions, composed, auto);
        let mut rng = Rng::new(order);
        let callbacks: Vec<Vec<u8>> = g.callbacks.iter().map(|c| c.body.clone()).collect();
        let (alone, alone_cmds) = fold(shuffled(callbacks.clone(), &mut rng), &policy, &mut rng);
        // Callbacks plus any subset of the observations, some of them several times.
        let mut mixed = callbacks;
        for o in &g.observations {
            // A failed compose upload sent no callback: its observation is new information,
            // not a duplicate of a callback (the second property covers it).
            if o.windows(10).any(|w| w == b"UploadFail") {
                continue;
            }
            for _ in 0..rng.below(3) {
                mixed.push(o.clone());
            }
        }
        let (with_obs, with_cmds) = fold(shuffled(mixed, &mut rng), &policy, &mut rng);
        prop_assert_eq!(&alone, &with_obs);
        prop_assert_eq!(transcodes(&alone_cmds), transcodes(&with_cmds));
        let others = |c: &BTreeMap<String, String>| c.keys().filter(|k| !k.starts_with("pi-")).cloned().collect::<BTreeSet<_>>();
        prop_assert_eq!(others(&alone_cmds), others(&with_cmds));
    }

    #[test]
    fn observations_restore_what_dropped_callbacks_said(
        seed in any::<u64>(), order in any::<u64>(), segments in 1usize..=6,
        renditions in 1usize..=4, composed in any::<bool>(), auto in any::<bool>(),
        drop_percent in 10u64..=100, policy in 0usize..POLICIES.len(),
    ) {
        let policy = Policy::parse(POLICIES[policy]).expect("policy");
        let g = generate(seed, segments, renditions, composed, auto);
        let mut rng = Rng::new(order);
        // The truth: every callback VOD meant to send, plus what a silent failure says.
        let mut truth_bodies: Vec<Vec<u8>> = g.callbacks.iter().map(|c| c.body.clone()).collect();
        truth_bodies.extend(g.observations.iter().filter(|o| o.windows(10).any(|w| w == b"UploadFail")).cloned());
        let (truth, _) = fold(shuffled(truth_bodies, &mut rng), &policy, &mut rng);
        let mut kept: Vec<Vec<u8>> = g
            .callbacks
            .iter()
            .filter(|c| !(c.recoverable && rng.chance(drop_percent)))
            .map(|c| c.body.clone())
            .collect();
        for o in &g.observations {
            for _ in 0..1 + rng.below(2) {
                kept.push(o.clone());
            }
        }
        let (recovered, cmds) = fold(shuffled(kept, &mut rng), &policy, &mut rng);
        let tc: Vec<&String> = cmds.keys().filter(|c| c.starts_with("tc-")).collect();
        prop_assert_eq!(tc.len(), tc.iter().collect::<BTreeSet<_>>().len());
        for (k, want) in &truth {
            let got = recovered.get(k);
            prop_assert!(got.is_some(), "{} missing", k);
            let got = got.unwrap_or(&Value::Null);
            if k.starts_with("stream:") {
                prop_assert_eq!(&want["sessions"], &got["sessions"], "{}", k);
                continue;
            }
            prop_assert_eq!(&want["status"], &got["status"], "{}", k);
            for f in ["kind", "status", "domain", "app", "stream", "record_start", "record_end", "compose_started_at"] {
                prop_assert_eq!(&want["origin"][f], &got["origin"][f], "{} origin.{}", k, f);
            }
            prop_assert_eq!(&want["source"]["status"], &got["source"]["status"], "{}", k);
            prop_assert_eq!(successful_renditions(want), successful_renditions(got), "{}", k);
            prop_assert_eq!(&want["transcode"]["status"], &got["transcode"]["status"], "{}", k);
            prop_assert_eq!(&want["cover_url"], &got["cover_url"], "{}", k);
        }
    }
}
