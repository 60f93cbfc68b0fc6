//! Apply stage: the `plan` table, one row per action, and its checksum.
//!
//! Columns ([`PLAN_COLUMNS`]): `action_id` (the idempotency key),
//! `generation` (UInt32), `action`, `erp_record_id`, `contract_id`, `fields`
//! (JSON array of the field names written), `values` (JSON object field ->
//! value), `document_sha256`, `if_match`, `reason` (review only),
//! `drift_kinds` (comma-separated). The checksum is the SHA-256 of the rows'
//! canonical JSON, one line per row, in plan order; the run's summary keeps it
//! so `contract-recon apply` can refuse a plan whose content changed.

use super::actions::{Action, ActionKind};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Columns of the plan table, in order.
pub const PLAN_COLUMNS: [&str; 11] = [
    "action_id",
    "generation",
    "action",
    "erp_record_id",
    "contract_id",
    "fields",
    "values",
    "document_sha256",
    "if_match",
    "reason",
    "drift_kinds",
];

/// The plan table of `actions` (keys assigned).
pub fn plan_frame(actions: &[Action]) -> PolarsResult<DataFrame> {
    let s = |name: &str, f: &dyn Fn(&Action) -> Option<String>| {
        Column::new(name.into(), actions.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new(
        actions.len(),
        vec![
            s("action_id", &|a| Some(a.key.clone())),
            Column::new(
                "generation".into(),
                actions.iter().map(|a| a.generation).collect::<Vec<u32>>(),
            ),
            s("action", &|a| Some(a.kind.as_str().to_string())),
            s("erp_record_id", &|a| a.erp_record_id.clone()),
            s("contract_id", &|a| a.contract_id.clone()),
            s("fields", &|a| {
                Some(
                    serde_json::to_string(&a.fields.keys().collect::<Vec<_>>()).unwrap_or_default(),
                )
            }),
            s("values", &|a| {
                Some(serde_json::to_string(&a.fields).unwrap_or_default())
            }),
            s("document_sha256", &|a| a.document_sha256.clone()),
            s("if_match", &|a| a.if_match.clone()),
            s("reason", &|a| a.reason.clone()),
            s("drift_kinds", &|a| {
                Some(a.drift_kinds.iter().cloned().collect::<Vec<_>>().join(","))
            }),
        ],
    )
}

/// SHA-256 (hex) of the plan's canonical content: each row as a JSON array of
/// its [`PLAN_COLUMNS`] values (text or null), one line per row, in order.
pub fn plan_checksum(plan: &DataFrame) -> PolarsResult<String> {
    let mut cols = Vec::new();
    for c in PLAN_COLUMNS {
        let s = plan.column(c)?.cast(&DataType::String)?;
        cols.push(
            s.str()?
                .iter()
                .map(|v| v.map(str::to_string))
                .collect::<Vec<_>>(),
        );
    }
    let mut h = Sha256::new();
    for i in 0..plan.height() {
        let row: Vec<&Option<String>> = cols.iter().map(|c| &c[i]).collect();
        h.update(serde_json::to_vec(&row).unwrap_or_default());
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// The actions of a plan table, as written. A row that does not parse is an
/// error naming its `action_id`.
pub fn plan_from_frame(plan: &DataFrame) -> Result<Vec<Action>, String> {
    let text = |c: &str| -> Result<Vec<Option<String>>, String> {
        let s = plan
            .column(c)
            .and_then(|s| s.cast(&DataType::String))
            .map_err(|e| format!("column {c}: {e}"))?;
        Ok(s.str()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let [id, generation, action, erp, contract, values, doc, if_match, reason, kinds] = [
        "action_id",
        "generation",
        "action",
        "erp_record_id",
        "contract_id",
        "values",
        "document_sha256",
        "if_match",
        "reason",
        "drift_kinds",
    ]
    .map(text);
    let (id, generation, action, erp, contract, values, doc, if_match, reason, kinds) = (
        id?,
        generation?,
        action?,
        erp?,
        contract?,
        values?,
        doc?,
        if_match?,
        reason?,
        kinds?,
    );
    (0..plan.height())
        .map(|i| {
            let key = id[i].clone().unwrap_or_default();
            let bad = |what: &str| format!("row {} (action_id {key}): {what}", i + 1);
            Ok(Action {
                kind: action[i]
                    .as_deref()
                    .and_then(ActionKind::parse)
                    .ok_or_else(|| bad("unknown action"))?,
                erp_record_id: erp[i].clone(),
                contract_id: contract[i].clone(),
                fields: serde_json::from_str::<BTreeMap<String, String>>(
                    values[i].as_deref().unwrap_or("{}"),
                )
                .map_err(|e| bad(&format!("values: {e}")))?,
                document_sha256: doc[i].clone(),
                if_match: if_match[i].clone(),
                reason: reason[i].clone(),
                drift_kinds: kinds[i]
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                drift_ids: Default::default(),
                generation: generation[i]
                    .as_deref()
                    .and_then(|g| g.parse().ok())
                    .ok_or_else(|| bad("generation"))?,
                key,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn action() -> Action {
        Action {
            kind: ActionKind::UpdateErpFields,
            erp_record_id: Some("ERP-1".into()),
            contract_id: Some("T-1".into()),
            fields: BTreeMap::from([
                ("amount".into(), "12.50".into()),
                ("status".into(), "ACTIVE".into()),
            ]),
            document_sha256: None,
            if_match: Some("3".into()),
            reason: None,
            drift_kinds: BTreeSet::from(["field_mismatch".to_string()]),
            drift_ids: BTreeSet::new(),
            key: "abc".into(),
            generation: 2,
        }
    }

    #[test]
    fn a_plan_reads_back_as_written_and_any_edit_changes_its_checksum() {
        let plan = plan_frame(&[action()]).unwrap();
        assert_eq!(plan_from_frame(&plan).unwrap(), vec![action()]);
        let sum = plan_checksum(&plan).unwrap();
        let mut edited = action();
        edited.fields.insert("amount".into(), "99.00".into());
        assert_ne!(plan_checksum(&plan_frame(&[edited]).unwrap()).unwrap(), sum);
        assert_eq!(
            plan_checksum(&plan_frame(&[action()]).unwrap()).unwrap(),
            sum
        );
    }
}
