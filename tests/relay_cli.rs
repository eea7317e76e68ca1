//! Command-line contract of the roles owned here: every flag explained, env vars, refusals.
use clap::{CommandFactory, Parser};

#[derive(Parser, Debug)]
struct Relay {
    #[command(flatten)]
    args: live2vod::relay::Args,
}

#[derive(Parser, Debug)]
struct Api {
    #[command(flatten)]
    args: live2vod::api::Args,
}

#[derive(Parser, Debug)]
struct Broker {
    #[command(flatten)]
    args: live2vod::broker::Args,
}

#[derive(Parser, Debug)]
struct Topics {
    #[command(subcommand)]
    cmd: live2vod::kafka::cli::TopicsCommand,
}

/// Flags without a help text or without a `LIVE2VOD_*` env var.
fn unexplained(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version"))
        .filter_map(|a| {
            let long = a.get_long().unwrap_or_default();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            let env = a
                .get_env()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_string();
            if help.trim().len() < 10 || !env.starts_with("LIVE2VOD_") {
                Some(format!("--{long} (help {help:?}, env {env:?})"))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn every_flag_is_explained_and_has_an_env_var() {
    let mut topics = Topics::command();
    topics.build();
    let create = topics
        .find_subcommand("create")
        .expect("topics create")
        .clone();
    for (name, cmd) in [
        ("relay", Relay::command()),
        ("api", Api::command()),
        ("broker", Broker::command()),
        ("topics create", create),
    ] {
        assert!(cmd.get_arguments().count() >= 4, "{name}: flags are seen");
        let missing = unexplained(&cmd);
        assert!(missing.is_empty(), "{name}: {missing:?}");
    }
}

#[test]
fn relay_requires_a_key_unless_auth_is_explicitly_off() {
    let err = Relay::try_parse_from(["relay", "--brokers", "b:9092"]).expect_err("no key");
    let text = err.to_string();
    assert!(
        text.contains("--auth-key") && text.contains("--callback-url"),
        "{text}"
    );
    let ok = Relay::try_parse_from(["relay", "--no-auth"]).expect("--no-auth alone is enough");
    assert!(ok.args.auth.no_auth);
    assert!(
        Relay::try_parse_from(["relay", "--no-auth", "--auth-key", "k"]).is_err(),
        "--no-auth with a key is contradictory"
    );
    let full = Relay::try_parse_from([
        "relay",
        "--callback-url",
        "https://x/cb",
        "--auth-key",
        "k",
        "--auth-key-previous",
        "k0",
        "--listen",
        "127.0.0.1:9000",
    ])
    .expect("full relay flags");
    assert_eq!(full.args.max_body_bytes, 64 * 1024);
    assert_eq!(full.args.auth.timestamp_window_secs, 300);
    assert_eq!(full.args.ack_timeout_ms, 3000);
}

#[test]
fn slow_client_limits_default_sanely_and_refuse_zero() {
    let r = Relay::try_parse_from(["relay", "--no-auth"]).expect("defaults");
    assert_eq!(
        (
            r.args.header_timeout_ms,
            r.args.body_timeout_ms,
            r.args.max_connections
        ),
        (10_000, 5_000, 1024)
    );
    for flag in [
        "--header-timeout-ms",
        "--body-timeout-ms",
        "--max-connections",
    ] {
        // Zero would close every connection at once, or never accept one.
        assert!(
            Relay::try_parse_from(["relay", "--no-auth", flag, "0"]).is_err(),
            "{flag} 0 accepted"
        );
        let ok = Relay::try_parse_from(["relay", "--no-auth", flag, "1"]);
        assert!(ok.is_ok(), "{flag} 1 refused: {:?}", ok.err());
    }
}

#[test]
fn malformed_kafka_pass_through_is_refused() {
    for role in [
        Relay::try_parse_from(["relay", "--no-auth", "--kafka", "security.protocol"]).err(),
        Api::try_parse_from(["api", "--kafka", "sasl.mechanism"]).err(),
    ] {
        let err = role.expect("KEY without =VALUE refused");
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }
    let api = Api::try_parse_from([
        "api",
        "--kafka",
        "security.protocol=SASL_SSL",
        "--kafka",
        "sasl.mechanism=SCRAM-SHA-256",
    ])
    .expect("valid pass-through");
    let cfg = api.args.kafka.client_config();
    assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
    assert_eq!(cfg.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
}

#[test]
fn auth_keys_never_appear_in_debug_output() {
    let r = Relay::try_parse_from([
        "relay",
        "--callback-url",
        "https://x/cb",
        "--auth-key",
        "s3cret-current",
        "--auth-key-previous",
        "s3cret-old",
        "--kafka",
        "sasl.password=s3cret-sasl",
    ])
    .expect("valid");
    let text = format!("{r:?}");
    assert!(text.contains("https://x/cb"), "{text}");
    for secret in ["s3cret-current", "s3cret-old", "s3cret-sasl"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[derive(Parser, Debug)]
struct Run {
    #[command(flatten)]
    args: live2vod::allinone::Args,
}

#[test]
fn run_shares_the_relay_auth_flags_and_hides_every_secret() {
    let r = Run::try_parse_from([
        "run",
        "--callback-url",
        "https://x/cb",
        "--auth-key",
        "s3cret-current",
        "--access-key-id",
        "id",
        "--access-key-secret",
        "s3cret-ak",
        "--security-token",
        "s3cret-sts",
    ])
    .expect("valid");
    let text = format!("{r:?}");
    for secret in ["s3cret-current", "s3cret-ak", "s3cret-sts"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // The same rule as the relay: an empty key is no key.
    let empty = Run::try_parse_from([
        "run",
        "--callback-url",
        "https://x/cb",
        "--auth-key",
        "",
        "--access-key-id",
        "id",
        "--access-key-secret",
        "s",
    ])
    .expect("parses");
    assert!(
        empty.args.auth.auth().is_err(),
        "an empty auth key must be refused"
    );
    let missing = unexplained(&Run::command());
    assert!(missing.is_empty(), "run: {missing:?}");
}
