//! Contract snapshot and run state.
