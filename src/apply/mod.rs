//! Apply stage: corrections planned from drift, journaled, and written through
//! a correction sink ([`crate::erp::sink::ErpSink`]).
//!
//! - [`actions`]: pure: the drift rows, the snapshot and the extract become
//!   actions (`update_erp_fields`, `attach_document`, `set_external_metadata`,
//!   `review`), formatted the way the ERP reads them;
//! - [`keys`]: each action's idempotency key (its content plus a generation);
//! - [`plan`]: the `plan` table and its checksum;
//! - [`journal`]: the append-only record of what was applied, one object per batch;
//! - [`execute`]: runs a plan's actions in bounded batches, documents in their own lane;
//! - [`results`]: the `apply_results` table and the summary's `apply` section;
//! - [`create`]: contracts created for ERP records (`[create]`), their
//!   back-references and documents; [`create_lane`]: how they are sent, never twice;
//! - [`spotdraft`]: documents downloaded and `external_metadata` written back;
//! - [`stage`]: plan a run, apply a plan and publish its results, load a published plan.

pub mod actions;
pub mod create;
pub mod create_lane;
pub mod execute;
pub mod journal;
pub mod keys;
pub mod plan;
pub mod results;
pub mod spotdraft;
pub mod stage;

pub use actions::{plan_actions, Action, ActionKind, PlanInput};
pub use execute::{
    execute_plan, ApplyContext, DocumentSource, Execution, MetadataWriter, NoSpotDraft,
};
pub use journal::{read_journal, JournalEntry, JournalView};
pub use plan::{plan_checksum, plan_frame, plan_from_frame, PLAN_COLUMNS};
pub use results::{results_frame, ActionResult, ApplySummary, RESULT_COLUMNS};

/// Why the apply stage could not plan, read or run a plan. Each variant names
/// the job, the run, the key or the record at fault.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Polars failed while reading the drift, the snapshot or the extract.
    #[error("job {job}: planning corrections")]
    Polars {
        /// The job.
        job: String,
        /// Polars' own message.
        #[source]
        source: Box<polars::error::PolarsError>,
    },
    /// Reconciliation's linking (reused for back-references) failed.
    #[error("job {job}: finding back-references to correct")]
    Link {
        /// The job.
        job: String,
        /// The engine's message.
        #[source]
        source: Box<crate::reconcile::ReconcileError>,
    },
    /// The output store refused a journal or plan read or write.
    #[error("job {job}: {op} {path}")]
    Store {
        /// The job.
        job: String,
        /// `reading`, `writing` or `listing`.
        op: &'static str,
        /// The object path.
        path: String,
        /// object_store's message.
        #[source]
        source: Box<object_store::Error>,
    },
    /// A journal object or plan row is not what this version writes.
    #[error("job {job}: {path}: unreadable: {message}")]
    Corrupt {
        /// The job.
        job: String,
        /// The object path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `contract-recon apply` refused the plan before sending anything.
    #[error("job {job}: run {run_id}: plan refused: {reason}")]
    PlanRefused {
        /// The job.
        job: String,
        /// The run whose plan was asked for.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// The sink could not be built or the results not published.
    #[error("job {job}: {key}: {message}")]
    Sink {
        /// The job.
        job: String,
        /// The job-file key at fault.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// A plan row's key does not match its content (edited, or another job's).
    #[error("job {job}: run {run_id}: plan row for record {record:?} has key {key} but its content gives {expected}: the plan was modified or belongs to another job")]
    KeyMismatch {
        /// The job.
        job: String,
        /// The run.
        run_id: String,
        /// The ERP record (or contract) the row targets.
        record: String,
        /// The key written in the plan.
        key: String,
        /// The key its content gives.
        expected: String,
    },
}
