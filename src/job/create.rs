//! `[create]`, validated: which ERP records need a SpotDraft contract, and
//! how a contract is built from an ERP record (template, `contract_data`,
//! counterparty, `external_metadata`, name).

use crate::reconcile::spec::NeedsContract;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a record's template is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    /// One template for every record.
    Fixed(i64),
    /// By a column's value (trimmed, as written).
    ByColumn {
        /// The column read.
        column: String,
        /// Value -> template id.
        templates: BTreeMap<String, i64>,
    },
}

/// The type of a `contract_data` value, as the template expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// A string.
    Text,
    /// A JSON number.
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// `{type, value}`: the currency from a column, or fixed.
    Currency {
        /// Column holding the ISO code.
        column: Option<String>,
        /// Fixed ISO code.
        fixed: Option<String>,
    },
}

/// One `contract_data` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractField {
    /// Column read.
    pub column: String,
    /// Its type.
    pub kind: FieldKind,
}

/// The counterparty, from ERP columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterParty {
    /// A person rather than an organization.
    pub is_individual: bool,
    /// Column of the organization's name.
    pub organization_name: Option<String>,
    /// Column of the contact's full name.
    pub contact_name: String,
    /// Column of the contact's email.
    pub contact_email: String,
    /// Column of the jurisdiction ISO code.
    pub jurisdiction: Option<String>,
}

/// A piece of the contract name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePart {
    /// Text as written.
    Text(String),
    /// A column's value.
    Column(String),
}

/// Parses a name template (`"{vendor_name} PO {po_number}"`); `{{` and `}}`
/// are literal braces. The error says what is wrong.
pub fn parse_name_template(template: &str) -> Result<Vec<NamePart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let (mut name, mut closed) = (String::new(), false);
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed || name.trim().is_empty() || name.contains('{') {
                    return Err(format!("{template:?}: an empty or unclosed {{column}}"));
                }
                if !text.is_empty() {
                    parts.push(NamePart::Text(std::mem::take(&mut text)));
                }
                parts.push(NamePart::Column(name.trim().to_string()));
            }
            '}' => return Err(format!("{template:?}: a '}}' without its '{{'")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(NamePart::Text(text));
    }
    Ok(parts)
}

/// `[create]`, validated.
#[derive(Debug, Clone)]
pub struct CreateSettings {
    /// Which records need a contract.
    pub needs_contract: NeedsContract,
    /// How the template is chosen.
    pub template: TemplateChoice,
    /// The contract name.
    pub contract_name: Vec<NamePart>,
    /// `external_metadata.integration_name`.
    pub integration_name: String,
    /// `external_metadata.record_type`.
    pub record_type: String,
    /// `external_metadata.record_data` key -> column.
    pub record_data: BTreeMap<String, String>,
    /// `contract_data` field -> how it is read.
    pub contract_data: BTreeMap<String, ContractField>,
    /// The counterparty.
    pub counter_party: CounterParty,
    /// Column naming a document to upload once the contract exists.
    pub document_column: Option<String>,
    /// Folder relative document paths are read from (the job file's).
    pub documents_base: PathBuf,
    /// Most creates a run sends (over it: none, unless forced).
    pub max_creates_per_run: usize,
}

impl CreateSettings {
    /// Every template id the job may use, ascending.
    pub fn template_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = match &self.template {
            TemplateChoice::Fixed(id) => vec![*id],
            TemplateChoice::ByColumn { templates, .. } => templates.values().copied().collect(),
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every extract column `[create]` reads, with the key that names it.
    pub fn columns(&self) -> Vec<(String, String)> {
        let mut out = vec![(
            "create.needs_contract.column".to_string(),
            self.needs_contract.column.clone(),
        )];
        if let TemplateChoice::ByColumn { column, .. } = &self.template {
            out.push(("create.template_column".into(), column.clone()));
        }
        for p in &self.contract_name {
            if let NamePart::Column(c) = p {
                out.push(("create.contract_name".into(), c.clone()));
            }
        }
        for (k, c) in &self.record_data {
            out.push((format!("create.record_data.{k}"), c.clone()));
        }
        for (k, f) in &self.contract_data {
            out.push((format!("create.contract_data.{k}.column"), f.column.clone()));
            if let FieldKind::Currency {
                column: Some(c), ..
            } = &f.kind
            {
                out.push((
                    format!("create.contract_data.{k}.currency_column"),
                    c.clone(),
                ));
            }
        }
        let cp = &self.counter_party;
        let party = [
            ("organization_name", cp.organization_name.as_ref()),
            ("contact_name", Some(&cp.contact_name)),
            ("contact_email", Some(&cp.contact_email)),
            ("jurisdiction", cp.jurisdiction.as_ref()),
        ];
        for (k, c) in party {
            if let Some(c) = c {
                out.push((format!("create.counter_party.{k}"), c.clone()));
            }
        }
        if let Some(c) = &self.document_column {
            out.push(("create.document_column".into(), c.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_templates_parse_columns_text_and_escaped_braces() {
        assert_eq!(
            parse_name_template("{vendor} PO {{{po}}}").unwrap(),
            vec![
                NamePart::Column("vendor".into()),
                NamePart::Text(" PO {".into()),
                NamePart::Column("po".into()),
                NamePart::Text("}".into()),
            ]
        );
        assert!(parse_name_template("PO {po").is_err());
        assert!(parse_name_template("PO {}").is_err());
        assert!(parse_name_template("PO }").is_err());
    }
}
