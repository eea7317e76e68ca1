//! HTTP plumbing shared by the roles: health, readiness, metrics, graceful shutdown.
