//! What a reconciliation compares: the validated, I/O-free description that the
//! job file turns into. The engine takes this plus two DataFrames.
//!
//! # Drift rules (the contract between the engine, the fixture generator and the docs)
//!
//! Inputs: the contract snapshot (one row per contract; rows with `deleted_at`
//! set are gone), the ERP extract (every row with a record id, canonical column
//! names, unusable values flagged; see below) and the ids of contracts known to
//! exist outside the snapshot
//! (`RunContext::known_existing_contract_ids`, e.g. contracts a `status_filter`
//! walk left out, looked up in SpotDraft by the runner).
//! Keys are normalized per [`KeySource::normalize`]; an empty string is null and
//! a null key links nothing (two nulls never match).
//!
//! *Scope*: contracts whose status is in [`ReconcileSpec::statuses`]. Contracts out
//! of scope produce no drift, but still count as existing for `orphan_erp_record`.
//!
//! *Links* between an in-scope contract C and an ERP record R:
//! 1. by id: C's ERP record id equals R's `erp_record_id`;
//! 2. by back-reference: R's `spotdraft_contract_id` equals C's composite id
//!    (`T-123`) or its integer part (`123`);
//! 3. by fallback key, when configured: every fallback key is non-null on both
//!    sides and equal, used only between contracts and records that have no
//!    link by 1 or 2.
//!
//! *Unusable ERP values*: a row the extract loader rejects for a value it cannot
//! read (an `effective_date` or `expiry_date` that is not a date, an `amount`
//! that is not a number) is listed in the rejects and is still an ERP record:
//! its raw text is kept, the value flagged `_unusable_<field>`
//! ([`unusable_flag`]). Such a record links by every rule above like any
//! other, so its contract is never `missing_in_erp`. The unusable value is never
//! compared (no `field_mismatch` on a guessed value); the record's other fields
//! are compared as usual. A row without a usable record id cannot be linked: it
//! is in the rejects only and never reaches the engine.
//!
//! *Not enriched is never drift*: when the snapshot has a
//! `key_pointers_fetched_at` column, a contract where it is null never had its
//! metadata values fetched, so no comparison whose SpotDraft source is a
//! `key_pointers.*` field is made for it (no `field_mismatch` either way). When
//! the snapshot has `document_fetched_at`, a contract where it is null never had
//! its executed document's checksum fetched, so `missing_document` does not
//! compare checksums for it (an ERP record without a document is still drift).
//! Without these columns (older snapshots) every contract counts as fetched.
//! Skipped comparisons are counted in `ReconcileStats`.
//!
//! *Kinds* (one row each, `field` empty except for `field_mismatch` and
//! `unusable_erp_value`):
//! - `unlinked_contract` (C, R or empty): C has no ERP record id; R is the record
//!   linked by rule 2 or 3 when there is exactly one.
//! - `missing_in_erp` (C, id): C names an ERP record id that no ERP row has,
//!   unless C has a `link_conflict` row with action
//!   `set_spotdraft_external_metadata_id`, which replaces it (the analyst gets
//!   one row saying which id to write).
//! - `link_conflict` (C, id, `erp_value` = the other id): C names an ERP record
//!   id X, and a record R' whose id is not X names C back (R' links to C by
//!   rule 2 only). One row per such R': `erp_record_id` is X as C writes it
//!   (whether or not a record has it), `erp_value` is R''s `erp_record_id` as
//!   the extract writes it, `field` and `spotdraft_value` are empty. With
//!   `n_id` the ERP rows whose id is X and `n_back` such records R' of C, the
//!   action is:
//!   - `set_spotdraft_external_metadata_id` when `n_id` = 0, `n_back` = 1 and
//!     R' links to no other contract: write R''s id on C;
//!   - `update_erp_back_reference` when `n_id` = 1, `n_back` = 1 and R' links
//!     to no other contract: R''s back-reference is stale, correct it in the ERP;
//!   - `review_link_conflict` otherwise.
//!
//!   It adds to `duplicate_link` (C's links to X and to R' still form a
//!   duplicate group when X exists, and those pairs are not compared). When X
//!   is absent and C's only link is R', the pair (C, R') is 1:1 and compared.
//! - `orphan_erp_record` (named id, R): R names a SpotDraft contract that is not in
//!   the snapshot or is deleted, and is not a known existing contract either.
//!   A known id matches a back-reference as a snapshot contract does: normalized
//!   like back-references, the composite id (`T-123`) or its integer part
//!   (`123`); an integer-only known id matches integer back-references only.
//!   `contract_id` holds the id R names, as written. The back-references that
//!   are candidates (named, not live in the snapshot) are what
//!   `orphans::orphan_candidates` returns.
//! - `duplicate_link` (C, R): one row per link when R links to several contracts or
//!   C links to several records. Pairs in a duplicate group are not compared.
//! - `unusable_erp_value` (C or empty, R, field): one row per unusable value of
//!   R. `field` is the canonical ERP field (`amount`, `expiry_date`, ...),
//!   `erp_value` its raw text; `contract_id` is the contract R links to when it
//!   links to exactly one (else empty), and then `spotdraft_value` is that
//!   contract's value of the first [`CompareSpec`] reading this ERP field (empty
//!   when none does). Action `fix_erp_value`: a person corrects the ERP value;
//!   nothing is written automatically.
//! - `field_mismatch` (C, R, field): for each 1:1 linked pair and each
//!   [`CompareSpec`], when the values differ under the field's type. Null on both
//!   sides is equal; null on one side is a mismatch. Not for an unusable ERP
//!   value, nor for a comparison skipped as not enriched.
//! - `missing_document` (C, R): C's status is `EXECUTED`, the pair is 1:1 linked,
//!   and R has no `document_sha256`, or the snapshot has the document's
//!   checksum and it differs from R's (case-insensitive hex).
//! - `missing_in_spotdraft` (empty, R): only with a [`NeedsContract`] rule
//!   (`[create]`). R needs a contract by that rule, R names no contract (its
//!   `spotdraft_contract_id` is null: a record naming a contract that does not
//!   exist is an `orphan_erp_record` instead), and no contract that is not
//!   deleted, **in any status** (not only the reconciled ones: a DRAFT just
//!   created closes it), links to R by id, nor by the fallback key when one is
//!   configured (every fallback key non-null on both sides and equal). Action
//!   `create_spotdraft_contract`.
//!
//! *Uniqueness*: the drift table never holds two identical rows (equal in every
//! column). Rules that would produce the same row twice, such as two ERP rows
//! with one record id linked to one contract, report it once.
//!
//! *Identity*: every row has a `drift_id`, unique within the run and stable
//! across runs: kind + normalized contract id + normalized record id + field
//! (see `identity`'s module doc for the exact key).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Canonical ERP field names that extracts are mapped to.
pub const CANONICAL_ERP_FIELDS: [&str; 11] = [
    "erp_record_id",
    "spotdraft_contract_id",
    "vendor_id",
    "po_number",
    "legal_entity_id",
    "status",
    "amount",
    "currency",
    "effective_date",
    "expiry_date",
    "document_sha256",
];

