//! Fixture generator, values: one contract's fields, its executed PDF, its clean
//! ERP record, and the id allocators that keep ERP ids and PO numbers unique.

use super::pdf::pdf_bytes;
use super::plan::Status;
use crate::sandbox::dataset::{ErpRecord, FixtureContract};
use crate::spotdraft::model::{Contract, ContractId, ExternalMetadata, KeyPointer};
use chrono::{DateTime, Days, NaiveDate};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The fixed epoch every timestamp derives from: 2026-11-01T00:00:00Z.
pub(crate) const EPOCH_SECS: i64 = 1_793_491_200;
/// Contracts are created over the two years before the epoch.
const SPAN_SECS: i64 = 2 * 365 * 86_400;
/// First contract number.
pub(crate) const FIRST_NUMBER: u64 = 1001;
/// Currencies used in key pointers.
pub(crate) const CURRENCIES: [&str; 4] = ["USD", "EUR", "GBP", "INR"];
/// Legal entities and their usual currency.
const LEGAL_ENTITIES: [(&str, &str); 5] = [
    ("LE-US-01", "USD"),
    ("LE-US-02", "USD"),
    ("LE-GB-01", "GBP"),
    ("LE-DE-01", "EUR"),
    ("LE-IN-01", "INR"),
];
const COMPANIES: [&str; 16] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Oscorp",
    "Aperture",
    "Monarch",
    "Pied Piper",
    "Massive Dynamic",
    "Prestige Worldwide",
];
const SUFFIXES: [&str; 6] = ["Ltd", "Inc", "GmbH", "LLP", "Pvt Ltd", "SA"];
const TYPES: [(&str, i64); 6] = [
    ("Master Services Agreement", 101),
    ("Non-Disclosure Agreement", 102),
    ("Statement of Work", 103),
    ("Purchase Agreement", 104),
    ("Software License", 105),
    ("Supply Agreement", 106),
];
const CREATORS: [&str; 5] = [
    "Asha Rao",
    "Ben Carter",
    "Chen Wei",
    "Dana Ortiz",
    "Emil Novak",
];

/// Modulus of PO number values: below it, `a * p + b` is a permutation, and
/// values under 10,000,000 (40%) print with a leading zero.
const PO_SPACE: u64 = 25_000_000;
const PO_STEP: u64 = 7_919_993;
const ERP_SPACE: u64 = 100_000_000;
const ERP_STEP: u64 = 7_368_787;

/// Hands out unique ERP record ids and unique PO numbers.
#[derive(Debug)]
pub(crate) struct Ids {
    erp_next: u64,
    erp_offset: u64,
    po_offset: u64,
    /// Next PO index for rows that belong to no contract (after the contracts' own).
    extra_po_next: u64,
}

impl Ids {
    /// Allocators for `contracts` contracts; offsets drawn from `rng`.
    pub(crate) fn new(contracts: u64, rng: &mut StdRng) -> Ids {
        Ids {
            erp_next: 0,
            erp_offset: rng.random_range(0..ERP_SPACE),
            po_offset: rng.random_range(0..PO_SPACE),
            extra_po_next: contracts,
        }
    }

    /// Largest number of contracts whose PO numbers stay unique.
    pub(crate) const MAX_CONTRACTS: u64 = PO_SPACE / 2;

    /// A fresh `ERP-<8 digits>` id.
    pub(crate) fn erp_id(&mut self) -> String {
        let v = (self.erp_next * ERP_STEP + self.erp_offset) % ERP_SPACE;
        self.erp_next += 1;
        format!("ERP-{v:08}")
    }

    /// The PO number of PO index `p` (contract index, or an extra row's index).
    pub(crate) fn po(&self, p: u64) -> String {
        format!("{:08}", (p * PO_STEP + self.po_offset) % PO_SPACE)
    }

    /// A PO number no contract uses, for rows that belong to no contract.
    pub(crate) fn extra_po(&mut self) -> String {
        let p = self.extra_po_next;
        self.extra_po_next += 1;
        self.po(p)
    }
}

/// A random `V-<5 digits>` vendor id.
pub(crate) fn vendor_id(rng: &mut StdRng) -> String {
    format!("V-{:05}", rng.random_range(0..100_000u32))
}

