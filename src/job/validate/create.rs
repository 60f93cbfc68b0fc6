//! Job file validation of `[create]`: every column it reads is mapped in the
//! extract, every type and template is well formed, and the job around it
//! can create contracts (corrections enabled, every status walked, the ERP id
//! in `external_metadata.id`).

use super::super::create::{
    parse_name_template, ContractField, CounterParty, CreateSettings, FieldKind, TemplateChoice,
};
use super::super::raw::{RawCreate, RawJobFile};
use super::Validator;
use crate::ingest::snapshot;
use crate::reconcile::spec::NeedsContract;
use std::collections::BTreeMap;

/// The column names `[create]` reads (for the extract's unknown-name check).
pub(super) fn create_columns(raw: Option<&RawCreate>) -> Vec<String> {
    let Some(c) = raw else { return Vec::new() };
    let mut out = vec![c.needs_contract.column.clone()];
    out.extend(c.template_column.clone());
    if let Ok(parts) = parse_name_template(&c.contract_name) {
        for p in parts {
            if let super::super::create::NamePart::Column(col) = p {
                out.push(col);
            }
        }
    }
    out.extend(c.record_data.iter().flat_map(|m| m.values().cloned()));
    for f in c.contract_data.values() {
        out.push(f.column.clone());
        out.extend(f.currency_column.clone());
    }
    let cp = &c.counter_party;
    out.extend(cp.organization_name.clone());
    out.push(cp.contact_name.clone());
    out.push(cp.contact_email.clone());
    out.extend(cp.jurisdiction.clone());
    out.extend(c.document_column.clone());
    out
}

