//! Apply stage: actions from drift. Pure: the drift frame, the snapshot and the
//! extract records in, a list of [`Action`]s out.
//!
//! | drift | owner | action |
//! |---|---|---|
//! | `field_mismatch` | `spotdraft` | `update_erp_fields`: one per ERP record, every differing SpotDraft-owned field |
//! | `field_mismatch` | `erp` | `set_external_metadata` (only with `spotdraft_writeback`; else `review`) |
//! | `field_mismatch` | `none` | `review` |
//! | back-reference (a pair linked by id whose record's `spotdraft_contract_id` is empty or names another contract) | — | `update_erp_fields` on `spotdraft_contract_id` (with `back_reference`) |
//! | `missing_document` | — | `attach_document` |
//! | `unlinked_contract` that one record names, `link_conflict` → `set_spotdraft_external_metadata_id` | — | `set_external_metadata` of `id` (only with `spotdraft_writeback`; else `review`) |
//! | everything else (duplicates, orphans, unresolved conflicts, unusable values, missing records) | — | `review` |
//!
//! Reconciliation reports a stale back-reference only when it makes a link
//! conflict; an *empty* back-reference, or one naming a contract that does not
//! exist, of a pair linked by id is no drift kind of its own, so the planner
//! finds those pairs itself with the engine's own linking.
//!
//! Values written are SpotDraft's raw values (never normalized ones): enums
//! mapped back through the compare's `values`, decimals at the compare's
//! `scale` as text, dates as `YYYY-MM-DD`, the back-reference as the composite
//! id (`T-123`). A null, empty or unparsable value is never written: its row
//! becomes `review` with the reason. Records are addressed by their id as the
//! extract holds it, trimmed.

use super::ApplyError;
use crate::job::{default_owner, ApplySettings, Owner};
use crate::reconcile::drift::actions as proposed;
use crate::reconcile::link;
use crate::reconcile::spec::{kinds, CompareKind, CompareSpec, ReconcileSpec};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Write fields of one ERP record.
    UpdateErpFields,
    /// Attach the contract's executed document to its ERP record.
    AttachDocument,
    /// Merge values into the contract's `external_metadata` in SpotDraft.
    SetExternalMetadata,
    /// Create a contract in SpotDraft for an ERP record (`[create]`).
    CreateContract,
    /// Upload an ERP document to the contract created for its record
    /// (`supported_documents`), once that contract exists.
    UploadSupportingDocument,
    /// Listed for a person; never sent.
    Review,
}

impl ActionKind {
    /// The name used in the plan and results.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::UpdateErpFields => "update_erp_fields",
            ActionKind::AttachDocument => "attach_document",
            ActionKind::SetExternalMetadata => "set_external_metadata",
            ActionKind::CreateContract => "create_contract",
            ActionKind::UploadSupportingDocument => "upload_supporting_document",
            ActionKind::Review => "review",
        }
    }

    /// Parses [`ActionKind::as_str`].
    pub fn parse(s: &str) -> Option<ActionKind> {
        [
            ActionKind::UpdateErpFields,
            ActionKind::AttachDocument,
            ActionKind::SetExternalMetadata,
            ActionKind::CreateContract,
            ActionKind::UploadSupportingDocument,
            ActionKind::Review,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One planned correction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What it does.
    pub kind: ActionKind,
    /// The ERP record, as the extract holds its id (trimmed).
    pub erp_record_id: Option<String>,
    /// The SpotDraft contract.
    pub contract_id: Option<String>,
    /// Field -> value written (ERP canonical names, or `external_metadata` keys:
    /// `id` or a `record_data` key); for `review`, the value that would have been.
    pub fields: BTreeMap<String, String>,
    /// The executed document's SHA-256 when the snapshot holds it.
    pub document_sha256: Option<String>,
    /// The record's version from the extract, sent as `If-Match`.
    pub if_match: Option<String>,
    /// Why a person must look (review only).
    pub reason: Option<String>,
    /// Drift kinds this action covers.
    pub drift_kinds: BTreeSet<String>,
    /// The `drift_id`s of the drift rows this action covers (empty for a
    /// back-reference, which is no drift row, and for a plan read back from
    /// its table, which does not hold them).
    #[serde(default)]
    pub drift_ids: BTreeSet<String>,
    /// Idempotency key (set by [`super::keys::assign_keys`]).
    pub key: String,
    /// Earlier successful applications of the same content to the same target.
    pub generation: u32,
}

impl Action {
    pub(crate) fn new(
        kind: ActionKind,
        erp: Option<&str>,
        contract: Option<&str>,
        drift_kind: &str,
    ) -> Action {
        Action {
            kind,
            erp_record_id: erp.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            contract_id: contract
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            fields: BTreeMap::new(),
            document_sha256: None,
            if_match: None,
            reason: None,
            drift_kinds: BTreeSet::from([drift_kind.to_string()]),
            drift_ids: BTreeSet::new(),
            key: String::new(),
            generation: 0,
        }
    }

    pub(crate) fn review(
        erp: Option<&str>,
        contract: Option<&str>,
        drift_kind: &str,
        reason: String,
    ) -> Action {
        let mut a = Action::new(ActionKind::Review, erp, contract, drift_kind);
        a.reason = Some(reason);
        a
    }

    /// Whether the action is sent anywhere (everything but `review`).
    pub fn is_sendable(&self) -> bool {
        self.kind != ActionKind::Review
    }
}

/// What the planner reads.
pub struct PlanInput<'a> {
    /// The job's name (for messages).
    pub job: &'a str,
    /// The run's drift rows ([`crate::reconcile::DRIFT_COLUMNS`]).
    pub drift: &'a DataFrame,
    /// The contract snapshot the run reconciled.
    pub snapshot: &'a DataFrame,
    /// The extract's records (canonical columns).
    pub records: &'a DataFrame,
    /// What was compared.
    pub spec: &'a ReconcileSpec,
    /// `[apply]`.
    pub settings: &'a ApplySettings,
    /// `[create]`, when on: `missing_in_spotdraft` rows become creates.
    pub create: Option<&'a crate::job::create::CreateSettings>,
}

