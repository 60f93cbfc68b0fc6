//! The end of a run, notifications: a Slack-compatible JSON POST (`text`,
//! plus `blocks` for clients that show them) to the job's `[notify]` webhook
//! when a run fails and when a nightly run finds new drift.
//!
//! A notification carries the job, the run id, the outcome, drift counts by
//! kind and where the report (or, for a failed run, the run record) is: never
//! a secret, never a contract or ERP value (a failed run's message is the
//! error's outermost line, which names a stage, a file or a key, not the
//! chain below it). The webhook URL is a [`crate::secret::Secret`]: errors
//! about it name the status or the failure, never the URL.
//!
//! Sent with the project's retry policy (408, 429, 5xx and connection errors
//! retried with jittered backoff, bounded by `[notify] max_attempts` and a
//! total time). A notification that cannot be delivered is logged; it never
//! changes the run's outcome. A repeated delivery (a timeout after the
//! receiver took it) is harmless; a lost one is not, so timeouts are retried.

use super::history::{RunRecord, RunStatus};
use super::RunOutcome;
use crate::http::{HttpError, RetryingClient, Throttle};
use crate::job::NotifySettings;
use crate::report::lifecycle::RunKind;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyEvent {
    /// The run failed, or corrections it applied failed.
    Failure,
    /// A nightly run found drift rows not in the previous nightly run.
    NewDrift,
}

/// What one notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Why it is sent.
    pub event: NotifyEvent,
    /// The job.
    pub job: String,
    /// The run.
    pub run_id: String,
    /// How the run ended.
    pub outcome: RunStatus,
    /// Drift rows, for a run that finished.
    pub drift_total: Option<u64>,
    /// Drift rows first seen in this run, for a run that finished.
    pub drift_new: Option<u64>,
    /// Drift rows by kind, for a run that finished.
    pub by_kind: BTreeMap<String, u64>,
    /// Corrections that failed when the run applied its plan.
    pub apply_failed: u64,
    /// Why the run failed: the error's outermost line only.
    pub error: Option<String>,
    /// The report folder, or for a failed run its run record.
    pub location: Option<String>,
}

/// How a run ended, as far as notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It failed.
    Failed,
    /// Another run held the lease: nothing ran, nothing failed.
    NotRun,
    /// It finished: corrections that failed, drift rows first seen.
    Finished { apply_failed: u64, drift_new: u64 },
}

/// Which notification, if any, a run of `kind` that ended so calls for.
fn event_for(settings: &NotifySettings, kind: RunKind, ended: Ended) -> Option<NotifyEvent> {
    match ended {
        Ended::Failed if settings.on_failure => Some(NotifyEvent::Failure),
        Ended::Finished { apply_failed, .. } if apply_failed > 0 && settings.on_failure => {
            Some(NotifyEvent::Failure)
        }
        // Backfills and targeted runs do not feed the drift lifecycle: their
        // rows are not "new" in the nightly sense.
        Ended::Finished { drift_new, .. }
            if drift_new > 0 && kind == RunKind::Nightly && settings.on_new_drift =>
        {
            Some(NotifyEvent::NewDrift)
        }
        _ => None,
    }
}

/// Longest failure message sent.
const MAX_ERROR_CHARS: usize = 300;

/// The notification `settings` ask for after a run of `kind` that ended with
/// `outcome` (recorded as `record`); `history` is where its run record is.
pub fn notice_for(
    settings: &NotifySettings,
    record: &RunRecord,
    outcome: &anyhow::Result<RunOutcome>,
    kind: RunKind,
    history: Option<String>,
) -> Option<Notice> {
    let mut notice = Notice {
        event: NotifyEvent::Failure,
        job: record.job.clone(),
        run_id: record.run_id.clone(),
        outcome: record.outcome,
        drift_total: None,
        drift_new: None,
        by_kind: BTreeMap::new(),
        apply_failed: 0,
        error: None,
        location: history,
    };
    let ended = match outcome {
        Err(_) if record.outcome == RunStatus::Failed => Ended::Failed,
        Err(_) => Ended::NotRun,
        Ok(done) => Ended::Finished {
            apply_failed: done.apply_failed(),
            drift_new: done.drift_new(),
        },
    };
    notice.event = event_for(settings, kind, ended)?;
    match outcome {
        Err(e) => {
            let line = e.to_string();
            notice.error = Some(line.chars().take(MAX_ERROR_CHARS).collect());
        }
        Ok(done) => {
            notice.drift_total = Some(done.drift_total());
            notice.drift_new = Some(done.drift_new());
            notice.by_kind = done.summary.by_kind.clone();
            notice.apply_failed = done.apply_failed();
            notice.location = Some(done.report_dir.clone());
        }
    }
    Some(notice)
}

