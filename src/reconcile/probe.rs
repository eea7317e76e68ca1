//! Probes of videos stuck in a non-terminal state: what VOD says about their source
//! (GetMezzanineInfo, else GetVideoInfo), their transcode (GetVideoInfo, then GetPlayInfo)
//! and their cover (GetVideoInfo).
//! A probe answers an observation when VOD's state is terminal, or `Pending` (ask again later).
use crate::domain::observation::{Cover, SourceState, TranscodeState};

use super::answers;
use super::api::Api;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probed<T> {
    /// VOD's state is terminal: this is what it is.
    Terminal(T),
    /// Terminal, but there is nothing to recover (e.g. a store-only video has no transcode).
    Nothing,
    /// Not terminal yet (Uploading, Transcoding), or VOD could not be asked: back off.
    Pending,
}

fn source_from(
    video_id: &str,
    status: &str,
    size: Option<i64>,
    url: Option<String>,
    created: Option<i64>,
) -> Probed<SourceState> {
    let success = match status {
        "Normal" | "UploadSucc" | "Transcoding" | "TranscodeFail" | "Checking" | "Blocked" => true,
        "UploadFail" => false,
        _ => return Probed::Pending,
    };
    // Without VOD's own creation time there is no deterministic time to give the fact.
    let Some(created_ms) = created else {
        return Probed::Pending;
    };
    Probed::Terminal(SourceState {
        video_id: video_id.to_string(),
        success,
        vod_status: status.to_string(),
        size,
        file_url: url,
        created_ms,
    })
}

/// GetVideoInfo's `Video`, or `None` when VOD could not be asked or answered otherwise.
async fn video_info(api: &Api, video_id: &str) -> Option<answers::VideoBase> {
    let v = api
        .call("GetVideoInfo", &[("VideoId", video_id)])
        .await
        .ok()?;
    answers::video_info(&v).ok()
}

/// Whether the video's source file is there: GetMezzanineInfo, else GetVideoInfo.
pub async fn source(api: &Api, video_id: &str) -> Probed<SourceState> {
    if let Ok(v) = api.call("GetMezzanineInfo", &[("VideoId", video_id)]).await {
        if let Ok(mz) = answers::mezzanine(&v) {
            if let Some(status) = mz.status.as_deref() {
                let p = source_from(
                    video_id,
                    status,
                    mz.size.as_ref().and_then(|s| s.as_i64()),
                    mz.file_url.clone(),
                    mz.created_ms(),
                );
                if p != Probed::Pending {
                    return p;
                }
            }
        }
    }
    match video_info(api, video_id).await {
        Some(video) => source_from(
            video_id,
            video.status.as_deref().unwrap_or(""),
            video.size.as_ref().and_then(|s| s.as_i64()),
            None,
            video.created_ms(),
        ),
        None => Probed::Pending,
    }
}

/// The video's transcode outcome: GetVideoInfo, GetPlayInfo once it is `Normal` (what plays)
/// and GetTranscodeSummary once it is `Normal` or `TranscodeFail` (which renditions failed).
pub async fn transcode(api: &Api, video_id: &str) -> Probed<TranscodeState> {
    let Some(video) = video_info(api, video_id).await else {
        return Probed::Pending;
    };
    let status = video.status.clone().unwrap_or_default();
    let video_time = video.modified_ms().or(video.created_ms());
    match status.as_str() {
        "Normal" => {
            let Ok(Ok((streams, latest))) = api
                .call("GetPlayInfo", &[("VideoId", video_id)])
                .await
                .map(|v| answers::play_streams(&v))
            else {
                return Probed::Pending;
            };
            let Some(at_ms) = latest.or(video_time) else {
                return Probed::Pending;
            };
            if streams.is_empty() {
                return Probed::Pending;
            }
            let Some(mut failed) = failed_jobs(api, video_id).await else {
                return Probed::Pending;
            };
            // What plays did not fail (a later job of the same rendition succeeded).
            failed.retain(|(d, f)| !streams.iter().any(|s| &s.definition == d && &s.format == f));
            Probed::Terminal(TranscodeState {
                video_id: video_id.to_string(),
                success: true,
                vod_status: status,
                streams,
                failed,
                at_ms,
            })
        }
        "TranscodeFail" => {
            let Some(at_ms) = video_time else {
                return Probed::Pending;
            };
            let Some(failed) = failed_jobs(api, video_id).await else {
                return Probed::Pending;
            };
            Probed::Terminal(TranscodeState {
                video_id: video_id.to_string(),
                success: false,
                vod_status: status,
                streams: Vec::new(),
                failed,
                at_ms,
            })
        }
        "UploadSucc" | "UploadFail" | "Blocked" => Probed::Nothing,
        _ => Probed::Pending,
    }
}

/// The renditions of the video's latest transcode whose job failed (GetTranscodeSummary);
/// `None` while that transcode is not complete or the call failed (probed again later).
async fn failed_jobs(api: &Api, video_id: &str) -> Option<Vec<(String, String)>> {
    let v = api
        .call("GetTranscodeSummary", &[("VideoIds", video_id)])
        .await
        .ok()?;
    answers::failed_renditions(&v, video_id).ok()?
}

/// The video's cover (a transcode's snapshot): GetVideoInfo's `CoverURL`, timed by the
/// video's `CreationTime`. No cover yet is `Pending` (the caller gives up after a few tries:
/// a template group without a snapshot step never makes one).
pub async fn cover(api: &Api, video_id: &str) -> Probed<Cover> {
    let Some(video) = video_info(api, video_id).await else {
        return Probed::Pending;
    };
    let created = video.created_ms();
    match (video.cover_url.filter(|u| !u.is_empty()), created) {
        (Some(cover_url), Some(created_ms)) => Probed::Terminal(Cover {
            video_id: video_id.to_string(),
            cover_url,
            created_ms,
        }),
        _ => Probed::Pending,
    }
}
