//! Scheduling stage: when jobs fire ([`calendar`]), which are due and may
//! start ([`daemon`]), and the loop that runs them and stops cleanly
//! ([`driver`]). Each run's record is written by the runner
//! ([`crate::runner::history`]).

pub mod calendar;
pub mod daemon;
pub mod driver;

#[cfg(test)]
mod tests;
