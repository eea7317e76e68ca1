//! `ListLiveRecordVideo` over the simulated VOD's state (pure), as Alibaba documents it
//! (ApsaraVideo VOD API reference, `ListLiveRecordVideo`, version 2017-03-21):
//!
//! - Filters `DomainName`, `AppName`, `StreamName` (each optional, exact match). A stream with
//!   no recording yet, or one VOD never heard of, is an empty answer, not an error.
//! - `StartTime` / `EndTime` (UTC, `yyyy-MM-ddTHH:mm:ssZ`) select on the time the recording
//!   started (`RecordStartTime`), both ends inclusive; `EndTime` must be later than
//!   `StartTime` (else `InvalidParameter`). Either may be left out (open end).
//! - `SortBy`: `CreationTime:Desc` (default) or `CreationTime:Asc`, on the video's creation
//!   time (ties by VideoId, so paging is stable); anything else is `InvalidParameter`.
//! - `PageNo` >= 1 (default 1), `PageSize` 1..=100 (default 10); out of range is
//!   `InvalidParameter`.
//! - **The 5,000 cap is a truncation, not an error**: VOD documents that only the first 5,000
//!   matches of a filter can be fetched. `Total` still counts every match, so a caller sees
//!   `Total` >= 5,000 and must split its window; pages past the 5,000th entry are empty.
//! - `Total` arrives as a string (as the reading of VOD's answers has it; Alibaba's
//!   generated SDKs type it as an integer, and their older lenient number types accept both).
//! - Entries: `DomainName`, `AppName`, `StreamName`, `RecordStartTime`, `RecordEndTime` and
//!   `Video` (see [`VodVideo::video_json`]). Recorded segments and composed videos are both
//!   live-to-VOD videos; a composed video whose file is not uploaded yet is listed **without**
//!   `Video` (VOD has no media asset for it yet).
use serde_json::{json, Value};

use super::time::{fmt_utc, parse_utc};
use super::vod_model::{Upload, VodModel, VodVideo};

/// VOD's documented limit of results one filter can reach.
pub const MAX_RESULTS: usize = 5000;
/// VOD's documented maximum `PageSize`.
pub const MAX_PAGE_SIZE: usize = 100;

/// A parsed `ListLiveRecordVideo` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub domain: Option<String>,
    pub app: Option<String>,
    pub stream: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub page_no: usize,
    pub page_size: usize,
    pub ascending: bool,
}

/// A request parameter VOD would refuse, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParameter(pub &'static str);

impl ListQuery {
    /// Parses the request's parameters (`get` looks one up by name).
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<ListQuery, InvalidParameter> {
        let time = |name: &'static str| match get(name) {
            None => Ok(None),
            Some(s) => parse_utc(s).map(Some).ok_or(InvalidParameter(name)),
        };
        let (start_ms, end_ms) = (time("StartTime")?, time("EndTime")?);
        if let (Some(s), Some(e)) = (start_ms, end_ms) {
            if e <= s {
                return Err(InvalidParameter("EndTime"));
            }
        }
        let number = |name: &'static str, default: usize, max: usize| match get(name) {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(InvalidParameter(name)),
            },
        };
        let ascending = match get("SortBy") {
            None | Some("CreationTime:Desc") => false,
            Some("CreationTime:Asc") => true,
            Some(_) => return Err(InvalidParameter("SortBy")),
        };
        let text = |name: &str| get(name).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(ListQuery {
            domain: text("DomainName"),
            app: text("AppName"),
            stream: text("StreamName"),
            start_ms,
            end_ms,
            page_no: number("PageNo", 1, usize::MAX)?,
            page_size: number("PageSize", 10, MAX_PAGE_SIZE)?,
            ascending,
        })
    }

    fn matches(&self, parts: [&str; 3], record_start: i64) -> bool {
        let eq = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        eq(&self.domain, parts[0])
            && eq(&self.app, parts[1])
            && eq(&self.stream, parts[2])
            && self.start_ms.is_none_or(|t| record_start >= t)
            && self.end_ms.is_none_or(|t| record_start <= t)
    }
}

fn split_key(stream: &str) -> [&str; 3] {
    let mut it = stream.splitn(3, '/');
    [
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    ]
}

fn entry(v: &VodVideo, (start, end): (i64, i64)) -> Value {
    let [domain, app, stream] = split_key(&v.stream);
    let mut e = json!({
        "DomainName": domain,
        "AppName": app,
        "StreamName": stream,
        "RecordStartTime": fmt_utc(start),
        "RecordEndTime": fmt_utc(end),
    });
    // A composed video is a media asset only once its file is uploaded (or failed to be).
    let has_asset = !(v.composed && v.upload == Upload::Pending);
    if let (Some(o), true) = (e.as_object_mut(), has_asset) {
        o.insert("Video".into(), v.video_json());
    }
    e
}

