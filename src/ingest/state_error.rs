//! Why the run state (the state file and the spilled pages) could not be read
//! or written; shared by the walk's store and the checkpoint. Messages name the
//! object; the cause is the error's `source()`.

/// Why the run state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The object store failed.
    #[error("run state {path}")]
    Store {
        /// The object.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The object is not the JSON this version writes.
    #[error("run state {path} is not valid (delete it to start over with a full walk)")]
    Corrupt {
        /// The object.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The state parsed but does not hold together.
    #[error("run state: {0} (delete the state file to start over with a full walk)")]
    Invalid(String),
}
