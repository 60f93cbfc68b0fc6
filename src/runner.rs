//! Runs a job end to end.
