//! Fixture generator, planning: every contract's status and its one role (clean,
//! noise or one injected drift) are chosen before any value, so the injected sets
//! are disjoint and their sizes exact.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Share of in-scope contracts per non-field drift kind.
pub(crate) const DRIFT_KIND_RATE: f64 = 0.01;
/// Share of in-scope contracts per compared field for `field_mismatch`.
pub(crate) const FIELD_MISMATCH_RATE: f64 = 0.005;
/// Share of clean in-scope contracts that carry one kind of noise (spread over all kinds).
pub(crate) const NOISE_RATE: f64 = 0.25;
/// Share of extra, rejected ERP rows that belong to no contract (per contract).
pub(crate) const REJECT_RATE: f64 = 0.002;

/// A contract status, with its share of the generated contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Executed,
    Sign,
    OnHold,
    Voided,
    Draft,
    Redlining,
}

impl Status {
    /// Statuses with their weights in percent.
    const WEIGHTS: [(Status, u32); 6] = [
        (Status::Executed, 50),
        (Status::Sign, 15),
        (Status::OnHold, 5),
        (Status::Voided, 5),
        (Status::Draft, 15),
        (Status::Redlining, 10),
    ];

    /// The SpotDraft status name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Executed => "EXECUTED",
            Status::Sign => "SIGN",
            Status::OnHold => "ON_HOLD",
            Status::Voided => "VOIDED",
            Status::Draft => "DRAFT",
            Status::Redlining => "REDLINING",
        }
    }

    /// The ERP status the demo job maps this status to; `None` when out of scope.
    pub(crate) fn erp_status(self) -> Option<&'static str> {
        match self {
            Status::Executed => Some("ACTIVE"),
            Status::Sign => Some("PENDING_SIGNATURE"),
            Status::OnHold => Some("ON_HOLD"),
            Status::Voided => Some("CANCELLED"),
            Status::Draft | Status::Redlining => None,
        }
    }

    /// Whether the demo job reconciles contracts in this status.
    pub(crate) fn in_scope(self) -> bool {
        self.erp_status().is_some()
    }

    fn draw(rng: &mut StdRng) -> Status {
        let mut r = rng.random_range(0..100u32);
        for (s, w) in Status::WEIGHTS {
            if r < w {
                return s;
            }
            r -= w;
        }
        Status::Executed
    }
}

/// A field the demo job compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    VendorId,
    PoNumber,
    Status,
    Amount,
    Currency,
    EffectiveDate,
    ExpiryDate,
}

impl Field {
    /// All compared fields, in report order.
    pub(crate) const ALL: [Field; 7] = [
        Field::VendorId,
        Field::PoNumber,
        Field::Status,
        Field::Amount,
        Field::Currency,
        Field::EffectiveDate,
        Field::ExpiryDate,
    ];

    /// The field name as it appears in `expected_drift.csv`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::VendorId => "vendor_id",
            Field::PoNumber => "po_number",
            Field::Status => "status",
            Field::Amount => "amount",
            Field::Currency => "currency",
            Field::EffectiveDate => "effective_date",
            Field::ExpiryDate => "expiry_date",
        }
    }
}

/// A difference that is not drift: equal under the field's type or key normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Noise {
    RecordIdLower,
    RecordIdSpaces,
    PoPadded,
    AmountForm,
    DateTime,
    StatusLower,
    NullBoth,
    HashUpper,
    VendorLower,
    CurrencyLower,
}

impl Noise {
    const ALL: [Noise; 10] = [
        Noise::RecordIdLower,
        Noise::RecordIdSpaces,
        Noise::PoPadded,
        Noise::AmountForm,
        Noise::DateTime,
        Noise::StatusLower,
        Noise::NullBoth,
        Noise::HashUpper,
        Noise::VendorLower,
        Noise::CurrencyLower,
    ];

    /// Name used in the manifest.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Noise::RecordIdLower => "erp_record_id_lower_case",
            Noise::RecordIdSpaces => "erp_record_id_spaces",
            Noise::PoPadded => "po_number_padded",
            Noise::AmountForm => "amount_text_form",
            Noise::DateTime => "date_as_datetime",
            Noise::StatusLower => "status_lower_case",
            Noise::NullBoth => "expiry_date_null_both_sides",
            Noise::HashUpper => "document_sha256_upper_case",
            Noise::VendorLower => "vendor_id_lower_case",
            Noise::CurrencyLower => "currency_lower_case",
        }
    }
}

