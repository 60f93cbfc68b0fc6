//! Apply stage: the `apply_results` table (every action's outcome) and the
//! summary's `apply` section ([`ApplySummary`], kept with the report's summary).

pub use crate::report::ApplySummary;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// Columns of the `apply_results` table, in order.
pub const RESULT_COLUMNS: [&str; 10] = [
    "action_id",
    "generation",
    "action",
    "erp_record_id",
    "contract_id",
    "outcome",
    "status",
    "message",
    "attempt",
    "plan_run_id",
];

/// What happened to one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The action's key.
    pub key: String,
    /// Its generation.
    pub generation: u32,
    /// Its kind.
    pub action: String,
    /// The ERP record.
    pub erp_record_id: Option<String>,
    /// The contract.
    pub contract_id: Option<String>,
    /// `applied`, `already_applied` (the journal says so; not sent), `pending`,
    /// `rejected`, `rejected_earlier` (not re-sent), `checksum_mismatch`,
    /// `review`, `not_sent` (the cap, the document budget, no SpotDraft writer).
    pub outcome: String,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    /// The ERP's message, the error, or why it was not sent.
    pub message: Option<String>,
    /// Attempts of this key so far, this one included (0: not sent).
    pub attempt: u32,
}

impl ActionResult {
    /// Whether the action failed: rejected, a checksum mismatch, or still pending.
    pub fn failed(&self) -> bool {
        matches!(
            self.outcome.as_str(),
            "rejected" | "checksum_mismatch" | "pending"
        )
    }
}

/// The `apply_results` table.
pub fn results_frame(results: &[ActionResult], plan_run_id: &str) -> PolarsResult<DataFrame> {
    let s = |name: &str, f: &dyn Fn(&ActionResult) -> Option<String>| {
        Column::new(name.into(), results.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new(
        results.len(),
        vec![
            s("action_id", &|r| Some(r.key.clone())),
            Column::new(
                "generation".into(),
                results.iter().map(|r| r.generation).collect::<Vec<u32>>(),
            ),
            s("action", &|r| Some(r.action.clone())),
            s("erp_record_id", &|r| r.erp_record_id.clone()),
            s("contract_id", &|r| r.contract_id.clone()),
            s("outcome", &|r| Some(r.outcome.clone())),
            Column::new(
                "status".into(),
                results
                    .iter()
                    .map(|r| r.status.map(u32::from))
                    .collect::<Vec<_>>(),
            ),
            s("message", &|r| r.message.clone()),
            Column::new(
                "attempt".into(),
                results.iter().map(|r| r.attempt).collect::<Vec<u32>>(),
            ),
            s("plan_run_id", &|_| Some(plan_run_id.to_string())),
        ],
    )
}
