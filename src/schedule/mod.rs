//! Scheduling stage: when jobs fire ([`calendar`]), which are due and may
//! start ([`daemon`]), and the loop that runs them and stops cleanly
//! ([`driver`]), which reloads the jobs on SIGHUP or when [`watch`] sees a
//! job file change; the daemon's HTTP endpoints ([`http`], [`metrics`]) and
//! its webhook endpoint and targeted runs ([`webhooks`]). Each run's record is written by the runner
//! ([`crate::runner::history`]).

pub mod calendar;
pub mod claims;
pub mod daemon;
pub mod driver;
pub mod http;
pub mod metrics;
pub mod services;
pub mod watch;
pub mod webhooks;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod launcher_tests;
#[cfg(test)]
mod tests;
