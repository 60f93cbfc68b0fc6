//! The demo's change between two runs (`contract-recon demo --change`): one
//! contract of `fixtures/demo` edited as a person would in SpotDraft, so the
//! run after it reports resolved and new drift.

use super::StateHandle;

/// The edited contract.
pub const DEMO_CHANGE_CONTRACT: &str = "T-1072";

/// Edits [`DEMO_CHANGE_CONTRACT`] in `state` and sets its `last_updated_on`
/// to 30 seconds ago (before the run's start, so the run's incremental walk
/// reads it): its vendor id becomes the ERP's
/// (`V-38520`, resolving its `vendor_id` mismatch) and its PO number
/// `12913669` (the ERP has `12913668`: a new `po_number` mismatch). Returns
/// what was changed, one line each (nothing when the dataset lacks the contract).
pub fn demo_change(state: &StateHandle) -> Vec<String> {
    let Some(mut contract) = state.contract(DEMO_CHANGE_CONTRACT) else {
        return vec![format!(
            "{DEMO_CHANGE_CONTRACT} is not in this dataset; nothing changed"
        )];
    };
    let data = &mut contract.contract.external_metadata.record_data;
    let mut lines = Vec::new();
    for (key, value) in [("vendor_id", "V-38520"), ("po_number", "12913669")] {
        let before = data.insert(key.to_string(), serde_json::json!(value));
        lines.push(format!(
            "{DEMO_CHANGE_CONTRACT} {key}: {} -> {value}",
            before.map_or("(none)".to_string(), |v| v.to_string())
        ));
    }
    let updated = chrono::Utc::now() - chrono::Duration::seconds(30);
    contract.contract.last_updated_on =
        Some(updated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    state.upsert_contract(contract);
    lines
}
