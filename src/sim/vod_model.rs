//! VOD's own state as the OpenAPI sees it. A video exists for VOD once VOD emitted its first
//! callback (the delivery machinery calls [`VodModel::apply`] when it starts sending an event),
//! so the worker can observe "not yet uploaded" and "compose failed" like against the real
//! service. Pure; each event id is applied once.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::scenario::{Effect, RenditionOut, ScenarioEvent};
use super::time::fmt_utc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Composing / uploading.
    Pending,
    Ok,
    Failed,
}

#[derive(Debug, Clone)]
pub struct VodVideo {
    pub video_id: String,
    pub stream: String,
    pub created_ms: i64,
    /// The latest event time VOD applied (GetVideoInfo's ModifyTime).
    pub modified_ms: i64,
    /// The recording span: a segment's record start/end, a composed video's session span.
    pub record: Option<(i64, i64)>,
    /// A composed video (LiveRecordVideoComposeStart / FileUploadComplete), not a segment.
    pub composed: bool,
    /// The template group of the latest transcode job (VOD's own or submitted).
    pub template_group: Option<String>,
    pub upload: Upload,
    pub size: u64,
    pub file_url: String,
    pub cover_url: Option<String>,
    /// Snapshot URLs, in the order they were taken.
    pub snapshots: Vec<String>,
    pub jobs_started: u32,
    pub jobs_done: u32,
    pub last_transcode_ok: Option<bool>,
    /// By JobId.
    pub renditions: BTreeMap<String, RenditionOut>,
}

impl VodVideo {
    /// GetVideoInfo's `Video.Status`.
    pub fn status(&self) -> &'static str {
        match self.upload {
            Upload::Failed => "UploadFail",
            Upload::Pending => "Uploading",
            Upload::Ok if self.jobs_started > self.jobs_done => "Transcoding",
            Upload::Ok if self.renditions.values().any(|r| r.plan.success) => "Normal",
            Upload::Ok if self.last_transcode_ok == Some(false) => "TranscodeFail",
            Upload::Ok => "UploadSucc",
        }
    }

    /// Whether SubmitTranscodeJobs is allowed: the source file must be there (VOD refuses
    /// Uploading and UploadFail). A video that is still transcoding is accepted on purpose:
    /// refusing it could mask a second submission by the worker, which the simulator must
    /// count as a duplicate job.
    pub fn transcodable(&self) -> bool {
        self.upload == Upload::Ok
    }

    pub fn duration_s(&self) -> f64 {
        self.record
            .map(|(s, e)| (e - s) as f64 / 1000.0)
            .or_else(|| self.renditions.values().next().map(|r| r.plan.duration_s))
            .unwrap_or(0.0)
    }

    pub fn title(&self) -> String {
        format!("{} {}", self.stream, fmt_utc(self.created_ms))
    }

    /// GetMezzanineInfo's `Mezzanine.Status`: `Uploading`, `Normal` or `UploadFail` (VOD's
    /// other value, `Deleted`, never happens here).
    pub fn mezzanine_status(&self) -> &'static str {
        match self.upload {
            Upload::Pending => "Uploading",
            Upload::Ok => "Normal",
            Upload::Failed => "UploadFail",
        }
    }

    /// The `Video` object of GetVideoInfo and of ListLiveRecordVideo's entries. `Snapshots`
    /// is a JSON string (an array of URLs), as the reading of VOD's answers has it.
    pub fn video_json(&self) -> Value {
        let snapshots = Value::from(self.snapshots.clone()).to_string();
        let mut v = json!({
            "VideoId": self.video_id,
            "Title": self.title(),
            "Status": self.status(),
            "Size": self.size,
            "Duration": self.duration_s(),
            "CoverURL": self.cover_url.clone().unwrap_or_default(),
            "CreationTime": fmt_utc(self.created_ms),
            "ModifyTime": fmt_utc(self.modified_ms),
            "Snapshots": snapshots,
            "StorageLocation": "outin-sim.oss-cn-shanghai.aliyuncs.com",
            "RegionId": "cn-shanghai",
        });
        if let (Some(o), Some(g)) = (v.as_object_mut(), &self.template_group) {
            o.insert("TemplateGroupId".into(), json!(g));
        }
        v
    }

    /// GetMezzanineInfo's `Mezzanine`: the source file (no FileURL or size before the upload
    /// succeeded).
    pub fn mezzanine_json(&self) -> Value {
        let uploaded = self.upload == Upload::Ok;
        let name = self
            .file_url
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("source")
            .to_string();
        let mut m = json!({
            "VideoId": self.video_id,
            "Status": self.mezzanine_status(),
            "CreationTime": fmt_utc(self.created_ms),
            "FileName": name,
            "Duration": format!("{:.3}", self.duration_s()),
            "OutputType": "oss",
        });
        if let Some(o) = m.as_object_mut() {
            if uploaded {
                o.insert("FileURL".into(), json!(self.file_url));
                o.insert("Size".into(), json!(self.size));
                o.insert("Bitrate".into(), json!("2500"));
                o.insert("Fps".into(), json!("25"));
                o.insert("Width".into(), json!(1920));
                o.insert("Height".into(), json!(1080));
            } else {
                o.insert("Size".into(), json!(0));
            }
        }
        m
    }
}