impl Notice {
    /// The headline, also the `text` field (what notifications and clients
    /// without blocks show).
    pub fn headline(&self) -> String {
        let who = format!("contract-recon: job {}, run {}", self.job, self.run_id);
        match (self.event, &self.error) {
            (NotifyEvent::Failure, Some(error)) => format!("{who} failed: {error}"),
            (NotifyEvent::Failure, None) => {
                format!("{who}: {} correction(s) failed to apply", self.apply_failed)
            }
            (NotifyEvent::NewDrift, _) => format!(
                "{who}: {} new drift row(s), {} in all",
                self.drift_new.unwrap_or(0),
                self.drift_total.unwrap_or(0)
            ),
        }
    }

    /// The JSON body: `text`, and `blocks` (Slack's Block Kit).
    pub fn payload(&self) -> Value {
        let mut fields = vec![
            field("Job", &self.job),
            field("Run", &self.run_id),
            field("Outcome", self.outcome.as_str()),
        ];
        if let (Some(new), Some(total)) = (self.drift_new, self.drift_total) {
            fields.push(field("New drift", &format!("{new} of {total}")));
        }
        let mut blocks = vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&self.headline())}}),
            json!({"type": "section", "fields": fields}),
        ];
        if !self.by_kind.is_empty() {
            let lines: Vec<String> = self
                .by_kind
                .iter()
                .map(|(kind, n)| format!("• `{}`: {n}", escape(kind)))
                .collect();
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                "text": format!("*Drift by kind*\n{}", lines.join("\n"))}}));
        }
        if let Some(at) = &self.location {
            let label = if self.error.is_some() {
                "Run record"
            } else {
                "Report"
            };
            blocks.push(json!({"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("{label}: `{}`", escape(at))}
            ]}));
        }
        json!({"text": self.headline(), "blocks": blocks})
    }
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(value))})
}

/// Slack's mrkdwn escapes: `&`, `<` and `>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Posts `payload` to the webhook; the attempts it took, or why it was not
/// delivered (never naming the URL).
pub async fn send(settings: &NotifySettings, payload: &Value) -> Result<u32, String> {
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| "the HTTP client could not be built".to_string())?;
    let request = client
        .post(settings.url.expose())
        .json(payload)
        .build()
        .map_err(|_| "the request could not be built from the webhook URL".to_string())?;
    // Slack takes about one message per second per webhook.
    let http = RetryingClient::new(
        client,
        Arc::new(Throttle::new(1, 1)),
        settings.retry.clone(),
    )
    .hiding_urls();
    match http.send(request, true).await {
        Ok(resp) => Ok(resp.attempts),
        Err(e) => Err(describe(&e)),
    }
}

/// An [`HttpError`] without its URL.
fn describe(e: &HttpError) -> String {
    match e {
        HttpError::Status(resp) => format!("HTTP {} (not retried)", resp.status),
        HttpError::RetriesExhausted {
            status, attempts, ..
        } => format!("HTTP {status} after {attempts} attempt(s)"),
        HttpError::Transport { kind, attempts, .. } => {
            format!("{kind} error after {attempts} attempt(s)")
        }
        HttpError::MalformedBody { attempts, .. } => {
            format!("malformed answer after {attempts} attempt(s)")
        }
        HttpError::NotCloneable { .. } | HttpError::Aborted { .. } => {
            "the request could not be sent".to_string()
        }
    }
}

