//! Fixture generator, injection: turns a contract's planned role into its
//! external metadata, its ERP rows and the drift rows the spec's rules produce.

use super::contract::{cents_text, vendor_id, Base, Ids, CURRENCIES, FIRST_NUMBER};
use super::plan::{Field, Noise, RejectKind, Role, Status};
use crate::reconcile::spec::kinds;
use crate::sandbox::dataset::{ErpRecord, ExpectedDrift, FixtureContract};
use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Share of ERP back-references written in integer form (`1234`).
const INTEGER_BACKREF_RATE: f64 = 0.2;

/// What one contract contributes to the dataset.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The contract.
    pub(crate) contract: FixtureContract,
    /// Its ERP rows, in extract order.
    pub(crate) records: Vec<ErpRecord>,
    /// The drift rows it must produce.
    pub(crate) drift: Vec<ExpectedDrift>,
    /// The noise actually applied, if any.
    pub(crate) noise: Option<Noise>,
    /// Why the extract loader rejects the contract's record, if it does.
    pub(crate) reject: Option<RejectKind>,
}

fn drift(
    kind: &str,
    contract: Option<&str>,
    record: Option<&str>,
    field: Option<Field>,
) -> ExpectedDrift {
    ExpectedDrift {
        drift_kind: kind.to_string(),
        contract_id: contract.map(str::to_string),
        erp_record_id: record.map(str::to_string),
        field: field.map(|f| f.name().to_string()),
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn shift(d: NaiveDate, rng: &mut StdRng) -> NaiveDate {
    let days = Days::new(rng.random_range(1..=30));
    if rng.random_bool(0.5) {
        d + days
    } else {
        d - days
    }
}

/// Applies `role` to contract `base`, allocating ERP ids from `ids`.
pub(crate) fn apply(base: &Base, role: Role, ids: &mut Ids, rng: &mut StdRng) -> Outcome {
    let c = base.id.as_str();
    if role == Role::OutOfScope {
        let contract = base.fixture(base.unlinked_metadata(rng));
        return Outcome {
            contract,
            records: vec![],
            drift: vec![],
            noise: None,
            reject: None,
        };
    }
    let erp_id = ids.erp_id();
    let integer = rng.random_bool(INTEGER_BACKREF_RATE);
    let mut record = base.erp_record(&erp_id, integer);
    let mut out = Outcome {
        contract: base.fixture(base.linked_metadata(Some(&erp_id))),
        records: vec![],
        drift: vec![],
        noise: None,
        reject: None,
    };
    match role {
        Role::OutOfScope => unreachable!("handled above"),
        Role::Clean(noise) => {
            if let Some(noise) = noise {
                apply_noise(base, noise, &mut out.contract, &mut record);
            }
            out.noise = noise;
            out.records.push(record);
        }
        Role::UnlinkedKeep => {
            out.contract = base.fixture(base.linked_metadata(None));
            out.drift.push(drift(
                kinds::UNLINKED_CONTRACT,
                Some(c),
                Some(&erp_id),
                None,
            ));
            out.records.push(record);
        }
        Role::UnlinkedDrop => {
            out.contract = base.fixture(base.linked_metadata(None));
            out.drift
                .push(drift(kinds::UNLINKED_CONTRACT, Some(c), None, None));
        }
        Role::MissingInErp => {
            out.drift
                .push(drift(kinds::MISSING_IN_ERP, Some(c), Some(&erp_id), None))
        }
        Role::Duplicate => {
            let second_id = ids.erp_id();
            let mut second = base.erp_record(&second_id, rng.random_bool(INTEGER_BACKREF_RATE));
            second.erp_record_id = second_id.clone();
            out.drift
                .push(drift(kinds::DUPLICATE_LINK, Some(c), Some(&erp_id), None));
            out.drift.push(drift(
                kinds::DUPLICATE_LINK,
                Some(c),
                Some(&second_id),
                None,
            ));
            // The contract's record exists; the second one's back-reference is stale.
            out.drift
                .push(drift(kinds::LINK_CONFLICT, Some(c), Some(&erp_id), None));
            out.records.push(record);
            out.records.push(second);
        }
        Role::LinkConflict => {
            // The contract keeps naming `erp_id`; its record carries another id
            // and still names the contract: the fix is to write that id on the
            // contract, and the conflict row replaces `missing_in_erp`.
            record.erp_record_id = ids.erp_id();
            out.drift
                .push(drift(kinds::LINK_CONFLICT, Some(c), Some(&erp_id), None));
            out.records.push(record);
        }
        Role::Mismatch(field) => {
            mismatch(base, field, &mut record, rng);
            out.drift.push(drift(
                kinds::FIELD_MISMATCH,
                Some(c),
                Some(&erp_id),
                Some(field),
            ));
            out.records.push(record);
        }
        Role::MissingDocument => {
            record.document_sha256 = if rng.random_bool(0.5) {
                None
            } else {
                let mut wrong = Sha256::new();
                wrong.update(base.id.as_bytes());
                wrong.update(b" draft copy");
                Some(hex::encode(wrong.finalize()))
            };
            out.drift
                .push(drift(kinds::MISSING_DOCUMENT, Some(c), Some(&erp_id), None));
            out.records.push(record);
        }
        Role::Unusable(kind) => {
            // Still the contract's record: reported for its unreadable value, and
            // neither missing nor compared on that value.
            let field = unusable(kind, &mut record);
            out.drift.push(drift(
                kinds::UNUSABLE_ERP_VALUE,
                Some(c),
                Some(&erp_id),
                field,
            ));
            out.reject = Some(kind);
            out.records.push(record);
        }
    }
    out
}

/// Gives `record` the value the loader rejects for `kind`; the field it is in
/// (`None` for an empty id).
fn unusable(kind: RejectKind, record: &mut ErpRecord) -> Option<Field> {
    match kind {
        RejectKind::EmptyId => {
            record.erp_record_id = String::new();
            None
        }
        RejectKind::BadDate => {
            record.expiry_date = Some("31/02/2026".into());
            Some(Field::ExpiryDate)
        }
        RejectKind::BadAmount => {
            record.amount = Some("12,3.4".into());
            Some(Field::Amount)
        }
    }
}

/// Changes `field` on the ERP side so it differs from the contract under the field's type.
fn mismatch(base: &Base, field: Field, record: &mut ErpRecord, rng: &mut StdRng) {
    match field {
        Field::VendorId => {
            let mut other = vendor_id(rng);
            while other == base.vendor_id {
                other = vendor_id(rng);
            }
            record.vendor_id = Some(other);
        }
        Field::PoNumber => {
            // PO values stay below 25,000,000, so a leading 9 is a typo no contract has.
            record.po_number = Some(format!("9{}", &base.po_number[1..]));
        }
        Field::Status => {
            let erp = if base.status == Status::Executed {
                "PENDING_SIGNATURE"
            } else {
                "ACTIVE"
            };
            record.status = Some(erp.to_string());
        }
        Field::Amount => {
            let delta: i64 = rng.random_range(1..=50_000);
            let cents = if base.cents > delta && rng.random_bool(0.5) {
                base.cents - delta
            } else {
                base.cents + delta
            };
            record.amount = Some(cents_text(cents));
        }
        Field::Currency => {
            let others: Vec<&str> = CURRENCIES
                .iter()
                .copied()
                .filter(|&c| c != base.currency)
                .collect();
            record.currency = Some(others[rng.random_range(0..others.len())].to_string());
        }
        Field::EffectiveDate => record.effective_date = Some(day(shift(base.effective, rng))),
        Field::ExpiryDate => {
            let expiry = base.expiry.expect("planned contracts have an expiry date");
            record.expiry_date = Some(day(shift(expiry, rng)));
        }
    }
}

/// Applies a difference that is equal under the field's type (or key normalization).
fn apply_noise(base: &Base, noise: Noise, contract: &mut FixtureContract, record: &mut ErpRecord) {
    match noise {
        Noise::RecordIdLower => record.erp_record_id = record.erp_record_id.to_lowercase(),
        Noise::RecordIdSpaces => record.erp_record_id = format!("  {} ", record.erp_record_id),
        Noise::PoPadded => {
            let po = &base.po_number;
            record.po_number = Some(if base.number.is_multiple_of(2) {
                format!("00{po}")
            } else {
                format!(" {po} ")
            });
        }
        Noise::AmountForm => {
            let text = cents_text(base.cents);
            // `12500.50` -> `12500.5`; otherwise a third decimal that rounds away.
            record.amount = Some(if base.cents % 10 == 0 {
                text[..text.len() - 1].to_string()
            } else {
                format!("{text}4")
            });
        }
        Noise::DateTime => {
            record.effective_date = Some(format!("{}T00:00:00Z", day(base.effective)))
        }
        Noise::StatusLower => record.status = record.status.as_ref().map(|s| s.to_lowercase()),
        Noise::NullBoth => {
            record.expiry_date = None;
            for kp in contract
                .key_pointers
                .iter_mut()
                .filter(|kp| kp.field_name == "expiry_date")
            {
                kp.value = serde_json::Value::Null;
            }
        }
        Noise::HashUpper => {
            record.document_sha256 = record.document_sha256.as_ref().map(|s| s.to_uppercase())
        }
        Noise::VendorLower => {
            record.vendor_id = Some(format!(" {}", base.vendor_id.to_lowercase()))
        }
        Noise::CurrencyLower => record.currency = Some(base.currency.to_lowercase()),
    }
}

/// An ERP record naming contract number `named` (which does not exist), and its drift row.
pub(crate) fn orphan(named: u64, ids: &mut Ids, rng: &mut StdRng) -> (ErpRecord, ExpectedDrift) {
    let named = if rng.random_bool(INTEGER_BACKREF_RATE) {
        named.to_string()
    } else {
        format!("{}-{named}", if rng.random_bool(0.1) { "H" } else { "T" })
    };
    let mut record = loose_record(ids, rng);
    record.spotdraft_contract_id = Some(named.clone());
    let row = drift(
        kinds::ORPHAN_ERP_RECORD,
        Some(&named),
        Some(&record.erp_record_id),
        None,
    );
    (record, row)
}

/// An ERP row the extract loader must reject; it names no contract and links
/// to none. With a record id it is still a record: its drift row (an
/// `unusable_erp_value` without a contract) comes along.
pub(crate) fn reject(
    kind: RejectKind,
    ids: &mut Ids,
    rng: &mut StdRng,
) -> (ErpRecord, Option<ExpectedDrift>) {
    let mut record = loose_record(ids, rng);
    let field = match kind {
        RejectKind::EmptyId => {
            record.erp_record_id = String::new();
            None
        }
        RejectKind::BadDate => {
            record.effective_date = Some("2026-13-45".into());
            Some(Field::EffectiveDate)
        }
        RejectKind::BadAmount => {
            record.amount = Some("12,5x".into());
            Some(Field::Amount)
        }
    };
    let row = field.map(|f| {
        drift(
            kinds::UNUSABLE_ERP_VALUE,
            None,
            Some(&record.erp_record_id),
            Some(f),
        )
    });
    (record, row)
}

/// A valid-looking record with a fresh id and a vendor/PO pair no contract has.
fn loose_record(ids: &mut Ids, rng: &mut StdRng) -> ErpRecord {
    let effective = NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date")
        + Days::new(rng.random_range(0..600));
    ErpRecord {
        erp_record_id: ids.erp_id(),
        spotdraft_contract_id: None,
        vendor_id: Some(vendor_id(rng)),
        po_number: Some(ids.extra_po()),
        legal_entity_id: Some("LE-US-01".into()),
        status: Some("ACTIVE".into()),
        amount: Some(cents_text(rng.random_range(100_000..10_000_000))),
        currency: Some("USD".into()),
        effective_date: Some(day(effective)),
        expiry_date: Some(day(effective + Days::new(364))),
        document_sha256: None,
        version: 1,
    }
}

/// Contract number named by the `k`-th orphan: past the last generated contract.
pub(crate) fn orphan_number(contracts: u64, k: u64) -> u64 {
    FIRST_NUMBER + contracts + k
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn base(status: Status) -> (Base, Ids, StdRng) {
        let mut rng = StdRng::seed_from_u64(11);
        let ids = Ids::new(100, &mut rng);
        (Base::draw(4, status, &ids, &mut rng), ids, rng)
    }

    #[test]
    fn unlinked_keep_removes_only_the_id() {
        let (b, mut ids, mut rng) = base(Status::Sign);
        let out = apply(&b, Role::UnlinkedKeep, &mut ids, &mut rng);
        let em = &out.contract.contract.external_metadata;
        assert!(em.id.is_none());
        assert_eq!(em.record_data["po_number"], b.po_number.as_str());
        assert_eq!(out.records.len(), 1);
        assert_eq!(
            out.drift[0].erp_record_id.as_deref(),
            Some(out.records[0].erp_record_id.as_str())
        );
    }

    #[test]
    fn duplicates_produce_two_rows_with_distinct_records() {
        let (b, mut ids, mut rng) = base(Status::Executed);
        let out = apply(&b, Role::Duplicate, &mut ids, &mut rng);
        assert_eq!(out.records.len(), 2);
        assert_ne!(out.records[0].erp_record_id, out.records[1].erp_record_id);
        let kinds: Vec<&str> = out.drift.iter().map(|d| d.drift_kind.as_str()).collect();
        assert_eq!(kinds, ["duplicate_link", "duplicate_link", "link_conflict"]);
    }

    #[test]
    fn unusable_keeps_the_record_and_names_the_field() {
        let (b, mut ids, mut rng) = base(Status::Sign);
        let out = apply(&b, Role::Unusable(RejectKind::BadDate), &mut ids, &mut rng);
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].expiry_date.as_deref(), Some("31/02/2026"));
        assert_eq!(out.reject, Some(RejectKind::BadDate));
        let d = &out.drift[..];
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].drift_kind.as_str(), d[0].field.as_deref()),
            ("unusable_erp_value", Some("expiry_date"))
        );
        assert_eq!(d[0].contract_id.as_deref(), Some(b.id.as_str()));
        let out = apply(
            &b,
            Role::Unusable(RejectKind::BadAmount),
            &mut ids,
            &mut rng,
        );
        assert_eq!(out.records[0].amount.as_deref(), Some("12,3.4"));
        assert_eq!(out.drift[0].field.as_deref(), Some("amount"));
    }

    #[test]
    fn link_conflict_record_names_the_contract_under_another_id() {
        let (b, mut ids, mut rng) = base(Status::Executed);
        let out = apply(&b, Role::LinkConflict, &mut ids, &mut rng);
        let named = out.contract.contract.external_metadata.id.clone().unwrap();
        assert_eq!(out.records.len(), 1);
        assert_ne!(out.records[0].erp_record_id, named);
        assert!(out.records[0].spotdraft_contract_id.is_some());
        assert_eq!(out.drift.len(), 1);
        assert_eq!(out.drift[0].drift_kind, "link_conflict");
        assert_eq!(out.drift[0].erp_record_id.as_deref(), Some(named.as_str()));
    }

    #[test]
    fn noise_keeps_the_values_equal_after_rounding() {
        let (mut b, mut ids, mut rng) = base(Status::Executed);
        b.cents = 1_250_050;
        let out = apply(&b, Role::Clean(Some(Noise::AmountForm)), &mut ids, &mut rng);
        assert_eq!(out.records[0].amount.as_deref(), Some("12500.5"));
        b.cents = 1_250_037;
        let out = apply(&b, Role::Clean(Some(Noise::AmountForm)), &mut ids, &mut rng);
        assert_eq!(out.records[0].amount.as_deref(), Some("12500.374"));
    }
}
