//! Apply stage: contracts created for ERP records (`[create]`). Pure: the
//! `missing_in_spotdraft` rows, the extract's records and the journal's
//! earlier creates in, actions out.
//!
//! Per `missing_in_spotdraft` row, in one plan:
//! 1. `create_contract`: the Create Contract body (`contract_template_id`,
//!    `contract_name`, `contract_data`, `counter_party_details`,
//!    `external_metadata` with the record id exactly as the extract holds it,
//!    trimmed: the string `by_external_metadata` looks up before every attempt);
//! 2. `update_erp_fields` of `spotdraft_contract_id` = [`CREATED_CONTRACT_ID`],
//!    replaced at execution by the id of the contract the create made or
//!    adopted (closing the loop through the corrections sink);
//! 3. `upload_supporting_document` when `document_column` names a document,
//!    sent in its own lane once the contract exists.
//!
//! A record whose values cannot make a valid body (no template for its value,
//! an unreadable number or date, no contact email) is `review`, with the
//! reason. A later run plans the back-reference (while the extract shows
//! none) and the upload again, with the same keys, for a record that got its
//! contract (the journal says so, or a live contract outside the reconciled
//! statuses carries its id), until the journal holds them as applied.

use super::actions::{record_versions, text_col, Action, ActionKind, PlanInput};
use super::journal::JournalView;
use super::ApplyError;
use crate::job::create::{CreateSettings, FieldKind, NamePart, TemplateChoice};
use crate::reconcile::spec::kinds;
use polars::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The value of a planned back-reference before its create has run.
pub const CREATED_CONTRACT_ID: &str = "{created_contract_id}";

/// The field of an `upload_supporting_document` action holding the document's location.
pub const DOCUMENT_FIELD: &str = "document";

/// One extract record, column -> trimmed non-empty text.
type Record = HashMap<String, String>;

/// The records by trimmed id (the first row of an id wins), with the columns `[create]` reads.
fn records_by_id(
    records: &DataFrame,
    create: &CreateSettings,
) -> PolarsResult<HashMap<String, Record>> {
    let ids = text_col(records, "erp_record_id")?;
    let mut columns: Vec<String> = create.columns().into_iter().map(|(_, c)| c).collect();
    columns.sort();
    columns.dedup();
    let values = columns
        .iter()
        .map(|c| text_col(records, c))
        .collect::<PolarsResult<Vec<_>>>()?;
    let mut out: HashMap<String, Record> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let Some(id) = id.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            continue;
        };
        out.entry(id.to_string()).or_insert_with(|| {
            columns
                .iter()
                .zip(&values)
                .filter_map(|(c, v)| {
                    let t = v[i].as_deref()?.trim();
                    (!t.is_empty()).then(|| (c.clone(), t.to_string()))
                })
                .collect()
        });
    }
    Ok(out)
}

/// A number as JSON: an integer when it is one, else a float.
fn number(text: &str) -> Option<Value> {
    let t = text.trim().replace(',', "");
    if let Ok(i) = t.parse::<i64>() {
        return Some(json!(i));
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| json!(f))
}