/// One drift row, as text.
struct Row {
    id: Option<String>,
    kind: String,
    contract: Option<String>,
    erp: Option<String>,
    field: Option<String>,
    spotdraft: Option<String>,
    erp_value: Option<String>,
    action: Option<String>,
}

/// Plans the actions for a run's drift, unkeyed (see [`super::keys`]), in a
/// stable order: by kind, record, contract.
pub fn plan_actions(input: &PlanInput) -> Result<Vec<Action>, ApplyError> {
    let polars = |source: PolarsError| ApplyError::Polars {
        job: input.job.to_string(),
        source: Box::new(source),
    };
    let rows = drift_rows(input.drift).map_err(polars)?;
    let versions = record_versions(input.records, input.settings).map_err(polars)?;
    let documents = column_by_id(input.snapshot, "document_sha256").map_err(polars)?;
    let settings = input.settings;
    let mut updates: BTreeMap<String, Action> = BTreeMap::new();
    let mut write_backs: BTreeMap<String, Action> = BTreeMap::new();
    let mut out = Vec::new();
    let writeback_off = "SpotDraft write-back is off ([apply] spotdraft_writeback = false)";

    for r in &rows {
        let (erp, contract) = (r.erp.as_deref(), r.contract.as_deref());
        // The actions this row went into: pushed ones, or a merged update or write-back.
        let pushed = out.len();
        let (mut merged_update, mut merged_write_back) = (None::<String>, None::<String>);
        match r.kind.as_str() {
            kinds::FIELD_MISMATCH => {
                let field = r.field.clone().unwrap_or_default();
                let Some(cmp) = input.spec.compares.iter().find(|c| c.field == field) else {
                    out.push(Action::review(
                        erp,
                        contract,
                        &r.kind,
                        format!("field {field:?} is not compared by this job"),
                    ));
                    continue;
                };
                let owner = settings
                    .owners
                    .get(&field)
                    .copied()
                    .unwrap_or_else(|| default_owner(&cmp.spotdraft_column));
                match owner {
                    Owner::Spotdraft => match erp_value_of(cmp, r.spotdraft.as_deref()) {
                        Ok(value) => {
                            let Some(id) = erp.map(str::trim).filter(|s| !s.is_empty()) else {
                                out.push(Action::review(
                                    erp,
                                    contract,
                                    &r.kind,
                                    "no ERP record id to address".into(),
                                ));
                                continue;
                            };
                            let a = updates.entry(id.to_string()).or_insert_with(|| {
                                let mut a = Action::new(
                                    ActionKind::UpdateErpFields,
                                    Some(id),
                                    contract,
                                    &r.kind,
                                );
                                a.if_match = versions.get(id).cloned();
                                a
                            });
                            a.fields.insert(cmp.erp_column.clone(), value);
                            a.drift_kinds.insert(r.kind.clone());
                            merged_update = Some(id.to_string());
                        }
                        Err(reason) => {
                            let mut a = Action::review(
                                erp,
                                contract,
                                &r.kind,
                                format!("{field}: {reason}"),
                            );
                            a.fields.insert(
                                cmp.erp_column.clone(),
                                r.spotdraft.clone().unwrap_or_default(),
                            );
                            out.push(a);
                        }
                    },
                    Owner::Erp => {
                        let key = metadata_key(&cmp.spotdraft_column);
                        let value = r
                            .erp_value
                            .as_deref()
                            .map(str::trim)
                            .filter(|v| !v.is_empty());
                        match (settings.spotdraft_writeback, value, contract, key) {
                            (true, Some(v), Some(c), Some(k)) => {
                                let a = write_backs.entry(c.to_string()).or_insert_with(|| {
                                    Action::new(
                                        ActionKind::SetExternalMetadata,
                                        erp,
                                        Some(c),
                                        &r.kind,
                                    )
                                });
                                a.fields.insert(k, v.to_string());
                                merged_write_back = Some(c.to_string());
                            }
                            (false, ..) => out.push(Action::review(
                                erp,
                                contract,
                                &r.kind,
                                format!("{field}: the ERP owns it; {writeback_off}"),
                            )),
                            (_, None, ..) => out.push(Action::review(
                                erp,
                                contract,
                                &r.kind,
                                format!("{field}: the ERP's value is empty: never written"),
                            )),
                            _ => out.push(Action::review(
                                erp,
                                contract,
                                &r.kind,
                                format!("{field}: no contract or external_metadata key to write"),
                            )),
                        }
                    }
                    Owner::None => out.push(Action::review(
                        erp,
                        contract,
                        &r.kind,
                        format!("{field}: owner none: a person decides which value is right"),
                    )),
                }
            }
            kinds::MISSING_DOCUMENT => match (erp, contract) {
                (Some(_), Some(c)) => {
                    let mut a = Action::new(ActionKind::AttachDocument, erp, contract, &r.kind);
                    a.document_sha256 = documents
                        .get(c)
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty());
                    out.push(a);
                }
                _ => out.push(Action::review(
                    erp,
                    contract,
                    &r.kind,
                    "document without a record or contract".into(),
                )),
            },
            kinds::UNLINKED_CONTRACT | kinds::LINK_CONFLICT
                if r.action.as_deref() == Some(proposed::SET_SPOTDRAFT_EXTERNAL_METADATA_ID) =>
            {
                // unlinked: the record that names the contract is `erp_record_id`;
                // link_conflict: the other record is `erp_value`.
                let id = if r.kind == kinds::LINK_CONFLICT {
                    r.erp_value.as_deref()
                } else {
                    erp
                };
                match (
                    settings.spotdraft_writeback,
                    id.map(str::trim).filter(|s| !s.is_empty()),
                    contract,
                ) {
                    (true, Some(id), Some(c)) => {
                        let a = write_backs.entry(c.to_string()).or_insert_with(|| {
                            Action::new(ActionKind::SetExternalMetadata, Some(id), Some(c), &r.kind)
                        });
                        a.fields.insert("id".into(), id.to_string());
                        a.drift_kinds.insert(r.kind.clone());
                        merged_write_back = Some(c.to_string());
                    }
                    (false, ..) => out.push(Action::review(
                        id,
                        contract,
                        &r.kind,
                        format!("the record that names the contract is known; {writeback_off}"),
                    )),
                    _ => out.push(Action::review(
                        erp,
                        contract,
                        &r.kind,
                        "no record id to write".into(),
                    )),
                }
            }
            // Planned by `super::create::plan_creates`.
            kinds::MISSING_IN_SPOTDRAFT if input.create.is_some() => {}
            other => out.push(Action::review(
                erp,
                contract,
                other,
                review_reason(other, r.action.as_deref()),
            )),
        }
        if let Some(id) = &r.id {
            let merged = [
                merged_update.and_then(|k| updates.get_mut(&k)),
                merged_write_back.and_then(|k| write_backs.get_mut(&k)),
            ];
            for a in out[pushed..].iter_mut().chain(merged.into_iter().flatten()) {
                a.drift_ids.insert(id.clone());
            }
        }
    }
    if settings.back_reference {
        for (erp_id, contract_id) in stale_back_references(input)? {
            let a = updates.entry(erp_id.clone()).or_insert_with(|| {
                let mut a = Action::new(
                    ActionKind::UpdateErpFields,
                    Some(&erp_id),
                    Some(&contract_id),
                    "back_reference",
                );
                a.if_match = versions.get(&erp_id).cloned();
                a
            });
            a.fields
                .insert("spotdraft_contract_id".into(), contract_id.clone());
            a.drift_kinds.insert("back_reference".into());
        }
    }
    out.extend(updates.into_values());
    out.extend(write_backs.into_values());
    out.sort_by(|a, b| {
        (
            a.kind,
            &a.erp_record_id,
            &a.contract_id,
            &a.reason,
            &a.fields,
        )
            .cmp(&(
                b.kind,
                &b.erp_record_id,
                &b.contract_id,
                &b.reason,
                &b.fields,
            ))
    });
    Ok(out)
}

