//! Apply stage: idempotency keys.
//!
//! An action's *content* is its job, kind, target (the ERP record, and the
//! contract) and its sorted fields and values, or its document's checksum, and
//! the record version it is sent against (`If-Match`), when there is one. Its
//! key is the hash of that content and a **generation**: the number of earlier
//! successful applications of the same content to the same target that the
//! journal holds from before the extract was taken. So:
//! - a retry after a crash, or a pending action retried by the next run, plans
//!   the same content with the same generation: the same key, applied at most
//!   once by the ERP (and skipped when the journal says it succeeded);
//! - drift still showing in an extract older than the last success is that
//!   success not yet exported: same key, skipped;
//! - the same correction needed again in an extract taken *after* it succeeded
//!   (someone put the old value back) gets the next generation: a new key, sent again.
//!
//! A batch's key is the hash of its operations' keys.

use super::actions::{Action, ActionKind};
use super::journal::JournalView;
use sha2::{Digest, Sha256};

/// The hash (hex) of an action's content under `job`.
pub fn content_hash(job: &str, a: &Action) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update(s.as_bytes());
        h.update([0u8]);
    };
    part("contract-recon/apply/v1");
    part(job);
    part(a.kind.as_str());
    part(a.erp_record_id.as_deref().unwrap_or(""));
    part(a.contract_id.as_deref().unwrap_or(""));
    for (k, v) in &a.fields {
        part(k);
        part(v);
    }
    part(a.document_sha256.as_deref().unwrap_or(""));
    // The record's version is part of what is sent (`If-Match`): a write the
    // ERP refused for a version that has since moved on is new content.
    // Without a version the hash is what it always was.
    if let Some(version) = &a.if_match {
        part("if_match");
        part(version);
    }
    if a.kind == ActionKind::Review {
        part(a.reason.as_deref().unwrap_or(""));
    }
    hex::encode(h.finalize())
}

/// The key of content `hash` at `generation` (32 hex digits).
pub fn action_key(hash: &str, generation: u32) -> String {
    let digest = Sha256::digest(format!("{hash}/{generation}").as_bytes());
    hex::encode(digest)[..32].to_string()
}

/// A batch request's key, from its operations' keys in order (32 hex digits).
pub fn batch_key<S: AsRef<str>>(keys: &[S]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_ref().as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())[..32].to_string()
}

/// Sets each action's generation and key from the journal. `extract_as_of`:
/// when the extract was taken (successes after it are not yet in it); `None`
/// counts every success.
pub fn assign_keys(
    job: &str,
    actions: &mut [Action],
    journal: &JournalView,
    extract_as_of: Option<chrono::DateTime<chrono::Utc>>,
) {
    for a in actions {
        let hash = content_hash(job, a);
        a.generation = if a.is_sendable() {
            journal.successes_before(&hash, extract_as_of)
        } else {
            0
        };
        a.key = action_key(&hash, a.generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::journal::JournalEntry;
    use std::collections::{BTreeMap, BTreeSet};

    fn update(value: &str) -> Action {
        Action {
            kind: ActionKind::UpdateErpFields,
            erp_record_id: Some("ERP-1".into()),
            contract_id: Some("T-1".into()),
            fields: BTreeMap::from([("status".into(), value.into())]),
            document_sha256: None,
            if_match: None,
            reason: None,
            drift_kinds: BTreeSet::new(),
            drift_ids: BTreeSet::new(),
            key: String::new(),
            generation: 0,
        }
    }

    fn success(hash: &str, at: &str) -> JournalEntry {
        JournalEntry {
            key: "k".into(),
            generation: 0,
            content_hash: hash.into(),
            action: "update_erp_fields".into(),
            erp_record_id: Some("ERP-1".into()),
            contract_id: None,
            attempt: 1,
            outcome: "applied".into(),
            message: None,
            at: at.into(),
            run_id: "run-1".into(),
            approved_by: None,
        }
    }

    #[test]
    fn the_key_depends_on_job_content_and_generation() {
        let (a, b) = (update("ACTIVE"), update("CANCELLED"));
        assert_ne!(content_hash("us", &a), content_hash("us", &b));
        assert_ne!(content_hash("us", &a), content_hash("eu", &a));
        let h = content_hash("us", &a);
        assert_ne!(action_key(&h, 0), action_key(&h, 1));
        assert_eq!(action_key(&h, 0), action_key(&h, 0));
        assert_ne!(batch_key(&["a", "b"]), batch_key(&["b", "a"]));
        let mut versioned = update("ACTIVE");
        versioned.if_match = Some("3".into());
        assert_ne!(content_hash("us", &versioned), h);
    }

    #[test]
    fn a_success_after_the_extract_keeps_the_key_and_one_before_it_moves_to_the_next_generation() {
        let mut actions = vec![update("ACTIVE")];
        let h = content_hash("us", &actions[0]);
        let journal = JournalView::from_entries(vec![success(&h, "2026-01-02T00:00:00Z")]);
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assign_keys(
            "us",
            &mut actions,
            &journal,
            Some(at("2026-01-01T00:00:00Z")),
        );
        assert_eq!(
            (actions[0].generation, actions[0].key.clone()),
            (0, action_key(&h, 0))
        );
        assign_keys(
            "us",
            &mut actions,
            &journal,
            Some(at("2026-01-03T00:00:00Z")),
        );
        assert_eq!(
            (actions[0].generation, actions[0].key.clone()),
            (1, action_key(&h, 1))
        );
    }
}
