//! What live2vod does on its own for which streams: the policy file (TOML, see ARCHITECTURE.md).
//!
//! ```toml
//! [defaults]
//! segments = { action = "manual" }      # none | manual (the default) | transcode (needs template_group)
//! composed = { action = "manual" }
//! compose_deadline_secs = 600
//!
//! [[rules]]                             # first match wins, in file order
//! streams = "live.example.com/app/store-*"
//! segments = { action = "transcode", template_group = "tg-record", priority = "5" }
//!
//! [reconcile]                           # domain/app pairs the reconcile role sweeps even
//! apps = ["live.example.com/app"]       # before any callback of theirs arrived
//! ```
//! A rule that leaves out `segments`, `composed` or `compose_deadline_secs` takes that part from
//! `[defaults]`. Globs match `domain/app/stream`: `*` any run of characters (including `/`), `?`
//! exactly one; `[`, `]`, `{`, `}` and `\` are refused (no classes, alternatives or escapes, so
//! nobody writes one expecting it to work). Problems are reported with their line.
use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use super::lattice::{OriginKind, StreamKey};

/// A policy file that cannot be used, with the 1-based line of the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("policy line {line}: {message}")]
pub struct PolicyError {
    /// 1-based line (1 when the position is unknown).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What to do with a class of videos.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Action {
    /// Never transcode; refuse manual requests.
    None,
    /// Only manual requests lead to a transcode: the default, so that without a policy file
    /// (or where it says nothing) a `POST .../transcode` does what it asks.
    #[default]
    Manual,
    /// Submit a transcode automatically (and honour manual requests).
    Transcode {
        /// Template group to submit with.
        template_group: String,
        /// Priority "1".."10"; `None` for VOD's default.
        priority: Option<String>,
    },
}

impl Action {
    /// `none`, `manual` or `transcode`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Manual => "manual",
            Action::Transcode { .. } => "transcode",
        }
    }
}

/// The policy that applies to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPolicy {
    /// For recorded segments (`AddLiveRecordVideoComplete`).
    pub segments: Action,
    /// For composed videos (`LiveRecordVideoComposeStart`).
    pub composed: Action,
    /// TrackCompose deadline after ComposeStart, seconds.
    pub compose_deadline_secs: u64,
}

impl StreamPolicy {
    /// The action for a video of the given origin.
    pub fn action(&self, kind: OriginKind) -> &Action {
        match kind {
            OriginKind::LiveSegment => &self.segments,
            OriginKind::Composed => &self.composed,
        }
    }
}

impl Default for StreamPolicy {
    fn default() -> Self {
        StreamPolicy {
            segments: Action::Manual,
            composed: Action::Manual,
            compose_deadline_secs: 600,
        }
    }
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The glob over `domain/app/stream`.
    pub streams: Glob,
    /// The resolved policy (missing parts filled from `[defaults]`).
    pub policy: StreamPolicy,
}

/// The whole policy. `Policy::default()` is none/none/600 s: live2vod observes, never acts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Applies when no rule matches.
    pub defaults: StreamPolicy,
    /// First match wins.
    pub rules: Vec<Rule>,
    /// `[reconcile] apps = ["domain/app", ...]`: apps `live2vod reconcile` sweeps even when no
    /// aggregate knows one of their streams yet (a stream whose first callback was lost).
    pub reconcile_apps: Vec<String>,
}

