//! One request rate per SpotDraft workspace (base URL plus client id) for the
//! whole process, so that jobs run at once on one workspace (the scheduler
//! runs several) stay within its limit together.
//!
//! [`workspace_rate`] hands out the workspace's [`SharedRate`], made at the
//! first caller's `requests_per_second`. A caller asking for a lower rate
//! lowers it for everyone (logged); one asking for a higher rate gets the rate
//! in force (logged). The registry keeps the rate only while a client holds
//! it: once every run on the workspace is over, the next one starts afresh.
//! The key holds a digest of the client id, never the id itself.

use super::throttle::SharedRate;
use crate::secret::Secret;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// The rates of the workspaces in use, keyed by workspace.
#[derive(Debug, Default)]
pub struct RateRegistry {
    rates: Mutex<HashMap<String, Weak<SharedRate>>>,
}

static PROCESS: LazyLock<RateRegistry> = LazyLock::new(RateRegistry::default);

/// The process's registry.
pub fn process_registry() -> &'static RateRegistry {
    &PROCESS
}

/// The rate of the workspace at `base_url` for `client_id`, from the
/// process's registry (see [`RateRegistry::rate`]).
pub fn workspace_rate(base_url: &url::Url, client_id: &Secret, rps: u32) -> Arc<SharedRate> {
    process_registry().rate(base_url, client_id, rps)
}

impl RateRegistry {
    /// The workspace's shared rate: made at `rps` when no client holds one,
    /// else the one in force, lowered to `rps` when that is lower.
    pub fn rate(&self, base_url: &url::Url, client_id: &Secret, rps: u32) -> Arc<SharedRate> {
        let key = workspace_key(base_url, client_id);
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        rates.retain(|_, rate| rate.strong_count() > 0);
        if let Some(rate) = rates.get(&key).and_then(Weak::upgrade) {
            let before = rate.requests_per_second();
            let after = rate.lower_to(rps);
            if rps != before {
                tracing::warn!(
                    workspace = %base_url,
                    configured = rps,
                    in_force_before = before,
                    in_force = after,
                    "jobs running on one SpotDraft workspace configure different requests_per_second: they share the lower"
                );
            }
            return rate;
        }
        let rate = Arc::new(SharedRate::new(rps));
        rates.insert(key, Arc::downgrade(&rate));
        rate
    }

    /// Workspaces with a client holding their rate.
    pub fn workspaces_in_use(&self) -> usize {
        let rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        rates.values().filter(|r| r.strong_count() > 0).count()
    }
}

/// `base URL` + a SHA-256 of the client id (the id is a credential).
fn workspace_key(base_url: &url::Url, client_id: &Secret) -> String {
    let digest = Sha256::digest(client_id.expose().as_bytes());
    format!("{base_url} {}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn one_rate_per_workspace_while_held() {
        let reg = RateRegistry::default();
        let (us, eu) = (
            url("https://api.us.spotdraft.com/api/"),
            url("https://api.eu.spotdraft.com/api/"),
        );
        let (id, other) = (Secret::new("id-1"), Secret::new("id-2"));
        let a = reg.rate(&us, &id, 10);
        let b = reg.rate(&us, &id, 10);
        assert!(Arc::ptr_eq(&a, &b), "one workspace, one rate");
        let c = reg.rate(&us, &other, 10);
        let d = reg.rate(&eu, &id, 10);
        assert!(
            !Arc::ptr_eq(&a, &c),
            "another client id is another workspace"
        );
        assert!(
            !Arc::ptr_eq(&a, &d),
            "another base URL is another workspace"
        );
        assert_eq!(reg.workspaces_in_use(), 3);
        drop((a, b, c, d));
        assert_eq!(reg.workspaces_in_use(), 0);
    }

    #[test]
    fn different_rates_on_one_workspace_share_the_lower() {
        let reg = RateRegistry::default();
        let (us, id) = (
            url("https://api.us.spotdraft.com/api/"),
            Secret::new("id-1"),
        );
        let a = reg.rate(&us, &id, 10);
        let b = reg.rate(&us, &id, 8);
        assert_eq!(a.requests_per_second(), 8);
        let c = reg.rate(&us, &id, 10);
        assert_eq!(
            c.requests_per_second(),
            8,
            "a higher rate does not raise it"
        );
        drop((a, b, c));
        assert_eq!(
            reg.rate(&us, &id, 10).requests_per_second(),
            10,
            "a fresh start once released"
        );
    }

    #[test]
    fn the_key_holds_no_client_id() {
        let key = workspace_key(
            &url("https://api.us.spotdraft.com/api/"),
            &Secret::new("hunter2-id"),
        );
        assert!(!key.contains("hunter2-id"), "{key}");
    }
}
