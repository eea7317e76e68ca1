//! The policy files shipped for users parse with the fold's own parser (a file the fold
//! refuses at start would take a deployment down).
use live2vod::domain::Policy;

fn check(rel: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    if let Err(e) = Policy::parse(&text) {
        panic!("{rel} is refused by the fold: {e}");
    }
}

#[test]
fn example_policy_parses() {
    check("deploy/policy.example.toml");
}

#[test]
fn kubernetes_policy_parses() {
    check("deploy/k8s/policy.toml");
}

#[test]
fn simulator_policy_parses() {
    Policy::parse(&live2vod::sim::policy_toml()).expect("sim policy parses");
}

#[test]
fn a_broken_policy_names_its_line() {
    let err = Policy::parse("[defaults]\nsegments = { action = \"transcode\" }\n")
        .expect_err("transcode without template group is refused");
    assert!(err.to_string().contains("line"), "{err}");
}