fn review_reason(kind: &str, action: Option<&str>) -> String {
    match kind {
        kinds::DUPLICATE_LINK => "several links: a person picks the right one".into(),
        kinds::ORPHAN_ERP_RECORD => {
            "the ERP record names a contract SpotDraft does not have".into()
        }
        kinds::UNUSABLE_ERP_VALUE => "the ERP value is unreadable: fix it in the ERP".into(),
        kinds::MISSING_IN_ERP => "the contract names an ERP record the extract lacks".into(),
        kinds::UNLINKED_CONTRACT => "no ERP record names the contract: link or create one".into(),
        kinds::LINK_CONFLICT => format!(
            "link conflict ({}): a person decides",
            action.unwrap_or("?")
        ),
        other => format!("{other}: no automatic correction"),
    }
}

/// The `external_metadata` key a SpotDraft source writes: `id` or a `record_data` key.
fn metadata_key(source: &str) -> Option<String> {
    if source == "external_metadata.id" {
        return Some("id".into());
    }
    source
        .strip_prefix(crate::ingest::snapshot::RECORD_DATA_PREFIX)
        .map(|k| format!("record_data.{k}"))
}

/// SpotDraft's raw value formatted the way the ERP field holds it, or why it
/// cannot be written.
pub fn erp_value_of(cmp: &CompareSpec, raw: Option<&str>) -> Result<String, String> {
    let v = raw
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or("SpotDraft's value is empty: never written")?;
    match &cmp.kind {
        CompareKind::String { .. } => Ok(v.to_string()),
        CompareKind::Number { .. } => v
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|_| v.to_string())
            .ok_or_else(|| format!("SpotDraft's value {v:?} is not a number")),
        CompareKind::Decimal { scale } => decimal_at_scale(v, *scale)
            .ok_or_else(|| format!("SpotDraft's value {v:?} is not a decimal")),
        CompareKind::Date => {
            let day = v.get(..10).unwrap_or(v);
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .ok()
                .filter(|_| v.len() == 10 || v[10..].starts_with(['T', ' ']))
                .map(|d| d.format("%Y-%m-%d").to_string())
                .ok_or_else(|| format!("SpotDraft's value {v:?} is not a date"))
        }
        CompareKind::Enum { values } => values
            .get(v)
            .or_else(|| {
                values
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(v))
                    .map(|(_, e)| e)
            })
            .cloned()
            .ok_or_else(|| {
                format!("SpotDraft's value {v:?} has no ERP value in the compare's `values`")
            }),
    }
}

