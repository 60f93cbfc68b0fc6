//! Scheduling stage: when jobs fire ([`calendar`]), which are due and may
//! start ([`daemon`]), and what each run left behind ([`history`]).

pub mod calendar;
