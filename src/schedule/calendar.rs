//! Scheduling stage, the calendar: when a job's cron next fires, in the job's
//! time zone, across daylight-saving changes. Pure: no clock, no I/O.
//!
//! croner matches the pattern on the local wall clock only (it is asked on a
//! UTC clock, which has no DST); the mapping of each local time to an instant
//! is done here, because croner's own DST handling can return an instant
//! before the one asked after (asked inside a repeated hour) and yields the
//! two occurrences of a repeated time out of order. The rules:
//! - a local time that does not exist (spring-forward gap) fires at the first
//!   instant after the gap (several times in one gap fire once there);
//! - a local time that occurs twice (fall-back) fires once, at its first
//!   occurrence, when the cron names its hours (`0 30 1 * * *`); a cron whose
//!   hour field is a wildcard, step or range (`0 */15 * * * *`) fires at both
//!   occurrences, so it keeps its rhythm in real time through the repeated hour.

use crate::job::{parse_cron, Schedule};
use chrono::{DateTime, Duration, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

/// A job's schedule, parsed once, able to say when it next fires.
#[derive(Debug, Clone)]
pub struct Calendar {
    cron: croner::Cron,
    timezone: Tz,
    /// True when a repeated local time fires at both of its occurrences.
    every_occurrence: bool,
}

impl Calendar {
    /// Parses `schedule` (already validated by the job file's loading).
    pub fn new(schedule: &Schedule) -> Result<Calendar, croner::errors::CronError> {
        Ok(Calendar {
            cron: parse_cron(&schedule.cron)?,
            timezone: schedule.timezone,
            every_occurrence: hour_field_repeats(&schedule.cron),
        })
    }

    /// The first firing strictly after `after`, or `None` when the cron never
    /// fires again (a year field in the past).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Firings are whole seconds: the next one after 02:30:00.4 is after 02:30:00.
        let after = after.trunc_subsecs(0);
        let local_after = after.with_timezone(&self.timezone).naive_local();
        // A fall-back later today replays local times before `local_after`:
        // start the wall-clock search that much earlier.
        let rewind =
            (self.offset_secs(after) - self.offset_secs(after + Duration::hours(26))).max(0);
        let mut naive = local_after - Duration::seconds(rewind);
        let mut inclusive = true;
        // The earliest second occurrence of a repeated time after `after`
        // (only for crons that fire at both).
        let mut second: Option<DateTime<Utc>> = None;
        // Bounded: 400 days of candidates past the start is far more than any
        // cron needs between two firings that exist.
        let limit = local_after + Duration::days(400);
        while naive <= limit {
            let probe = Utc.from_utc_datetime(&naive);
            naive = self
                .cron
                .find_next_occurrence(&probe, inclusive)
                .ok()?
                .naive_utc();
            inclusive = false;
            let (first, last) = self.instants(naive)?;
            if self.every_occurrence && second.is_none() && last > after && last != first {
                second = Some(last);
            }
            if first > after {
                return Some(second.map_or(first, |s| s.min(first)));
            }
        }
        second
    }

    /// The instants of local time `naive`: (first, last) occurrence; both the
    /// end of the gap when `naive` falls in one.
    fn instants(&self, naive: NaiveDateTime) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        use chrono::LocalResult;
        match self.timezone.from_local_datetime(&naive) {
            LocalResult::Single(t) => Some((t.to_utc(), t.to_utc())),
            LocalResult::Ambiguous(a, b) => Some((a.to_utc(), b.to_utc())),
            LocalResult::None => {
                let end = self.gap_end(naive)?;
                Some((end, end))
            }
        }
    }

    /// The first instant after the gap `naive` falls in.
    fn gap_end(&self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        // Minutes first (gaps are whole minutes in tzdata), then the second.
        let mut step = naive;
        for _ in 0..(26 * 60) {
            step += Duration::minutes(1);
            if self
                .timezone
                .from_local_datetime(&step)
                .earliest()
                .is_some()
            {
                let mut first = step;
                for _ in 0..60 {
                    let before = first - Duration::seconds(1);
                    if before <= naive
                        || self
                            .timezone
                            .from_local_datetime(&before)
                            .earliest()
                            .is_none()
                    {
                        break;
                    }
                    first = before;
                }
                return self
                    .timezone
                    .from_local_datetime(&first)
                    .earliest()
                    .map(|t| t.to_utc());
            }
        }
        None
    }

    fn offset_secs(&self, at: DateTime<Utc>) -> i64 {
        i64::from(
            self.timezone
                .offset_from_utc_datetime(&at.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    }
}

/// True when the hour field (third, seconds first) is a wildcard, a step or a
/// range, or the cron is `@hourly`: such a cron fires at both occurrences of
/// a repeated local time.
fn hour_field_repeats(cron: &str) -> bool {
    let cron = cron.trim();
    if cron.starts_with('@') {
        return cron.eq_ignore_ascii_case("@hourly");
    }
    cron.split_whitespace()
        .nth(2)
        .is_some_and(|h| h.contains(['*', '/', '-', '?']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(cron: &str, tz: &str) -> Calendar {
        Calendar::new(&Schedule {
            cron: cron.to_string(),
            timezone: tz.parse().unwrap(),
            catch_up: false,
        })
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Every firing in [from, to), as RFC 3339 UTC.
    fn firings(cal: &Calendar, from: &str, to: &str) -> Vec<String> {
        let (mut at, to) = (utc(from) - Duration::seconds(1), utc(to));
        let mut out = Vec::new();
        while let Some(next) = cal.next_after(at).filter(|n| *n < to) {
            out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            at = next;
        }
        out
    }

    #[test]
    fn ordinary_day_fires_at_local_wall_time() {
        let cal = calendar("0 30 2 * * *", "Europe/Berlin");
        // CET (+01:00) in January, CEST (+02:00) in June.
        assert_eq!(
            firings(&cal, "2026-01-14T00:00:00Z", "2026-01-16T00:00:00Z"),
            ["2026-01-14T01:30:00Z", "2026-01-15T01:30:00Z"]
        );
        assert_eq!(
            cal.next_after(utc("2026-06-10T12:00:00Z")),
            Some(utc("2026-06-11T00:30:00Z"))
        );
        // Asked with a fraction of a second (the clock's now): whole seconds.
        assert_eq!(
            cal.next_after(utc("2026-06-10T12:00:00.144573590Z")),
            Some(utc("2026-06-11T00:30:00Z"))
        );
        assert_eq!(
            cal.next_after(utc("2026-06-11T00:30:00.5Z")),
            Some(utc("2026-06-12T00:30:00Z"))
        );
    }

    #[test]
    fn spring_forward_gap_fires_at_the_end_of_the_gap() {
        // Berlin 2026-03-29: 02:00 CET -> 03:00 CEST (01:00Z); 02:30 does not exist.
        let cal = calendar("0 30 2 * * *", "Europe/Berlin");
        assert_eq!(
            firings(&cal, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST, first instant after the gap
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ]
        );
        // New York 2026-03-08: 02:00 EST -> 03:00 EDT (07:00Z).
        let cal = calendar("0 30 2 * * *", "America/New_York");
        assert_eq!(
            firings(&cal, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
            [
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z"
            ]
        );
    }

    #[test]
    fn fall_back_repeated_time_fires_once_at_its_first_occurrence() {
        // Berlin 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
        let cal = calendar("0 30 2 * * *", "Europe/Berlin");
        assert_eq!(
            firings(&cal, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z", // 02:30 CEST, not 02:30 CET
                "2026-10-26T01:30:00Z",
            ]
        );
        // New York 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice.
        let cal = calendar("0 30 1 * * *", "America/New_York");
        assert_eq!(
            firings(&cal, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
            [
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z", // 01:30 EDT, not 01:30 EST
                "2026-11-02T06:30:00Z",
            ]
        );
    }

    #[test]
    fn asked_inside_the_repeated_hour_it_never_fires_again_that_night() {
        // Asked at 01:10 EST (06:10Z), after 01:30 EDT already fired: croner
        // alone would answer 01:30 EDT, an instant in the past.
        let cal = calendar("0 30 1 * * *", "America/New_York");
        assert_eq!(
            cal.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn croner_alone_answers_a_past_instant_inside_the_repeated_hour() {
        // Why the mapping to instants is done here (see the module doc).
        let cron = parse_cron("0 30 1 * * *").unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let asked = utc("2026-11-01T06:10:00Z").with_timezone(&tz);
        let answer = cron.find_next_occurrence(&asked, false).unwrap();
        assert_eq!(answer.to_utc(), utc("2026-11-01T05:30:00Z"));
        assert!(answer < asked);
    }

    #[test]
    fn every_15_minutes_keeps_its_rhythm_across_both_switches() {
        for (tz, spring, fall) in [
            (
                "Europe/Berlin",
                "2026-03-29T01:00:00Z",
                "2026-10-25T01:00:00Z",
            ),
            (
                "America/New_York",
                "2026-03-08T07:00:00Z",
                "2026-11-01T06:00:00Z",
            ),
        ] {
            let cal = calendar("0 */15 * * * *", tz);
            for switch in [spring, fall] {
                let at = utc(switch);
                let fired = firings(
                    &cal,
                    &(at - Duration::hours(3)).to_rfc3339(),
                    &(at + Duration::hours(3)).to_rfc3339(),
                );
                let instants: Vec<DateTime<Utc>> = fired.iter().map(|s| utc(s)).collect();
                // 6 real hours, every 15 real minutes: no duplicate, no hole
                // (the spring gap's local times collapse onto its end, which
                // is itself a quarter hour).
                assert_eq!(instants.len(), 24, "{tz} {switch}: {fired:?}");
                for pair in instants.windows(2) {
                    assert_eq!(pair[1] - pair[0], Duration::minutes(15), "{tz}: {fired:?}");
                }
                assert!(instants.contains(&at), "{tz}: fires at the switch {switch}");
            }
        }
    }

    #[test]
    fn hourly_at_half_past_fires_at_the_gap_end_then_resumes() {
        let cal = calendar("0 30 * * * *", "Europe/Berlin");
        assert_eq!(
            firings(&cal, "2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z"),
            [
                "2026-03-29T00:30:00Z", // 01:30 CET
                "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
                "2026-03-29T01:30:00Z", // 03:30 CEST
            ]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        // The 13th that is a Friday: 2026-02-13 and 2026-03-13.
        let cal = calendar("0 0 9 13 * FRI", "UTC");
        assert_eq!(
            firings(&cal, "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"),
            ["2026-02-13T09:00:00Z", "2026-03-13T09:00:00Z"]
        );
    }
}
