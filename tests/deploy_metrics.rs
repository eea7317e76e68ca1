//! The Grafana dashboard and the Prometheus alert rules name only metrics that live2vod
//! exports (`live2vod::metrics::ALL`), and the dashboard shows every one of them.
//!
//! Both files are read as text: every `live2vod_...` token is a metric reference. Histograms
//! (by convention every `*_seconds` metric, see `metrics::install`) are exported as
//! `_bucket`, `_sum` and `_count` series only, so those suffixes are stripped from them, and a
//! bare histogram name is an error: it would select nothing in Prometheus. Recording rules are
//! named `live2vod:...`, which is not a metric token.
use std::collections::BTreeSet;
use std::path::Path;

use live2vod::metrics::ALL;

const DASHBOARD: &str = "deploy/grafana/live2vod.json";
const ALERTS: &str = "deploy/prometheus/alerts.yml";
const PREFIX: &str = "live2vod_";
const HISTOGRAM_SERIES: &[&str] = &["_bucket", "_sum", "_count"];

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Every `live2vod_[a-z0-9_]+` token that does not continue a longer identifier.
fn metric_tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(PREFIX) {
        let start = from + found;
        let end = text[start..]
            .char_indices()
            .find(|&(_, c)| !is_name_char(c))
            .map_or(text.len(), |(i, _)| start + i);
        let preceded_by_ident = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !preceded_by_ident {
            out.push(&text[start..end]);
        }
        from = end.max(start + PREFIX.len());
    }
    out
}

fn is_histogram(name: &str) -> bool {
    name.ends_with("_seconds")
}

/// The exported metric a series token belongs to, or why it belongs to none.
fn resolve<'a>(token: &'a str, known: &BTreeSet<&'a str>) -> Result<&'a str, String> {
    for suffix in HISTOGRAM_SERIES {
        if let Some(base) = token.strip_suffix(suffix) {
            if known.contains(base) && is_histogram(base) {
                return Ok(base);
            }
        }
    }
    if known.contains(token) {
        if is_histogram(token) {
            return Err(format!(
                "{token} is a histogram: query {token}_bucket, _sum or _count"
            ));
        }
        return Ok(token);
    }
    Err(format!("{token} is not in live2vod::metrics::ALL"))
}

/// The metrics a file references, and every reference that is wrong.
fn scan<'a>(text: &'a str, known: &BTreeSet<&'a str>) -> (BTreeSet<&'a str>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut errors = Vec::new();
    for token in metric_tokens(text) {
        match resolve(token, known) {
            Ok(name) => {
                names.insert(name);
            }
            Err(e) => errors.push(e),
        }
    }
    errors.sort();
    errors.dedup();
    (names, errors)
}

/// The metrics a file references, or every reference that is wrong.
fn referenced<'a>(
    text: &'a str,
    known: &BTreeSet<&'a str>,
) -> Result<BTreeSet<&'a str>, Vec<String>> {
    let (names, errors) = scan(text, known);
    if errors.is_empty() {
        Ok(names)
    } else {
        Err(errors)
    }
}

fn known() -> BTreeSet<&'static str> {
    ALL.iter().copied().collect()
}

#[test]
fn metric_names_in_all_are_unique_and_prefixed() {
    assert_eq!(known().len(), ALL.len(), "duplicate names in metrics::ALL");
    for name in ALL {
        assert!(name.starts_with(PREFIX), "{name} lacks the {PREFIX} prefix");
        assert!(
            name.chars().all(is_name_char),
            "{name} has characters outside [a-z0-9_]"
        );
    }
}

#[test]
fn dashboard_references_only_exported_metrics() {
    let known = known();
    if let Err(errors) = referenced(&read(DASHBOARD), &known) {
        panic!("{DASHBOARD}:\n  {}", errors.join("\n  "));
    }
}

#[test]
fn alerts_reference_only_exported_metrics() {
    let known = known();
    let text = read(ALERTS);
    match referenced(&text, &known) {
        Ok(names) => assert!(!names.is_empty(), "{ALERTS} references no live2vod metric"),
        Err(errors) => panic!("{ALERTS}:\n  {}", errors.join("\n  ")),
    }
}

#[test]
fn dashboard_shows_every_exported_metric() {
    let known = known();
    let text = read(DASHBOARD);
    // Wrong references are reported by dashboard_references_only_exported_metrics.
    let (shown, _) = scan(&text, &known);
    let missing: Vec<_> = known.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "{DASHBOARD} has no panel for {missing:?}"
    );
}

// The checker itself: it must catch what it exists to catch.

#[test]
fn a_misspelt_metric_is_reported() {
    let known = known();
    let text = r#"{"expr": "sum(rate(live2vod_relay_request_total[5m]))"}"#;
    let errors = referenced(text, &known).unwrap_err();
    assert_eq!(
        errors,
        ["live2vod_relay_request_total is not in live2vod::metrics::ALL"]
    );
}

#[test]
fn histogram_series_resolve_to_their_metric_and_bare_histograms_are_reported() {
    let known = known();
    let text = "histogram_quantile(0.9, sum by (le) (rate(live2vod_fold_batch_duration_seconds_bucket[5m]))) \
                / live2vod_fold_batch_duration_seconds_count + live2vod_fold_batch_duration_seconds_sum";
    assert_eq!(
        referenced(text, &known).unwrap(),
        BTreeSet::from(["live2vod_fold_batch_duration_seconds"])
    );
    assert!(referenced("rate(live2vod_fold_batch_duration_seconds[5m])", &known).is_err());
    // A counter has no _bucket series.
    assert!(referenced("live2vod_fold_events_total_bucket", &known).is_err());
    assert!(referenced("live2vod_fold_events_total_count", &known).is_err());
}

#[test]
fn tokens_inside_other_identifiers_and_recording_rules_are_not_metrics() {
    assert_eq!(
        metric_tokens(
            "x_live2vod_a live2vod:slo_live2vod_b {live2vod_videos} live2vod_api_aggregates"
        ),
        ["live2vod_videos", "live2vod_api_aggregates"]
    );
}

/// Every `(CONSTANT, "live2vod_...")` pair declared in `src/metrics.rs`.
fn declared_constants() -> Vec<(String, String)> {
    read("src/metrics.rs")
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, value) = rest.split_once(": &str = ")?;
            Some((
                name.to_string(),
                value.trim_end_matches(';').trim_matches('"').to_string(),
            ))
        })
        .collect()
}

fn rust_sources(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((path, text));
        }
    }
}

/// "Exported by the binary" means some code path records the metric: a name the dashboard and
/// alerts rely on but nothing records would be a panel that stays empty forever.
#[test]
fn every_declared_metric_is_recorded_by_some_role() {
    let declared = declared_constants();
    assert_eq!(
        declared.len(),
        live2vod::metrics::ALL.len(),
        "src/metrics.rs declares constants that ALL does not list (or the reverse)"
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    rust_sources(&root.join("src"), &mut sources);
    let mut unrecorded = Vec::new();
    for (constant, name) in &declared {
        let used = sources.iter().any(|(path, text)| {
            !path.ends_with("metrics.rs")
                && ["counter!(", "gauge!(", "histogram!("].iter().any(|mac| {
                    text.match_indices(mac).any(|(i, _)| {
                        let call = &text[i..text.len().min(i + 200)];
                        call.contains(constant.as_str()) || call.contains(name.as_str())
                    })
                })
        });
        if !used {
            unrecorded.push(format!("{constant} ({name})"));
        }
    }
    assert!(
        unrecorded.is_empty(),
        "declared but never recorded: {unrecorded:?}"
    );
}
