//! The pure core: callback parsing, aggregates, projectors, policy.
//! Nothing in here imports tokio, rdkafka, axum or metrics, reads the clock or draws randomness.
//!
//! TEMPORARY integration shim: replaced by the domain branch.
pub mod policy {
    /// Placeholder policy.
    #[derive(Debug, Clone, Default)]
    pub struct Policy {
        _p: (),
    }
    impl Policy {
        pub fn from_toml(_s: &str) -> Result<Self, String> {
            Ok(Policy::default())
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct InputPos {
    pub partition: i32,
    pub offset: i64,
}

pub struct Applied {
    pub aggregate_key: String,
    pub event_type: String,
    pub duplicate: bool,
    pub already_applied: bool,
    pub changed: bool,
    pub commands: Vec<crate::proto::Command>,
    pub derived: Vec<(String, Vec<u8>)>,
    pub snapshot: Option<Vec<u8>>,
}

pub struct Engine;
impl Engine {
    pub fn new(_p: policy::Policy) -> Self {
        Engine
    }
    pub fn restore(&mut self, _k: &str, _b: &[u8]) -> Result<(), String> {
        Err("shim".into())
    }
    pub fn apply(&mut self, _k: &str, _b: &[u8], _pos: InputPos) -> Result<Applied, String> {
        Err("shim".into())
    }
    pub fn apply_derived(&mut self, _k: &str, _b: &[u8]) -> Result<Applied, String> {
        Err("shim".into())
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }
    pub fn evict_partition(&mut self, _p: i32) {}
    pub fn snapshot_bytes(&self, _k: &str) -> Option<Vec<u8>> {
        None
    }
}

pub mod time {
    pub fn parse_ms(_s: &str) -> Option<i64> {
        None
    }
}
