//! The pure core: callback parsing, aggregates, projectors, policy.
//! Nothing in here imports tokio, rdkafka, axum or metrics, reads the clock or draws randomness:
//! time and ids come in as data, so every function can be property-tested over permutations.
#![warn(missing_docs)]
pub mod aggregate;
pub mod codec;
pub mod compact;
pub mod engine;
pub mod event;
pub mod lattice;
pub mod observation;
pub mod outcome;
pub mod policy;
pub mod projector;
pub mod stream;
pub mod time;
pub mod video;
pub mod view;
pub mod vocab;

pub use aggregate::Aggregate;
pub use codec::{decode_snapshot, CodecError};
pub use engine::{Applied, Engine};
pub use event::{parse_event, routing_key, Event, EventBody, EventError};
pub use policy::{Policy, PolicyError};
pub use projector::transcode_command_id;
pub use stream::StreamAggregate;
pub use video::{InputPos, VideoAggregate};
pub use vocab::CommandKind;
