//! VOD's answers as reconcile reads them, parsed exactly in Alibaba's documented shapes:
//! `ListLiveRecordVideo` (`Total` is a string in the doc sample, a number elsewhere; some
//! entries carry no `Video`; `Snapshots` is a JSON string), `GetVideoInfo` (`Video`),
//! `GetMezzanineInfo` (`Mezzanine`) and `GetPlayInfo` (`PlayInfoList.PlayInfo[]`).
use serde::Deserialize;
use serde_json::Value;

use crate::domain::observation::{PlayStream, Recording};
use crate::domain::time::parse_event_time;

/// A number VOD may send as a JSON number or as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Lenient {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Lenient {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Lenient::Int(i) => Some(*i),
            Lenient::Float(f) => Some(*f as i64),
            Lenient::Text(s) => s.trim().parse().ok(),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Lenient::Int(i) => Some(*i as f64),
            Lenient::Float(f) => Some(*f),
            Lenient::Text(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        }
    }
    pub fn as_text(&self) -> String {
        match self {
            Lenient::Int(i) => i.to_string(),
            Lenient::Float(f) => f.to_string(),
            Lenient::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VideoBase {
    pub video_id: Option<String>,
    pub status: Option<String>,
    pub size: Option<Lenient>,
    pub creation_time: Option<String>,
    /// `ModifyTime` in ListLiveRecordVideo, `ModificationTime` in GetVideoInfo.
    #[serde(alias = "ModificationTime")]
    pub modify_time: Option<String>,
    #[serde(rename = "CoverURL")]
    pub cover_url: Option<String>,
    pub template_group_id: Option<String>,
    /// A JSON string (an array of URLs) in the doc sample.
    pub snapshots: Option<Value>,
}

impl VideoBase {
    pub fn created_ms(&self) -> Option<i64> {
        time(self.creation_time.as_deref())
    }
    pub fn modified_ms(&self) -> Option<i64> {
        time(self.modify_time.as_deref())
    }
}

fn time(s: Option<&str>) -> Option<i64> {
    s.and_then(|s| parse_event_time(s).ok())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LiveRecordVideo {
    domain_name: Option<String>,
    app_name: Option<String>,
    stream_name: Option<String>,
    record_start_time: Option<String>,
    record_end_time: Option<String>,
    video: Option<VideoBase>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct LiveRecordVideoList {
    #[serde(default)]
    live_record_video: Vec<LiveRecordVideo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAnswer {
    total: Option<Lenient>,
    #[serde(default)]
    live_record_video_list: LiveRecordVideoList,
}

/// One page of ListLiveRecordVideo.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// `Total`: results of the whole query (VOD answers at most 5,000 of them).
    pub total: Option<u64>,
    /// Entries on this page (with or without a `Video`).
    pub entries: usize,
    /// Entries that carry a `Video` with its id and both record times.
    pub recordings: Vec<Recording>,
}

/// Parses one ListLiveRecordVideo answer.
pub fn list_page(v: &Value) -> Result<ListPage, String> {
    let a: ListAnswer = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let entries = a.live_record_video_list.live_record_video.len();
    let recordings = a
        .live_record_video_list
        .live_record_video
        .into_iter()
        .filter_map(|e| {
            let video = e.video?;
            Some(Recording {
                video_id: video.video_id.filter(|s| !s.is_empty())?,
                domain: e.domain_name?,
                app: e.app_name?,
                stream: e.stream_name?,
                record_start_ms: time(e.record_start_time.as_deref())?,
                record_end_ms: time(e.record_end_time.as_deref())?,
                created_ms: time(video.creation_time.as_deref()),
                video_status: video.status,
            })
        })
        .collect();
    Ok(ListPage {
        total: a
            .total
            .and_then(|t| t.as_i64())
            .and_then(|t| u64::try_from(t).ok()),
        entries,
        recordings,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VideoAnswer {
    video: VideoBase,
}

/// Parses a GetVideoInfo answer.
pub fn video_info(v: &Value) -> Result<VideoBase, String> {
    let a: VideoAnswer = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    Ok(a.video)
}

/// GetMezzanineInfo's `Mezzanine`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Mezzanine {
    #[serde(rename = "FileURL")]
    pub file_url: Option<String>,
    pub size: Option<Lenient>,
    pub status: Option<String>,
    pub creation_time: Option<String>,
}

impl Mezzanine {
    pub fn created_ms(&self) -> Option<i64> {
        time(self.creation_time.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MezzanineAnswer {
    mezzanine: Mezzanine,
}

/// Parses a GetMezzanineInfo answer.
pub fn mezzanine(v: &Value) -> Result<Mezzanine, String> {
    let a: MezzanineAnswer = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    Ok(a.mezzanine)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PlayInfo {
    #[serde(rename = "PlayURL")]
    play_url: Option<String>,
    definition: Option<String>,
    format: Option<String>,
    bitrate: Option<Lenient>,
    duration: Option<Lenient>,
    size: Option<Lenient>,
    width: Option<Lenient>,
    height: Option<Lenient>,
    job_id: Option<String>,
    status: Option<String>,
    creation_time: Option<String>,
    modification_time: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PlayInfoList {
    #[serde(default)]
    play_info: Vec<PlayInfo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PlayAnswer {
    #[serde(default)]
    play_info_list: PlayInfoList,
}

/// The playable streams of a GetPlayInfo answer (sorted by definition and format, so the
/// observation built from them does not depend on VOD's order) and the latest time one of them
/// was created or modified.
pub fn play_streams(v: &Value) -> Result<(Vec<PlayStream>, Option<i64>), String> {
    let a: PlayAnswer = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let mut latest: Option<i64> = None;
    let mut out: Vec<PlayStream> = a
        .play_info_list
        .play_info
        .into_iter()
        .filter(|p| p.status.as_deref().is_none_or(|s| s == "Normal"))
        .filter_map(|p| {
            for t in [&p.creation_time, &p.modification_time] {
                if let Some(ms) = time(t.as_deref()) {
                    latest = Some(latest.map_or(ms, |l| l.max(ms)));
                }
            }
            Some(PlayStream {
                definition: p.definition?,
                format: p.format?,
                play_url: p.play_url,
                bitrate: p.bitrate.map(|b| b.as_text()),
                duration: p.duration.and_then(|d| d.as_f64()),
                size: p.size.and_then(|s| s.as_i64()),
                width: p.width.and_then(|w| w.as_i64()),
                height: p.height.and_then(|h| h.as_i64()),
                job_id: p.job_id,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.definition, &a.format).cmp(&(&b.definition, &b.format)));
    out.dedup_by(|a, b| a.definition == b.definition && a.format == b.format);
    Ok((out, latest))
}

/// One GetTranscodeSummary entry (the video's latest transcode).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TranscodeSummary {
    video_id: Option<String>,
    transcode_status: Option<String>,
    #[serde(default)]
    transcode_job_info_summary_list: Vec<JobSummary>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JobSummary {
    definition: Option<String>,
    format: Option<String>,
    transcode_job_status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryAnswer {
    #[serde(default)]
    transcode_summary_list: Vec<TranscodeSummary>,
}

/// What GetTranscodeSummary says of `video_id`'s latest transcode: `None` while it is not
/// complete (`Processing`, `Partial`, or no summary yet), else the renditions whose job failed
/// as (`Definition`, `Format`), sorted.
pub fn failed_renditions(
    v: &Value,
    video_id: &str,
) -> Result<Option<Vec<(String, String)>>, String> {
    let a: SummaryAnswer = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let Some(s) = a
        .transcode_summary_list
        .into_iter()
        .find(|s| s.video_id.as_deref() == Some(video_id))
    else {
        return Ok(None);
    };
    if !s
        .transcode_status
        .as_deref()
        .is_some_and(|st| st.starts_with("Complete"))
    {
        return Ok(None);
    }
    let mut failed: Vec<(String, String)> = s
        .transcode_job_info_summary_list
        .into_iter()
        .filter(|j| j.transcode_job_status.as_deref() == Some("TranscodeFail"))
        .filter_map(|j| Some((j.definition?, j.format?)))
        .collect();
    failed.sort();
    failed.dedup();
    Ok(Some(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transcode_summary_in_the_documented_shape_gives_the_failed_jobs() {
        let v = json!({
            "RequestId": "r", "NonExistVideoIds": ["x"],
            "TranscodeSummaryList": [{
                "VideoId": "v1", "TranscodeStatus": "CompletePartialSucc",
                "TranscodeTemplateGroupId": "g", "CreationTime": "2019-01-23T12:35:12Z",
                "CompleteTime": "2019-01-23T12:40:12Z",
                "TranscodeJobInfoSummaryList": [
                    {"Definition": "SD", "Format": "m3u8", "TranscodeJobStatus": "TranscodeSuccess"},
                    {"Definition": "OD", "Format": "m3u8", "TranscodeJobStatus": "TranscodeFail",
                     "ErrorCode": "InvalidParameter", "ErrorMessage": "m"}
                ]
            }]
        });
        assert_eq!(
            failed_renditions(&v, "v1").unwrap(),
            Some(vec![("OD".into(), "m3u8".into())])
        );
        assert_eq!(failed_renditions(&v, "v2").unwrap(), None);
        let processing =
            json!({"TranscodeSummaryList": [{"VideoId": "v1", "TranscodeStatus": "Processing"}]});
        assert_eq!(failed_renditions(&processing, "v1").unwrap(), None);
    }

    #[test]
    fn list_answer_in_the_documented_shape_parses() {
        let v = json!({
            "RequestId": "r", "Total": "2", "PageNo": 1, "PageSize": 100,
            "LiveRecordVideoList": {"LiveRecordVideo": [
                {"StreamName": "s", "DomainName": "d", "AppName": "a", "PlaylistId": "p",
                 "RecordStartTime": "2017-12-27T04:46:55Z", "RecordEndTime": "2017-12-27T05:16:55Z",
                 "Video": {"VideoId": "v1", "Title": "t", "Status": "Normal", "Size": 1234,
                           "Duration": "60.0", "CreationTime": "2017-12-27T05:17:00Z",
                           "ModifyTime": "2017-12-27T05:18:00Z", "TemplateGroupId": "g",
                           "CoverURL": "http://c", "Snapshots": "[\"http://a\",\"http://b\"]"}},
                {"StreamName": "s", "DomainName": "d", "AppName": "a",
                 "RecordStartTime": "2017-12-27T05:16:55Z", "RecordEndTime": "2017-12-27T05:20:00Z"}
            ]}
        });
        let p = list_page(&v).unwrap();
        assert_eq!(p.total, Some(2));
        assert_eq!(p.entries, 2);
        assert_eq!(
            p.recordings.len(),
            1,
            "the entry without a Video is not a recording"
        );
        assert_eq!(p.recordings[0].video_id, "v1");
        let n = list_page(&json!({"Total": 7, "LiveRecordVideoList": {"LiveRecordVideo": []}}))
            .unwrap();
        assert_eq!(n.total, Some(7));
    }

    #[test]
    fn mezzanine_and_play_info_parse() {
        let m = mezzanine(&json!({"Mezzanine": {"FileURL": "http://f", "Size": "10",
            "Status": "Normal", "CreationTime": "2017-12-27T05:17:00Z"}}))
        .unwrap();
        assert_eq!(m.size.and_then(|s| s.as_i64()), Some(10));
        let (s, latest) = play_streams(&json!({"PlayInfoList": {"PlayInfo": [
            {"PlayURL": "u2", "Definition": "SD", "Format": "mp4", "Status": "Normal",
             "Width": 640, "CreationTime": "2017-12-27T05:19:00Z"},
            {"PlayURL": "u1", "Definition": "HD", "Format": "m3u8", "Status": "Normal",
             "Bitrate": "1200", "Duration": "12.5", "CreationTime": "2017-12-27T05:18:00Z"}
        ]}}))
        .unwrap();
        assert_eq!(s[0].definition, "HD");
        assert_eq!(s[1].width, Some(640));
        assert_eq!(latest, parse_event_time("2017-12-27T05:19:00Z").ok());
    }
}