/// Prefix of the ERP frame's unusable-value flags: `_unusable_<canonical field>`
/// (Boolean) is true on a row whose value of that field could not be read (the
/// extract loader lists the row in the rejects and keeps it as a record).
pub const UNUSABLE_FLAG_PREFIX: &str = "_unusable_";

/// The name of the unusable-value flag column of a canonical ERP field.
pub fn unusable_flag(field: &str) -> String {
    format!("{UNUSABLE_FLAG_PREFIX}{field}")
}

/// One normalization step applied to a key or compared string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Remove leading and trailing white space.
    Trim,
    /// Fold to upper case.
    Upper,
    /// Fold to lower case.
    Lower,
    /// Remove leading zeros (`000123` -> `123`; `000` -> `0`).
    StripLeadingZeros,
}

/// Where a key lives on the contract side, and how both sides are normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySource {
    /// Snapshot column holding the value, e.g. `external_metadata.id` or
    /// `external_metadata.record_data.po_number`.
    pub column: String,
    /// Steps applied, in order, to the contract value and the ERP value.
    pub normalize: Vec<Normalize>,
}

/// The keys used to link contracts and ERP records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySpec {
    /// ERP record id on the contract (default `external_metadata.id`).
    pub erp_record_id: KeySource,
    /// Vendor id on the contract, when the job names one.
    pub vendor_id: Option<KeySource>,
    /// Purchase order number on the contract, when the job names one.
    pub po_number: Option<KeySource>,
    /// Legal entity id on the contract, when the job names one (reports only).
    pub legal_entity_id: Option<KeySource>,
    /// Normalization for the ERP side's `spotdraft_contract_id` back-reference.
    pub spotdraft_contract_id_normalize: Vec<Normalize>,
}