impl Policy {
    /// Parses the TOML text of a policy file.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: FileSpec = toml::from_str(text).map_err(|e| PolicyError {
            line: line_of(text, e.span().map_or(0, |s| s.start)),
            message: e.message().trim().to_string(),
        })?;
        let base = StreamPolicy::default();
        let defaults = match file.defaults {
            None => base,
            Some(d) => StreamPolicy {
                segments: d
                    .segments
                    .map(|a| a.resolve(text))
                    .transpose()?
                    .unwrap_or_default(),
                composed: d
                    .composed
                    .map(|a| a.resolve(text))
                    .transpose()?
                    .unwrap_or_default(),
                compose_deadline_secs: d
                    .compose_deadline_secs
                    .unwrap_or(base.compose_deadline_secs),
            },
        };
        let mut rules = Vec::with_capacity(file.rules.len());
        for r in file.rules {
            let streams = Glob::new(r.streams.get_ref()).map_err(|m| PolicyError {
                line: line_of(text, r.streams.span().start),
                message: m,
            })?;
            rules.push(Rule {
                streams,
                policy: StreamPolicy {
                    segments: match r.segments {
                        Some(a) => a.resolve(text)?,
                        None => defaults.segments.clone(),
                    },
                    composed: match r.composed {
                        Some(a) => a.resolve(text)?,
                        None => defaults.composed.clone(),
                    },
                    compose_deadline_secs: r
                        .compose_deadline_secs
                        .unwrap_or(defaults.compose_deadline_secs),
                },
            });
        }
        let reconcile_apps = match file.reconcile {
            None => Vec::new(),
            Some(r) => {
                for a in &r.apps {
                    let parts: Vec<&str> = a.get_ref().split('/').collect();
                    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                        return Err(PolicyError {
                            line: line_of(text, a.span().start),
                            message: format!(
                                "reconcile app {:?} is not \"domain/app\"",
                                a.get_ref()
                            ),
                        });
                    }
                }
                r.apps.into_iter().map(Spanned::into_inner).collect()
            }
        };
        Ok(Policy {
            defaults,
            rules,
            reconcile_apps,
        })
    }

    /// The policy for a stream: the first rule whose glob matches, else the defaults.
    pub fn for_stream(&self, stream: &StreamKey) -> &StreamPolicy {
        if self.rules.is_empty() {
            // No path to build (the projector asks on every projection).
            return &self.defaults;
        }
        let path = stream.path();
        self.rules
            .iter()
            .find(|r| r.streams.matches(&path))
            .map_or(&self.defaults, |r| &r.policy)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset.min(text.len()))
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    defaults: Option<DefaultsSpec>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    reconcile: Option<ReconcileSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileSpec {
    #[serde(default)]
    apps: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsSpec {
    segments: Option<Spanned<ActionSpec>>,
    composed: Option<Spanned<ActionSpec>>,
    compose_deadline_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    streams: Spanned<String>,
    segments: Option<Spanned<ActionSpec>>,
    composed: Option<Spanned<ActionSpec>>,
    compose_deadline_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    action: String,
    template_group: Option<String>,
    priority: Option<String>,
}

trait Resolve {
    fn resolve(self, text: &str) -> Result<Action, PolicyError>;
}

impl Resolve for Spanned<ActionSpec> {
    fn resolve(self, text: &str) -> Result<Action, PolicyError> {
        let line = line_of(text, self.span().start);
        let spec = self.into_inner();
        let fail = |message: String| PolicyError { line, message };
        let no_extras = |spec: &ActionSpec| -> Result<(), PolicyError> {
            if spec.template_group.is_some() || spec.priority.is_some() {
                return Err(fail(format!(
                    "action {:?} takes no template_group or priority (only \"transcode\" does)",
                    spec.action
                )));
            }
            Ok(())
        };
        match spec.action.as_str() {
            "none" => no_extras(&spec).map(|_| Action::None),
            "manual" => no_extras(&spec).map(|_| Action::Manual),
            "transcode" => {
                let template_group = spec
                    .template_group
                    .filter(|g| !g.trim().is_empty())
                    .ok_or_else(|| fail("action \"transcode\" needs a template_group".into()))?;
                if let Some(p) = &spec.priority {
                    match p.parse::<u8>() {
                        Ok(1..=10) => {}
                        _ => {
                            return Err(fail(format!("priority must be \"1\"..\"10\", got {p:?}")))
                        }
                    }
                }
                Ok(Action::Transcode {
                    template_group,
                    priority: spec.priority,
                })
            }
            other => Err(fail(format!(
                "unknown action {other:?} (expected none, manual or transcode)"
            ))),
        }
    }
}

/// A glob over `domain/app/stream`: `*` matches any run (including `/`), `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    text: String,
}