/// What the generator does with one contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// DRAFT or REDLINING: no ERP record, no drift.
    OutOfScope,
    /// Linked 1:1 and equal, possibly with noise.
    Clean(Option<Noise>),
    /// No ERP record id on the contract; the ERP record still back-references it.
    UnlinkedKeep,
    /// No ERP record id on the contract and no ERP record.
    UnlinkedDrop,
    /// The contract names an ERP record that is not in the extract.
    MissingInErp,
    /// A second ERP record back-references the contract (also a link conflict:
    /// its back-reference contradicts the contract's id).
    Duplicate,
    /// The contract names an ERP record id the extract lacks, and its record,
    /// under another id, names the contract back.
    LinkConflict,
    /// One compared field differs on the ERP side.
    Mismatch(Field),
    /// EXECUTED contract whose ERP record has no or a wrong document hash.
    MissingDocument,
    /// The contract's ERP record has a value the extract loader rejects
    /// (`BadDate`: expiry date, `BadAmount`: amount); the record still exists.
    Unusable(RejectKind),
}

/// Why an ERP row is rejected by the extract loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectKind {
    EmptyId,
    BadDate,
    BadAmount,
}

impl RejectKind {
    /// The `reason_kind` written to `expected_rejects.csv`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RejectKind::EmptyId => "empty_erp_record_id",
            RejectKind::BadDate => "bad_date",
            RejectKind::BadAmount => "bad_amount",
        }
    }
}

/// An ERP row that belongs to no generated contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    /// A record naming a contract that does not exist.
    Orphan,
    /// An unusable row.
    Reject(RejectKind),
}

/// Statuses, roles and extra ERP rows for a whole dataset.
#[derive(Debug)]
pub(crate) struct Plan {
    /// One status per contract, in contract order.
    pub(crate) statuses: Vec<Status>,
    /// One role per contract, in contract order.
    pub(crate) roles: Vec<Role>,
    /// Extra ERP rows, each emitted after the contract at the given index; sorted.
    pub(crate) extras: Vec<(usize, Extra)>,
}

/// Number of contracts for a rate over `pool`: at least one when the pool is not empty.
fn quota(rate: f64, pool: usize) -> usize {
    if pool == 0 {
        0
    } else {
        ((rate * pool as f64).round() as usize).max(1)
    }
}

impl Plan {
    /// Plans `n` contracts.
    pub(crate) fn new(n: usize, rng: &mut StdRng) -> Plan {
        let statuses: Vec<Status> = (0..n).map(|_| Status::draw(rng)).collect();
        let mut roles: Vec<Role> = statuses
            .iter()
            .map(|s| {
                if s.in_scope() {
                    Role::Clean(None)
                } else {
                    Role::OutOfScope
                }
            })
            .collect();
        let mut pool: Vec<usize> = (0..n).filter(|&i| statuses[i].in_scope()).collect();
        let in_scope = pool.len();
        pool.shuffle(rng);

        // missing_document first: it needs EXECUTED contracts.
        let executed = pool
            .iter()
            .filter(|&&i| statuses[i] == Status::Executed)
            .count();
        let mut doc_left = quota(DRIFT_KIND_RATE, executed);
        for &i in &pool {
            if doc_left == 0 {
                break;
            }
            if statuses[i] == Status::Executed {
                roles[i] = Role::MissingDocument;
                doc_left -= 1;
            }
        }

        let unlinked = quota(DRIFT_KIND_RATE, in_scope);
        let mut demand: Vec<(Role, usize)> = vec![
            (Role::UnlinkedKeep, unlinked.div_ceil(2)),
            (Role::UnlinkedDrop, unlinked / 2),
            (Role::MissingInErp, quota(DRIFT_KIND_RATE, in_scope)),
            (Role::Duplicate, quota(DRIFT_KIND_RATE, in_scope)),
        ];
        for f in Field::ALL {
            demand.push((Role::Mismatch(f), quota(FIELD_MISMATCH_RATE, in_scope)));
        }
        let unusable = quota(DRIFT_KIND_RATE, in_scope);
        demand.push((Role::Unusable(RejectKind::BadDate), unusable.div_ceil(2)));
        demand.push((Role::Unusable(RejectKind::BadAmount), unusable / 2));
        demand.push((Role::LinkConflict, quota(DRIFT_KIND_RATE, in_scope)));
        let free: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&i| roles[i] == Role::Clean(None))
            .collect();
        let mut free = free.into_iter();
        for (role, count) in demand {
            for i in free.by_ref().take(count) {
                roles[i] = role;
            }
        }

