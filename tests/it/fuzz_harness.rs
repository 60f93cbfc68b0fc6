//! The fuzz targets' bodies (`fuzz/fuzz_targets/*.rs` include this file), so
//! `cargo test` replays every kept input (`fixtures/fuzz/<target>/`) through
//! exactly the code the fuzzer ran. Each body panics only on a bug: a panic
//! inside the library, or a result that breaks the function's promise.

use contract_recon::erp::extract::{parse_and_validate, ExtractFormat};
use contract_recon::schedule::webhooks::server::{check_delivery, check_erp_event, Refusal};
use contract_recon::schedule::webhooks::signature::{ErpEventKey, WebhookKey};
use std::collections::BTreeMap;
use std::path::Path;

/// The demo job's column mapping (`jobs/demo.toml`), so the fuzzer's inputs
/// that keep the demo's header reach row validation.
pub fn demo_columns() -> BTreeMap<String, String> {
    contract_recon::sandbox::dataset::erp_extract_columns()
}

/// The extract loader on `data` as a file of `format`: an error must name the
/// file; a loaded extract never holds more records than rows read.
pub fn extract(data: &[u8], format: ExtractFormat) {
    let url = "fuzz://erp_extract";
    let bytes = bytes::Bytes::copy_from_slice(data);
    match parse_and_validate(url, bytes, format, &demo_columns()) {
        Ok(extract) => {
            assert!(
                extract.records.height() as u64 <= extract.rows_read,
                "{} records from {} rows",
                extract.records.height(),
                extract.rows_read
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(url), "the error names no file: {message}");
        }
    }
}

/// The job-file parser and validator on `data` as a job file's text.
pub fn job_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| Some(format!("fuzz-value-of-{name}"));
    if let Err(problems) =
        contract_recon::job::load_job_text(Path::new("/nonexistent/fuzz.toml"), text, &env)
    {
        assert!(!problems.0.is_empty(), "an error without a problem");
        let message = problems.to_string();
        assert!(
            !message.contains("fuzz-value-of-") || text.contains("fuzz-value-of-"),
            "a secret from the environment in a message: {message}"
        );
    }
}

/// The webhook endpoints' checks on `data`, read as `key \n signature \n
/// body`: a body signed with the key passes the signature check, any other
/// signature fails it, for both SpotDraft deliveries and ERP events.
pub fn webhook(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (key, signature, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(s), Some(b)) => (k, s, b),
        _ => return,
    };
    let signature = std::str::from_utf8(signature).ok();

    let spotdraft = WebhookKey::from_bytes(key);
    let good = spotdraft.sign(body);
    let forged = signature.is_some_and(|s| s.trim().eq_ignore_ascii_case(&good));
    let given = check_delivery(&spotdraft, body, signature);
    assert_eq!(
        given == Err(Refusal::BadSignature),
        !forged,
        "signature {signature:?} judged wrongly"
    );
    let signed = check_delivery(&spotdraft, body, Some(&good));
    assert_ne!(signed, Err(Refusal::BadSignature), "its own signature");
    if let Ok(delivery) = &signed {
        let parsed: serde_json::Value = serde_json::from_slice(body).expect("parsed once");
        assert_eq!(parsed["contract_id"].as_i64(), Some(delivery.contract_id));
    }

    let erp = ErpEventKey::new(key);
    let good = erp.sign(body);
    let signed = check_erp_event(&erp, body, Some(&good));
    assert_ne!(signed, Err(Refusal::BadSignature), "its own signature");
    if let Ok(event) = &signed {
        assert!(!event.record_id.trim().is_empty());
    }
    let unprefixed = good.trim_start_matches("sha256=");
    assert_eq!(
        check_erp_event(&erp, body, Some(unprefixed)),
        Err(Refusal::BadSignature),
        "the sha256= prefix is required"
    );
}
