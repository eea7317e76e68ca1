//! Order and duplicates do not matter: generated live sessions covering the four seed flows are
//! folded in random orders with random duplicates, derived stream facts routed back in random
//! positions, crashes (restore from snapshots) and re-deliveries of applied positions; the folded
//! state, the commands and the stream sessions must come out identical every time.
use std::collections::{BTreeMap, BTreeSet};

use live2vod::domain::codec::{
    decode_snapshot, encode_snapshot, encode_snapshot_prost, encode_state,
};
use live2vod::domain::event::{parse_event, routing_key};
use live2vod::domain::projector::{
    project, refresh_play_info_command_id, track_compose_command_id, transcode_command_id,
};
use live2vod::domain::time::format_rfc3339;
use live2vod::domain::view::{aggregate_json, snapshot_json};
use live2vod::domain::{Aggregate, Engine, InputPos, Policy};
use live2vod::proto::command::Kind;
use proptest::prelude::*;
use serde_json::{json, Value};

/// A tiny deterministic generator (xorshift64*), seeded by proptest.
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

/// The four flows of seed-live-to-vod.md.
#[derive(Debug, Clone, Copy)]
enum Flow {
    /// 1: record + auto transcode by VOD.
    RecordAutoTranscode,
    /// 2: record, store only, manual transcode.
    RecordStoreManual,
    /// 3a: compose + auto transcode.
    ComposeAutoTranscode,
    /// 3b: compose only, manual transcode.
    ComposeStoreManual,
}

const POLICIES: [&str; 4] = [
    "",
    "[defaults]\nsegments = { action = \"transcode\", template_group = \"tg-rec\" }\ncomposed = { action = \"manual\" }\n",
    "[defaults]\nsegments = { action = \"manual\" }\ncomposed = { action = \"transcode\", template_group = \"tg-comp\", priority = \"3\" }\ncompose_deadline_secs = 900\n",
    "[[rules]]\nstreams = \"live.example.com/app/s-*\"\nsegments = { action = \"manual\" }\ncomposed = { action = \"manual\" }\n",
];

const DEFS: [&str; 6] = ["LD", "SD", "HD", "FD", "OD", "2K"];

#[derive(Debug, Clone)]
struct Scenario {
    flow: Flow,
    sessions: usize,
    segments: usize,
    renditions: usize,
    policy: usize,
    seed: u64,
}

fn obj(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("json")
}

fn t(ms: i64) -> String {
    format_rfc3339(ms)
}

