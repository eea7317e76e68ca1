//! Polls live2vod's api until its view matches the ground truth or a timeout passes, and says
//! precisely what differs. Compares only what the truth determines (statuses, origins,
//! renditions' definition/format/status, whether a cover is there, sessions, compose outcomes) and, when the simulator's
//! job counts are available, that every (VideoId, template group) saw exactly the expected
//! number of transcode jobs (a second job is always an error).
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::truth::{RenditionTruth, StreamTruth, Truth, VideoTruth};

/// Jobs started per (VideoId, template group).
pub type JobCounts = BTreeMap<(String, String), u32>;

/// One difference between the truth and the api.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// `video <id> (<stream> segment|composed)`, `stream <key>`, `jobs <id> <group>`.
    pub subject: String,
    pub field: String,
    pub expected: String,
    pub actual: String,
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, actual {}",
            self.subject, self.field, self.expected, self.actual
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// True when nothing differs (skipped entities aside).
    pub ok: bool,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub polls: u32,
    pub videos_checked: usize,
    pub videos_matching: usize,
    pub streams_checked: usize,
    pub streams_matching: usize,
    /// Pairs whose job count was checked, and those that matched.
    pub jobs_checked: usize,
    pub jobs_matching: usize,
    /// Videos and streams not compared because VOD lost one of their callbacks.
    pub skipped_lost: Vec<String>,
    /// Videos and streams affected by undelivered callbacks that were compared all the same
    /// (`--require-recovered`): the api had to recover them.
    pub must_recover: Vec<String>,
    pub diffs: Vec<Diff>,
}

impl VerifyReport {
    /// Any (VideoId, group) with more than one transcode job.
    pub fn duplicate_jobs(&self) -> Vec<&Diff> {
        self.diffs
            .iter()
            .filter(|d| d.field == "transcode jobs" && d.actual.parse::<u32>().is_ok_and(|n| n > 1))
            .collect()
    }
}

const MAX_SHOWN: usize = 60;

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok {
            writeln!(
                f,
                "verify: CONVERGED after {:.1} s ({} polls)",
                self.elapsed.as_secs_f64(),
                self.polls
            )?;
        } else {
            writeln!(
                f,
                "verify: {} DIFFERENCES after {:.1} s ({} polls{})",
                self.diffs.len(),
                self.elapsed.as_secs_f64(),
                self.polls,
                if self.timed_out { ", timed out" } else { "" }
            )?;
            for d in self.diffs.iter().take(MAX_SHOWN) {
                writeln!(f, "  {d}")?;
            }
            if self.diffs.len() > MAX_SHOWN {
                writeln!(f, "  ... and {} more", self.diffs.len() - MAX_SHOWN)?;
            }
        }
        if !self.must_recover.is_empty() {
            writeln!(
                f,
                "  required although VOD never delivered one of their callbacks: {}",
                self.must_recover.len()
            )?;
        }
        if !self.skipped_lost.is_empty() {
            writeln!(
                f,
                "  skipped (a callback was lost by VOD): {}",
                self.skipped_lost.join(", ")
            )?;
        }
        write!(
            f,
            "summary: videos {}/{} match, streams {}/{} match, transcode jobs {}/{} as expected, {} skipped, {} duplicate jobs",
            self.videos_matching,
            self.videos_checked,
            self.streams_matching,
            self.streams_checked,
            self.jobs_matching,
            self.jobs_checked,
            self.skipped_lost.len(),
            self.duplicate_jobs().len()
        )
    }
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn show(v: Option<&str>) -> String {
    v.map_or_else(|| "(absent)".to_string(), q)
}

fn video_subject(t: &VideoTruth) -> String {
    let kind = if t.origin_kind == "composed" {
        "composed"
    } else {
        "segment"
    };
    format!("video {} ({} {kind})", t.video_id, t.stream)
}

