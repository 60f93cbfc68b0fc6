//! What a run returns, and how the terminal shows it.

use crate::ingest::WalkMode;
use crate::report::layout::PLAN_TABLE;
use crate::report::lifecycle::RunKind;
use crate::report::Summary;
use std::collections::BTreeMap;

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run's summary (also written as `summary.json`).
    pub summary: Summary,
    /// The run's folder with `summary.json` and `report.html`, as a person can open it.
    pub report_dir: String,
    /// The run's folder in each table (`drift`, `rejects`, `runs`), as a person can open it.
    pub tables: BTreeMap<String, String>,
    /// The HTML report, when written.
    pub report_html: Option<String>,
}

impl RunOutcome {
    /// Number of drift rows.
    pub fn drift_total(&self) -> u64 {
        self.summary.drift_total
    }

    /// Drift rows first seen in this run (all of them in the job's first nightly run).
    pub fn drift_new(&self) -> u64 {
        self.summary
            .lifecycle
            .as_ref()
            .map_or(self.summary.drift_total, |l| l.new)
    }

    /// Actions that failed when the run applied its plan (rejected, checksum
    /// mismatch, pending after retries).
    pub fn apply_failed(&self) -> u64 {
        self.summary.apply.as_ref().map_or(0, |a| a.failed)
    }

    /// A short, human summary for the terminal.
    pub fn render_summary(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "job {} run {}: {} contracts ({} in scope), {} ERP rows ({} rejected) -> {} drift rows\n",
            s.job, s.run_id, s.inputs.contracts, s.inputs.contracts_in_scope, s.inputs.erp_rows_read, s.inputs.erp_rows_rejected, s.drift_total
        );
        if let Some(scope) = &s.scope {
            out.push_str(&format!(
                "{} of {} ({} contracts); not reported: {}\n",
                match s.run_kind {
                    RunKind::Backfill => "backfill",
                    RunKind::Targeted => "targeted run",
                    RunKind::Nightly => "run",
                },
                scope.description,
                scope.contracts.len(),
                scope.kinds_not_reported.join(", ")
            ));
        }
        let api = &s.ingestion;
        out.push_str(&format!(
            "ingest ({}): {} contracts fetched, {} changed, {} deleted; {} requests (list {}, key_pointers {}, documents {}), {} x 429, {} retries, {:.1} requests/s\n",
            match api.mode {
                Some(WalkMode::Full) => "full",
                Some(WalkMode::Incremental) => "incremental",
                None => match s.run_kind {
                    RunKind::Backfill => "backfill",
                    RunKind::Targeted => "targeted",
                    RunKind::Nightly => "?",
                },
            },
            api.contracts_fetched,
            api.contracts_changed,
            api.contracts_deleted,
            api.http.requests,
            api.requests.list,
            api.requests.key_pointers,
            api.requests.documents,
            api.http.status_429,
            api.http.retries,
            api.achieved_requests_per_s,
        ));
        let mut notes = Vec::new();
        if api.contracts_vanished > 0 {
            notes.push(format!(
                "{} vanished during the run",
                api.contracts_vanished
            ));
        }
        if api.documents_unavailable > 0 {
            notes.push(format!(
                "{} executed without a downloadable document",
                api.documents_unavailable
            ));
        }
        if api.key_pointers_refreshed > 0 {
            notes.push(format!(
                "{} metadata values re-verified",
                api.key_pointers_refreshed
            ));
        }
        if let Some(age) = api.oldest_key_pointers_age_secs.filter(|a| *a >= 86_400) {
            notes.push(format!(
                "oldest metadata value {:.1} days old",
                age as f64 / 86_400.0
            ));
        }
        if !notes.is_empty() {
            out.push_str(&format!("        {}\n", notes.join("; ")));
        }
        for (kind, n) in &s.by_kind {
            out.push_str(&format!("  {kind:<20} {n}\n"));
        }
        if let Some(l) = &s.lifecycle {
            let since = match &l.previous_run_id {
                Some(id) => format!("since run {id}"),
                None => "first nightly run".to_string(),
            };
            // With corrections on: how many of the resolved rows the job fixed.
            let by_job = if s.apply.is_some() || l.resolved_by_job > 0 {
                format!(", {} of them fixed by the job", l.resolved_by_job)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "drift: {} new, {} open, {} acknowledged, {} resolved ({since}){by_job}\n",
                l.new, l.open, l.acknowledged, l.resolved
            ));
            if l.changed > 0 {
                out.push_str(&format!(
                    "        {} changed values since the last run\n",
                    l.changed
                ));
            }
        }
        if let Some(apply) = &s.apply {
            out.push_str(&render_apply(apply));
        }
        out.push_str(&format!("reports: {}\n", self.report_dir));
        if let Some(plan) = self.tables.get(PLAN_TABLE) {
            out.push_str(&format!("plan:    {plan}\n"));
        }
        if let Some(drift) = self.tables.get(crate::report::layout::DRIFT_TABLE) {
            out.push_str(&format!("drift:   {drift}\n"));
        }
        if let Some(resolved) = self.tables.get(crate::report::layout::RESOLVED_TABLE) {
            out.push_str(&format!("resolved: {resolved}\n"));
        }
        if let Some(html) = &self.report_html {
            out.push_str(&format!("open:    {html}\n"));
        }
        out
    }
}

/// The terminal lines of the `apply` section.
pub fn render_apply(apply: &crate::report::ApplySummary) -> String {
    let join = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "corrections ({}): planned {}\n",
        apply.mode,
        join(&apply.planned)
    );
    if !apply.outcomes.is_empty() {
        out.push_str(&format!(
            "        applied: {}; {} failed; {} document bytes\n",
            join(&apply.outcomes),
            apply.failed,
            apply.document_bytes
        ));
    }
    if let Some(why) = &apply.refused {
        out.push_str(&format!("        {why}\n"));
    }
    out
}
