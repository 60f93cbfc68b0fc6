//! Integration tests: sandbox_api.
