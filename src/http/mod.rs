//! The retry and throttle policy shared by every HTTP client.
//!
//! - [`retry`]: the pure parts: [`RetryPolicy`], status classification, backoff math;
//! - [`throttle`]: one sliding-window limiter per workspace (never more than the rate in any 1-second window) and one in-flight cap per client, with [`HttpStats`];
//! - [`workspaces`]: the process's one limiter per SpotDraft workspace;
//! - [`send`]: [`RetryingClient`], which sends one request through both and reads the body.
//!
//! Every client (SpotDraft now, the ERP client later) builds a [`RetryingClient`]
//! over a shared `Arc<Throttle>` and calls [`RetryingClient::send`].

pub mod retry;
pub mod send;
pub mod throttle;
pub mod workspaces;

pub use retry::{backoff_delay, classify_status, parse_retry_after, RetryPolicy, StatusClass};
pub use send::{HttpError, HttpResponse, RetryingClient};
pub use throttle::{HttpStats, HttpStatsSnapshot, SharedRate, Throttle};
pub use workspaces::workspace_rate;