/// Everything VOD, the api and the worker would send for the videos of one video's transcode.
fn transcode_events(
    out: &mut Vec<Vec<u8>>,
    rng: &mut Rng,
    vid: &str,
    at: i64,
    renditions: usize,
    with_play: bool,
) {
    let mut infos = Vec::new();
    let mut any_ok = false;
    for (i, def) in DEFS.iter().take(renditions).enumerate() {
        let ok = !rng.chance(10);
        any_ok |= ok;
        let fmt = if i % 2 == 0 { "m3u8" } else { "mp4" };
        // Ties on purpose: several renditions finish in the same second.
        let done = at + 1000 * rng.below(3) as i64;
        let info = if ok {
            json!({"Status":"success","Definition":def,"Format":fmt,"Bitrate":format!("{}", 400 * (i + 1)),"Duration":"61.5",
                   "Fps":"25","Width":320 * (i + 1),"Height":"180","Size":1000 + i,"Encrypt":false,
                   "FileUrl":format!("http://outin.example.com/{vid}/{def}.{fmt}"),"JobId":format!("job-{vid}-{i}")})
        } else {
            json!({"Status":"fail","Definition":def,"Format":fmt,"ErrorCode":"InvalidParameter","ErrorMessage":"x","JobId":format!("job-{vid}-{i}")})
        };
        let mut flat = info.clone();
        flat["EventType"] = json!("StreamTranscodeComplete");
        flat["EventTime"] = json!(t(done));
        flat["VideoId"] = json!(vid);
        out.push(obj(flat));
        // Sometimes VOD reports a rendition twice with different outcomes at the same time.
        if rng.chance(5) {
            let mut conflict = info.clone();
            conflict["Status"] = json!(if ok { "fail" } else { "success" });
            conflict["EventType"] = json!("StreamTranscodeComplete");
            conflict["EventTime"] = json!(t(done));
            conflict["VideoId"] = json!(vid);
            out.push(obj(conflict));
        }
        infos.push(info);
    }
    let tc_at = at + 5000;
    let tc = obj(
        json!({"EventType":"TranscodeComplete","EventTime":t(tc_at),"VideoId":vid,
        "Status": if any_ok {"success"} else {"fail"},"Extend":"{}","StreamInfos":infos}),
    );
    let tc_key = parse_event(&tc).expect("tc parses").dedup_key;
    out.push(tc);
    out.push(obj(json!({"EventType":"SnapshotComplete","EventTime":t(at + 2000),"VideoId":vid,"Status":"success",
        "CoverUrl":format!("http://outin.example.com/{vid}/cover.jpg"),
        "SnapshotInfos":[{"Status":"success","SnapshotType":"CoverSnapshot","SnapshotCount":"1","JobId":"s1"},
                         {"Status":"success","SnapshotType":"SpriteSnapshot","SnapshotCount":10,"JobId":"s2"}]})));
    if any_ok && with_play {
        let plays: Vec<Value> = DEFS
            .iter()
            .take(renditions)
            .enumerate()
            .map(|(i, d)| {
                let fmt = if i % 2 == 0 { "m3u8" } else { "mp4" };
                json!({"PlayURL":format!("https://cdn.example.com/{vid}/{d}.{fmt}"),"Definition":d,"Format":fmt,"Status":"Normal"})
            })
            .collect();
        out.push(obj(json!({"EventType":"live2vod.PlayInfoResolved","EventTime":t(tc_at + 3000),"VideoId":vid,
            "CommandId":refresh_play_info_command_id(vid, tc_key),"Status":"success","PlayInfos":plays})));
    }
}

fn manual(out: &mut Vec<Vec<u8>>, rng: &mut Rng, vid: &str, at: i64, renditions: usize) {
    let group = if rng.chance(50) {
        "tg-manual"
    } else {
        "tg-rec"
    };
    out.push(obj(
        json!({"EventType":"live2vod.TranscodeRequested","EventTime":t(at),"VideoId":vid,
        "TemplateGroupId":group,"RequestId":format!("req-{}", rng.below(1000)),"Priority":"5"}),
    ));
    if rng.chance(30) {
        // A second operator asks again, for the same group.
        out.push(obj(
            json!({"EventType":"live2vod.TranscodeRequested","EventTime":t(at + 7000),"VideoId":vid,
            "TemplateGroupId":group,"RequestId":"req-again"}),
        ));
    }
    let cmd = transcode_command_id(vid, group);
    if rng.chance(15) {
        out.push(obj(json!({"EventType":"live2vod.TranscodeRejected","EventTime":t(at + 2000),"VideoId":vid,"CommandId":cmd,
            "TemplateGroupId":group,"ErrorCode":"Forbidden.IllegalStatus","ErrorMessage":"m","Status":"fail"})));
    } else {
        out.push(obj(json!({"EventType":"live2vod.TranscodeSubmitted","EventTime":t(at + 2000),"VideoId":vid,"CommandId":cmd,
            "TemplateGroupId":group,"TranscodeTaskId":format!("task-{vid}"),"Status":"success"})));
        let with_play = rng.chance(70);
        transcode_events(out, rng, vid, at + 60_000, renditions, with_play);
    }
}

