//! Job file validation of `[notify]` and `[retention]`.

use super::super::raw::{RawApply, RawNotify, RawRetention};
use super::super::*;
use super::{is_loopback, Validator};

/// What `[notify] on` takes.
const NOTIFY_EVENTS: [&str; 2] = ["failure", "new_drift"];

impl Validator {
    /// `[notify]`: `Some(None)` without the section, `None` when it is wrong.
    pub(super) fn notify(
        &mut self,
        raw: Option<&RawNotify>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Option<NotifySettings>> {
        let Some(n) = raw else {
            return Some(None);
        };
        let ok = self.problems.len();
        let url = self.secret("notify.url_env", Some(n.url_env.trim()), env);
        if let Some(url) = &url {
            // The value is a secret: the message names the variable, never the URL.
            match url::Url::parse(url.expose()) {
                Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => {}
                _ => self.bad(
                    "notify.url_env",
                    format!(
                        "environment variable {} does not hold an https:// URL (http:// only on loopback)",
                        n.url_env.trim()
                    ),
                ),
            }
        }
        let on =
            n.on.clone()
                .unwrap_or_else(|| NOTIFY_EVENTS.map(String::from).to_vec());
        if on.is_empty() {
            self.bad(
                "notify.on",
                "empty: name \"failure\" and/or \"new_drift\" (or remove [notify])",
            );
        }
        for event in &on {
            if !NOTIFY_EVENTS.contains(&event.as_str()) {
                self.bad(
                    "notify.on",
                    format!("unknown event {event:?} (use \"failure\" or \"new_drift\")"),
                );
            }
        }
        let timeout_secs = n.timeout_secs.unwrap_or(10);
        if !(1..=300).contains(&timeout_secs) {
            self.bad("notify.timeout_secs", "must be 1 to 300");
        }
        let max_attempts = n.max_attempts.unwrap_or(4);
        if !(1..=10).contains(&max_attempts) {
            self.bad("notify.max_attempts", "must be 1 to 10");
        }
        if self.problems.len() != ok {
            return None;
        }
        Some(Some(NotifySettings {
            url: url?,
            on_failure: on.iter().any(|e| e == "failure"),
            on_new_drift: on.iter().any(|e| e == "new_drift"),
            timeout: Duration::from_secs(timeout_secs),
            retry: crate::http::RetryPolicy {
                max_attempts,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(10),
                max_total: Duration::from_secs(60),
            },
        }))
    }

    /// `[retention]`: `Some(None)` without the section, `None` when it is wrong.
    pub(super) fn retention(
        &mut self,
        raw: Option<&RawRetention>,
        apply: Option<&RawApply>,
    ) -> Option<Option<RetentionSettings>> {
        let Some(r) = raw else {
            return Some(None);
        };
        let ok = self.problems.len();
        if r.keep_days == 0 {
            self.bad("retention.keep_days", "must be at least 1");
        }
        if r.history_keep_days == Some(0) {
            self.bad("retention.history_keep_days", "must be at least 1");
        }
        let max_plan_age = apply.and_then(|a| a.max_plan_age_days).unwrap_or(7);
        if let Some(days) = r.journal_keep_days {
            if days < max_plan_age.max(1) {
                self.bad(
                    "retention.journal_keep_days",
                    format!(
                        "{days} is shorter than apply.max_plan_age_days ({max_plan_age}): a plan still applicable would lose the record of what it applied"
                    ),
                );
            }
        }
        (self.problems.len() == ok).then_some(Some(RetentionSettings {
            keep_days: r.keep_days,
            history_keep_days: r.history_keep_days.unwrap_or(r.keep_days),
            journal_keep_days: r.journal_keep_days,
        }))
    }
}