/// Sends the notification a finished run calls for, if any, and logs what
/// happened; never fails.
pub async fn notify_after_run(
    settings: Option<&NotifySettings>,
    record: &RunRecord,
    outcome: &anyhow::Result<RunOutcome>,
    kind: RunKind,
    history: Option<String>,
) {
    let Some(settings) = settings else { return };
    let Some(notice) = notice_for(settings, record, outcome, kind, history) else {
        return;
    };
    match send(settings, &notice.payload()).await {
        Ok(attempts) => tracing::info!(
            job = %record.job, run = %record.run_id, event = ?notice.event, attempts,
            "notification sent"
        ),
        Err(why) => tracing::warn!(
            job = %record.job, run = %record.run_id, event = ?notice.event,
            "the notification was not delivered: {why}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: NotifyEvent) -> Notice {
        Notice {
            event,
            job: "us-nightly".into(),
            run_id: "run-20261130-023000-abcd1234".into(),
            outcome: RunStatus::Ok,
            drift_total: Some(42),
            drift_new: Some(3),
            by_kind: BTreeMap::from([("field_mismatch".into(), 40), ("missing_in_erp".into(), 2)]),
            apply_failed: 0,
            error: None,
            location: Some(
                "s3://bucket/out/runs/job=us-nightly/run_date=2026-11-30/run_id=x".into(),
            ),
        }
    }

    #[test]
    fn a_new_drift_notice_is_slack_json_with_counts_by_kind() {
        let body = notice(NotifyEvent::NewDrift).payload();
        assert_eq!(
            body["text"],
            "contract-recon: job us-nightly, run run-20261130-023000-abcd1234: 3 new drift row(s), 42 in all"
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "section");
        let kinds = blocks[2]["text"]["text"].as_str().unwrap();
        assert_eq!(
            kinds,
            "*Drift by kind*\n• `field_mismatch`: 40\n• `missing_in_erp`: 2"
        );
        let context = blocks[3]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.starts_with("Report: `s3://bucket/out/runs/"),
            "{context}"
        );
    }

    #[test]
    fn a_failure_notice_names_the_error_and_escapes_it() {
        let mut n = notice(NotifyEvent::Failure);
        n.outcome = RunStatus::Failed;
        n.error = Some("loading <extract> & mapping".into());
        let body = n.payload();
        assert!(body["text"]
            .as_str()
            .unwrap()
            .ends_with("failed: loading <extract> & mapping"));
        let shown = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            shown.ends_with("failed: loading &lt;extract&gt; &amp; mapping"),
            "{shown}"
        );
    }

    fn settings(on_failure: bool, on_new_drift: bool) -> NotifySettings {
        NotifySettings {
            url: crate::secret::Secret::new("https://hooks.slack.com/services/T0/B0/x"),
            on_failure,
            on_new_drift,
            timeout: std::time::Duration::from_secs(1),
            retry: crate::http::RetryPolicy::default(),
        }
    }

    #[test]
    fn failures_and_new_nightly_drift_are_notified_as_asked() {
        use NotifyEvent::*;
        let both = settings(true, true);
        let finished = |apply_failed, drift_new| Ended::Finished {
            apply_failed,
            drift_new,
        };
        let cases = [
            (&both, RunKind::Nightly, Ended::Failed, Some(Failure)),
            (&both, RunKind::Nightly, Ended::NotRun, None),
            (&both, RunKind::Nightly, finished(0, 0), None),
            (&both, RunKind::Nightly, finished(0, 3), Some(NewDrift)),
            (&both, RunKind::Nightly, finished(2, 3), Some(Failure)),
            (&both, RunKind::Backfill, finished(0, 3), None),
            (&both, RunKind::Targeted, finished(0, 3), None),
            (&both, RunKind::Targeted, Ended::Failed, Some(Failure)),
        ];
        for (s, kind, ended, want) in cases {
            assert_eq!(event_for(s, kind, ended), want, "{kind:?} {ended:?}");
        }
        let only_failures = settings(true, false);
        assert_eq!(
            event_for(&only_failures, RunKind::Nightly, finished(0, 3)),
            None
        );
        assert_eq!(
            event_for(&only_failures, RunKind::Nightly, Ended::Failed),
            Some(Failure)
        );
        let only_drift = settings(false, true);
        assert_eq!(
            event_for(&only_drift, RunKind::Nightly, Ended::Failed),
            None
        );
        assert_eq!(
            event_for(&only_drift, RunKind::Nightly, finished(1, 0)),
            None
        );
        assert_eq!(
            event_for(&only_drift, RunKind::Nightly, finished(1, 2)),
            Some(NewDrift)
        );
    }

    #[test]
    fn errors_about_the_webhook_never_name_it() {
        let resp = crate::http::HttpResponse {
            url: "https://hooks.slack.com/services/T0/B0/sekrit".into(),
            status: 404,
            headers: Default::default(),
            body: Default::default(),
            attempts: 1,
        };
        let text = describe(&HttpError::Status(Box::new(resp)));
        assert_eq!(text, "HTTP 404 (not retried)");
        let text = describe(&HttpError::RetriesExhausted {
            url: "https://hooks.slack.com/services/T0/B0/sekrit".into(),
            status: 503,
            attempts: 4,
            elapsed: std::time::Duration::from_secs(3),
        });
        assert!(!text.contains("sekrit"), "{text}");
    }
}
