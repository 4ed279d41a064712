//! Cron schedules in the syntax of Spin's cron trigger plugin (`spin-trigger-cron`):
//! `sec min hour day-of-month month day-of-week [year]`, in UTC, e.g. `"1/2 * * * * *"` (every
//! two seconds from second 1) or `"0 * * * * *"` (every minute).
//!
//! The plugin parses with croner 2 (through tokio-cron-scheduler 0.13) with seconds required and
//! day-of-month AND day-of-week; croner 4 is configured the same way, plus `sloppy_ranges` so the
//! `start/step` form the plugin documents (`1/2`, `0/15`) stays valid.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    text: String,
    cron: Cron,
}

impl CronSchedule {
    /// Parses an expression.
    ///
    /// # Errors
    /// A message saying what is wrong (field count, a value out of range, a bad character).
    /// Besides fields, croner's nicknames are accepted (`@hourly`, `@daily`, ...).
    pub fn parse(text: &str) -> Result<CronSchedule, String> {
        let fields = text.split_whitespace().count();
        let nickname = text.trim_start().starts_with('@');
        if !nickname && !(6..=7).contains(&fields) {
            return Err(format!(
                "invalid cron expression {text:?}: expected 6 or 7 fields (sec min hour \
                 day-of-month month day-of-week [year]), got {fields}"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Optional)
            .dom_and_dow(true)
            .sloppy_ranges(true)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))?;
        Ok(CronSchedule {
            text: text.to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `after` (whole seconds), or `None` when the schedule
    /// never fires again (e.g. a year in the past).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = DateTime::from_timestamp(after.timestamp(), 0)?;
        self.cron.find_next_occurrence(&whole, false).ok()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The current time in UTC (from the system clock; chrono's `clock` feature is not needed).
pub fn utc_now() -> DateTime<Utc> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        CronSchedule::parse(expr)
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn accepts_the_plugins_examples() {
        for e in [
            "1/2 * * * * *",
            "1/4 * * * * *",
            "0 1/2 11,12 5-10 * * *",
            "0 * * * * *",
            "*/5 * * * * *",
            "0 0 6 * * SUN,SAT",
            "0 15 6,8,10 * Mar,Jun Fri 2040",
            "5-10 * * * * *",
            "2,8 * * * * *",
            "0 0 0 * * 5#3",
            "@hourly",
        ] {
            CronSchedule::parse(e).unwrap_or_else(|m| panic!("{e}: {m}"));
        }
    }

    #[test]
    fn rejects_bad_expressions() {
        for (e, says) in [
            ("* * * * *", "expected 6 or 7 fields"),
            ("", "expected 6 or 7 fields"),
            ("* * * * * * * *", "expected 6 or 7 fields"),
            ("61 * * * * *", "invalid cron expression"),
            ("* * 25 * * *", "invalid cron expression"),
            ("every minute please", "expected 6 or 7 fields"),
            ("x * * * * *", "invalid cron expression"),
        ] {
            let m = CronSchedule::parse(e).unwrap_err();
            assert!(m.contains(says), "{e}: {m}");
        }
    }

    #[test]
    fn next_fire_times() {
        // Every two seconds from second 1: odd seconds.
        assert_eq!(
            next("1/2 * * * * *", "2030-01-01T00:00:00Z"),
            "2030-01-01T00:00:01+00:00"
        );
        assert_eq!(
            next("1/2 * * * * *", "2030-01-01T00:00:01Z"),
            "2030-01-01T00:00:03+00:00"
        );
        // Strictly after, and a fraction of a second does not count as the next second.
        assert_eq!(
            next("* * * * * *", "2030-01-01T00:00:05.900Z"),
            "2030-01-01T00:00:06+00:00"
        );
        assert_eq!(
            next("0 * * * * *", "2030-01-01T00:00:00Z"),
            "2030-01-01T00:01:00+00:00"
        );
        assert_eq!(
            next("0 * * * * *", "2030-01-01T00:59:30Z"),
            "2030-01-01T01:00:00+00:00"
        );
        assert_eq!(
            next("0 1/2 11,12 5-10 * * *", "2030-01-01T00:00:00Z"),
            "2030-01-05T11:01:00+00:00"
        );
        // Day of month AND day of week, as the plugin: 13th that is a Friday.
        assert_eq!(
            next("0 0 0 13 * FRI", "2030-01-01T00:00:00Z"),
            "2030-09-13T00:00:00+00:00"
        );
        // Sunday is 0 (and 7), as the plugin documents (0-6).
        assert_eq!(
            next("0 0 0 * * 0", "2030-01-01T00:00:00Z"),
            "2030-01-06T00:00:00+00:00"
        );
        assert_eq!(
            next("@hourly", "2030-01-01T00:00:00Z"),
            "2030-01-01T01:00:00+00:00"
        );
    }

    #[test]
    fn a_schedule_in_the_past_never_fires() {
        let s = CronSchedule::parse("0 0 0 1 1 * 2001").unwrap();
        assert_eq!(s.next_after(at("2030-01-01T00:00:00Z")), None);
    }

    #[test]
    fn now_is_close_to_the_system_clock() {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((utc_now().timestamp() - secs).abs() <= 1);
    }
}
