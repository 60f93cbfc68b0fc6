//! `validate --online`: a job file checked against its SpotDraft workspace.

use super::steps::ingest_settings;
use crate::job::Job;
use crate::spotdraft::SpotDraftClient;
use anyhow::Context;

/// What `validate --online` checks against the job's SpotDraft workspace (the
/// embedded sandbox for `base_url = "sandbox"`): the credentials, with one
/// list request of one contract, then that every metadata field a `[[compare]]`
/// reads (`key_pointers.<field>`) is defined for some contract type of the
/// workspace (`GET v2.1/public/contract_types/`, then
/// `GET v2.1/public/key_pointers/?contract_type_id=` for each), and with
/// `[create]` that every template exists and has every `contract_data` field
/// the job fills (`GET v2.1/public/templates/{id}/metadata`). Returns the
/// problems as (key, reason).
pub async fn check_online(job: &Job) -> anyhow::Result<Vec<(String, String)>> {
    let (sandbox, settings) = ingest_settings(job).await?;
    let client = settings.client().context("spotdraft.base_url")?;
    let problems = online_problems(job, &client).await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(problems)
}

/// The job's webhook HMAC key as its SpotDraft workspace gives it
/// (`GET v2.1/public/webhooks/hmac_key/`, base64), fetched once by the daemon
/// for a `[webhooks]` section without `hmac_key_env`.
pub async fn fetch_webhook_key(job: &Job) -> anyhow::Result<crate::secret::Secret> {
    let (sandbox, settings) = ingest_settings(job).await?;
    let client = settings.client().context("spotdraft.base_url")?;
    let key = client
        .webhook_hmac_key()
        .await
        .with_context(|| format!("job {}: fetching the webhook HMAC key", job.name));
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    key
}

async fn online_problems(job: &Job, client: &SpotDraftClient) -> Vec<(String, String)> {
    let query = crate::spotdraft::client::ListQuery {
        page: 1,
        limit: 1,
        ..Default::default()
    };
    if let Err(e) = client.list_contracts(&query).await {
        return vec![(
            "spotdraft.client_id_env".into(),
            format!(
                "listing one contract failed, so the credentials (or base_url) do not work: {e}"
            ),
        )];
    }
    let mut problems = compare_problems(job, client).await;
    problems.extend(template_problems(job, client).await);
    problems
}

/// `[create]`: every template id exists (`GET v2.1/public/templates/{id}/metadata`)
/// and has every `contract_data` field the job fills.
async fn template_problems(job: &Job, client: &SpotDraftClient) -> Vec<(String, String)> {
    let Some(create) = &job.create else {
        return Vec::new();
    };
    let key = match &create.template {
        crate::job::create::TemplateChoice::Fixed(_) => "create.template_id",
        crate::job::create::TemplateChoice::ByColumn { .. } => "create.templates",
    };
    let mut problems = Vec::new();
    for id in create.template_ids() {
        match client.template_fields(id).await {
            Ok(fields) => {
                for name in create.contract_data.keys() {
                    if !fields.contains(name) {
                        problems.push((
                            format!("create.contract_data.{name}"),
                            format!(
                                "template {id} has no field {name:?} (its fields: {})",
                                fields.join(", ")
                            ),
                        ));
                    }
                }
            }
            Err(e) if e.is_not_found() => problems.push((
                key.to_string(),
                format!("template {id} does not exist in the workspace"),
            )),
            Err(e) => problems.push((
                key.to_string(),
                format!("GET v2.1/public/templates/{id}/metadata failed: {e}"),
            )),
        }
    }
    problems
}

/// Every metadata field a `[[compare]]` reads is defined in the workspace.
async fn compare_problems(job: &Job, client: &SpotDraftClient) -> Vec<(String, String)> {
    let named: Vec<(usize, &str)> = job
        .reconcile
        .compares
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.spotdraft_column.strip_prefix("key_pointers.")?)))
        .collect();
    if named.is_empty() {
        return Vec::new();
    }
    let types = match client.contract_types().await {
        Ok(types) => types,
        Err(e) => {
            return vec![(
                "spotdraft".into(),
                format!("GET v2.1/public/contract_types/ failed: {e}"),
            )]
        }
    };
    let mut defined = std::collections::BTreeSet::new();
    for t in &types {
        match client.key_pointer_definitions(t.id).await {
            Ok(definitions) => defined.extend(
                definitions
                    .into_iter()
                    .flat_map(|d| d.descriptors)
                    .map(|d| d.variable),
            ),
            Err(e) => {
                return vec![(
                    "spotdraft".into(),
                    format!(
                        "GET v2.1/public/key_pointers/?contract_type_id={} failed: {e}",
                        t.id
                    ),
                )]
            }
        }
    }
    named
        .into_iter()
        .filter(|(_, field)| !defined.contains(*field))
        .map(|(i, field)| {
            (
                format!("compare[{i}].spotdraft"),
                format!(
                    "metadata field {field:?} does not exist in the workspace (no definition of its {} contract types names it)",
                    types.len()
                ),
            )
        })
        .collect()
}