        for (i, role) in roles.iter_mut().enumerate() {
            if *role == Role::Clean(None) && rng.random_bool(NOISE_RATE) {
                let noise = Noise::ALL[rng.random_range(0..Noise::ALL.len())];
                // The document hash only exists for EXECUTED contracts.
                let noise = if noise == Noise::HashUpper && statuses[i] != Status::Executed {
                    Noise::VendorLower
                } else {
                    noise
                };
                *role = Role::Clean(Some(noise));
            }
        }

        let mut extras = Vec::new();
        if n > 0 {
            for _ in 0..quota(DRIFT_KIND_RATE, in_scope) {
                extras.push((rng.random_range(0..n), Extra::Orphan));
            }
            let kinds = [
                RejectKind::EmptyId,
                RejectKind::BadDate,
                RejectKind::BadAmount,
            ];
            let rejects = ((REJECT_RATE * n as f64).round() as usize).max(kinds.len());
            for k in 0..rejects {
                extras.push((
                    rng.random_range(0..n),
                    Extra::Reject(kinds[k % kinds.len()]),
                ));
            }
        }
        // Stable: extras at the same contract keep their planned order.
        extras.sort_by_key(|&(i, _)| i);
        Plan {
            statuses,
            roles,
            extras,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn roles_are_disjoint_and_sized_by_rate() {
        let mut rng = StdRng::seed_from_u64(7);
        let plan = Plan::new(20_000, &mut rng);
        let in_scope = plan.statuses.iter().filter(|s| s.in_scope()).count();
        let count = |r: Role| plan.roles.iter().filter(|&&x| x == r).count();
        let per_kind = (in_scope as f64 * DRIFT_KIND_RATE).round() as usize;
        assert_eq!(count(Role::MissingInErp), per_kind);
        assert_eq!(count(Role::Duplicate), per_kind);
        assert_eq!(count(Role::LinkConflict), per_kind);
        assert_eq!(
            count(Role::UnlinkedKeep) + count(Role::UnlinkedDrop),
            per_kind
        );
        assert_eq!(
            count(Role::Unusable(RejectKind::BadDate))
                + count(Role::Unusable(RejectKind::BadAmount)),
            per_kind
        );
        for f in Field::ALL {
            assert_eq!(
                count(Role::Mismatch(f)),
                (in_scope as f64 * FIELD_MISMATCH_RATE).round() as usize
            );
        }
        for (i, r) in plan.roles.iter().enumerate() {
            assert_eq!(*r == Role::OutOfScope, !plan.statuses[i].in_scope());
            if *r == Role::MissingDocument || *r == Role::Clean(Some(Noise::HashUpper)) {
                assert_eq!(plan.statuses[i], Status::Executed);
            }
        }
        assert!(plan.extras.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn statuses_follow_their_weights() {
        let mut rng = StdRng::seed_from_u64(1);
        let plan = Plan::new(20_000, &mut rng);
        let share = |s: Status| plan.statuses.iter().filter(|&&x| x == s).count() as f64 / 20_000.0;
        assert!((share(Status::Executed) - 0.50).abs() < 0.02);
        assert!((share(Status::Draft) - 0.15).abs() < 0.02);
        assert!((share(Status::Voided) - 0.05).abs() < 0.01);
    }

    #[test]
    fn tiny_plans_still_hold_every_kind_when_possible() {
        let mut rng = StdRng::seed_from_u64(42);
        let plan = Plan::new(300, &mut rng);
        for f in Field::ALL {
            assert!(plan.roles.contains(&Role::Mismatch(f)), "{f:?}");
        }
        assert!(plan.roles.contains(&Role::MissingDocument));
        assert!(plan.roles.contains(&Role::LinkConflict));
        assert!(plan.roles.contains(&Role::Unusable(RejectKind::BadDate)));
        assert!(plan.roles.contains(&Role::Unusable(RejectKind::BadAmount)));
        assert!(plan.extras.iter().any(|e| e.1 == Extra::Orphan));
        assert_eq!(
            plan.extras
                .iter()
                .filter(|e| matches!(e.1, Extra::Reject(_)))
                .count(),
            3
        );
    }
}
