//! Generated protobuf types (see `proto/live2vod.proto`).
#![allow(clippy::all, missing_docs)]
include!(concat!(env!("OUT_DIR"), "/live2vod.v1.rs"));
