//! Ground truth: the final api view the system must converge to, derived from the scenario
//! alone (pure). Only what the scenario determines is here: statuses, origins, renditions
//! (definition, format, status), sessions and compose outcomes, and how many transcode jobs
//! each (VideoId, template group) must see.
use std::collections::{BTreeMap, BTreeSet};

use super::scenario::{
    Flow, Scenario, TranscodePlan, TG_COMPOSE, TG_COMPOSE_LATER, TG_MANUAL, TG_RECORD,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RenditionTruth {
    pub definition: String,
    pub format: String,
    /// `success` / `fail`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTruth {
    pub video_id: String,
    pub flow: Flow,
    /// `recorded|composing|source_ready|transcoding|ready|failed` (docs/ARCHITECTURE.md).
    pub status: String,
    /// `live_segment` / `composed`.
    pub origin_kind: String,
    pub domain: String,
    pub app: String,
    pub stream: String,
    /// Sorted.
    pub renditions: Vec<RenditionTruth>,
    /// Whether the video has a cover: every transcode VOD runs takes a snapshot first
    /// (SnapshotComplete), and only a transcoded video has one. Its URL is the job's, which
    /// for operator-submitted jobs is chosen at run time: verify checks presence.
    pub cover: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTruth {
    /// VideoIds in record order.
    pub segments: Vec<String>,
    pub composed_video_id: Option<String>,
    /// `none` / `success` / `fail`.
    pub compose_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTruth {
    pub domain: String,
    pub app: String,
    pub stream: String,
    pub sessions: Vec<SessionTruth>,
}

impl StreamTruth {
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.domain, self.app, self.stream)
    }
}

/// The expected final view, plus what VOD lost (filled in by the simulator as delivery goes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    pub videos: BTreeMap<String, VideoTruth>,
    /// By `domain/app/stream`.
    pub streams: BTreeMap<String, StreamTruth>,
    /// (VideoId, template group) -> transcode jobs that must be started: 1 where a transcode
    /// is expected; every other pair must see 0.
    pub expected_jobs: BTreeMap<(String, String), u32>,
    /// VideoIds one of whose callbacks VOD dropped after 3 failed attempts: their final view
    /// is not determined by the scenario any more, so verify skips them.
    pub lost_videos: BTreeSet<String>,
    /// Streams one of whose segment/compose callbacks was dropped (skipped likewise).
    pub lost_streams: BTreeSet<String>,
    /// With `--require-recovered`: the videos (`video <id>`) and streams (`stream <key>`)
    /// that were affected by undelivered callbacks and are compared all the same (see
    /// [`Truth::requiring_recovery`]).
    pub must_recover: BTreeSet<String>,
}

fn renditions_of(plan: &TranscodePlan) -> Vec<RenditionTruth> {
    let mut r: Vec<RenditionTruth> = plan
        .renditions
        .iter()
        .map(|p| RenditionTruth {
            definition: p.definition.to_string(),
            format: p.format.to_string(),
            status: if p.success { "success" } else { "fail" }.to_string(),
        })
        .collect();
    r.sort();
    r
}

fn transcoded_status(plan: &TranscodePlan) -> &'static str {
    if plan.success() {
        "ready"
    } else {
        "failed"
    }
}