/// How a compared field's two values are judged equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CompareKind {
    /// Text, equal after the normalization steps.
    String {
        /// Steps applied to both sides.
        normalize: Vec<Normalize>,
    },
    /// Floating point, equal within `abs_tolerance` or `rel_tolerance` (either suffices).
    Number {
        /// Largest absolute difference that is still equal.
        abs_tolerance: f64,
        /// Largest difference relative to the larger magnitude that is still equal.
        rel_tolerance: f64,
    },
    /// Money: both sides rounded to `scale` decimal places (minor units) and compared exactly.
    Decimal {
        /// Number of decimal places of the minor unit (2 for cents).
        scale: u32,
    },
    /// Calendar date at day precision; `YYYY-MM-DD` or an ISO date-time (its date part).
    Date,
    /// A SpotDraft value mapped through `values` to the ERP value, then compared as text
    /// (trimmed, case-insensitive). A SpotDraft value absent from the map is a mismatch.
    Enum {
        /// SpotDraft value -> ERP value.
        values: BTreeMap<String, String>,
    },
}

/// How serious a drift row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Should be fixed.
    Medium,
    /// Blocks correct finance reporting.
    High,
}

impl Severity {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One compared field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareSpec {
    /// Name of the field in reports (`field` column).
    pub field: String,
    /// Snapshot column of the SpotDraft value (`contract_status`,
    /// `external_metadata.record_data.po_number`, `key_pointers.contract_value`, ...).
    pub spotdraft_column: String,
    /// Canonical ERP column (after the extract's column mapping).
    pub erp_column: String,
    /// Comparison type.
    pub kind: CompareKind,
    /// Severity of a mismatch.
    pub severity: Severity,
}

/// Which ERP records need a SpotDraft contract (`[create] needs_contract`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsContract {
    /// Canonical ERP column read (mapped in the extract).
    pub column: String,
    /// Values that need a contract, compared trimmed and case-insensitively;
    /// empty: any non-empty value does.
    pub values: Vec<String>,
}

/// Everything the reconciliation engine needs, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileSpec {
    /// Contract statuses in scope.
    pub statuses: Vec<String>,
    /// Linking keys.
    pub keys: KeySpec,
    /// Canonical key names (`vendor_id`, `po_number`, `legal_entity_id`) that form
    /// the fallback composite key; empty when not configured.
    pub fallback_key: Vec<String>,
    /// Compared fields.
    pub compares: Vec<CompareSpec>,
    /// Whether `missing_document` is checked.
    pub check_documents: bool,
    /// Severity of each non-field drift kind, by kind name; kinds not listed are `medium`.
    pub kind_severity: BTreeMap<String, Severity>,
    /// Which ERP records need a contract (`missing_in_spotdraft`); `None`: not checked.
    #[serde(default)]
    pub needs_contract: Option<NeedsContract>,
}

/// Drift kind names, exactly as they appear in reports.
pub mod kinds {
    /// In-scope contract without an ERP record id.
    pub const UNLINKED_CONTRACT: &str = "unlinked_contract";
    /// Contract names an ERP record the extract lacks.
    pub const MISSING_IN_ERP: &str = "missing_in_erp";
    /// Contract names one ERP record while another record names the contract back.
    pub const LINK_CONFLICT: &str = "link_conflict";
    /// ERP record names a contract that does not exist.
    pub const ORPHAN_ERP_RECORD: &str = "orphan_erp_record";
    /// Several contracts per record, or several records per contract.
    pub const DUPLICATE_LINK: &str = "duplicate_link";
    /// An ERP value the extract loader could not read (the row is in the rejects).
    pub const UNUSABLE_ERP_VALUE: &str = "unusable_erp_value";
    /// A compared field differs.
    pub const FIELD_MISMATCH: &str = "field_mismatch";
    /// Executed contract whose ERP record lacks the executed document.
    pub const MISSING_DOCUMENT: &str = "missing_document";
    /// ERP record that needs a contract (`[create]`) and that no contract links.
    pub const MISSING_IN_SPOTDRAFT: &str = "missing_in_spotdraft";
    /// All kinds, in report order.
    pub const ALL: [&str; 9] = [
        UNLINKED_CONTRACT,
        MISSING_IN_ERP,
        LINK_CONFLICT,
        ORPHAN_ERP_RECORD,
        DUPLICATE_LINK,
        UNUSABLE_ERP_VALUE,
        FIELD_MISMATCH,
        MISSING_DOCUMENT,
        MISSING_IN_SPOTDRAFT,
    ];
}
