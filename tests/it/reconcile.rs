//! Integration tests: reconcile.
