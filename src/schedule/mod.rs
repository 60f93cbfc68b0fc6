//! Scheduling stage: when jobs fire ([`calendar`]), which are due and may
//! start ([`daemon`]), and the loop that runs them and stops cleanly
//! ([`driver`]), which reloads the jobs on SIGHUP or when [`watch`] sees a
//! job file change. Each run's record is written by the runner
//! ([`crate::runner::history`]).

pub mod calendar;
pub mod daemon;
pub mod driver;
pub mod watch;

#[cfg(test)]
mod tests;
