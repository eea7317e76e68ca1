//! Alibaba Cloud VOD: callback authentication and the OpenAPI (RPC, signature v1) client.