impl Validator {
    /// `[create]`; `None` when absent or off, or when it has problems.
    pub(super) fn create(&mut self, raw: &RawJobFile) -> Option<CreateSettings> {
        let c = raw.create.as_ref()?;
        if !c.enabled.unwrap_or(false) {
            return None;
        }
        let ok = self.problems.len();
        let columns = &raw.erp.extract.columns;
        if !raw.apply.as_ref().is_some_and(|a| a.enabled) {
            self.bad(
                "create.enabled",
                "needs [apply] enabled = true: creates are planned, reviewed and applied like corrections",
            );
        }
        if raw.spotdraft.status_filter.is_some() {
            self.bad("spotdraft.status_filter", "must be absent with [create]: a record is missing_in_spotdraft only when no contract in any status links to it, so every status is walked");
        }
        let erp_source = raw
            .matching
            .erp_record_id
            .as_deref()
            .unwrap_or("external_metadata.id");
        if erp_source.trim() != "external_metadata.id" {
            self.bad("match.erp_record_id", format!("{erp_source:?}: with [create] the ERP id must live in external_metadata.id, where creates write it and by_external_metadata finds it"));
        }
        let need = |v: &mut Validator, key: &str, column: &str| {
            if !columns.contains_key(column) {
                v.bad(
                    key.to_string(),
                    format!(
                        "{column:?} is not mapped in erp.extract.columns (mapped: {})",
                        columns.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        };
        need(
            self,
            "create.needs_contract.column",
            &c.needs_contract.column,
        );
        let template = match (c.template_id, &c.template_column) {
            (Some(id), None) if c.templates.is_empty() => {
                if id <= 0 {
                    self.bad("create.template_id", format!("{id} is not a template id"));
                }
                Some(TemplateChoice::Fixed(id))
            }
            (None, Some(column)) => {
                need(self, "create.template_column", column);
                if c.templates.is_empty() {
                    self.bad(
                        "create.templates",
                        "missing key: value -> template id, e.g. { MSA = 1204 }",
                    );
                }
                for (value, id) in &c.templates {
                    if *id <= 0 {
                        self.bad(
                            format!("create.templates.{value}"),
                            format!("{id} is not a template id"),
                        );
                    }
                }
                Some(TemplateChoice::ByColumn {
                    column: column.clone(),
                    templates: c.templates.clone(),
                })
            }
            _ => {
                self.bad(
                    "create.template_id",
                    "set either template_id, or template_column with templates",
                );
                None
            }
        };
        let contract_name = match parse_name_template(&c.contract_name) {
            Ok(parts) if !parts.is_empty() => {
                for p in &parts {
                    if let super::super::create::NamePart::Column(col) = p {
                        need(self, "create.contract_name", col);
                    }
                }
                Some(parts)
            }
            Ok(_) => {
                self.bad("create.contract_name", "empty");
                None
            }
            Err(e) => {
                self.bad("create.contract_name", e);
                None
            }
        };
        for (key, value) in [
            ("create.integration_name", &c.integration_name),
            ("create.record_type", &c.record_type),
        ] {
            if value.trim().is_empty() {
                self.bad(key, "empty");
            }
        }
        let record_data = match &c.record_data {
            Some(map) => map.clone(),
            None => default_record_data(raw),
        };
        for (k, column) in &record_data {
            need(self, &format!("create.record_data.{k}"), column);
        }
        let mut contract_data = BTreeMap::new();
        for (name, f) in &c.contract_data {
            let key = format!("create.contract_data.{name}");
            need(self, &format!("{key}.column"), &f.column);
            let kind = match f.kind.as_str() {
                "text" => FieldKind::Text,
                "number" => FieldKind::Number,
                "date" => FieldKind::Date,
                "currency" => {
                    match (&f.currency_column, &f.currency) {
                        (Some(col), None) => need(self, &format!("{key}.currency_column"), col),
                        (None, Some(code))
                            if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) => {}
                        (None, Some(code)) => self.bad(
                            format!("{key}.currency"),
                            format!("{code:?} is not an ISO 4217 code such as \"USD\""),
                        ),
                        _ => self.bad(
                            format!("{key}.currency_column"),
                            "a currency field needs currency_column or currency (not both)",
                        ),
                    }
                    FieldKind::Currency {
                        column: f.currency_column.clone(),
                        fixed: f.currency.clone(),
                    }
                }
                other => {
                    self.bad(
                        format!("{key}.type"),
                        format!("{other:?} is not one of text, number, date, currency"),
                    );
                    FieldKind::Text
                }
            };
            if !matches!(kind, FieldKind::Currency { .. })
                && (f.currency.is_some() || f.currency_column.is_some())
            {
                self.bad(format!("{key}.currency"), "only for type = \"currency\"");
            }
            contract_data.insert(
                name.clone(),
                ContractField {
                    column: f.column.clone(),
                    kind,
                },
            );
        }
        let cp = &c.counter_party;
        let is_individual = cp.is_individual.unwrap_or(false);
        if !is_individual && cp.organization_name.is_none() {
            self.bad(
                "create.counter_party.organization_name",
                "missing key: required unless is_individual = true",
            );
        }
        for (key, column) in [
            (
                "create.counter_party.organization_name",
                cp.organization_name.as_ref(),
            ),
            ("create.counter_party.contact_name", Some(&cp.contact_name)),
            (
                "create.counter_party.contact_email",
                Some(&cp.contact_email),
            ),
            (
                "create.counter_party.jurisdiction",
                cp.jurisdiction.as_ref(),
            ),
            ("create.document_column", c.document_column.as_ref()),
        ] {
            if let Some(column) = column {
                need(self, key, column);
            }
        }
        let max_creates_per_run = c.max_creates_per_run.unwrap_or(100);
        if max_creates_per_run == 0 {
            self.bad("create.max_creates_per_run", "must be at least 1");
        }
        if self.problems.len() != ok {
            return None;
        }
        Some(CreateSettings {
            needs_contract: NeedsContract {
                column: c.needs_contract.column.clone(),
                values: c.needs_contract.values.clone(),
            },
            template: template?,
            contract_name: contract_name?,
            integration_name: c.integration_name.trim().to_string(),
            record_type: c.record_type.trim().to_string(),
            record_data,
            contract_data,
            counter_party: CounterParty {
                is_individual,
                organization_name: cp.organization_name.clone(),
                contact_name: cp.contact_name.clone(),
                contact_email: cp.contact_email.clone(),
                jurisdiction: cp.jurisdiction.clone(),
            },
            document_column: c.document_column.clone(),
            documents_base: documents_base(&self.base_dir, &raw.erp.extract.url),
            max_creates_per_run,
        })
    }
}

/// `[match]` keys read from `external_metadata.record_data.<key>` whose
/// canonical column the extract maps: written back under the same key.
fn default_record_data(raw: &RawJobFile) -> BTreeMap<String, String> {
    let m = &raw.matching;
    [
        ("vendor_id", m.vendor_id.as_deref()),
        ("po_number", m.po_number.as_deref()),
        ("legal_entity_id", m.legal_entity_id.as_deref()),
    ]
    .into_iter()
    .filter(|(canonical, _)| raw.erp.extract.columns.contains_key(*canonical))
    .filter_map(|(canonical, source)| {
        let key = source?.trim().strip_prefix(snapshot::RECORD_DATA_PREFIX)?;
        Some((key.to_string(), canonical.to_string()))
    })
    .collect()
}

/// Where relative document paths are read from: the extract's folder when it
/// is a local file, else the job file's folder.
fn documents_base(job_dir: &std::path::Path, extract_url: &str) -> std::path::PathBuf {
    let url = extract_url.trim();
    if url.contains("://") {
        return job_dir.to_path_buf();
    }
    job_dir
        .join(url)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| job_dir.to_path_buf())
}
