use super::*;

fn sink(base: &str) -> RestSink {
    let config = RestSinkConfig::new(base.parse().unwrap(), ErpAuth::Bearer(Secret::new("t")));
    RestSink::new(config).unwrap()
}

#[test]
fn record_ids_are_one_percent_encoded_path_segment() {
    let s = sink("http://127.0.0.1:9/erp/");
    assert_eq!(
        s.url_for("contracts/{id}", "ERP 12/3").as_str(),
        "http://127.0.0.1:9/erp/contracts/ERP%2012%2F3"
    );
    assert_eq!(
        s.url_for("/contracts/{id}/attachments", "E-1").as_str(),
        "http://127.0.0.1:9/erp/contracts/E-1/attachments"
    );
    assert_eq!(
        s.url_for("batch", "").as_str(),
        "http://127.0.0.1:9/erp/batch"
    );
    let no_slash = sink("http://127.0.0.1:9/erp");
    assert_eq!(
        no_slash.url_for("contracts/{id}", "a?b#c%").as_str(),
        "http://127.0.0.1:9/erp/contracts/a%3Fb%23c%25"
    );
}

#[test]
fn if_match_is_quoted_once() {
    assert_eq!(if_match_header("3"), "\"3\"");
    assert_eq!(if_match_header("\"3\""), "\"3\"");
    assert_eq!(if_match_header("W/\"3\""), "W/\"3\"");
}

#[test]
fn batch_results_map_to_outcomes() {
    let ok = json!({"erp_record_id": "E-1", "status": 200, "version": 4});
    assert_eq!(
        batch_result(&ok),
        WriteOutcome::Applied {
            version: Some("4".into()),
            replayed: false
        }
    );
    let stale = json!({"erp_record_id": "E-1", "status": 412,
        "error": {"error": "precondition_failed", "message": "moved on"}});
    assert_eq!(
        batch_result(&stale),
        WriteOutcome::Rejected {
            status: 412,
            code: Some("precondition_failed".into()),
            message: "moved on".into()
        }
    );
    let busy = json!({"erp_record_id": "E-1", "status": 503});
    assert!(matches!(batch_result(&busy), WriteOutcome::Pending { .. }));
}

#[test]
fn secrets_never_print() {
    let auth = ErpAuth::Basic {
        user: Secret::new("u"),
        password: Secret::new("hunter2"),
    };
    let config = RestSinkConfig::new("http://h/erp/".parse().unwrap(), auth);
    let text = format!("{config:?} {:?}", sink("http://h/erp/"));
    assert!(
        !text.contains("hunter2") && !text.contains("\"u\""),
        "{text}"
    );
}

#[test]
fn empty_templates_and_unusable_base_urls_are_refused() {
    let mut config = RestSinkConfig::new(
        "http://h/erp/".parse().unwrap(),
        ErpAuth::Bearer(Secret::new("t")),
    );
    config.paths.batch = "/".into();
    assert!(RestSink::new(config).is_err());
    let mailto = RestSinkConfig::new(
        "mailto:a@b".parse().unwrap(),
        ErpAuth::Bearer(Secret::new("t")),
    );
    assert!(RestSink::new(mailto).is_err());
}