/// All callbacks and live2vod events of a scenario, each once, in a plausible order.
fn generate(s: &Scenario) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(s.seed);
    let mut out = Vec::new();
    let stream = format!("s-{}", s.seed % 3);
    let base: i64 = 1_700_000_000_000 + (s.seed % 1000) as i64 * 86_400_000;
    let mut clock = base;
    let per_session = s.segments.div_ceil(s.sessions).max(1);
    let mut seg_no = 0;
    for session in 0..s.sessions {
        let mut end = clock;
        for _ in 0..per_session {
            if seg_no >= s.segments {
                break;
            }
            let vid = format!("seg{}-{seg_no}", s.seed);
            seg_no += 1;
            let start = end + 1000 * rng.below(170) as i64; // reconnect within the interrupt timeout
            end = start + 600_000;
            let ok = !rng.chance(5);
            out.push(obj(json!({"EventType":"AddLiveRecordVideoComplete","EventTime":t(end + 3000),"VideoId":vid,
                "Status": if ok {"success"} else {"fail"},"DomainName":"live.example.com","AppName":"app","StreamName":stream,
                "RecordStartTime":t(start),"RecordEndTime":t(end)})));
            if !ok {
                continue;
            }
            match s.flow {
                Flow::RecordAutoTranscode => {
                    let with_play = rng.chance(80);
                    transcode_events(
                        &mut out,
                        &mut rng,
                        &vid,
                        end + 30_000,
                        s.renditions,
                        with_play,
                    )
                }
                Flow::RecordStoreManual if rng.chance(50) => {
                    manual(&mut out, &mut rng, &vid, end + 90_000, s.renditions)
                }
                _ => {}
            }
        }
        if matches!(
            s.flow,
            Flow::ComposeAutoTranscode | Flow::ComposeStoreManual
        ) {
            let cid = format!("comp{}-{session}", s.seed);
            let cs_at = end + 180_000 + 1000 * (1 + rng.below(60) as i64);
            let cs_ok = !rng.chance(5);
            out.push(obj(json!({"EventType":"LiveRecordVideoComposeStart","EventTime":t(cs_at),"VideoId":cid,
                "Status": if cs_ok {"success"} else {"fail"},"DomainName":"live.example.com","AppName":"app","StreamName":stream})));
            if cs_ok {
                let fuc_at = cs_at + 120_000;
                let fuc_ok = !rng.chance(10);
                out.push(obj(json!({"EventType":"FileUploadComplete","EventTime":t(fuc_at),"VideoId":cid,
                    "Status": if fuc_ok {"success"} else {"fail"},"Size":"123456789","FileUrl":format!("http://outin.example.com/{cid}/src.mp4")})));
                out.push(obj(json!({"EventType":"live2vod.VideoInfoObserved","EventTime":t(cs_at + 600_000),"VideoId":cid,
                    "CommandId":track_compose_command_id(&cid),"VideoStatus": if fuc_ok {"UploadSucc"} else {"UploadFail"},"Size":123456789,"Status":"success"})));
                if fuc_ok {
                    match s.flow {
                        Flow::ComposeAutoTranscode => transcode_events(
                            &mut out,
                            &mut rng,
                            &cid,
                            fuc_at + 30_000,
                            s.renditions,
                            true,
                        ),
                        _ if rng.chance(60) => {
                            manual(&mut out, &mut rng, &cid, fuc_at + 300_000, s.renditions)
                        }
                        _ => {}
                    }
                }
            }
        }
        clock = end + 1000 * (181 + rng.below(3000) as i64); // a gap longer than the interrupt timeout
    }
    if rng.chance(30) {
        out.push(obj(json!({"EventType":"SomethingNewFromVod","EventTime":t(clock),"VideoId":format!("seg{}-0", s.seed),"Whatever":[1,2,3]})));
        out.push(obj(json!({"EventType":"AIMediaAuditComplete","EventTime":t(clock),"MediaId":format!("seg{}-0", s.seed),"Status":"success","Data":{"Suggestion":"pass"}})));
    }
    out
}