/// Cents as ERP decimal text with two places.
pub(crate) fn cents_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Everything about one contract, before it becomes a [`FixtureContract`].
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub(crate) id: String,
    pub(crate) number: u64,
    pub(crate) status: Status,
    pub(crate) name: String,
    pub(crate) counterparty: String,
    pub(crate) type_name: &'static str,
    pub(crate) type_id: i64,
    pub(crate) creator: &'static str,
    pub(crate) created: String,
    pub(crate) last_updated: String,
    pub(crate) vendor_id: String,
    pub(crate) po_number: String,
    pub(crate) legal_entity: &'static str,
    pub(crate) cents: i64,
    pub(crate) currency: &'static str,
    pub(crate) effective: NaiveDate,
    pub(crate) expiry: Option<NaiveDate>,
    /// File name, bytes and hex SHA-256 of the executed PDF.
    pub(crate) pdf: Option<(String, Vec<u8>, String)>,
}

fn iso(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .expect("timestamps stay near the epoch")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

impl Base {
    /// Draws the values of contract `index` (0-based) in `status`.
    pub(crate) fn draw(index: u64, status: Status, ids: &Ids, rng: &mut StdRng) -> Base {
        let number = FIRST_NUMBER + index;
        let prefix = if rng.random_bool(0.1) { "H" } else { "T" };
        let id = format!("{prefix}-{number}");
        let created_secs = EPOCH_SECS - rng.random_range(1..=SPAN_SECS);
        let updated_secs = created_secs + rng.random_range(0..EPOCH_SECS - created_secs);
        let counterparty = format!("{} {}", pick(rng, &COMPANIES), pick(rng, &SUFFIXES));
        let (type_name, type_id) = pick(rng, &TYPES);
        let (legal_entity, usual) = pick(rng, &LEGAL_ENTITIES);
        let currency = if rng.random_bool(0.85) {
            usual
        } else {
            pick(rng, &CURRENCIES)
        };
        let dollars = 10f64.powf(rng.random_range(3.0..6.5)).round() as i64;
        let cents = dollars * 100
            + match rng.random_range(0..10) {
                0..4 => 0,
                4..6 => rng.random_range(0..10) * 10,
                _ => rng.random_range(0..100),
            };
        let created_day = DateTime::from_timestamp(created_secs, 0)
            .expect("near the epoch")
            .date_naive();
        let effective = created_day + Days::new(rng.random_range(0..60));
        let years = rng.random_range(1..=3u64);
        let expiry = Some(effective + Days::new(365 * years - 1));
        let mut base = Base {
            name: format!("{type_name} - {counterparty}"),
            id,
            number,
            status,
            counterparty,
            type_name,
            type_id,
            creator: pick(rng, &CREATORS),
            created: iso(created_secs),
            last_updated: iso(updated_secs),
            vendor_id: vendor_id(rng),
            po_number: ids.po(index),
            legal_entity,
            cents,
            currency,
            effective,
            expiry,
            pdf: None,
        };
        if status == Status::Executed {
            let bytes = pdf_bytes(&base.id, &base.name);
            let sha = hex::encode(Sha256::digest(&bytes));
            base.pdf = Some((format!("{}.pdf", base.id), bytes, sha));
        }
        base
    }

    /// Hex SHA-256 of the executed PDF, for EXECUTED contracts.
    pub(crate) fn sha(&self) -> Option<&str> {
        self.pdf.as_ref().map(|p| p.2.as_str())
    }

    fn record_data(&self) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("legal_entity_id".to_string(), json!(self.legal_entity)),
            ("po_number".to_string(), json!(self.po_number)),
            ("vendor_id".to_string(), json!(self.vendor_id)),
        ])
    }

    /// External metadata linking to `erp_id`; without an id it keeps the record data.
    pub(crate) fn linked_metadata(&self, erp_id: Option<&str>) -> ExternalMetadata {
        ExternalMetadata {
            id: erp_id.map(str::to_string),
            integration_name: Some("erp".into()),
            record_type: Some("contract".into()),
            record_data: self.record_data(),
            object_configuration_id: None,
        }
    }

    /// External metadata of a contract the ERP does not know: mostly `{}`.
    pub(crate) fn unlinked_metadata(&self, rng: &mut StdRng) -> ExternalMetadata {
        if rng.random_bool(0.3) {
            ExternalMetadata {
                record_data: self.record_data(),
                ..ExternalMetadata::default()
            }
        } else {
            ExternalMetadata::default()
        }
    }

    fn key_pointers(&self) -> Vec<KeyPointer> {
        let kp =
            |k: i64, field: &str, label: &str, value: Value, data_type: &str, format: Value| {
                KeyPointer {
                    id: self.number as i64 * 10 + k,
                    value,
                    label: label.into(),
                    field_name: field.into(),
                    data_type: data_type.into(),
                    format_option: format,
                }
            };
        let date = |d: Option<NaiveDate>| {
            d.map_or(Value::Null, |d| json!(d.format("%Y-%m-%d").to_string()))
        };
        let date_format = json!({"date_format": "YYYY-MM-DD"});
        vec![
            kp(
                1,
                "contract_value",
                "Contract Value",
                json!(self.cents as f64 / 100.0),
                "NUMBER",
                json!({"decimal_places": 2}),
            ),
            kp(
                2,
                "currency",
                "Currency",
                json!(self.currency),
                "DROPDOWN",
                json!({"options": CURRENCIES}),
            ),
            kp(
                3,
                "effective_date",
                "Effective Date",
                date(Some(self.effective)),
                "DATE",
                date_format.clone(),
            ),
            kp(
                4,
                "expiry_date",
                "Expiry Date",
                date(self.expiry),
                "DATE",
                date_format,
            ),
        ]
    }

    /// The contract as the sandbox stores it, with the given external metadata.
    pub(crate) fn fixture(&self, external_metadata: ExternalMetadata) -> FixtureContract {
        FixtureContract {
            contract: Contract {
                id: ContractId::new(self.id.clone()),
                created: self.created.clone(),
                contract_name: self.name.clone(),
                contract_link: format!("https://app.spotdraft.com/contracts/v2/{}", self.number),
                contract_status: self.status.name().into(),
                created_by: self.creator.into(),
                counter_party_name: self.counterparty.clone(),
                contract_type_name: self.type_name.into(),
                contract_type_id: Some(self.type_id),
                external_metadata,
                reference_id: Some(format!("REF-{}", self.number)),
                last_updated_on: Some(self.last_updated.clone()),
            },
            key_pointers: self.key_pointers(),
            document: self.pdf.as_ref().map(|p| p.0.clone()),
        }
    }

    /// The ERP record that agrees with this contract in every compared field.
    pub(crate) fn erp_record(&self, erp_id: &str, integer_backref: bool) -> ErpRecord {
        let backref = if integer_backref {
            self.number.to_string()
        } else {
            self.id.clone()
        };
        ErpRecord {
            erp_record_id: erp_id.into(),
            spotdraft_contract_id: Some(backref),
            vendor_id: Some(self.vendor_id.clone()),
            po_number: Some(self.po_number.clone()),
            legal_entity_id: Some(self.legal_entity.into()),
            status: self.status.erp_status().map(str::to_string),
            amount: Some(cents_text(self.cents)),
            currency: Some(self.currency.into()),
            effective_date: Some(self.effective.format("%Y-%m-%d").to_string()),
            expiry_date: self.expiry.map(|d| d.format("%Y-%m-%d").to_string()),
            document_sha256: self.sha().map(str::to_string),
            version: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_and_po_numbers_are_unique() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut ids = Ids::new(50_000, &mut rng);
        let erp: std::collections::HashSet<String> = (0..50_000).map(|_| ids.erp_id()).collect();
        assert_eq!(erp.len(), 50_000);
        let po: std::collections::HashSet<u64> =
            (0..50_000).map(|p| ids.po(p).parse().unwrap()).collect();
        assert_eq!(po.len(), 50_000);
        assert!(ids.erp_id().len() == 12 && ids.po(0).len() == 8);
    }

    #[test]
    fn clean_record_mirrors_the_contract() {
        let mut rng = StdRng::seed_from_u64(5);
        let ids = Ids::new(10, &mut rng);
        let b = Base::draw(0, Status::Executed, &ids, &mut rng);
        let r = b.erp_record("ERP-00000001", true);
        assert_eq!(r.spotdraft_contract_id.as_deref(), Some("1001"));
        assert_eq!(r.status.as_deref(), Some("ACTIVE"));
        assert_eq!(r.document_sha256.as_deref(), b.sha());
        assert!(b.created <= b.last_updated && b.last_updated.as_str() <= "2026-11-01T00:00:00Z");
        assert_eq!(cents_text(1_250_050), "12500.50");
    }
}
