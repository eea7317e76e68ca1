//! Alibaba Cloud VOD: callback authentication and the OpenAPI (RPC, signature v1) plumbing.
pub mod callback_auth;
pub mod client;
pub mod sign;