#[derive(Debug, Default)]
pub struct VodModel {
    videos: HashMap<String, VodVideo>,
    applied: HashSet<u64>,
    /// (VideoId, template group) -> jobs started (by VOD itself or by SubmitTranscodeJobs).
    jobs: BTreeMap<(String, String), u32>,
}

impl VodModel {
    pub fn video(&self, id: &str) -> Option<&VodVideo> {
        self.videos.get(id)
    }

    pub fn videos(&self) -> impl Iterator<Item = &VodVideo> {
        self.videos.values()
    }

    pub fn jobs(&self) -> &BTreeMap<(String, String), u32> {
        &self.jobs
    }

    fn entry(&mut self, ev: &ScenarioEvent) -> &mut VodVideo {
        self.videos
            .entry(ev.video_id.clone())
            .or_insert_with(|| VodVideo {
                video_id: ev.video_id.clone(),
                stream: ev.stream.clone(),
                created_ms: ev.time_ms,
                modified_ms: ev.time_ms,
                record: None,
                composed: false,
                template_group: None,
                upload: Upload::Pending,
                size: 0,
                file_url: String::new(),
                cover_url: None,
                snapshots: Vec::new(),
                jobs_started: 0,
                jobs_done: 0,
                last_transcode_ok: None,
                renditions: BTreeMap::new(),
            })
    }

    /// Records that a transcode job started (SubmitTranscodeJobs, or VOD's auto transcode).
    pub fn start_job(&mut self, video_id: &str, group: &str) {
        *self
            .jobs
            .entry((video_id.to_string(), group.to_string()))
            .or_default() += 1;
        if let Some(v) = self.videos.get_mut(video_id) {
            v.jobs_started += 1;
            v.template_group = Some(group.to_string());
        }
    }

    /// Applies what VOD did when it emitted `ev`; repeated ids are ignored (duplicates).
    pub fn apply(&mut self, ev: &ScenarioEvent) {
        if !self.applied.insert(ev.id) {
            return;
        }
        let mut auto_job = None;
        let v = self.entry(ev);
        v.created_ms = v.created_ms.min(ev.time_ms);
        v.modified_ms = v.modified_ms.max(ev.time_ms);
        match &ev.effect {
            Effect::Recorded {
                start_ms,
                end_ms,
                auto_group,
            } => {
                v.record = Some((*start_ms, *end_ms));
                v.upload = Upload::Ok;
                // Recordings carry no size in the callback; VOD knows one (~2.5 Mbps source).
                v.size = ((end_ms - start_ms).max(0) as u64) * 2500 / 8;
                // Recordings carry no file URL in the callback either; VOD stores an m3u8.
                v.file_url = format!(
                    "https://outin-sim.oss-cn-shanghai.aliyuncs.com/record/{}/{}.m3u8",
                    v.stream, v.video_id
                );
                auto_job = *auto_group;
            }
            Effect::ComposeStarted { start_ms, end_ms } => {
                v.composed = true;
                v.record = Some((*start_ms, *end_ms));
            }
            Effect::Uploaded {
                ok,
                size,
                file_url,
                auto_group,
            } => {
                v.composed = true;
                v.upload = if *ok { Upload::Ok } else { Upload::Failed };
                v.size = *size;
                v.file_url = file_url.clone();
                auto_job = *auto_group;
            }
            Effect::Snapshot { cover_url } => {
                v.cover_url = Some(cover_url.clone());
                v.snapshots.push(cover_url.clone());
            }
            Effect::Rendition(r) => {
                v.renditions.insert(r.job_id.clone(), r.clone());
            }
            Effect::TranscodeDone { ok } => {
                v.jobs_done += 1;
                v.last_transcode_ok = Some(*ok);
            }
        }
        if let Some(g) = auto_job {
            self.start_job(&ev.video_id, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Scenario;

    #[test]
    fn statuses_follow_emitted_events_and_duplicates_are_ignored() {
        let sc = Scenario::generate(2, 8, 1_790_000_000_000);
        let mut m = VodModel::default();
        let failed = sc
            .streams
            .iter()
            .flat_map(|s| &s.sessions)
            .filter_map(|s| s.compose.as_ref())
            .find(|c| !c.success)
            .expect("a failed compose");
        let evs: Vec<&ScenarioEvent> = sc
            .events
            .iter()
            .filter(|e| e.video_id == failed.video_id)
            .collect();
        m.apply(evs[0]);
        assert_eq!(
            m.video(&failed.video_id).map(|v| v.status()),
            Some("Uploading")
        );
        for e in &evs {
            m.apply(e);
            m.apply(e);
        }
        let v = m.video(&failed.video_id).expect("known");
        assert_eq!(v.status(), "UploadFail");
        assert!(!v.transcodable());
        // Every event once: flow-1 segments are transcoded exactly once by VOD.
        for e in &sc.events {
            m.apply(e);
            m.apply(e);
        }
        assert!(m.jobs().values().all(|n| *n == 1), "{:?}", m.jobs());
        assert!(m.videos().all(|v| v.status() != "Transcoding"));
    }
}