/// `YYYY-MM-DD` from a date or an ISO date-time.
fn date(text: &str) -> Option<String> {
    let t = text.trim();
    let head = t.get(..10).unwrap_or(t);
    chrono::NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// The Create Contract body fields of one record (each value JSON text), or
/// why the record cannot be created automatically.
pub fn create_fields(
    erp_id: &str,
    rec: &Record,
    create: &CreateSettings,
) -> Result<BTreeMap<String, String>, String> {
    let get = |c: &str| rec.get(c).map(String::as_str);
    let template = match &create.template {
        TemplateChoice::Fixed(id) => *id,
        TemplateChoice::ByColumn { column, templates } => {
            let value = get(column).ok_or(format!("{column} is empty: no template to use"))?;
            *templates.get(value).ok_or(format!(
                "{column} {value:?} has no template in [create] templates"
            ))?
        }
    };
    let mut name = String::new();
    for part in &create.contract_name {
        match part {
            NamePart::Text(t) => name.push_str(t),
            NamePart::Column(c) => name.push_str(get(c).unwrap_or("")),
        }
    }
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err("the contract name is empty".into());
    }
    let mut data: BTreeMap<String, Value> = BTreeMap::new();
    for (field, f) in &create.contract_data {
        let Some(raw) = get(&f.column) else { continue };
        let bad = |what: &str| {
            format!(
                "contract_data.{field}: {raw:?} ({}) is not {what}",
                f.column
            )
        };
        let value = match &f.kind {
            FieldKind::Text => json!(raw),
            FieldKind::Number => number(raw).ok_or_else(|| bad("a number"))?,
            FieldKind::Date => json!(date(raw).ok_or_else(|| bad("a date"))?),
            FieldKind::Currency { column, fixed } => {
                let code = match (column, fixed) {
                    (Some(c), _) => get(c).map(|v| v.to_ascii_uppercase()),
                    (None, Some(code)) => Some(code.clone()),
                    _ => None,
                }
                .ok_or(format!("contract_data.{field}: no currency"))?;
                json!({"type": code, "value": number(raw).ok_or_else(|| bad("an amount"))?})
            }
        };
        data.insert(field.clone(), value);
    }
    let cp = &create.counter_party;
    let email = get(&cp.contact_email)
        .filter(|e| e.contains('@'))
        .ok_or(format!("{} is not an email address", cp.contact_email))?;
    let full = get(&cp.contact_name).unwrap_or("");
    let (first, last) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
    let mut party = Map::new();
    party.insert("is_individual".into(), json!(cp.is_individual));
    if let Some(c) = &cp.organization_name {
        match get(c) {
            Some(org) => {
                party.insert("organization_name".into(), json!(org));
            }
            None if !cp.is_individual => {
                return Err(format!("{c} (the organization name) is empty"))
            }
            None => {}
        }
    }
    party.insert(
        "poc_details".into(),
        json!({"first_name": first.trim(), "last_name": last.trim(), "email": email}),
    );
    if let Some(code) = cp.jurisdiction.as_deref().and_then(get) {
        party.insert(
            "organization_details".into(),
            json!({"jurisdiction_iso_code": code.to_ascii_uppercase()}),
        );
    }
    let record_data: BTreeMap<&String, &str> = create
        .record_data
        .iter()
        .filter_map(|(k, c)| Some((k, get(c)?)))
        .collect();
    let metadata = json!({
        "id": erp_id,
        "integration_name": create.integration_name,
        "record_type": create.record_type,
        "record_data": record_data,
    });
    let text = |v: &Value| v.to_string();
    Ok(BTreeMap::from([
        ("contract_template_id".to_string(), template.to_string()),
        ("contract_name".to_string(), name),
        ("contract_data".to_string(), text(&json!(data))),
        (
            "counter_party_details".to_string(),
            text(&json!([Value::Object(party)])),
        ),
        ("external_metadata".to_string(), text(&metadata)),
    ]))
}

/// The Create Contract request body of a `create_contract` action.
pub fn create_body(a: &Action) -> Result<Value, String> {
    let field = |k: &str| a.fields.get(k).ok_or(format!("the plan row lacks {k}"));
    let json = |k: &str| -> Result<Value, String> {
        serde_json::from_str(field(k)?).map_err(|e| format!("{k}: {e}"))
    };
    let template: i64 = field("contract_template_id")?
        .parse()
        .map_err(|e| format!("contract_template_id: {e}"))?;
    Ok(json!({
        "contract_template_id": template,
        "contract_name": field("contract_name")?,
        "contract_data": json("contract_data")?,
        "counter_party_details": json("counter_party_details")?,
        "external_metadata": json("external_metadata")?,
    }))
}

fn upload(erp_id: &str, location: &str) -> Action {
    let mut a = Action::new(
        ActionKind::UploadSupportingDocument,
        Some(erp_id),
        None,
        kinds::MISSING_IN_SPOTDRAFT,
    );
    a.fields.insert(DOCUMENT_FIELD.into(), location.to_string());
    a
}

