use super::*;
use std::io::Write;

fn jobs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("jobs")
}

fn env_with_secrets(name: &str) -> Option<String> {
    (name.starts_with("SPOTDRAFT_") || name.starts_with("ERP_")).then(|| format!("value-of-{name}"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Writes `text` as a temporary job file and validates it.
fn check(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Job, JobProblems> {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    load_job_with_env(f.path(), env)
}

/// The demo job with its relative paths made absolute, so copies can live anywhere.
fn demo_text() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(jobs_dir().join("demo.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{root}/"))
}

/// The demo job pointed at a live workspace: no [sandbox] section, env-named secrets.
fn live_text(base_url: &str, env_prefix: &str, rps: u32) -> String {
    let text = demo_text();
    let (start, end) = (
        text.find("[sandbox]").unwrap(),
        text.find("[erp.extract]").unwrap(),
    );
    format!("{}{}", &text[..start], &text[end..])
        .replace(
            "base_url = \"sandbox\"",
            &format!("base_url = \"{base_url}\"\nclient_id_env = \"{env_prefix}_ID\"\nclient_secret_env = \"{env_prefix}_SECRET\""),
        )
        .replace("requests_per_second = 50", &format!("requests_per_second = {rps}"))
}

fn problems(text: &str) -> Vec<JobProblem> {
    check(text, &env_with_secrets)
        .expect_err("job should be rejected")
        .0
}

fn keys(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.key).collect()
}

#[test]
fn every_shipped_job_file_validates() {
    for entry in std::fs::read_dir(jobs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load_job_with_env(&path, &env_with_secrets).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn demo_job_reads_into_a_typed_job() {
    let job = check(&demo_text(), &no_env).unwrap();
    assert_eq!(job.name, "demo");
    assert!(matches!(
        job.spotdraft,
        SpotDraftTarget::Sandbox {
            rate_limit_per_sec: 50,
            ..
        }
    ));
    assert_eq!(job.fetch.page_size, 100);
    assert_eq!(job.reconcile.compares.len(), 7);
    assert_eq!(job.extract.format, ExtractFileFormat::Csv);
    assert!(job.reconcile.check_documents);
    assert_eq!(job.reconcile.fallback_key, ["vendor_id", "po_number"]);
    // Keys and compared fields decide which snapshot columns ingestion fills.
    assert_eq!(
        job.fetch.record_data_keys,
        ["vendor_id", "po_number", "legal_entity_id"]
    );
    assert_eq!(
        job.fetch.key_pointer_fields,
        [
            "contract_value",
            "currency",
            "effective_date",
            "expiry_date"
        ]
    );
    assert!(Path::new(&job.output.url).is_absolute());
    assert_eq!(job.schedule.unwrap().cron, "0 30 2 * * *");
}

#[test]
fn page_size_out_of_range_names_the_key() {
    for bad in ["page_size = 0", "page_size = 500"] {
        let p = problems(&demo_text().replace("page_size = 100", bad));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "spotdraft.page_size");
        assert!(
            p[0].to_string().contains("out of range 1..=100"),
            "{}",
            p[0]
        );
        assert!(
            p[0].to_string().contains(".toml: spotdraft.page_size: "),
            "{}",
            p[0]
        );
    }
}

#[test]
fn unknown_key_is_rejected_with_its_section() {
    let p = problems(&demo_text().replace("page_size = 100", "page_size = 100\npagesize = 5"));
    assert_eq!(p[0].key, "spotdraft.pagesize");
    assert!(p[0].reason.contains("unknown key"), "{}", p[0]);
}

#[test]
fn wrong_type_names_the_key() {
    let p = problems(&demo_text().replace("page_size = 100", "page_size = \"lots\""));
    assert_eq!(p[0].key, "spotdraft.page_size");
}

#[test]
fn missing_section_is_named() {
    let text = demo_text();
    let start = text.find("[output]").unwrap();
    let end = text.find("[apply]").unwrap();
    let p = problems(&format!("{}{}", &text[..start], &text[end..]));
    assert_eq!(p[0].key, "output");
    assert!(p[0].reason.contains("missing section"), "{}", p[0]);
}

#[test]
fn unparsable_cron_and_timezone_are_reported_together() {
    let text = demo_text()
        .replace("\"0 30 2 * * *\"", "\"every night\"")
        .replace("timezone = \"UTC\"", "timezone = \"Mars/Olympus\"");
    assert_eq!(keys(&text), ["job.timezone", "job.schedule"]);
}

#[test]
fn five_field_cron_is_rejected() {
    assert_eq!(
        keys(&demo_text().replace("\"0 30 2 * * *\"", "\"30 2 * * *\"")),
        ["job.schedule"]
    );
}

#[test]
fn unset_secret_variables_are_named() {
    let text = live_text("https://api.eu.spotdraft.com/api/", "SD_UNSET", 10);
    let p = check(&text, &no_env).unwrap_err().0;
    let lines: Vec<String> = p
        .iter()
        .map(|p| format!("{}: {}", p.key, p.reason))
        .collect();
    assert_eq!(
        lines,
        [
            "spotdraft.client_id_env: environment variable SD_UNSET_ID is not set",
            "spotdraft.client_secret_env: environment variable SD_UNSET_SECRET is not set"
        ]
    );
    let job = check(&text, &|_| Some("s3cr3t".into())).unwrap();
    assert!(
        !format!("{job:?}").contains("s3cr3t"),
        "secrets must not appear in Debug output"
    );
}

#[test]
fn live_workspace_rate_is_capped_at_the_published_limit() {
    let text = live_text("https://api.us.spotdraft.com/api/", "SPOTDRAFT", 50);
    assert_eq!(keys(&text), ["spotdraft.requests_per_second"]);
}

#[test]
fn a_server_on_loopback_may_be_asked_for_more_than_the_published_limit() {
    // A SpotDraft-shaped server on this machine (the sandbox served by
    // `contract-recon sandbox`, a test double) is no workspace.
    let text = live_text("http://127.0.0.1:8080/api/", "SPOTDRAFT", 1000);
    let job = check(&text, &env_with_secrets).unwrap();
    assert_eq!(job.fetch.requests_per_second, 1000);
    let text = live_text("http://127.0.0.1:8080/api/", "SPOTDRAFT", 1001);
    assert_eq!(keys(&text), ["spotdraft.requests_per_second"]);
}

#[test]
fn plain_http_is_refused_for_a_remote_host() {
    let text = live_text("http://api.us.spotdraft.com/api/", "SPOTDRAFT", 10);
    assert_eq!(keys(&text), ["spotdraft.base_url"]);
}

#[test]
fn compare_problems_are_indexed() {
    let text = demo_text()
        .replace("type = \"decimal\"", "type = \"money\"")
        .replace("erp = \"currency\"", "erp = \"ccy\"")
        .replace(
            "spotdraft = \"key_pointers.effective_date\"",
            "spotdraft = \"title\"",
        );
    assert_eq!(
        keys(&text),
        ["compare[3].type", "compare[4].erp", "compare[5].spotdraft"]
    );
}

#[test]
fn enum_without_values_and_misplaced_options_are_rejected() {
    let text = demo_text()
        .replace("values = { EXECUTED = \"ACTIVE\", SIGN = \"PENDING_SIGNATURE\", ON_HOLD = \"ON_HOLD\", VOIDED = \"CANCELLED\" }\n", "")
        .replace("type = \"date\"\nseverity = \"medium\"", "type = \"date\"\nscale = 3\nseverity = \"medium\"");
    assert_eq!(keys(&text), ["compare[2].values", "compare[5].scale"]);
}

#[test]
fn bad_normalization_and_fallback_are_rejected() {
    let text = demo_text()
        .replace(
            "po_number = [\"trim\", \"upper\", \"strip_leading_zeros\"]\nlegal",
            "po_number = [\"trim\", \"shout\"]\nlegal",
        )
        .replace(
            "fallback_key = [\"vendor_id\", \"po_number\"]",
            "fallback_key = [\"vendor_id\", \"title\"]",
        );
    assert_eq!(
        keys(&text),
        ["match.normalize.po_number", "match.fallback_key"]
    );
}

#[test]
fn missing_record_id_mapping_and_unknown_format() {
    let text = demo_text()
        .replace("erp_record_id = \"RECORD_ID\"\n", "")
        .replace("format = \"csv\"", "format = \"xlsx\"");
    assert_eq!(
        keys(&text),
        ["erp.extract.format", "erp.extract.columns.erp_record_id"]
    );
}

#[test]
fn the_demo_plans_corrections_into_import_files() {
    let job = check(&demo_text(), &no_env).unwrap();
    assert!(job.apply.enabled);
    assert_eq!(job.apply.mode, ApplyMode::Plan);
    assert!(matches!(job.apply.sink, Some(SinkSettings::Files { .. })));
    assert!(job.apply.back_reference);
    assert_eq!(job.apply.owners.get("status"), Some(&Owner::Spotdraft));
    assert_eq!(job.apply.owners.get("vendor_id"), Some(&Owner::None));
}

#[test]
fn apply_names_are_checked_against_the_extract_mapping() {
    let text = demo_text()
        .replace(
            "back_reference = true",
            "back_reference = true\nif_match = \"version\"",
        )
        .replace("spotdraft_contract_id = \"SD_CONTRACT_ID\"\n", "");
    assert_eq!(keys(&text), ["apply.back_reference", "apply.if_match"]);
    let owner = demo_text().replace("severity = \"low\"", "severity = \"low\"\nowner = \"erp\"");
    assert_eq!(keys(&owner), ["compare[6].owner"]);
    let sink = demo_text().replace("sink = \"files\"", "sink = \"ftp\"");
    assert_eq!(keys(&sink), ["apply.sink"]);
}

#[test]
fn a_rest_sink_needs_its_auth_from_the_environment() {
    let text = demo_text()
        .replace("sink = \"files\"", "sink = \"rest\"")
        .replace(
        "[apply.files]\nurl = \"",
        "[apply.rest]\ntoken_env = \"ACME_TOKEN\"\nbase_url = \"https://erp.example.com/api/\"\n#",
    );
    assert_eq!(keys(&text), ["apply.rest.token_env"]);
    let job = check(&text, &|n| (n == "ACME_TOKEN").then(|| "t".to_string())).unwrap();
    let Some(SinkSettings::Rest(rest)) = job.apply.sink else {
        panic!("rest sink")
    };
    assert!(matches!(rest.auth, ErpAuth::Bearer(_)));
    assert_eq!(format!("{:?}", rest.auth), "Bearer([redacted])");
}

#[test]
fn unreadable_file_is_one_problem() {
    let err = load_job_with_env(Path::new("/nonexistent/job.toml"), &no_env).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/job.toml: -: cannot read the job file"),
        "{err}"
    );
}

#[test]
fn relative_paths_resolve_from_the_job_file_folder_without_dot_dot() {
    let job = load_job_with_env(&jobs_dir().join("demo.toml"), &no_env).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    assert_eq!(job.output.url, format!("{root}/out/demo"));
    assert_eq!(
        job.extract.url,
        format!("{root}/fixtures/demo/erp_extract.csv")
    );
    assert_eq!(
        lexically_normal(Path::new("/a/b/../c/./d")),
        PathBuf::from("/a/c/d")
    );
}

#[test]
fn demo_job_spec_is_the_engine_and_benchmark_demo_spec() {
    // The engine's tests and the reconcile benchmark use `demo_spec()`; it must
    // be exactly what `jobs/demo.toml` asks for.
    let job = check(&demo_text(), &no_env).unwrap();
    assert_eq!(job.reconcile, crate::reconcile::demo_spec());
}

#[test]
fn refresh_per_run_takes_a_count_or_a_percentage() {
    let with = |v: &str| {
        demo_text().replace(
            "fetch_documents = true",
            &format!("fetch_documents = true\nrefresh_per_run = {v}"),
        )
    };
    let job = check(&demo_text(), &no_env).unwrap();
    assert_eq!(job.fetch.refresh_per_run, RefreshBudget::Percent(2.0));
    let job = check(&with("500"), &no_env).unwrap();
    assert_eq!(job.fetch.refresh_per_run, RefreshBudget::Contracts(500));
    let job = check(&with("\"0.5%\""), &no_env).unwrap();
    assert_eq!(job.fetch.refresh_per_run, RefreshBudget::Percent(0.5));
    let job = check(&with("0"), &no_env).unwrap();
    assert_eq!(job.fetch.refresh_per_run, RefreshBudget::Contracts(0));
    for bad in ["-1", "\"150%\"", "\"2\"", "\"lots\""] {
        let p = problems(&with(bad));
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert_eq!(p[0].key, "spotdraft.refresh_per_run", "{bad}");
    }
}

#[test]
fn severity_accepts_every_drift_kind_but_field_mismatch() {
    let text = demo_text()
        .replace("unusable_erp_value = \"medium\"\n", "")
        .replace("link_conflict = \"high\"\n", "")
        .replace(
            "[severity]\n",
            "[severity]\nunusable_erp_value = \"low\"\nlink_conflict = \"low\"\n",
        );
    let job = check(&text, &env_with_secrets).unwrap();
    for kind in ["unusable_erp_value", "link_conflict"] {
        assert_eq!(
            job.reconcile.kind_severity.get(kind),
            Some(&Severity::Low),
            "{kind}"
        );
    }
    let text = demo_text().replace(
        "[severity]\n",
        "[severity]\nunusable_erp_values = \"low\"\nfield_mismatch = \"high\"\n",
    );
    let mut got = keys(&text);
    got.sort();
    assert_eq!(
        got,
        ["severity.field_mismatch", "severity.unusable_erp_values"]
    );
}

#[test]
fn catch_up_defaults_to_off_and_needs_a_schedule() {
    let job = check(&demo_text(), &env_with_secrets).unwrap();
    assert!(!job.schedule.unwrap().catch_up);
    let on = demo_text().replace("timezone = \"UTC\"", "timezone = \"UTC\"\ncatch_up = true");
    let job = check(&on, &env_with_secrets).unwrap();
    assert!(job.schedule.unwrap().catch_up);
    let without = on.replace("schedule = \"0 30 2 * * *\"", "");
    assert_eq!(keys(&without), ["job.catch_up"]);
}

#[test]
fn webhooks_take_their_key_from_the_environment_or_from_spotdraft() {
    let env = |name: &str| match name {
        "SD_WEBHOOK_KEY" => Some("c2VjcmV0LWtleQ==".to_string()),
        "SD_BAD_KEY" => Some("not*base64 but secret".to_string()),
        _ => None,
    };
    let fetched = check(&format!("{}\n[webhooks]\n", demo_text()), &env).unwrap();
    let w = fetched.webhooks.unwrap();
    assert!(matches!(w.hmac_key, WebhookKeySource::Fetch));
    assert_eq!(
        (
            w.max_body_bytes,
            w.debounce.as_secs(),
            w.max_wait.as_secs(),
            w.max_contracts_per_run
        ),
        (262144, 10, 120, 100)
    );
    let text = format!(
        "{}\n[webhooks]\nhmac_key_env = \"SD_WEBHOOK_KEY\"\nmax_body_bytes = 1024\ndebounce_secs = 5\nmax_wait_secs = 60\nmax_contracts_per_run = 20\n",
        demo_text()
    );
    let w = check(&text, &env).unwrap().webhooks.unwrap();
    match &w.hmac_key {
        WebhookKeySource::Env { var, key } => {
            assert_eq!(
                (var.as_str(), key.expose()),
                ("SD_WEBHOOK_KEY", "c2VjcmV0LWtleQ==")
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (
            w.max_body_bytes,
            w.debounce.as_secs(),
            w.max_wait.as_secs(),
            w.max_contracts_per_run
        ),
        (1024, 5, 60, 20)
    );
    assert!(check(&demo_text(), &env).unwrap().webhooks.is_none());
}

#[test]
fn a_webhook_key_that_is_not_base64_is_named_and_never_printed() {
    let env = |name: &str| (name == "SD_BAD_KEY").then(|| "not*base64 but secret".to_string());
    let text = format!(
        "{}\n[webhooks]\nhmac_key_env = \"SD_BAD_KEY\"\n",
        demo_text()
    );
    let problems = check(&text, &env).unwrap_err().to_string();
    assert!(problems.contains("webhooks.hmac_key_env"), "{problems}");
    assert!(problems.contains("SD_BAD_KEY"), "{problems}");
    assert!(!problems.contains("secret"), "{problems}");
    let unset = format!("{}\n[webhooks]\nhmac_key_env = \"SD_UNSET\"\n", demo_text());
    assert_eq!(keys(&unset), ["webhooks.hmac_key_env"]);
}

#[test]
fn webhook_limits_are_checked() {
    let text = format!(
        "{}\n[webhooks]\nmax_body_bytes = 0\ndebounce_secs = 30\nmax_wait_secs = 10\nmax_contracts_per_run = 5000\n",
        demo_text()
    );
    assert_eq!(
        keys(&text),
        [
            "webhooks.max_body_bytes",
            "webhooks.max_wait_secs",
            "webhooks.max_contracts_per_run"
        ]
    );
    let unknown = format!("{}\n[webhooks]\nsecret = \"x\"\n", demo_text());
    assert_eq!(keys(&unknown), ["webhooks.secret"]);
}

/// `jobs/create-demo.toml` with absolute paths.
fn create_text() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(jobs_dir().join("create-demo.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{root}/"))
}

#[test]
fn the_create_section_reads_into_typed_settings() {
    let job = check(&create_text(), &no_env).unwrap();
    let create = job.create.expect("[create] is on");
    assert_eq!(create.template_ids(), [1204, 1205]);
    assert_eq!(create.max_creates_per_run, 50);
    // record_data defaults to the [match] keys read from record_data.
    assert_eq!(
        create.record_data.keys().collect::<Vec<_>>(),
        ["legal_entity_id", "po_number", "vendor_id"]
    );
    assert!(create.documents_base.ends_with("fixtures/create"));
    assert_eq!(
        job.reconcile.needs_contract.as_ref().unwrap().column,
        "pr_stage"
    );
}

#[test]
fn create_problems_name_their_keys() {
    let text = create_text();
    let cases = [
        (
            "column = \"vendor_name\", type = \"text\"",
            "column = \"vendor_name\", type = \"money\"",
            "create.contract_data.vendor_name.type",
        ),
        (
            "column = \"amount\", type = \"currency\", currency_column = \"currency\"",
            "column = \"amount\", type = \"currency\"",
            "create.contract_data.contract_value.currency_column",
        ),
        (
            "contact_email = \"contact_email\"",
            "contact_email = \"email_address\"",
            "create.counter_party.contact_email",
        ),
        (
            "contract_name = \"{vendor_name} purchase agreement {po_number}\"",
            "contract_name = \"{vendor_name} purchase agreement {po_number\"",
            "create.contract_name",
        ),
        (
            "templates = { PA = 1204, MSA = 1205 }",
            "templates = { PA = 1204, MSA = -5 }",
            "create.templates.MSA",
        ),
        (
            "erp_record_id = \"external_metadata.id\"",
            "erp_record_id = \"external_metadata.record_data.erp_id\"",
            "match.erp_record_id",
        ),
        (
            "page_size = 100",
            "page_size = 100\nstatus_filter = [\"EXECUTED\"]",
            "spotdraft.status_filter",
        ),
        (
            "enabled = true                   # plan corrections",
            "enabled = false                   # plan corrections",
            "create.enabled",
        ),
    ];
    for (from, to, key) in cases {
        assert!(text.contains(from), "{from}");
        let found = keys(&text.replacen(from, to, 1));
        assert!(found.contains(&key.to_string()), "{key}: {found:?}");
    }
}

#[test]
fn notify_reads_its_url_from_the_environment_and_never_prints_it() {
    let slack = |name: &str| {
        (name == "SLACK_URL").then(|| "https://hooks.slack.com/services/T0/B0/sekrit".to_string())
    };
    let job = check(
        &format!("{}\n[notify]\nurl_env = \"SLACK_URL\"\n", demo_text()),
        &slack,
    )
    .unwrap();
    let n = job.notify.expect("[notify] read");
    assert_eq!(
        n.url.expose(),
        "https://hooks.slack.com/services/T0/B0/sekrit"
    );
    assert!(
        (n.on_failure, n.on_new_drift) == (true, true),
        "both by default"
    );
    assert!(!format!("{n:?}").contains("sekrit"));
    assert!(check(&demo_text(), &no_env).unwrap().notify.is_none());

    let only = check(
        &format!(
            "{}\n[notify]\nurl_env = \"SLACK_URL\"\non = [\"failure\"]\n",
            demo_text()
        ),
        &slack,
    )
    .unwrap()
    .notify
    .unwrap();
    assert!(only.on_failure && !only.on_new_drift);

    let plain = |_: &str| Some("http://hooks.example.com/sekrit".to_string());
    let errs = check(
        &format!("{}\n[notify]\nurl_env = \"HOOK\"\n", demo_text()),
        &plain,
    )
    .unwrap_err()
    .0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "notify.url_env");
    assert!(!errs[0].to_string().contains("sekrit"), "{}", errs[0]);

    let bad = format!(
        "{}\n[notify]\nurl_env = \"NOPE\"\non = [\"sometimes\"]\nchannel = \"x\"\n",
        demo_text()
    );
    assert_eq!(
        keys(&bad),
        ["notify.channel"],
        "unknown keys are refused first"
    );
    let bad = format!(
        "{}\n[notify]\nurl_env = \"NOPE\"\non = [\"sometimes\"]\n",
        demo_text()
    );
    assert_eq!(keys(&bad), ["notify.url_env", "notify.on"]);
}

#[test]
fn retention_takes_days_and_keeps_journals_unless_told() {
    let text = format!("{}\n[retention]\nkeep_days = 90\n", demo_text());
    let r = check(&text, &no_env).unwrap().retention.unwrap();
    assert_eq!(
        r,
        RetentionSettings {
            keep_days: 90,
            history_keep_days: 90,
            journal_keep_days: None
        }
    );
    assert!(check(&demo_text(), &no_env).unwrap().retention.is_none());
    let text = format!(
        "{}\n[retention]\nkeep_days = 0\nhistory_keep_days = 0\njournal_keep_days = 3\n",
        demo_text()
    );
    assert_eq!(
        keys(&text),
        [
            "retention.keep_days",
            "retention.history_keep_days",
            "retention.journal_keep_days"
        ]
    );
}

#[test]
fn erp_events_take_a_long_enough_secret_from_env_and_need_create() {
    let env = |name: &str| match name {
        "ERP_EVENTS_SECRET" => Some("a-long-shared-secret-value".to_string()),
        "ERP_SHORT" => Some("short-secret".to_string()),
        _ => None,
    };
    let section = |var: &str| format!("\n[webhooks]\nerp_secret_env = \"{var}\"\n");
    let job = check(
        &format!("{}{}", create_text(), section("ERP_EVENTS_SECRET")),
        &env,
    )
    .unwrap();
    let secret = job.webhooks.unwrap().erp_secret.expect("ERP events taken");
    assert_eq!(
        (secret.var.as_str(), secret.secret.expose()),
        ("ERP_EVENTS_SECRET", "a-long-shared-secret-value")
    );
    assert!(check(&create_text(), &env)
        .unwrap()
        .webhooks
        .is_none_or(|w| w.erp_secret.is_none()));

    for (text, why) in [
        (
            format!("{}{}", create_text(), section("ERP_SHORT")),
            "shorter than 16 bytes",
        ),
        (
            format!("{}{}", create_text(), section("ERP_UNSET")),
            "ERP_UNSET is not set",
        ),
        (
            format!("{}{}", create_text(), section(" ")),
            "empty variable name",
        ),
        (
            format!("{}{}", demo_text(), section("ERP_EVENTS_SECRET")),
            "needs [create] enabled = true",
        ),
    ] {
        let problems = check(&text, &env).unwrap_err();
        let found: Vec<_> = problems.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(found, ["webhooks.erp_secret_env"], "{problems}");
        let said = problems.to_string();
        assert!(said.contains(why), "{said}");
        assert!(
            !said.contains("short-secret") && !said.contains("a-long-shared"),
            "{said}"
        );
    }
}