/// The answer (without `RequestId`) to `q` over what VOD knows, with at most `cap` results
/// reachable ([`MAX_RESULTS`] for VOD itself).
pub fn list(model: &VodModel, q: &ListQuery, cap: usize) -> Value {
    let mut found: Vec<(&VodVideo, (i64, i64))> = model
        .videos()
        .filter_map(|v| v.record.map(|r| (v, r)))
        .filter(|(v, r)| q.matches(split_key(&v.stream), r.0))
        .collect();
    found.sort_by(|a, b| {
        a.0.created_ms
            .cmp(&b.0.created_ms)
            .then_with(|| a.0.video_id.cmp(&b.0.video_id))
    });
    if !q.ascending {
        found.reverse();
    }
    let total = found.len();
    let skip = (q.page_no - 1).saturating_mul(q.page_size);
    let page: Vec<Value> = found
        .iter()
        .take(cap)
        .skip(skip)
        .take(q.page_size)
        .map(|(v, r)| entry(v, *r))
        .collect();
    json!({
        "Total": total.to_string(),
        "PageNo": q.page_no,
        "PageSize": q.page_size,
        "LiveRecordVideoList": { "LiveRecordVideo": page },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::{Effect, Flow, ScenarioEvent};

    const T0: i64 = 1_790_000_000_000;

    fn recorded(id: u64, stream: &str, start_ms: i64) -> ScenarioEvent {
        ScenarioEvent {
            id,
            time_ms: start_ms + 60_000,
            video_id: format!("{id:032x}"),
            event_type: "AddLiveRecordVideoComplete",
            stream: stream.to_string(),
            flow: Flow::StoreOnly,
            body: String::new(),
            effect: Effect::Recorded {
                start_ms,
                end_ms: start_ms + 50_000,
                auto_group: None,
            },
        }
    }

    fn query(params: &[(&str, &str)]) -> Result<ListQuery, InvalidParameter> {
        ListQuery::parse(|name| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
    }

    fn ids(v: &Value) -> Vec<String> {
        v["LiveRecordVideoList"]["LiveRecordVideo"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["Video"]["VideoId"].as_str().unwrap_or("-").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// 250 segments of `d/a/s` one minute apart, 3 of `d/a/other`, 2 of `d/b/s`.
    fn model() -> VodModel {
        let mut m = VodModel::default();
        for i in 0..250 {
            m.apply(&recorded(i, "d/a/s", T0 + i as i64 * 60_000));
        }
        for i in 0..3 {
            m.apply(&recorded(1000 + i, "d/a/other", T0 + i as i64 * 60_000));
            m.apply(&recorded(2000 + i, "d/b/s", T0 + i as i64 * 60_000));
        }
        m
    }

    #[test]
    fn pages_to_the_end_in_creation_order_with_total_as_a_string() {
        let m = model();
        let mut seen = Vec::new();
        for page in 1..=4 {
            let q = query(&[
                ("DomainName", "d"),
                ("AppName", "a"),
                ("StreamName", "s"),
                ("SortBy", "CreationTime:Asc"),
                ("PageSize", "100"),
                ("PageNo", &page.to_string()),
            ])
            .expect("valid");
            let v = list(&m, &q, MAX_RESULTS);
            assert_eq!(v["Total"], "250");
            assert_eq!(v["PageNo"], page);
            seen.extend(ids(&v));
        }
        let want: Vec<String> = (0..250u64).map(|i| format!("{i:032x}")).collect();
        assert_eq!(seen, want, "every segment once, oldest first");
        // The default order is newest first; the default page size 10.
        let v = list(
            &m,
            &query(&[("StreamName", "s"), ("AppName", "a")]).unwrap(),
            MAX_RESULTS,
        );
        assert_eq!(ids(&v).len(), 10);
        assert_eq!(ids(&v)[0], format!("{:032x}", 249));
    }

    #[test]
    fn the_window_selects_on_the_record_start_both_ends_inclusive() {
        let m = model();
        let at = |i: i64| fmt_utc(T0 + i * 60_000);
        let (from, to) = (at(10), at(19));
        let q = query(&[
            ("DomainName", "d"),
            ("AppName", "a"),
            ("StreamName", "s"),
            ("StartTime", &from),
            ("EndTime", &to),
            ("SortBy", "CreationTime:Asc"),
            ("PageSize", "100"),
        ])
        .unwrap();
        let v = list(&m, &q, MAX_RESULTS);
        assert_eq!(v["Total"], "10");
        assert_eq!(ids(&v).first(), Some(&format!("{:032x}", 10)));
        assert_eq!(ids(&v).last(), Some(&format!("{:032x}", 19)));
        let e = &v["LiveRecordVideoList"]["LiveRecordVideo"][0];
        assert_eq!(e["RecordStartTime"], at(10));
        assert_eq!(e["DomainName"], "d");
        assert_eq!(e["StreamName"], "s");
        assert!(e["Video"]["Snapshots"].is_string(), "{e}");
        assert_eq!(e["Video"]["Status"], "UploadSucc");
        // Domain and app alone list all their streams.
        let v = list(
            &m,
            &query(&[("DomainName", "d"), ("AppName", "a"), ("PageSize", "100")]).unwrap(),
            MAX_RESULTS,
        );
        assert_eq!(v["Total"], "253");
    }

    #[test]
    fn a_stream_without_recordings_is_an_empty_answer() {
        let m = model();
        for q in [
            query(&[
                ("DomainName", "d"),
                ("AppName", "a"),
                ("StreamName", "nothing-yet"),
            ]),
            query(&[("DomainName", "elsewhere"), ("AppName", "a")]),
        ] {
            let v = list(&VodModel::default(), q.as_ref().unwrap(), MAX_RESULTS);
            assert_eq!(v["Total"], "0");
            let v = list(&m, &q.unwrap(), MAX_RESULTS);
            assert_eq!(v["Total"], "0");
            assert_eq!(v["LiveRecordVideoList"]["LiveRecordVideo"], json!([]));
        }
    }

    #[test]
    fn results_past_the_cap_are_truncated_and_total_still_counts_them() {
        let mut m = VodModel::default();
        for i in 0..5_050u64 {
            m.apply(&recorded(i, "d/a/s", T0 + i as i64 * 1000));
        }
        let page = |n: usize, sort: &str| {
            let q = query(&[
                ("StreamName", "s"),
                ("SortBy", sort),
                ("PageSize", "100"),
                ("PageNo", &n.to_string()),
            ])
            .unwrap();
            list(&m, &q, MAX_RESULTS)
        };
        let last = page(50, "CreationTime:Asc");
        assert_eq!(last["Total"], "5050");
        assert_eq!(ids(&last).len(), 100);
        assert_eq!(ids(&last).last(), Some(&format!("{:032x}", 4999)));
        assert!(
            ids(&page(51, "CreationTime:Asc")).is_empty(),
            "the 5,001st is out of reach"
        );
        // Newest first reaches the other end, still only 5,000 deep.
        assert_eq!(
            ids(&page(1, "CreationTime:Desc"))[0],
            format!("{:032x}", 5049)
        );
        assert!(ids(&page(51, "CreationTime:Desc")).is_empty());
        // A smaller cap (tests) behaves the same.
        let q = query(&[("StreamName", "s"), ("PageSize", "100"), ("PageNo", "2")]).unwrap();
        assert_eq!(ids(&list(&m, &q, 150)).len(), 50);
    }

    #[test]
    fn parameters_out_of_range_are_refused_like_vod() {
        let bad = |p: &[(&str, &str)]| query(p).err().map(|e| e.0);
        assert_eq!(bad(&[("PageSize", "101")]), Some("PageSize"));
        assert_eq!(bad(&[("PageSize", "0")]), Some("PageSize"));
        assert_eq!(bad(&[("PageNo", "0")]), Some("PageNo"));
        assert_eq!(bad(&[("SortBy", "Size:Asc")]), Some("SortBy"));
        assert_eq!(bad(&[("StartTime", "yesterday")]), Some("StartTime"));
        let t = fmt_utc(T0);
        assert_eq!(bad(&[("StartTime", &t), ("EndTime", &t)]), Some("EndTime"));
        assert_eq!(
            bad(&[("PageSize", "100"), ("SortBy", "CreationTime:Asc")]),
            None
        );
    }

    #[test]
    fn a_composed_video_is_listed_without_video_until_its_upload_ends() {
        let mut m = VodModel::default();
        let ev = |id, effect, time_ms| ScenarioEvent {
            id,
            time_ms,
            video_id: "c0mp05ed".into(),
            event_type: "LiveRecordVideoComposeStart",
            stream: "d/a/s".into(),
            flow: Flow::ComposeOnly,
            body: String::new(),
            effect,
        };
        m.apply(&ev(
            1,
            Effect::ComposeStarted {
                start_ms: T0,
                end_ms: T0 + 600_000,
            },
            T0 + 900_000,
        ));
        let q = query(&[("StreamName", "s"), ("PageSize", "100")]).unwrap();
        let v = list(&m, &q, MAX_RESULTS);
        let e = &v["LiveRecordVideoList"]["LiveRecordVideo"][0];
        assert_eq!(v["Total"], "1");
        assert!(e.get("Video").is_none(), "{e}");
        assert_eq!(e["RecordEndTime"], fmt_utc(T0 + 600_000));
        m.apply(&ev(
            2,
            Effect::Uploaded {
                ok: false,
                size: 0,
                file_url: String::new(),
                auto_group: None,
            },
            T0 + 960_000,
        ));
        let v = list(&m, &q, MAX_RESULTS);
        let video = &v["LiveRecordVideoList"]["LiveRecordVideo"][0]["Video"];
        assert_eq!(video["VideoId"], "c0mp05ed");
        assert_eq!(video["Status"], "UploadFail");
        assert_eq!(video["ModifyTime"], fmt_utc(T0 + 960_000));
        let mz = m
            .video("c0mp05ed")
            .map(|v| v.mezzanine_json())
            .unwrap_or_default();
        assert_eq!(mz["Status"], "UploadFail");
        assert!(mz.get("FileURL").is_none(), "{mz}");
    }
}