impl Truth {
    /// The truth of a scenario in which VOD delivered every callback.
    pub fn of(scenario: &Scenario) -> Truth {
        let mut t = Truth::default();
        for s in &scenario.streams {
            let mut sessions = Vec::new();
            for sess in &s.sessions {
                for seg in &sess.segments {
                    // Flow 1: VOD transcodes with tg-record; flow 2: the operator submits
                    // tg-manual; compose flows: segments are stored only.
                    let group = match s.flow {
                        Flow::RecordTranscode => Some(TG_RECORD),
                        Flow::StoreOnly => Some(TG_MANUAL),
                        Flow::ComposeTranscode | Flow::ComposeOnly => None,
                    };
                    let (status, renditions) = match group {
                        Some(g) => {
                            t.expected_jobs
                                .insert((seg.video_id.clone(), g.to_string()), 1);
                            (
                                transcoded_status(&seg.transcode),
                                renditions_of(&seg.transcode),
                            )
                        }
                        None => ("recorded", Vec::new()),
                    };
                    t.videos.insert(
                        seg.video_id.clone(),
                        VideoTruth {
                            video_id: seg.video_id.clone(),
                            flow: s.flow,
                            status: status.to_string(),
                            origin_kind: "live_segment".to_string(),
                            domain: s.domain.clone(),
                            app: s.app.clone(),
                            stream: s.stream.clone(),
                            renditions,
                            cover: group.is_some(),
                        },
                    );
                }
                let compose_status = match &sess.compose {
                    None => "none",
                    Some(c) if c.success => "success",
                    Some(_) => "fail",
                };
                if let Some(c) = &sess.compose {
                    let (status, renditions) = if c.success {
                        let g = if s.flow == Flow::ComposeTranscode {
                            TG_COMPOSE
                        } else {
                            TG_COMPOSE_LATER
                        };
                        t.expected_jobs
                            .insert((c.video_id.clone(), g.to_string()), 1);
                        (transcoded_status(&c.transcode), renditions_of(&c.transcode))
                    } else {
                        ("failed", Vec::new())
                    };
                    t.videos.insert(
                        c.video_id.clone(),
                        VideoTruth {
                            video_id: c.video_id.clone(),
                            flow: s.flow,
                            status: status.to_string(),
                            origin_kind: "composed".to_string(),
                            domain: s.domain.clone(),
                            app: s.app.clone(),
                            stream: s.stream.clone(),
                            renditions,
                            cover: c.success,
                        },
                    );
                }
                sessions.push(SessionTruth {
                    segments: sess.segments.iter().map(|g| g.video_id.clone()).collect(),
                    composed_video_id: sess.compose.as_ref().map(|c| c.video_id.clone()),
                    compose_status: compose_status.to_string(),
                });
            }
            t.streams.insert(
                s.key(),
                StreamTruth {
                    domain: s.domain.clone(),
                    app: s.app.clone(),
                    stream: s.stream.clone(),
                    sessions,
                },
            );
        }
        t
    }

    /// The same truth, but what undelivered callbacks affected is compared instead of skipped:
    /// the api must show everything VOD did, whether its callback arrived or not.
    pub fn requiring_recovery(mut self) -> Truth {
        let videos = std::mem::take(&mut self.lost_videos);
        let streams = std::mem::take(&mut self.lost_streams);
        self.must_recover = videos
            .into_iter()
            .map(|v| format!("video {v}"))
            .chain(streams.into_iter().map(|s| format!("stream {s}")))
            .collect();
        self
    }

    /// Marks a video (and, for segment/compose events, its stream) as affected by a lost
    /// callback.
    pub fn mark_lost(&mut self, video_id: &str, stream: &str, affects_stream: bool) {
        self.lost_videos.insert(video_id.to_string());
        if affects_stream {
            self.lost_streams.insert(stream.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_follows_the_flow_rules() {
        let sc = Scenario::generate(11, 8, 1_790_000_000_000);
        let t = Truth::of(&sc);
        assert_eq!(t.streams.len(), 4);
        for s in &sc.streams {
            let st = &t.streams[&s.key()];
            for (sess, tr) in s.sessions.iter().zip(&st.sessions) {
                for g in &sess.segments {
                    let v = &t.videos[&g.video_id];
                    assert_eq!(v.origin_kind, "live_segment");
                    match s.flow {
                        Flow::RecordTranscode | Flow::StoreOnly => {
                            let want = if g.transcode.success() {
                                "ready"
                            } else {
                                "failed"
                            };
                            assert_eq!(v.status, want);
                            assert_eq!(v.renditions.len(), g.transcode.renditions.len());
                        }
                        _ => {
                            assert_eq!(v.status, "recorded");
                            assert!(v.renditions.is_empty());
                        }
                    }
                }
                match &sess.compose {
                    Some(c) => {
                        let v = &t.videos[&c.video_id];
                        assert_eq!(v.origin_kind, "composed");
                        if !c.success {
                            assert_eq!(v.status, "failed");
                            assert_eq!(tr.compose_status, "fail");
                        } else {
                            assert_eq!(tr.compose_status, "success");
                        }
                    }
                    None => assert_eq!(tr.compose_status, "none"),
                }
            }
        }
        // One expected job per transcoded video, never for compose-flow segments.
        for ((vid, g), n) in &t.expected_jobs {
            assert_eq!(*n, 1);
            let v = &t.videos[vid];
            let want = match (v.flow, v.origin_kind.as_str()) {
                (Flow::RecordTranscode, _) => TG_RECORD,
                (Flow::StoreOnly, _) => TG_MANUAL,
                (Flow::ComposeTranscode, "composed") => TG_COMPOSE,
                (Flow::ComposeOnly, "composed") => TG_COMPOSE_LATER,
                other => panic!("unexpected job for {other:?}"),
            };
            assert_eq!(g, want);
        }
    }
}