/// Compares one video's api JSON with its truth.
pub fn diff_video(t: &VideoTruth, actual: &Value) -> Vec<Diff> {
    let subject = video_subject(t);
    let mut out = Vec::new();
    let mut check = |field: &str, expected: &str, got: Option<&str>| {
        if got != Some(expected) {
            out.push(Diff {
                subject: subject.clone(),
                field: field.to_string(),
                expected: q(expected),
                actual: show(got),
            });
        }
    };
    check("status", &t.status, str_at(actual, &["status"]));
    check(
        "origin.kind",
        &t.origin_kind,
        str_at(actual, &["origin", "kind"]),
    );
    check(
        "origin.domain",
        &t.domain,
        str_at(actual, &["origin", "domain"]),
    );
    check("origin.app", &t.app, str_at(actual, &["origin", "app"]));
    let cover = str_at(actual, &["cover_url"]).is_some_and(|u| !u.is_empty());
    check(
        "cover_url",
        if t.cover { "present" } else { "absent" },
        Some(if cover { "present" } else { "absent" }),
    );
    check(
        "origin.stream",
        &t.stream,
        str_at(actual, &["origin", "stream"]),
    );
    let mut got: Vec<RenditionTruth> = actual
        .get("renditions")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| RenditionTruth {
                    definition: r
                        .get("definition")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    format: r
                        .get("format")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    status: r
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    got.sort();
    if got != t.renditions {
        let fmt = |rs: &[RenditionTruth]| {
            let v: Vec<String> = rs
                .iter()
                .map(|r| format!("{}/{}:{}", r.definition, r.format, r.status))
                .collect();
            format!("[{}]", v.join(" "))
        };
        out.push(Diff {
            subject,
            field: "renditions".to_string(),
            expected: fmt(&t.renditions),
            actual: fmt(&got),
        });
    }
    out
}

/// Compares one stream's api JSON with its truth.
pub fn diff_stream(t: &StreamTruth, actual: &Value) -> Vec<Diff> {
    let subject = format!("stream {}", t.key());
    let mut out = Vec::new();
    let sessions = actual
        .get("sessions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if sessions.len() != t.sessions.len() {
        out.push(Diff {
            subject: subject.clone(),
            field: "sessions".to_string(),
            expected: format!("{} sessions", t.sessions.len()),
            actual: format!("{} sessions", sessions.len()),
        });
    }
    for (i, (want, got)) in t.sessions.iter().zip(&sessions).enumerate() {
        let segs: Vec<String> = got
            .get("segments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        if segs != want.segments {
            out.push(Diff {
                subject: subject.clone(),
                field: format!("sessions[{i}].segments"),
                expected: format!("{:?}", want.segments),
                actual: format!("{segs:?}"),
            });
        }
        let composed = got.get("composed_video_id").and_then(Value::as_str);
        if composed != want.composed_video_id.as_deref() {
            out.push(Diff {
                subject: subject.clone(),
                field: format!("sessions[{i}].composed_video_id"),
                expected: want.composed_video_id.as_deref().map_or("null".into(), q),
                actual: composed.map_or("null".into(), q),
            });
        }
        let status = got.get("compose_status").and_then(Value::as_str);
        if status != Some(want.compose_status.as_str()) {
            out.push(Diff {
                subject: subject.clone(),
                field: format!("sessions[{i}].compose_status"),
                expected: q(&want.compose_status),
                actual: show(status),
            });
        }
    }
    out
}

/// Compares job counts: more than one job for a pair is always a difference; otherwise the
/// count must equal the expected one unless the video was affected by a lost callback.
pub fn diff_jobs(truth: &Truth, jobs: &JobCounts) -> (usize, usize, Vec<Diff>) {
    let pairs: BTreeSet<&(String, String)> =
        truth.expected_jobs.keys().chain(jobs.keys()).collect();
    let (mut checked, mut matching, mut out) = (0, 0, Vec::new());
    for pair in pairs {
        let want = truth.expected_jobs.get(pair).copied().unwrap_or(0);
        let got = jobs.get(pair).copied().unwrap_or(0);
        let lost = truth.lost_videos.contains(&pair.0);
        if lost && got <= 1 {
            continue;
        }
        checked += 1;
        if got == want {
            matching += 1;
        } else {
            out.push(Diff {
                subject: format!("jobs {} {}", pair.0, pair.1),
                field: "transcode jobs".to_string(),
                expected: want.to_string(),
                actual: got.to_string(),
            });
        }
    }
    (checked, matching, out)
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Value, FetchError> {
    let r = client.get(url).send().await?;
    let status = r.status().as_u16();
    if status != 200 {
        return Err(FetchError::Status(status));
    }
    let bytes = r.bytes().await?;
    Ok(serde_json::from_slice(&bytes)?)
}

async fn compare_once(
    client: &reqwest::Client,
    api: &str,
    truth: &Truth,
    jobs: Option<&JobCounts>,
) -> VerifyReport {
    let mut report = VerifyReport::default();
    let videos: Vec<&VideoTruth> = truth
        .videos
        .values()
        .filter(|v| !truth.lost_videos.contains(&v.video_id))
        .collect();
    let streams: Vec<&StreamTruth> = truth
        .streams
        .values()
        .filter(|s| !truth.lost_streams.contains(&s.key()))
        .collect();
    report.skipped_lost = truth
        .lost_videos
        .iter()
        .map(|v| format!("video {v}"))
        .chain(truth.lost_streams.iter().map(|s| format!("stream {s}")))
        .collect();
    report.must_recover = truth.must_recover.iter().cloned().collect();
    // Owned inputs per request: futures borrowing through closures would not be `Send`, and
    // callers spawn verify.
    let video_requests: Vec<_> = videos
        .iter()
        .map(|t| {
            let (t, client) = ((*t).clone(), client.clone());
            let url = format!("{api}/v1/videos/{}", t.video_id);
            async move {
                match fetch(&client, &url).await {
                    Ok(v) => diff_video(&t, &v),
                    Err(e) => vec![Diff {
                        subject: video_subject(&t),
                        field: "GET".to_string(),
                        expected: "200".to_string(),
                        actual: e.to_string(),
                    }],
                }
            }
        })
        .collect();
    let video_diffs: Vec<Vec<Diff>> = futures::stream::iter(video_requests)
        .buffered(8)
        .collect()
        .await;
    report.videos_checked = videos.len();
    report.videos_matching = video_diffs.iter().filter(|d| d.is_empty()).count();
    let stream_requests: Vec<_> = streams
        .iter()
        .map(|t| {
            let (t, client) = ((*t).clone(), client.clone());
            let url = format!("{api}/v1/streams/{}/{}/{}", t.domain, t.app, t.stream);
            async move {
                match fetch(&client, &url).await {
                    Ok(v) => diff_stream(&t, &v),
                    Err(e) => vec![Diff {
                        subject: format!("stream {}", t.key()),
                        field: "GET".to_string(),
                        expected: "200".to_string(),
                        actual: e.to_string(),
                    }],
                }
            }
        })
        .collect();
    let stream_diffs: Vec<Vec<Diff>> = futures::stream::iter(stream_requests)
        .buffered(4)
        .collect()
        .await;
    report.streams_checked = streams.len();
    report.streams_matching = stream_diffs.iter().filter(|d| d.is_empty()).count();
    report.diffs = video_diffs
        .into_iter()
        .chain(stream_diffs)
        .flatten()
        .collect();
    // Grouped by stream, so one stream's problems read together.
    report.diffs.sort_by(|a, b| {
        let key = |d: &Diff| {
            d.subject
                .split_once('(')
                .map(|(_, r)| r.to_string())
                .unwrap_or_else(|| d.subject.clone())
        };
        key(a).cmp(&key(b)).then(a.subject.cmp(&b.subject))
    });
    if let Some(jobs) = jobs {
        let (c, m, d) = diff_jobs(truth, jobs);
        report.jobs_checked = c;
        report.jobs_matching = m;
        report.diffs.extend(d);
    }
    report.ok = report.diffs.is_empty();
    report
}

/// Polls until the api matches what `source` returns (re-read each poll: losses and job
/// counts change while the system runs) or `timeout` passes. `source` gives the truth and,
/// when known, the jobs started per (VideoId, group).
pub async fn verify_with<F>(api_url: &str, timeout: Duration, source: F) -> VerifyReport
where
    F: Fn() -> (Truth, Option<JobCounts>),
{
    let api = api_url.trim_end_matches('/');
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return VerifyReport {
                diffs: vec![Diff {
                    subject: "verify".into(),
                    field: "http client".into(),
                    expected: "built".into(),
                    actual: e.to_string(),
                }],
                ..Default::default()
            }
        }
    };
    let start = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        let (truth, jobs) = source();
        let mut report = compare_once(&client, api, &truth, jobs.as_ref()).await;
        report.polls = polls;
        report.elapsed = start.elapsed();
        // A duplicate job never heals: no point in waiting for it.
        if report.ok || !report.duplicate_jobs().is_empty() {
            return report;
        }
        if start.elapsed() >= timeout {
            report.timed_out = true;
            return report;
        }
        tracing::debug!(diffs = report.diffs.len(), "verify: not converged yet");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// Polls `api_url` until it matches `truth` (without job counts) or `timeout` passes.
pub async fn verify(api_url: &str, truth: &Truth, timeout: Duration) -> VerifyReport {
    verify_with(api_url, timeout, || (truth.clone(), None)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Flow;
    use serde_json::json;

    fn video() -> VideoTruth {
        VideoTruth {
            video_id: "v1".into(),
            flow: Flow::RecordTranscode,
            status: "ready".into(),
            origin_kind: "live_segment".into(),
            domain: "d".into(),
            app: "a".into(),
            stream: "auto-1".into(),
            renditions: vec![RenditionTruth {
                definition: "HD".into(),
                format: "m3u8".into(),
                status: "success".into(),
            }],
            cover: true,
        }
    }

    #[test]
    fn matching_video_has_no_diff_and_each_field_is_caught() {
        let good = json!({"video_id":"v1","status":"ready",
            "origin":{"kind":"live_segment","domain":"d","app":"a","stream":"auto-1"},
            "cover_url":"https://cdn/v1/cover.jpg",
            "renditions":[{"definition":"HD","format":"m3u8","status":"success","file_url":"x"}]});
        assert!(diff_video(&video(), &good).is_empty());
        let mut bad = good.clone();
        bad["status"] = json!("transcoding");
        bad["renditions"][0]["status"] = json!("fail");
        let d = diff_video(&video(), &bad);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0]
            .to_string()
            .contains("status: expected \"ready\", actual \"transcoding\""));
        // A cover that never came (a lost SnapshotComplete) is a difference too.
        let mut uncovered = good.clone();
        uncovered["cover_url"] = Value::Null;
        let d = diff_video(&video(), &uncovered);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0]
            .to_string()
            .contains("cover_url: expected \"present\", actual \"absent\""));
    }

    #[test]
    fn a_second_job_is_a_duplicate_even_for_a_lost_video() {
        let mut t = Truth::default();
        t.expected_jobs.insert(("v1".into(), "g".into()), 1);
        t.lost_videos.insert("v1".into());
        let mut jobs = JobCounts::new();
        jobs.insert(("v1".into(), "g".into()), 2);
        jobs.insert(("v2".into(), "g".into()), 1);
        let (checked, matching, d) = diff_jobs(&t, &jobs);
        assert_eq!((checked, matching), (2, 0));
        assert_eq!(d.len(), 2);
        let report = VerifyReport {
            diffs: d,
            ..Default::default()
        };
        assert_eq!(report.duplicate_jobs().len(), 1);
    }
}