/// `v` (`-1234.5`, `12500`, `1,234.567`) rounded half away from zero to
/// `scale` places, as text; `None` when it is not a decimal.
pub fn decimal_at_scale(v: &str, scale: u32) -> Option<String> {
    let v = v.replace(',', "");
    let (neg, body) = match v.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, v.strip_prefix('+').unwrap_or(&v)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let scale = scale as usize;
    let mut digits: Vec<u8> = format!(
        "{}{}",
        if int.is_empty() { "0" } else { int },
        &format!("{frac:0<width$}", width = scale.max(frac.len()))[..scale]
    )
    .bytes()
    .map(|b| b - b'0')
    .collect();
    if frac.len() > scale && frac.as_bytes()[scale] >= b'5' {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - scale;
    let int_part: String = digits[..split].iter().map(|d| (d + b'0') as char).collect();
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0".to_string(),
        s => s.to_string(),
    };
    let frac_part: String = digits[split..].iter().map(|d| (d + b'0') as char).collect();
    let zero = digits.iter().all(|d| *d == 0);
    let sign = if neg && !zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    })
}

pub(crate) fn text_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    if !df.schema().contains(name) {
        return Ok(vec![None; df.height()]);
    }
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

fn drift_rows(drift: &DataFrame) -> PolarsResult<Vec<Row>> {
    let ids = text_col(drift, crate::reconcile::identity::DRIFT_ID)?;
    let cols = [
        "drift_kind",
        "contract_id",
        "erp_record_id",
        "field",
        "spotdraft_value",
        "erp_value",
        "proposed_action",
    ]
    .map(|c| text_col(drift, c));
    let [k, c, e, f, s, v, a] = cols;
    let (k, c, e, f, s, v, a) = (k?, c?, e?, f?, s?, v?, a?);
    let nonempty = |x: &Option<String>| x.clone().filter(|s| !s.trim().is_empty());
    Ok((0..drift.height())
        .map(|i| Row {
            id: ids[i].clone(),
            kind: k[i].clone().unwrap_or_default(),
            contract: nonempty(&c[i]),
            erp: nonempty(&e[i]),
            field: nonempty(&f[i]),
            spotdraft: s[i].clone(),
            erp_value: v[i].clone(),
            action: a[i].clone(),
        })
        .collect())
}