impl Glob {
    /// Compiles a glob; refuses empty patterns and unsupported syntax.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty streams glob".into());
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| matches!(c, '[' | ']' | '{' | '}' | '\\'))
        {
            return Err(format!(
                "streams glob {pattern:?}: {c:?} is not supported (only * and ?)"
            ));
        }
        Ok(Glob {
            pattern: pattern.chars().collect(),
            text: pattern.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `text` matches. Linear-time two-pointer matching with one backtrack point
    /// (the last `*`), which is enough because `*` is the only variable-length token.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        let p = &self.pattern;
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == '*' {
            pi += 1;
        }
        pi == p.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[defaults]
segments = { action = "none" }
composed = { action = "manual" }
compose_deadline_secs = 600

[[rules]]
streams = "live.example.com/app/store-*"
segments = { action = "transcode", template_group = "tg-record", priority = "5" }
compose_deadline_secs = 900

[[rules]]
streams = "*/edu/class-??"
composed = { action = "transcode", template_group = "tg-compose" }
"#;

    #[test]
    fn reconcile_apps_are_read_and_checked() {
        let p = Policy::parse("[reconcile]\napps = [\"live.example.com/app\", \"d/a\"]\n").unwrap();
        assert_eq!(p.reconcile_apps, vec!["live.example.com/app", "d/a"]);
        assert!(Policy::parse("").unwrap().reconcile_apps.is_empty());
        let e = Policy::parse("[reconcile]\napps = [\"only-a-domain\"]\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            Policy::parse("[reconcile]\nstreams = []\n").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn parses_the_documented_format_and_first_match_wins() {
        let p = Policy::parse(SAMPLE).unwrap();
        let store = p.for_stream(&StreamKey::new("live.example.com", "app", "store-7"));
        assert_eq!(
            store.segments,
            Action::Transcode {
                template_group: "tg-record".into(),
                priority: Some("5".into())
            }
        );
        assert_eq!(
            store.composed,
            Action::Manual,
            "missing parts come from [defaults]"
        );
        assert_eq!(store.compose_deadline_secs, 900);
        let class = p.for_stream(&StreamKey::new("x.com", "edu", "class-12"));
        assert_eq!(
            class.composed,
            Action::Transcode {
                template_group: "tg-compose".into(),
                priority: None
            }
        );
        assert_eq!(class.compose_deadline_secs, 600);
        let other = p.for_stream(&StreamKey::new("x.com", "edu", "class-123"));
        assert_eq!(other, &p.defaults);
    }

    #[test]
    fn default_policy_is_manual_manual_600() {
        // Without a policy file (or where it says nothing) manual requests are honoured and
        // nothing is transcoded on live2vod's own initiative.
        let p = Policy::default();
        assert_eq!(
            p.defaults,
            StreamPolicy {
                segments: Action::Manual,
                composed: Action::Manual,
                compose_deadline_secs: 600
            }
        );
        assert_eq!(Policy::parse("").unwrap(), p);
    }

    fn line_of_error(text: &str) -> (usize, String) {
        let e = Policy::parse(text).unwrap_err();
        (e.line, e.message)
    }

    #[test]
    fn errors_name_the_line() {
        let (line, msg) = line_of_error(
            "[defaults]\ncompose_deadline_secs = 1\nsegmnts = { action = \"none\" }\n",
        );
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("segmnts"), "{msg}");

        let (line, msg) = line_of_error(
            "[[rules]]\nstreams = \"a/*\"\n\nsegments = { action = \"transcode\" }\n",
        );
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("template_group"), "{msg}");

        let (line, msg) = line_of_error("\n[[rules]]\nstreams = \"a/[bc]\"\n");
        assert_eq!(line, 3, "{msg}");

        let (line, _) = line_of_error("[defaults]\ncomposed = { action = \"sometimes\" }\n");
        assert_eq!(line, 2);

        let (line, _) = line_of_error("[defaults]\nsegments = { action = \"transcode\", template_group = \"g\", priority = \"11\" }\n");
        assert_eq!(line, 2);

        let (line, _) =
            line_of_error("[defaults]\nsegments = { action = \"none\", template_group = \"g\" }\n");
        assert_eq!(line, 2);

        let (line, _) = line_of_error("[defaults]\ncompose_deadline_secs = \"soon\"\n");
        assert_eq!(line, 2);

        let (line, _) = line_of_error("\n\nthis is not toml\n");
        assert_eq!(line, 3);
    }

    #[test]
    fn glob_matching() {
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(g("*").matches(""));
        assert!(g("*").matches("a/b/c"));
        assert!(g("a/*/c").matches("a/b/x/c"), "* crosses /");
        assert!(g("a?c").matches("abc"));
        assert!(!g("a?c").matches("ac"));
        assert!(g("*store-*").matches("d/app/store-1"));
        assert!(!g("*store-*").matches("d/app/shop-1"));
        assert!(g("a*b*c").matches("aXbYbZc"));
        assert!(!g("a*b*c").matches("aXbYbZ"));
        assert!(g("live.example.com/app/store-*").matches("live.example.com/app/store-"));
        assert!(!g("abc").matches("abcd"));
        assert!(g("ü?").matches("üx"), "chars, not bytes");
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a{b,c}").is_err());
    }
}
