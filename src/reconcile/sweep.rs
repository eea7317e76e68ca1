//! One stream (or one whole app) swept with ListLiveRecordVideo over a window of record
//! time: `SortBy=CreationTime:Asc`, `PageSize=100`, paging to the end; a window whose `Total`
//! reaches VOD's 5,000-result cap is split in halves until no query reaches it.
use std::collections::BTreeMap;

use crate::domain::observation::Recording;
use crate::vod::client::{format_utc_secs, VodError};

use super::answers;
use super::api::Api;

/// VOD's largest page.
pub const PAGE_SIZE: u64 = 100;
/// VOD answers at most this many results per query.
pub const RESULT_CAP: u64 = 5_000;

/// What one sweep unit is: every stream of an app (from the policy), or one stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unit {
    pub domain: String,
    pub app: String,
    /// None: every stream of the app.
    pub stream: Option<String>,
}

impl Unit {
    /// `domain/app` or `domain/app/stream`: the position key and the partitioning key.
    pub fn key(&self) -> String {
        match &self.stream {
            Some(s) => format!("{}/{}/{}", self.domain, self.app, s),
            None => format!("{}/{}", self.domain, self.app),
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        if self.stream.is_some() {
            "stream"
        } else {
            "app"
        }
    }
}

/// Failures of a sweep: the window stays where it was, and is retried next cycle.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Vod(#[from] VodError),
    #[error("ListLiveRecordVideo answer not understood: {0}")]
    Answer(String),
}

/// Recordings found in `[from_ms, to_ms]` (record time), each VideoId once, in VideoId order.
pub async fn sweep(
    api: &Api,
    unit: &Unit,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Recording>, SweepError> {
    let mut found: BTreeMap<String, Recording> = BTreeMap::new();
    // VOD's times have whole seconds: widen the window to them.
    let mut windows = vec![(from_ms.div_euclid(1000), (to_ms + 999).div_euclid(1000))];
    while let Some((from, to)) = windows.pop() {
        if from > to {
            continue;
        }
        let first = page(api, unit, from, to, 1).await?;
        let total = first.total.unwrap_or(first.entries as u64);
        if total >= RESULT_CAP && to > from {
            let mid = from + (to - from) / 2;
            windows.push((mid + 1, to));
            windows.push((from, mid));
            continue;
        }
        let mut got = first.entries as u64;
        let mut last_len = first.entries as u64;
        for r in first.recordings {
            found.entry(r.video_id.clone()).or_insert(r);
        }
        let mut page_no = 1u64;
        // Page to the end: until a short page, or as many as `Total` said.
        while last_len == PAGE_SIZE && got < total && page_no < RESULT_CAP / PAGE_SIZE {
            page_no += 1;
            let p = page(api, unit, from, to, page_no).await?;
            last_len = p.entries as u64;
            got += last_len;
            for r in p.recordings {
                found.entry(r.video_id.clone()).or_insert(r);
            }
        }
    }
    Ok(found.into_values().collect())
}

async fn page(
    api: &Api,
    unit: &Unit,
    from_s: i64,
    to_s: i64,
    page_no: u64,
) -> Result<answers::ListPage, SweepError> {
    let (start, end) = (format_utc_secs(from_s), format_utc_secs(to_s));
    let page_no = page_no.to_string();
    let page_size = PAGE_SIZE.to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("DomainName", &unit.domain),
        ("AppName", &unit.app),
        ("StartTime", &start),
        ("EndTime", &end),
        ("SortBy", "CreationTime:Asc"),
        ("PageNo", &page_no),
        ("PageSize", &page_size),
    ];
    if let Some(s) = &unit.stream {
        params.push(("StreamName", s));
    }
    let v = api.call("ListLiveRecordVideo", &params).await?;
    answers::list_page(&v).map_err(SweepError::Answer)
}