/// The version of each record (by trimmed id), when `[apply] if_match` names a column.
pub(crate) fn record_versions(
    records: &DataFrame,
    settings: &ApplySettings,
) -> PolarsResult<HashMap<String, String>> {
    let Some(column) = &settings.if_match else {
        return Ok(HashMap::new());
    };
    let ids = text_col(records, "erp_record_id")?;
    let versions = text_col(records, column)?;
    Ok(ids
        .into_iter()
        .zip(versions)
        .filter_map(|(id, v)| {
            Some((id?.trim().to_string(), v?.trim().to_string())).filter(|(_, v)| !v.is_empty())
        })
        .collect())
}

/// `column` of the snapshot by contract id (`id`).
fn column_by_id(snapshot: &DataFrame, column: &str) -> PolarsResult<HashMap<String, String>> {
    let ids = text_col(snapshot, "id")?;
    let values = text_col(snapshot, column)?;
    Ok(ids
        .into_iter()
        .zip(values)
        .filter_map(|(id, v)| Some((id?, v?)))
        .collect())
}

/// `(erp_record_id as the extract holds it, trimmed; composite contract id)` of
/// every 1:1 pair linked by id whose record's back-reference is empty or names
/// another contract (a record naming another *live* contract links to it too,
/// so it is no 1:1 pair: that is a duplicate, for review).
pub fn stale_back_references(input: &PlanInput) -> Result<Vec<(String, String)>, ApplyError> {
    if !input.records.schema().contains("spotdraft_contract_id") {
        return Ok(Vec::new());
    }
    let err = |source: crate::reconcile::ReconcileError| ApplyError::Link {
        job: input.job.to_string(),
        source: Box::new(source),
    };
    let contracts = link::prepare_contracts(input.snapshot.clone(), input.spec).map_err(err)?;
    let records = link::prepare_records(input.records.clone(), input.spec).map_err(err)?;
    let links = link::link(&contracts, &records, input.spec).map_err(err)?;
    let inner = || JoinArgs::new(JoinType::Inner);
    let names_it = col("r_back_key")
        .eq(col("c_id_key"))
        .fill_null(lit(false))
        .or(col("r_back_key").eq(col("c_num_key")).fill_null(lit(false)));
    let df = links
        .lazy()
        .filter(
            col("n_c")
                .eq(lit(1))
                .and(col("n_r").eq(lit(1)))
                .and(col("rule").eq(lit(link::rule::ID))),
        )
        .select([col("c_idx"), col("r_idx")])
        .join(
            contracts
                .lazy()
                .select([col("c_idx"), col("c_id"), col("c_id_key"), col("c_num_key")]),
            [col("c_idx")],
            [col("c_idx")],
            inner(),
        )
        .join(
            records
                .lazy()
                .select([col("r_idx"), col("r_erp_raw"), col("r_back_key")]),
            [col("r_idx")],
            [col("r_idx")],
            inner(),
        )
        .filter(names_it.not())
        .select([col("r_erp_raw"), col("c_id")])
        .collect()
        .map_err(|e| err(e.into()))?;
    let ids = text_col(&df, "r_erp_raw").map_err(|e| err(e.into()))?;
    let contracts = text_col(&df, "c_id").map_err(|e| err(e.into()))?;
    let mut out: Vec<(String, String)> = ids
        .into_iter()
        .zip(contracts)
        .filter_map(|(r, c)| Some((r?.trim().to_string(), c?.trim().to_string())))
        .filter(|(r, c)| !r.is_empty() && !c.is_empty())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;