/// The creates, back-references and uploads of a run (unkeyed), for
/// `input.create`; nothing without it.
pub fn plan_creates(input: &PlanInput, journal: &JournalView) -> Result<Vec<Action>, ApplyError> {
    let Some(create) = input.create else {
        return Ok(Vec::new());
    };
    let polars = |source: PolarsError| ApplyError::Polars {
        job: input.job.to_string(),
        source: Box::new(source),
    };
    let records = records_by_id(input.records, create).map_err(polars)?;
    let versions = record_versions(input.records, input.settings).map_err(polars)?;
    let kinds_col = text_col(input.drift, "drift_kind").map_err(polars)?;
    let erp_col = text_col(input.drift, "erp_record_id").map_err(polars)?;
    let ids = text_col(input.drift, crate::reconcile::identity::DRIFT_ID).map_err(polars)?;
    let mut out = Vec::new();
    for i in 0..input.drift.height() {
        if kinds_col[i].as_deref() != Some(kinds::MISSING_IN_SPOTDRAFT) {
            continue;
        }
        let Some(erp_id) = erp_col[i]
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let kind = kinds::MISSING_IN_SPOTDRAFT;
        let empty = Record::new();
        let rec = records.get(erp_id).unwrap_or(&empty);
        let mut a = match create_fields(erp_id, rec, create) {
            Ok(fields) => {
                let mut a = Action::new(ActionKind::CreateContract, Some(erp_id), None, kind);
                a.fields = fields;
                let mut back = Action::new(ActionKind::UpdateErpFields, Some(erp_id), None, kind);
                back.fields.insert(
                    "spotdraft_contract_id".into(),
                    CREATED_CONTRACT_ID.to_string(),
                );
                back.if_match = versions.get(erp_id).cloned();
                out.push(back);
                if let Some(loc) = create.document_column.as_ref().and_then(|c| rec.get(c)) {
                    out.push(upload(erp_id, loc));
                }
                a
            }
            Err(reason) => Action::review(
                Some(erp_id),
                None,
                kind,
                format!("create_contract: {reason}"),
            ),
        };
        a.drift_ids.extend(ids[i].clone());
        out.push(a);
    }
    // What is still owed to records created earlier (the journal says so, or
    // a live contract outside the reconciled statuses carries the record's
    // id: a run killed before journaling its create): the back-reference
    // while the extract shows none, and the document. Planned with the
    // content of the first plan, so their keys are the same; prepare_plan
    // drops the ones the journal holds as applied.
    let planned: std::collections::HashSet<&str> = out
        .iter()
        .filter_map(|a| a.erp_record_id.as_deref())
        .collect();
    let mut owed: std::collections::BTreeSet<String> =
        journal.applied_creates().into_keys().collect();
    owed.extend(created_outside_scope(input).map_err(polars)?);
    let back_refs = back_references(input.records).map_err(polars)?;
    let mut later = Vec::new();
    for erp_id in owed.iter().filter(|id| !planned.contains(id.as_str())) {
        let Some(rec) = records.get(erp_id) else {
            continue;
        };
        if !needs_contract(rec, &create.needs_contract) {
            continue;
        }
        if back_refs.get(erp_id.as_str()).is_none_or(|b| b.is_empty()) {
            let mut back = Action::new(
                ActionKind::UpdateErpFields,
                Some(erp_id),
                None,
                kinds::MISSING_IN_SPOTDRAFT,
            );
            back.fields.insert(
                "spotdraft_contract_id".into(),
                CREATED_CONTRACT_ID.to_string(),
            );
            back.if_match = versions.get(erp_id).cloned();
            later.push(back);
        }
        if let Some(loc) = create.document_column.as_ref().and_then(|c| rec.get(c)) {
            later.push(upload(erp_id, loc));
        }
    }
    out.extend(later);
    Ok(out)
}

/// Whether a record needs a contract under the rule (trimmed, case-insensitive).
fn needs_contract(rec: &Record, rule: &crate::reconcile::spec::NeedsContract) -> bool {
    match rec.get(&rule.column) {
        None => false,
        Some(v) if rule.values.is_empty() => !v.is_empty(),
        Some(v) => rule.values.iter().any(|x| x.trim().eq_ignore_ascii_case(v)),
    }
}

/// The back-reference of every record (trimmed; empty when null), by trimmed id.
fn back_references(records: &DataFrame) -> PolarsResult<HashMap<String, String>> {
    let ids = text_col(records, "erp_record_id")?;
    let back = text_col(records, "spotdraft_contract_id")?;
    Ok(ids
        .into_iter()
        .zip(back)
        .filter_map(|(id, b)| {
            Some((
                id?.trim().to_string(),
                b.unwrap_or_default().trim().to_string(),
            ))
        })
        .collect())
}

/// The `external_metadata.id` (trimmed) of every live contract whose status
/// is not reconciled (a contract just created is a DRAFT).
fn created_outside_scope(input: &PlanInput) -> PolarsResult<Vec<String>> {
    let snapshot = input.snapshot;
    let ids = text_col(snapshot, "external_metadata.id")?;
    let status = text_col(snapshot, "contract_status")?;
    let deleted = text_col(snapshot, "deleted_at")?;
    let in_scope = |s: &str| {
        input
            .spec
            .statuses
            .iter()
            .any(|x| x.trim().eq_ignore_ascii_case(s.trim()))
    };
    Ok((0..snapshot.height())
        .filter(|i| deleted[*i].as_deref().is_none_or(|d| d.trim().is_empty()))
        .filter(|i| !in_scope(status[*i].as_deref().unwrap_or("")))
        .filter_map(|i| Some(ids[i].as_deref()?.trim().to_string()))
        .filter(|id| !id.is_empty())
        .collect())
}

#[cfg(test)]
mod tests;
