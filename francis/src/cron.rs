//! Cron schedules for jobs and alarms: a standard 5-field expression (`minute hour
//! day-of-month month day-of-week`, e.g. `"0 3 * * *"`), parsed and evaluated by the `croner`
//! crate, always in UTC. This is the one place Francis meets `chrono` (what `croner` speaks):
//! times go in and out as Unix milliseconds.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};

/// A parsed 5-field cron expression, evaluated in UTC.
#[derive(Clone)]
pub struct Cron {
    text: String,
    parsed: croner::Cron,
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid cron expression {expression:?}: {reason}; give 5 fields, minute hour day-of-month \
     month day-of-week, e.g. \"0 3 * * *\" (every day at 03:00 UTC) or \"*/15 * * * *\""
)]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// What the parser said.
    pub reason: String,
}

impl Cron {
    /// Parse a 5-field expression. Seconds (a 6th field) are refused: schedules run at minute
    /// precision, like the Unix cron.
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let refuse = |reason: String| CronError {
            expression: expression.chars().take(128).collect(),
            reason,
        };
        if expression.len() > 256 {
            return Err(refuse("longer than 256 bytes".into()));
        }
        let fields = expression.split_whitespace().count();
        if fields != 5 && !expression.trim_start().starts_with('@') {
            return Err(refuse(format!("it has {fields} fields, not 5")));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Cron {
            text: expression.trim().to_owned(),
            parsed,
        })
    }

    /// The expression as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time the schedule fires strictly after `after_ms` (Unix ms), or `None` when it
    /// never does again (or not within the representable range).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        // From the whole second: `croner` keeps the start's fraction of a second in what it
        // finds, and ticks fall on whole minutes, so the next one after the second is the next
        // one after `after_ms` too.
        let start: DateTime<Utc> = DateTime::from_timestamp(after_ms.div_euclid(1000), 0)?;
        self.parsed
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cron::parse(s)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Cron {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn daily_schedule_fires_at_the_next_matching_minute_in_utc() {
        let cron = Cron::parse("0 3 * * *").unwrap();
        assert_eq!(
            cron.next_after(ms("2026-12-05T02:59:59Z")),
            Some(ms("2026-12-05T03:00:00Z"))
        );
        // Strictly after: a time on the schedule moves to the next one.
        assert_eq!(
            cron.next_after(ms("2026-12-05T03:00:00Z")),
            Some(ms("2026-12-06T03:00:00Z"))
        );
    }

    #[test]
    fn ticks_fall_on_the_minute_whatever_fraction_of_a_second_it_is() {
        let cron = Cron::parse("0 * * * *").unwrap();
        let hour = ms("2026-12-05T01:00:00Z");
        assert_eq!(cron.next_after(hour + 10), Some(hour + 3_600_000));
        assert_eq!(cron.next_after(hour - 1), Some(hour));
        assert_eq!(cron.next_after(hour + 999), Some(hour + 3_600_000));
    }

    #[test]
    fn steps_ranges_and_names_are_understood() {
        let cron = Cron::parse("*/15 9-17 * * MON-FRI").unwrap();
        // 2026-12-05 is a Saturday: the next run is Monday 09:00.
        assert_eq!(
            cron.next_after(ms("2026-12-05T10:00:00Z")),
            Some(ms("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            cron.next_after(ms("2026-12-07T09:00:00Z")),
            Some(ms("2026-12-07T09:15:00Z"))
        );
    }

    #[test]
    fn malformed_expressions_are_refused_with_the_expected_shape() {
        for bad in ["", "* * * *", "0 0 3 * * *", "61 * * * *", "x y z a b"] {
            let e = Cron::parse(bad).unwrap_err();
            assert!(e.to_string().contains("5 fields"), "{bad:?}: {e}");
        }
        assert!(Cron::parse(&"1 ".repeat(200)).is_err());
    }
}
