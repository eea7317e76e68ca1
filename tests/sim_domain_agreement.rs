//! The simulator's ground truth agrees with the domain engine: every scenario callback
//! (shuffled, some twice) is folded by `domain::Engine` under the simulator's policy, the
//! worker's and the operator's parts are played in-process (SubmitTranscode -> VOD's transcode
//! callbacks, TrackCompose -> VideoInfoObserved, store-* segments -> TranscodeRequested), and the
//! api views must equal the truth, with one transcode job per expected (video, group).
//! A disagreement means either the truth or the fold misreads VOD: both are worth a look.
use std::collections::{BTreeMap, VecDeque};

use live2vod::domain::{view, Engine, InputPos, Policy};
use live2vod::proto::command::Kind;
use live2vod::sim::scenario::{transcode_events, Flow, Scenario, VideoCtx, TG_MANUAL};
use live2vod::sim::time::fmt_utc;
use live2vod::sim::verify::{diff_jobs, diff_stream, diff_video, Diff};
use live2vod::sim::vod_model::VodModel;
use live2vod::sim::{policy_toml, Truth};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const BASE: i64 = 1_790_000_000_000;

fn fold_scenario(seed: u64, sessions: usize) -> Vec<Diff> {
    let sc = Scenario::generate(seed, sessions, BASE);
    let truth = Truth::of(&sc);
    let mut engine = Engine::new(Policy::parse(&policy_toml()).expect("the sim's policy parses"));
    let mut vod = VodModel::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let order = sc.delivery_order(&mut rng, 600_000, 0.2);

    // Records in topic order; scenario events are emitted by VOD as they are delivered.
    let mut topic: VecDeque<(String, Vec<u8>, Option<usize>)> = order
        .iter()
        .map(|(i, _)| {
            let e = &sc.events[*i];
            (e.video_id.clone(), e.body.clone().into_bytes(), Some(*i))
        })
        .collect();
    let mut offset = 0i64;
    let mut next_event_id = sc.events.len() as u64;
    // Jobs as VOD counts them: SessionId (the command id) de-duplicates.
    let mut sessions_seen = BTreeMap::new();
    let now = fmt_utc(BASE);
    while let Some((key, body, scenario_index)) = topic.pop_front() {
        if let Some(i) = scenario_index {
            vod.apply(&sc.events[i]);
        }
        offset += 1;
        let applied = engine
            .apply(
                &key,
                &body,
                InputPos {
                    partition: 0,
                    offset,
                },
            )
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        for (k, b) in applied.derived {
            topic.push_back((k, b, None));
        }
        let v: Value = serde_json::from_slice(&body).expect("JSON");
        if v["EventType"] == "AddLiveRecordVideoComplete"
            && v["StreamName"]
                .as_str()
                .is_some_and(|s| s.starts_with("store-"))
        {
            // The operator (the api would turn the request into this event).
            let req = json!({"EventType": "live2vod.TranscodeRequested", "EventTime": now,
                "VideoId": key, "TemplateGroupId": TG_MANUAL, "RequestId": format!("op-{offset}")});
            topic.push_back((key.clone(), req.to_string().into_bytes(), None));
        }
        for c in applied.commands {
            match c.kind {
                Some(Kind::SubmitTranscode(st)) => {
                    if sessions_seen.insert(c.command_id.clone(), ()).is_some() {
                        continue;
                    }
                    vod.start_job(&c.video_id, &st.template_group_id);
                    let ok = json!({"EventType": "live2vod.TranscodeSubmitted", "EventTime": now,
                        "VideoId": c.video_id, "CommandId": c.command_id,
                        "TemplateGroupId": st.template_group_id, "TranscodeTaskId": "task",
                        "Status": "success"});
                    topic.push_back((c.video_id.clone(), ok.to_string().into_bytes(), None));
                    let video = vod.video(&c.video_id).expect("known to VOD").clone();
                    let flow = sc
                        .streams
                        .iter()
                        .find(|s| s.key() == video.stream)
                        .map_or(Flow::StoreOnly, |s| s.flow);
                    let plan = sc.transcode_plan(&c.video_id).expect("planned").clone();
                    let ctx = VideoCtx {
                        video_id: &c.video_id,
                        stream: &video.stream,
                        flow,
                    };
                    for mut e in transcode_events(&mut rng, &ctx, &plan, BASE, 1000, None) {
                        e.id = next_event_id;
                        next_event_id += 1;
                        vod.apply(&e);
                        topic.push_back((e.video_id.clone(), e.body.into_bytes(), None));
                    }
                }
                Some(Kind::TrackCompose(_)) => {
                    let status = vod.video(&c.video_id).map_or("Uploading", |v| v.status());
                    let seen = json!({"EventType": "live2vod.VideoInfoObserved", "EventTime": now,
                        "VideoId": c.video_id, "CommandId": c.command_id,
                        "VideoStatus": status, "Status": "success"});
                    topic.push_back((c.video_id.clone(), seen.to_string().into_bytes(), None));
                }
                _ => {}
            }
        }
    }

    let mut diffs = Vec::new();
    for t in truth.videos.values() {
        match engine.video(&t.video_id) {
            Some(v) => diffs.extend(diff_video(t, &view::video_json(v))),
            None => diffs.push(Diff {
                subject: format!("video {}", t.video_id),
                field: "aggregate".into(),
                expected: "present".into(),
                actual: "absent".into(),
            }),
        }
    }
    for t in truth.streams.values() {
        match engine.stream(&format!("stream:{}", t.key())) {
            Some(s) => diffs.extend(diff_stream(t, &view::stream_json(s))),
            None => diffs.push(Diff {
                subject: format!("stream {}", t.key()),
                field: "aggregate".into(),
                expected: "present".into(),
                actual: "absent".into(),
            }),
        }
    }
    diffs.extend(diff_jobs(&truth, vod.jobs()).2);
    diffs
}

#[test]
fn the_domain_engine_folds_every_scenario_to_the_simulators_truth() {
    for seed in 1..=6 {
        let diffs = fold_scenario(seed, 12);
        let text: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        assert!(diffs.is_empty(), "seed {seed}:\n{}", text.join("\n"));
    }
}