/// What one run produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Aggregate key -> folded state bytes.
    states: BTreeMap<String, Vec<u8>>,
    /// Aggregate key -> JSON view without per-delivery counters.
    views: BTreeMap<String, Value>,
    /// Command id -> (video, what it does). The `cause` is deliberately left out: when a policy and
    /// an operator want the same (video, group), the one folded first names the cause.
    commands: BTreeMap<String, (String, String)>,
}

fn effect(kind: &Option<Kind>) -> String {
    match kind {
        Some(Kind::SubmitTranscode(s)) => format!("transcode {}", s.template_group_id),
        Some(Kind::TrackCompose(c)) => format!(
            "track {} {}/{}/{}",
            c.deadline_ms, c.domain, c.app, c.stream
        ),
        Some(Kind::RefreshPlayInfo(_)) => "refresh".into(),
        None => "none".into(),
    }
}

fn without_counters(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("duplicates");
        if o.contains_key("sessions") {
            // A stream's event count is per delivery: which facts a video derives depends on order.
            o.remove("events");
        }
    }
    v
}

/// Folds `events` in an order drawn from `seed`, with duplicates, derived facts re-inserted at
/// random positions (sometimes twice), a crash-and-restore in the middle, and re-deliveries of
/// already-applied positions.
fn run(events: &[Vec<u8>], policy: &Policy, seed: u64, duplicates: bool) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut pending: Vec<Vec<u8>> = Vec::with_capacity(events.len() * 2);
    for e in events {
        pending.push(e.clone());
        if duplicates && rng.chance(30) {
            pending.push(e.clone());
        }
    }
    for i in (1..pending.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        pending.swap(i, j);
    }
    let mut engine = Engine::new(policy.clone());
    let mut commands: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut offset = 0i64;
    let crash_at = if duplicates {
        rng.below(pending.len() as u64 + 1) as usize
    } else {
        usize::MAX
    };
    let mut applied = 0usize;
    while let Some(body) = pending.pop() {
        let key = routing_key(&body).expect("routing key");
        offset += 1;
        let pos = InputPos {
            partition: 0,
            offset,
        };
        let out = engine.apply(&key, &body, pos).expect("apply");
        assert!(!out.already_applied);
        assert!(
            out.dirty && engine.snapshot_bytes(&key).is_some(),
            "every applied record changes the snapshot"
        );
        for c in out.commands {
            let prev = commands.insert(c.command_id.clone(), (c.video_id.clone(), effect(&c.kind)));
            assert!(prev.is_none(), "command {} emitted twice", c.command_id);
        }
        for (k, b) in out.derived {
            assert_eq!(routing_key(&b).expect("fact key"), k);
            let copies = if duplicates && rng.chance(20) { 2 } else { 1 };
            for _ in 0..copies {
                let at = rng.below(pending.len() as u64 + 1) as usize;
                pending.insert(at, b.clone());
            }
        }
        if duplicates && rng.chance(10) {
            // Re-delivery after a crash: the same record at the same position changes nothing.
            let before = engine.snapshot_bytes(&key);
            let again = engine.apply(&key, &body, pos).expect("re-apply");
            assert!(again.already_applied && !again.dirty && again.commands.is_empty());
            assert!(again.derived.is_empty());
            assert_eq!(engine.snapshot_bytes(&key), before);
        }
        applied += 1;
        if applied == crash_at {
            // Crash: a new engine restored from the snapshots of every aggregate.
            let mut restored = Engine::new(policy.clone());
            for (k, a) in engine.aggregates() {
                restored.restore(k, &encode_snapshot(a)).expect("restore");
            }
            engine = restored;
        }
    }
    let mut states = BTreeMap::new();
    let mut views = BTreeMap::new();
    for (k, a) in engine.aggregates() {
        states.insert(k.to_string(), encode_state(a));
        views.insert(k.to_string(), without_counters(aggregate_json(a)));
        if let Aggregate::Video(v) = a {
            // Monotone projector: what was emitted over this order is exactly what the final
            // state warrants.
            let warranted: BTreeSet<String> = project(v, policy)
                .commands
                .into_iter()
                .map(|w| w.command.command_id)
                .collect();
            let emitted: BTreeSet<String> = commands
                .iter()
                .filter(|(_, (vid, _))| vid == k)
                .map(|(id, _)| id.clone())
                .collect();
            assert_eq!(warranted, emitted, "video {k}");
        }
    }
    Outcome {
        states,
        views,
        commands,
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![
            Just(Flow::RecordAutoTranscode),
            Just(Flow::RecordStoreManual),
            Just(Flow::ComposeAutoTranscode),
            Just(Flow::ComposeStoreManual)
        ],
        1usize..=2,
        prop_oneof![6 => 1usize..=4, 3 => 5usize..=12, 1 => 13usize..=40],
        1usize..=6,
        0usize..POLICIES.len(),
        any::<u64>(),
    )
        .prop_map(
            |(flow, sessions, segments, renditions, policy, seed)| Scenario {
                flow,
                sessions: sessions.min(segments),
                segments,
                renditions,
                policy,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn any_order_with_any_duplicates_folds_to_the_same_state_and_commands(s in scenario(), order in any::<u64>()) {
        let policy = Policy::parse(POLICIES[s.policy]).expect("policy");
        let events = generate(&s);
        let reference = run(&events, &policy, s.seed ^ 0x9e37_79b9_7f4a_7c15, false);
        let shuffled = run(&events, &policy, order, true);
        // Views first: a difference there is readable; then the exact bytes.
        prop_assert_eq!(&reference.views, &shuffled.views);
        prop_assert_eq!(&reference.commands, &shuffled.commands);
        prop_assert!(reference.states == shuffled.states, "folded state bytes differ");
        // The stream saw every segment of the scenario.
        let streams: Vec<&Value> = reference.views.iter().filter(|(k, _)| k.starts_with("stream:")).map(|(_, v)| v).collect();
        let segments_in_sessions: usize = streams.iter()
            .flat_map(|v| v["sessions"].as_array().cloned().unwrap_or_default())
            .map(|x| x["segments"].as_array().map_or(0, Vec::len))
            .sum();
        prop_assert_eq!(segments_in_sessions, s.segments);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn snapshots_round_trip_byte_identical(s in scenario(), order in any::<u64>()) {
        let policy = Policy::parse(POLICIES[s.policy]).expect("policy");
        let events = generate(&s);
        let mut engine = Engine::new(policy);
        for (i, e) in events.iter().enumerate() {
            let key = routing_key(e).expect("key");
            let out = engine.apply(&key, e, InputPos { partition: (order % 7) as i32, offset: i as i64 }).expect("apply");
            for (k, b) in out.derived {
                engine.apply(&k, &b, InputPos { partition: 1000, offset: i as i64 }).expect("fact");
            }
        }
        for (k, a) in engine.aggregates() {
            let bytes = encode_snapshot(a);
            prop_assert_eq!(&bytes, &encode_snapshot_prost(a), "direct encoder differs from prost");
            let decoded = decode_snapshot(&bytes).expect("decode");
            prop_assert_eq!(&decoded, a);
            prop_assert_eq!(encode_snapshot(&decoded), bytes.clone());
            // The api shapes its view from the decoded protobuf, not from a rebuilt aggregate:
            // it must be the view of the aggregate itself.
            let (view_key, view) = snapshot_json(&bytes).expect("view");
            prop_assert_eq!(view_key.as_str(), k);
            prop_assert_eq!(view, aggregate_json(a));
            prop_assert_eq!(engine.snapshot_bytes(k), Some(bytes));
        }
    }
}
