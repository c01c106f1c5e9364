//! Durations, repeat intervals and timestamps as users type them.
//!
//! This module is the single place where Francis turns human-written time
//! values (configuration keys, alarm schedules, CLI arguments, JSON payloads)
//! into numbers the runtime works with, and back:
//!
//! * [`Interval`] — a repeat interval with a calendar part (years, months,
//!   days, applied in UTC) and a fixed part (millisecond precision). Parsed from
//!   ISO 8601 (`"P1M"`, `"PT1H30M"`), Go-style (`"1h30m"`, `"1500ms"`) or plain
//!   integer milliseconds (`"1500"`); displayed and serialized as canonical
//!   ISO 8601.
//! * [`parse_duration`] — a fixed [`Duration`] for configuration keys
//!   (calendar units are rejected).
//! * [`parse_timestamp`] / [`format_timestamp`] — RFC 3339 or Unix
//!   milliseconds to/from Unix milliseconds.
//! * [`next_occurrence`] — the next nominal firing time of a repeating
//!   schedule, without drift and without replaying missed occurrences.
//!
//! Calendar arithmetic is delegated to [`jiff`], always in UTC.
//!
//! # Sub-millisecond precision
//!
//! Francis schedules with millisecond precision. Go-style strings may use the
//! `us`/`µs`/`ns` units (and fractions of any unit) only when the *total* is a
//! whole number of milliseconds (`"1500us"` is accepted, `"1.5ms"` is
//! rejected); ISO 8601 seconds accept at most three fractional digits.
//! Timestamps with sub-millisecond precision are floored to the millisecond.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// Largest fixed part, in milliseconds, that an [`Interval`] or a parsed
/// duration can hold (so that it always fits an `i64` of milliseconds).
const MAX_MS: u64 = i64::MAX as u64;

/// Maximum number of calendar steps [`next_occurrence`] walks before falling
/// back to `interval` added to `now`.
const MAX_CALENDAR_STEPS: u64 = 100_000;

const INTERVAL_EXAMPLES: &str = "accepted forms: ISO 8601 like \"PT1H30M\", \"P1M\" or \"P1DT2H\", \
     Go-style like \"1h30m\" or \"1500ms\", or integer milliseconds like \"1500\"";
const DURATION_EXAMPLES: &str = "accepted forms: Go-style like \"1h\", \"20s\" or \"1500ms\", \
     ISO 8601 like \"PT20S\", or integer milliseconds like \"1500\"";
const TIMESTAMP_EXAMPLES: &str = "accepted forms: RFC 3339 like \"2028-10-08T10:00:02Z\" or \
     \"2028-10-08T12:00:02.250+02:00\", or Unix milliseconds like \"1854612002000\"";

/// An error produced while parsing a time value written by a user.
///
/// The message says what was wrong and shows accepted examples, so it can be
/// shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text is not a valid [`Interval`].
    #[error("invalid interval {input:?}: {reason} ({INTERVAL_EXAMPLES})")]
    InvalidInterval {
        /// The offending input (possibly shortened).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The text is not a valid fixed duration (see [`parse_duration`]).
    #[error("invalid duration {input:?}: {reason} ({DURATION_EXAMPLES})")]
    InvalidDuration {
        /// The offending input (possibly shortened).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The text is not a valid timestamp (see [`parse_timestamp`]).
    #[error("invalid timestamp {input:?}: {reason} ({TIMESTAMP_EXAMPLES})")]
    InvalidTimestamp {
        /// The offending input (possibly shortened).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Shortens user input so that error messages stay readable.
fn shorten(input: &str) -> String {
    const MAX_CHARS: usize = 64;
    if input.chars().count() <= MAX_CHARS {
        input.to_owned()
    } else {
        let mut s: String = input.chars().take(MAX_CHARS).collect();
        s.push('…');
        s
    }
}

impl TimeError {
    fn interval(input: &str, reason: impl Into<String>) -> Self {
        TimeError::InvalidInterval {
            input: shorten(input),
            reason: reason.into(),
        }
    }

    fn duration(input: &str, reason: impl Into<String>) -> Self {
        TimeError::InvalidDuration {
            input: shorten(input),
            reason: reason.into(),
        }
    }

    fn timestamp(input: &str, reason: impl Into<String>) -> Self {
        TimeError::InvalidTimestamp {
            input: shorten(input),
            reason: reason.into(),
        }
    }
}

/// A repeat interval: a calendar part (years, months, days — applied to the
/// civil date in UTC) followed by a fixed part with millisecond precision.
///
/// Weeks are folded into days when parsing (`P1W` == `P7D`). The calendar part
/// is kept as written (`P12M` stays `P12M`); the fixed part is normalized
/// (`PT90M` is displayed as `PT1H30M`).
///
/// ```
/// use francis::time::Interval;
/// let i: Interval = "1h30m".parse().unwrap();
/// assert_eq!(i.to_string(), "PT1H30M");
/// let m: Interval = "P1M".parse().unwrap();
/// assert_eq!(m, Interval::months(1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Interval {
    years: u32,
    months: u32,
    days: u32,
    /// Fixed part in milliseconds, always `<= i64::MAX`.
    fixed_ms: u64,
}

impl Interval {
    /// The zero interval (`PT0S`).
    pub const ZERO: Interval = Interval {
        years: 0,
        months: 0,
        days: 0,
        fixed_ms: 0,
    };

    /// Builds an interval from its parts. The fixed part is truncated to whole
    /// milliseconds and saturates at `i64::MAX` milliseconds.
    pub fn new(years: u32, months: u32, days: u32, fixed: Duration) -> Self {
        Interval {
            years,
            months,
            days,
            fixed_ms: duration_to_ms(fixed),
        }
    }

    /// A purely fixed interval. Sub-millisecond precision is truncated and the
    /// value saturates at `i64::MAX` milliseconds.
    pub fn from_duration(d: Duration) -> Self {
        Interval::new(0, 0, 0, d)
    }

    /// A purely fixed interval of `ms` milliseconds (saturating at
    /// `i64::MAX`).
    pub fn from_millis(ms: u64) -> Self {
        Interval {
            fixed_ms: ms.min(MAX_MS),
            ..Interval::ZERO
        }
    }

    /// An interval of `n` calendar years.
    pub fn years(n: u32) -> Self {
        Interval {
            years: n,
            ..Interval::ZERO
        }
    }

    /// An interval of `n` calendar months.
    pub fn months(n: u32) -> Self {
        Interval {
            months: n,
            ..Interval::ZERO
        }
    }

    /// An interval of `n` calendar days (in UTC, where every day has 24 hours).
    pub fn days(n: u32) -> Self {
        Interval {
            days: n,
            ..Interval::ZERO
        }
    }

    /// Whether the interval is zero (no calendar part and no fixed part).
    pub fn is_zero(&self) -> bool {
        !self.has_calendar_part() && self.fixed_ms == 0
    }

    /// Whether the interval has a non-zero calendar part (years, months or
    /// days).
    pub fn has_calendar_part(&self) -> bool {
        self.years != 0 || self.months != 0 || self.days != 0
    }

    /// The calendar part as `(years, months, days)`.
    pub fn calendar_part(&self) -> (u32, u32, u32) {
        (self.years, self.months, self.days)
    }

    /// The fixed part, whether or not there is a calendar part.
    pub fn fixed_component(&self) -> Duration {
        Duration::from_millis(self.fixed_ms)
    }

    /// The interval as a plain [`Duration`], only when it has no calendar part.
    pub fn fixed_part(&self) -> Option<Duration> {
        if self.has_calendar_part() {
            None
        } else {
            Some(self.fixed_component())
        }
    }

    /// `unix_ms` plus this interval: the calendar part is applied to the civil
    /// date-time in UTC via `jiff` (so 31 January + `P1M` is the last day of
    /// February), then the fixed part is added.
    ///
    /// Returns `None` when the result (or `unix_ms` itself, if there is a
    /// calendar part) is outside the supported range.
    pub fn add_to(&self, unix_ms: i64) -> Option<i64> {
        self.add_scaled(unix_ms, 1)
    }

    /// `unix_ms + k × self`, scaling every component by `k` (so that repeating
    /// a monthly interval from 31 January gives 29 February, 31 March, ... and
    /// never drifts to the 28th/29th).
    fn add_scaled(&self, unix_ms: i64, k: u64) -> Option<i64> {
        let base = if self.has_calendar_part() {
            let years = u64::from(self.years).checked_mul(k)?;
            let months = u64::from(self.months).checked_mul(k)?;
            let days = u64::from(self.days).checked_mul(k)?;
            let span = Span::new()
                .try_years(i64::try_from(years).ok()?)
                .ok()?
                .try_months(i64::try_from(months).ok()?)
                .ok()?
                .try_days(i64::try_from(days).ok()?)
                .ok()?;
            let zoned = Timestamp::from_millisecond(unix_ms)
                .ok()?
                .to_zoned(TimeZone::UTC);
            floor_ms(zoned.checked_add(span).ok()?.timestamp())?
        } else {
            unix_ms
        };
        let fixed = i64::try_from(self.fixed_ms.checked_mul(k)?).ok()?;
        base.checked_add(fixed)
    }
}

impl fmt::Display for Interval {
    /// Canonical ISO 8601, e.g. `P1M`, `P1DT2H`, `PT1H30M`, `PT0.5S`; zero is
    /// `PT0S`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("PT0S");
        }
        f.write_str("P")?;
        if self.years != 0 {
            write!(f, "{}Y", self.years)?;
        }
        if self.months != 0 {
            write!(f, "{}M", self.months)?;
        }
        if self.days != 0 {
            write!(f, "{}D", self.days)?;
        }
        if self.fixed_ms != 0 {
            f.write_str("T")?;
            let hours = self.fixed_ms / 3_600_000;
            let minutes = (self.fixed_ms / 60_000) % 60;
            let seconds = (self.fixed_ms / 1_000) % 60;
            let millis = self.fixed_ms % 1_000;
            if hours != 0 {
                write!(f, "{hours}H")?;
            }
            if minutes != 0 {
                write!(f, "{minutes}M")?;
            }
            if millis != 0 {
                let frac = format!("{millis:03}");
                write!(f, "{seconds}.{}S", frac.trim_end_matches('0'))?;
            } else if seconds != 0 {
                write!(f, "{seconds}S")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Interval {
    type Err = TimeError;

    /// Parses ISO 8601 (`P1M`, `PT1H30M`, `P1W`, `PT0.5S`), Go-style
    /// (`1h30m`, `1500ms`, `1.5h`) or plain integer milliseconds (`1500`).
    /// Surrounding whitespace is ignored.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(TimeError::interval(input, "the value is empty"));
        }
        if let Some(body) = strip_p(s) {
            let parts = parse_iso(body).map_err(|r| TimeError::interval(input, r))?;
            let too_large = |what: &str| {
                TimeError::interval(input, format!("the number of {what} is too large"))
            };
            let years = u32::try_from(parts.years).map_err(|_| too_large("years"))?;
            let months = u32::try_from(parts.months).map_err(|_| too_large("months"))?;
            let days = parts
                .weeks
                .checked_mul(7)
                .and_then(|w| w.checked_add(parts.days))
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| too_large("days"))?;
            return Ok(Interval {
                years,
                months,
                days,
                fixed_ms: parts.fixed_ms,
            });
        }
        parse_fixed(s, Context::Interval)
            .map(Interval::from_millis)
            .map_err(|r| TimeError::interval(input, r))
    }
}

impl serde::Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Interval {
    /// Accepts a string in any form [`Interval::from_str`] accepts, or a
    /// non-negative integer number of milliseconds.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Interval;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an interval string like \"PT1H30M\", \"P1M\" or \"1h30m\", \
                     or a non-negative integer number of milliseconds",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Interval, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Interval, E> {
                if v > MAX_MS {
                    return Err(E::custom(TimeError::interval(
                        &v.to_string(),
                        "the number of milliseconds is too large",
                    )));
                }
                Ok(Interval::from_millis(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Interval, E> {
                u64::try_from(v).map(Interval::from_millis).map_err(|_| {
                    E::custom(TimeError::interval(
                        &v.to_string(),
                        "negative intervals are not allowed",
                    ))
                })
            }

            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Interval, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(TimeError::interval(
                        &v.to_string(),
                        "the number of milliseconds is too large",
                    ))),
                }
            }

            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Interval, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::custom(TimeError::interval(
                        &v.to_string(),
                        "the number of milliseconds is out of range",
                    ))),
                }
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// Parses a fixed duration for configuration keys.
///
/// Accepts Go-style strings (`"1h"`, `"1500ms"`, `"20s"`, `"1h30m"`,
/// `"1.5h"`), ISO 8601 without calendar units (`"PT20S"`, `"PT1H30M"`) or a
/// plain integer number of milliseconds (`"1500"`). Calendar units (`Y`, `M`
/// before `T`, `W`, `D`) are rejected because their length varies. See the
/// [module docs](self) for sub-millisecond precision.
pub fn parse_duration(input: &str) -> Result<Duration, TimeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(TimeError::duration(input, "the value is empty"));
    }
    let ms = if let Some(body) = strip_p(s) {
        let parts = parse_iso(body).map_err(|r| TimeError::duration(input, r))?;
        if parts.has_calendar_designator {
            return Err(TimeError::duration(
                input,
                "durations cannot use calendar units (Y, M, W, D before 'T'); \
                 write the fixed length instead, e.g. \"PT24H\" rather than \"P1D\"",
            ));
        }
        parts.fixed_ms
    } else {
        parse_fixed(s, Context::Duration).map_err(|r| TimeError::duration(input, r))?
    };
    Ok(Duration::from_millis(ms))
}

/// Parses a timestamp into Unix milliseconds.
///
/// Accepts RFC 3339 with `Z` or a numeric offset, with or without fractional
/// seconds (`"2028-10-08T10:00:02Z"`, `"2028-10-08T12:00:02.5+02:00"`), or
/// Unix milliseconds as a plain (optionally negative) integer. Sub-millisecond
/// precision is floored.
pub fn parse_timestamp(input: &str) -> Result<i64, TimeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(TimeError::timestamp(input, "the value is empty"));
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| {
            TimeError::timestamp(input, "the number of milliseconds is out of range")
        });
    }
    match s.parse::<Timestamp>() {
        Ok(ts) => floor_ms(ts).ok_or_else(|| TimeError::timestamp(input, "out of range")),
        Err(e) => {
            let looks_like_date = s.len() >= 10 && s.as_bytes()[4] == b'-';
            let has_offset =
                s.ends_with(['Z', 'z']) || s.get(10..).is_some_and(|t| t.contains(['+', '-']));
            let reason = if looks_like_date && s.len() == 10 {
                format!("a time of day and a UTC offset are required, e.g. \"{s}T00:00:00Z\" ({e})")
            } else if looks_like_date && !has_offset {
                format!("a UTC offset is required, e.g. a trailing 'Z' or '+02:00' ({e})")
            } else {
                e.to_string()
            };
            Err(TimeError::timestamp(input, reason))
        }
    }
}

/// Formats Unix milliseconds as RFC 3339 in UTC, e.g.
/// `"2028-10-08T10:00:02Z"`, with a `.mmm` fraction only when the
/// milliseconds are non-zero (`"2028-10-08T10:00:02.250Z"`).
///
/// Values outside the range RFC 3339 can represent (beyond the years
/// -9999..=9999) are formatted as the plain integer, which
/// [`parse_timestamp`] accepts back.
pub fn format_timestamp(unix_ms: i64) -> String {
    match Timestamp::from_millisecond(unix_ms) {
        Ok(ts) if unix_ms.rem_euclid(1_000) == 0 => format!("{ts:.0}"),
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => unix_ms.to_string(),
    }
}

/// The next nominal time of a repeating schedule, without drift.
///
/// Returns `t_k = scheduled_ms + k × interval` for the smallest `k >= 1` with
/// `t_k > now_ms`; missed occurrences are skipped, not replayed. Every
/// component of the interval is scaled by `k` and applied to `scheduled_ms`
/// (rather than stepping from the previous occurrence), so a monthly schedule
/// started on 31 January stays on the last day of short months and returns to
/// the 31st afterwards.
///
/// A purely fixed interval is computed in O(1). A calendar interval is
/// stepped at most 100 000 times; past that, `interval` added to `now_ms` is
/// returned. Returns `None` for a zero interval or on overflow.
pub fn next_occurrence(scheduled_ms: i64, interval: &Interval, now_ms: i64) -> Option<i64> {
    if interval.is_zero() {
        return None;
    }
    if !interval.has_calendar_part() {
        let step = i128::from(interval.fixed_ms);
        let scheduled = i128::from(scheduled_ms);
        let now = i128::from(now_ms);
        let k = if scheduled + step > now {
            1
        } else {
            (now - scheduled) / step + 1
        };
        return i64::try_from(scheduled + k * step).ok();
    }
    for k in 1..=MAX_CALENDAR_STEPS {
        let t = interval.add_scaled(scheduled_ms, k)?;
        if t > now_ms {
            return Some(t);
        }
    }
    interval.add_to(now_ms)
}

// ---------------------------------------------------------------------------
// Parsing internals. They return a human-readable reason; callers wrap it in
// the appropriate `TimeError` variant together with the input.
// ---------------------------------------------------------------------------

/// Which public parser is running, to tailor hints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Interval,
    Duration,
}

fn strip_p(s: &str) -> Option<&str> {
    s.strip_prefix('P').or_else(|| s.strip_prefix('p'))
}

fn duration_to_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).map_or(MAX_MS, |ms| ms.min(MAX_MS))
}

/// Unix milliseconds of `ts`, floored.
fn floor_ms(ts: Timestamp) -> Option<i64> {
    i64::try_from(ts.as_nanosecond().div_euclid(1_000_000)).ok()
}

/// Components of an ISO 8601 duration.
#[derive(Default)]
struct IsoParts {
    years: u64,
    months: u64,
    weeks: u64,
    days: u64,
    fixed_ms: u64,
    /// Whether any of Y, M (date), W, D appeared, even with a zero value.
    has_calendar_designator: bool,
}

/// One `number designator` item of an ISO 8601 duration.
struct IsoItem<'a> {
    int: &'a str,
    frac: Option<&'a str>,
    designator: char,
}

/// Splits `s` into `number[.fraction]designator` items.
fn iso_items<'a>(s: &'a str, section: &str) -> Result<Vec<IsoItem<'a>>, String> {
    let mut items = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        if int.is_empty() {
            let found = after.chars().next().unwrap_or(' ');
            let reason = if found == '-' || found == '+' {
                "signs are not allowed; values must be non-negative".to_owned()
            } else {
                format!("expected a number in the {section} part but found {found:?}")
            };
            return Err(reason);
        }
        let (frac, after) = match after.strip_prefix(['.', ',']) {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 {
                    return Err(format!(
                        "expected digits after the decimal point of {int:?}"
                    ));
                }
                let (f, a) = a.split_at(n);
                (Some(f), a)
            }
            None => (None, after),
        };
        let mut chars = after.chars();
        let Some(designator) = chars.next() else {
            return Err(format!(
                "the number {int:?} has no unit designator in the {section} part"
            ));
        };
        items.push(IsoItem {
            int,
            frac,
            designator: designator.to_ascii_uppercase(),
        });
        rest = chars.as_str();
    }
    Ok(items)
}

fn parse_u64(digits: &str) -> Result<u64, String> {
    digits
        .parse::<u64>()
        .map_err(|_| format!("the number {digits} is too large"))
}

/// Parses the part of an ISO 8601 duration after the leading `P`.
fn parse_iso(body: &str) -> Result<IsoParts, String> {
    let (date, time) = match body.find(['T', 't']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if date.is_empty() && time.is_none() {
        return Err("'P' must be followed by at least one component such as \"P1D\"".into());
    }
    if time == Some("") {
        return Err("'T' must be followed by at least one time component such as \"PT1H\"".into());
    }
    let mut parts = IsoParts::default();

    const DATE_ORDER: [char; 4] = ['Y', 'M', 'W', 'D'];
    let mut last = None;
    for item in iso_items(date, "date")? {
        let Some(pos) = DATE_ORDER.iter().position(|&c| c == item.designator) else {
            let hint = if matches!(item.designator, 'H' | 'S') {
                " (hours, minutes and seconds go after 'T', e.g. \"PT1H\")"
            } else {
                ""
            };
            return Err(format!(
                "unknown date designator {:?}; expected Y, M, W or D{hint}",
                item.designator
            ));
        };
        if last.is_some_and(|l| pos <= l) {
            return Err(format!(
                "designator {:?} is repeated or out of order (order is Y, M, W, D)",
                item.designator
            ));
        }
        last = Some(pos);
        if item.frac.is_some() {
            return Err("fractions are only allowed on seconds, e.g. \"PT0.5S\"".into());
        }
        let n = parse_u64(item.int)?;
        parts.has_calendar_designator = true;
        match item.designator {
            'Y' => parts.years = n,
            'M' => parts.months = n,
            'W' => parts.weeks = n,
            _ => parts.days = n,
        }
    }

    const TIME_ORDER: [char; 3] = ['H', 'M', 'S'];
    let mut last = None;
    let mut ms: u64 = 0;
    let overflow = || "the duration is too large".to_owned();
    for item in iso_items(time.unwrap_or(""), "time")? {
        let Some(pos) = TIME_ORDER.iter().position(|&c| c == item.designator) else {
            let hint = if matches!(item.designator, 'Y' | 'W' | 'D') {
                " (years, weeks and days go before 'T', e.g. \"P1DT2H\")"
            } else {
                ""
            };
            return Err(format!(
                "unknown time designator {:?}; expected H, M or S{hint}",
                item.designator
            ));
        };
        if last.is_some_and(|l| pos <= l) {
            return Err(format!(
                "designator {:?} is repeated or out of order (order is H, M, S)",
                item.designator
            ));
        }
        last = Some(pos);
        let n = parse_u64(item.int)?;
        let unit_ms: u64 = match item.designator {
            'H' => 3_600_000,
            'M' => 60_000,
            _ => 1_000,
        };
        let mut part = n.checked_mul(unit_ms).ok_or_else(overflow)?;
        if let Some(frac) = item.frac {
            if item.designator != 'S' {
                return Err("fractions are only allowed on seconds, e.g. \"PT0.5S\"".into());
            }
            if frac.len() > 3 {
                return Err(
                    "at most 3 fractional digits are allowed (millisecond precision), \
                     e.g. \"PT0.125S\""
                        .into(),
                );
            }
            let padded = format!("{frac:0<3}");
            part = part.checked_add(parse_u64(&padded)?).ok_or_else(overflow)?;
        }
        ms = ms.checked_add(part).ok_or_else(overflow)?;
    }
    if ms > MAX_MS {
        return Err(overflow());
    }
    parts.fixed_ms = ms;
    Ok(parts)
}

/// Parses a Go-style duration or a plain integer number of milliseconds into
/// milliseconds.
fn parse_fixed(s: &str, ctx: Context) -> Result<u64, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u64>() {
            Ok(ms) if ms <= MAX_MS => Ok(ms),
            _ => Err("the number of milliseconds is too large".into()),
        };
    }
    if s.starts_with('-') {
        return Err("negative values are not allowed".into());
    }
    if s.starts_with('+') {
        return Err("signs are not allowed; write e.g. \"1h30m\"".into());
    }

    const NS_PER_MS: u128 = 1_000_000;
    const MAX_FRAC_DIGITS: usize = 18;
    let overflow = || "the duration is too large".to_owned();
    let mut total_ns: u128 = 0;
    let mut exact = true;
    let mut rest = s;
    while !rest.is_empty() {
        // Number: digits, optionally '.' and more digits; at least one digit.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            let found = after.chars().next().unwrap_or(' ');
            return Err(if found == '-' || found == '+' {
                "signs are not allowed; values must be non-negative".to_owned()
            } else {
                format!("expected a number but found {found:?}")
            });
        }
        if frac.len() > MAX_FRAC_DIGITS {
            return Err(format!(
                "too many fractional digits (at most {MAX_FRAC_DIGITS})"
            ));
        }
        // Unit: the letters that follow the number.
        let unit_len = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let number = if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        };
        let unit_ns: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            "" if !after.is_empty() && !after.starts_with(|c: char| c.is_ascii_digit()) => {
                let found = after.chars().next().unwrap_or(' ');
                return Err(if found == '-' || found == '+' {
                    format!(
                        "unexpected {found:?} after the number {number}; signs are not allowed \
                         and values must be non-negative"
                    )
                } else {
                    format!("unexpected {found:?} after the number {number}")
                });
            }
            "" => {
                return Err(format!(
                    "the number {number} has no unit; use h, m, s or ms, e.g. \"1h30m\" \
                     (a bare integer alone means milliseconds)"
                ));
            }
            other => {
                let hint = match (ctx, other) {
                    (Context::Interval, "d" | "w" | "y" | "mo" | "D" | "W" | "Y" | "M") => {
                        " (calendar units need ISO 8601, e.g. \"P1D\" or \"P1M\")"
                    }
                    (Context::Duration, "d" | "w" | "y" | "mo" | "D" | "W" | "Y" | "M") => {
                        " (durations cannot use calendar units; write e.g. \"24h\")"
                    }
                    _ => "",
                };
                return Err(format!(
                    "unknown unit {other:?}; accepted units are h, m, s, ms \
                     (and us, µs, ns when the total is whole milliseconds){hint}"
                ));
            }
        };
        let int_val: u128 = if int.is_empty() {
            0
        } else {
            int.parse::<u128>().map_err(|_| overflow())?
        };
        let mut ns = int_val.checked_mul(unit_ns).ok_or_else(overflow)?;
        if !frac.is_empty() {
            let frac_val: u128 = frac.parse::<u128>().map_err(|_| overflow())?;
            let scale = 10u128.pow(u32::try_from(frac.len()).map_err(|_| overflow())?);
            let scaled = frac_val.checked_mul(unit_ns).ok_or_else(overflow)?;
            if !scaled.is_multiple_of(scale) {
                exact = false;
            }
            ns = ns.checked_add(scaled / scale).ok_or_else(overflow)?;
        }
        total_ns = total_ns.checked_add(ns).ok_or_else(overflow)?;
        rest = after;
    }
    if !exact || !total_ns.is_multiple_of(NS_PER_MS) {
        return Err(
            "sub-millisecond precision is not supported; the total must be a whole number \
             of milliseconds, e.g. \"1500ms\" or \"1.5s\""
                .into(),
        );
    }
    u64::try_from(total_ns / NS_PER_MS)
        .ok()
        .filter(|&ms| ms <= MAX_MS)
        .ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(s: &str) -> Interval {
        match s.parse::<Interval>() {
            Ok(i) => i,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn iv_err(s: &str) -> String {
        match s.parse::<Interval>() {
            Ok(i) => panic!("{s:?} should be rejected, got {i:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn dur_err(s: &str) -> String {
        match parse_duration(s) {
            Ok(d) => panic!("{s:?} should be rejected, got {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn ms(n: u64) -> Interval {
        Interval::from_millis(n)
    }

    /// Unix ms of a UTC civil date-time.
    fn utc(s: &str) -> i64 {
        parse_timestamp(s).expect("valid test timestamp")
    }

    // ----- ISO 8601 -----

    #[test]
    fn iso_forms() {
        assert_eq!(iv("PT1H30M"), ms(5_400_000));
        assert_eq!(iv("P1M"), Interval::months(1));
        assert_eq!(iv("P1Y"), Interval::years(1));
        assert_eq!(iv("P3D"), Interval::days(3));
        assert_eq!(iv("P2W"), Interval::days(14));
        assert_eq!(iv("P1W3D"), Interval::days(10));
        assert_eq!(
            iv("P1Y2M3DT4H5M6.789S"),
            Interval::new(
                1,
                2,
                3,
                Duration::from_millis(4 * 3_600_000 + 5 * 60_000 + 6_789)
            )
        );
        assert_eq!(iv("PT0.5S"), ms(500));
        assert_eq!(iv("PT0.05S"), ms(50));
        assert_eq!(iv("PT1,25S"), ms(1_250));
        assert_eq!(iv("PT20S"), ms(20_000));
        assert_eq!(iv("PT90M"), ms(5_400_000));
        assert_eq!(iv("P0D"), Interval::ZERO);
        assert_eq!(iv("PT0S"), Interval::ZERO);
        assert_eq!(iv("  P1D  "), Interval::days(1));
        assert_eq!(iv("p1dt2h"), iv("P1DT2H"));
    }

    #[test]
    fn iso_rejections() {
        let e = iv_err("P");
        assert!(e.contains("at least one component"), "{e}");
        assert!(e.contains("PT1H30M"), "error should show an example: {e}");
        let e = iv_err("PT");
        assert!(e.contains("'T' must be followed"), "{e}");
        let e = iv_err("P1DT");
        assert!(e.contains("'T' must be followed"), "{e}");
        let e = iv_err("P1DX");
        assert!(
            e.contains("expected a number in the date part but found 'X'"),
            "{e}"
        );
        let e = iv_err("P1X");
        assert!(e.contains("unknown date designator 'X'"), "{e}");
        let e = iv_err("P1D garbage");
        assert!(
            e.contains("expected a number in the date part but found ' '"),
            "{e}"
        );
        let e = iv_err("PT1H2");
        assert!(e.contains("no unit designator"), "{e}");
        let e = iv_err("P1.5D");
        assert!(e.contains("only allowed on seconds"), "{e}");
        let e = iv_err("PT1.5H");
        assert!(e.contains("only allowed on seconds"), "{e}");
        let e = iv_err("PT0.1234S");
        assert!(e.contains("at most 3 fractional digits"), "{e}");
        let e = iv_err("PT1.S");
        assert!(e.contains("digits after the decimal point"), "{e}");
        let e = iv_err("P-1D");
        assert!(e.contains("non-negative"), "{e}");
        let e = iv_err("P1D1M");
        assert!(e.contains("out of order"), "{e}");
        let e = iv_err("PT1M1M");
        assert!(e.contains("repeated"), "{e}");
        let e = iv_err("P1H");
        assert!(e.contains("go after 'T'"), "{e}");
        let e = iv_err("PT1D");
        assert!(e.contains("go before 'T'"), "{e}");
        let e = iv_err("P99999999999Y");
        assert!(e.contains("too large"), "{e}");
        let e = iv_err("PT99999999999999999999H");
        assert!(e.contains("too large"), "{e}");
        let e = iv_err("PT9999999999999999H");
        assert!(e.contains("too large"), "{e}");
    }

    // ----- Go-style and integer -----

    #[test]
    fn go_style_forms() {
        assert_eq!(iv("60s"), ms(60_000));
        assert_eq!(iv("1h30m"), ms(5_400_000));
        assert_eq!(iv("1500ms"), ms(1_500));
        assert_eq!(iv("2h45m30.5s"), ms(2 * 3_600_000 + 45 * 60_000 + 30_500));
        assert_eq!(iv("1.5h"), ms(5_400_000));
        assert_eq!(iv(".5s"), ms(500));
        assert_eq!(iv("1000us"), ms(1));
        assert_eq!(iv("2000µs"), ms(2));
        assert_eq!(iv("3000μs"), ms(3));
        assert_eq!(iv("2000000ns"), ms(2));
        assert_eq!(iv("1s500ms"), ms(1_500));
        assert_eq!(iv("0s"), Interval::ZERO);
    }

    #[test]
    fn integer_ms() {
        assert_eq!(iv("1500"), ms(1_500));
        assert_eq!(iv("0"), Interval::ZERO);
        assert_eq!(parse_duration("1500"), Ok(Duration::from_millis(1_500)));
        let e = iv_err("99999999999999999999");
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn go_style_rejections() {
        let e = iv_err("");
        assert!(e.contains("empty") && e.contains("1h30m"), "{e}");
        let e = iv_err("1h30");
        assert!(e.contains("has no unit"), "{e}");
        let e = iv_err("1d");
        assert!(e.contains("unknown unit \"d\"") && e.contains("P1D"), "{e}");
        let e = iv_err("5 s");
        assert!(e.contains("unexpected ' ' after the number 5"), "{e}");
        let e = iv_err("-5s");
        assert!(e.contains("negative"), "{e}");
        let e = iv_err("1h-5m");
        assert!(e.contains("non-negative"), "{e}");
        let e = iv_err("+5s");
        assert!(e.contains("signs are not allowed"), "{e}");
        let e = iv_err("1.5ms");
        assert!(e.contains("sub-millisecond"), "{e}");
        let e = iv_err("1us");
        assert!(e.contains("sub-millisecond"), "{e}");
        let e = iv_err("0.0001s");
        assert!(e.contains("sub-millisecond"), "{e}");
        let e = iv_err("h");
        assert!(e.contains("expected a number"), "{e}");
        let e = iv_err("1.2.3s");
        assert!(e.contains("unexpected '.' after the number 1.2"), "{e}");
        let e = iv_err("99999999999999999999h");
        assert!(e.contains("too large"), "{e}");
        let e = iv_err("abc");
        assert!(e.contains("expected a number"), "{e}");
    }

    // ----- Display -----

    #[test]
    fn display_canonical() {
        assert_eq!(ms(5_400_000).to_string(), "PT1H30M");
        assert_eq!(Interval::months(1).to_string(), "P1M");
        assert_eq!(iv("P1DT2H").to_string(), "P1DT2H");
        assert_eq!(ms(500).to_string(), "PT0.5S");
        assert_eq!(ms(1_050).to_string(), "PT1.05S");
        assert_eq!(ms(3_600_001).to_string(), "PT1H0.001S");
        assert_eq!(Interval::ZERO.to_string(), "PT0S");
        assert_eq!(iv("P0D").to_string(), "PT0S");
        assert_eq!(iv("P2W").to_string(), "P14D");
        assert_eq!(iv("P1Y2M3DT4H5M6.789S").to_string(), "P1Y2M3DT4H5M6.789S");
        assert_eq!(iv("PT48H").to_string(), "PT48H");
    }

    #[test]
    fn display_round_trips() {
        let cases = [
            Interval::ZERO,
            ms(1),
            ms(500),
            ms(59_999),
            ms(5_400_000),
            ms(MAX_MS),
            Interval::months(1),
            Interval::years(3),
            Interval::days(400),
            Interval::new(u32::MAX, u32::MAX, u32::MAX, Duration::from_millis(MAX_MS)),
            Interval::new(1, 0, 1, Duration::from_millis(1)),
            iv("P1Y2M3DT4H5M6.789S"),
        ];
        for x in cases {
            let shown = x.to_string();
            assert_eq!(iv(&shown), x, "round trip of {shown}");
        }
    }

    #[test]
    fn constructors_and_accessors() {
        let i = Interval::from_duration(Duration::from_micros(1_500_900));
        assert_eq!(i, ms(1_500));
        assert_eq!(i.fixed_part(), Some(Duration::from_millis(1_500)));
        assert_eq!(
            Interval::from_duration(Duration::MAX)
                .fixed_component()
                .as_millis(),
            u128::from(MAX_MS)
        );
        assert!(Interval::ZERO.is_zero());
        assert!(!Interval::days(1).is_zero());
        assert_eq!(Interval::days(1).fixed_part(), None);
        assert_eq!(iv("P1MT1H").fixed_part(), None);
        assert_eq!(iv("P1MT1H").fixed_component(), Duration::from_secs(3_600));
        assert_eq!(iv("P1Y2M3D").calendar_part(), (1, 2, 3));
        assert_eq!(Interval::default(), Interval::ZERO);
    }

    // ----- parse_duration -----

    #[test]
    fn duration_forms() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("PT20S"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("PT1H30M"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration(" 250 "), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn duration_rejections() {
        for s in ["P1D", "P1M", "P1Y", "P1W", "P0DT1H", "P1DT2H"] {
            let e = dur_err(s);
            assert!(
                e.contains("durations cannot use calendar units"),
                "{s}: {e}"
            );
            assert!(e.contains("PT20S"), "error should show an example: {e}");
        }
        let e = dur_err("1d");
        assert!(e.contains("durations cannot use calendar units"), "{e}");
        let e = dur_err("");
        assert!(e.contains("empty"), "{e}");
        let e = dur_err("soon");
        assert!(e.contains("expected a number"), "{e}");
        let e = dur_err("PT");
        assert!(e.contains("'T' must be followed"), "{e}");
    }

    // ----- timestamps -----

    #[test]
    fn timestamp_parse() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_timestamp("2028-10-08T10:00:02Z"),
            Ok(1_854_612_002_000)
        );
        assert_eq!(
            parse_timestamp("2028-10-08T12:00:02+02:00"),
            Ok(1_854_612_002_000)
        );
        assert_eq!(
            parse_timestamp("2028-10-08T05:30:02.25-04:30"),
            Ok(1_854_612_002_250)
        );
        assert_eq!(
            parse_timestamp("2028-10-08T10:00:02.123456789Z"),
            Ok(1_854_612_002_123)
        );
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.9995Z"), Ok(-1));
        assert_eq!(parse_timestamp("1854612002000"), Ok(1_854_612_002_000));
        assert_eq!(parse_timestamp("-1000"), Ok(-1_000));
        assert_eq!(parse_timestamp(" 0 "), Ok(0));
    }

    #[test]
    fn timestamp_rejections() {
        let e = parse_timestamp("2028-10-08T10:00:02")
            .unwrap_err()
            .to_string();
        assert!(e.contains("UTC offset is required"), "{e}");
        assert!(e.contains("2028-10-08T10:00:02Z"), "{e}");
        let e = parse_timestamp("2028-10-08").unwrap_err().to_string();
        assert!(e.contains("\"2028-10-08T00:00:00Z\""), "{e}");
        let e = parse_timestamp("tomorrow").unwrap_err().to_string();
        assert!(
            e.contains("invalid timestamp") && e.contains("RFC 3339"),
            "{e}"
        );
        let e = parse_timestamp("").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse_timestamp("99999999999999999999")
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = parse_timestamp("2028-13-08T10:00:02Z")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid timestamp"), "{e}");
    }

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_854_612_002_000), "2028-10-08T10:00:02Z");
        assert_eq!(
            format_timestamp(1_854_612_002_250),
            "2028-10-08T10:00:02.250Z"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_timestamp(i64::MAX), i64::MAX.to_string());
        for t in [
            0,
            1,
            -1,
            1_854_612_002_000,
            1_854_612_002_001,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(
                parse_timestamp(&format_timestamp(t)),
                Ok(t),
                "round trip of {t}"
            );
        }
    }

    // ----- calendar arithmetic -----

    #[test]
    fn add_to_calendar() {
        let p1m = Interval::months(1);
        assert_eq!(
            p1m.add_to(utc("2027-01-31T10:00:00Z")),
            Some(utc("2027-02-28T10:00:00Z"))
        );
        assert_eq!(
            p1m.add_to(utc("2028-01-31T10:00:00Z")),
            Some(utc("2028-02-29T10:00:00Z"))
        );
        assert_eq!(
            Interval::years(1).add_to(utc("2028-02-29T00:00:00Z")),
            Some(utc("2029-02-28T00:00:00Z"))
        );
        assert_eq!(
            Interval::days(1).add_to(utc("2028-02-28T23:00:00Z")),
            Some(utc("2028-02-29T23:00:00Z"))
        );
        assert_eq!(
            iv("P1DT2H30M").add_to(utc("2028-12-31T22:00:00Z")),
            Some(utc("2029-01-02T00:30:00Z"))
        );
        assert_eq!(ms(1_500).add_to(1_000), Some(2_500));
        assert_eq!(Interval::ZERO.add_to(42), Some(42));
    }

    #[test]
    fn add_to_overflow() {
        assert_eq!(ms(1).add_to(i64::MAX), None);
        assert_eq!(ms(MAX_MS).add_to(1), None);
        assert_eq!(Interval::years(1).add_to(utc("9999-06-01T00:00:00Z")), None);
        assert_eq!(Interval::days(1).add_to(i64::MAX), None);
        assert_eq!(Interval::years(u32::MAX).add_to(0), None);
    }

    // ----- next_occurrence -----

    #[test]
    fn next_occurrence_fixed() {
        let every_minute = ms(60_000);
        // Missed occurrences are skipped, without drift.
        assert_eq!(next_occurrence(0, &every_minute, 125_000), Some(180_000));
        // Not yet due: first occurrence.
        assert_eq!(next_occurrence(0, &every_minute, 10_000), Some(60_000));
        assert_eq!(next_occurrence(0, &every_minute, -5_000), Some(60_000));
        // Exactly on an occurrence: strictly after now.
        assert_eq!(next_occurrence(0, &every_minute, 120_000), Some(180_000));
        assert_eq!(next_occurrence(0, &every_minute, 59_999), Some(60_000));
        // Huge gaps are O(1).
        assert_eq!(
            next_occurrence(0, &ms(1), 1_000_000_000_000),
            Some(1_000_000_000_001)
        );
        assert_eq!(next_occurrence(-10_000, &every_minute, 0), Some(50_000));
        assert_eq!(next_occurrence(0, &Interval::ZERO, 5), None);
        assert_eq!(next_occurrence(i64::MAX - 10, &every_minute, 0), None);
        assert_eq!(next_occurrence(0, &ms(10), i64::MAX), None);
    }

    #[test]
    fn next_occurrence_calendar() {
        let p1m = Interval::months(1);
        let start = utc("2028-01-31T09:00:00Z");
        assert_eq!(
            next_occurrence(start, &p1m, start),
            Some(utc("2028-02-29T09:00:00Z"))
        );
        // Missed February and March; no drift to the 29th.
        assert_eq!(
            next_occurrence(start, &p1m, utc("2028-04-01T00:00:00Z")),
            Some(utc("2028-04-30T09:00:00Z"))
        );
        assert_eq!(
            next_occurrence(start, &p1m, utc("2028-04-30T09:00:00Z")),
            Some(utc("2028-05-31T09:00:00Z"))
        );
        let daily = iv("P1DT1H");
        let s = utc("2028-01-01T00:00:00Z");
        assert_eq!(
            next_occurrence(s, &daily, utc("2028-01-03T01:00:00Z")),
            Some(utc("2028-01-03T02:00:00Z"))
        );
        assert_eq!(
            next_occurrence(s, &daily, utc("2028-01-03T02:00:00Z")),
            Some(utc("2028-01-04T03:00:00Z"))
        );
        // Beyond the step cap: falls back to now + interval.
        let now = utc("2500-01-01T12:00:00Z");
        assert_eq!(
            next_occurrence(utc("1900-01-01T00:00:00Z"), &Interval::days(1), now),
            Interval::days(1).add_to(now)
        );
        assert_eq!(
            next_occurrence(utc("9999-01-01T00:00:00Z"), &Interval::years(1), 0),
            None
        );
    }

    // ----- serde -----

    #[test]
    fn serde_json() {
        let i = iv("1h30m");
        assert_eq!(
            serde_json::to_string(&i).ok().as_deref(),
            Some("\"PT1H30M\"")
        );
        let from_str: Interval = serde_json::from_str("\"P1M\"").expect("string");
        assert_eq!(from_str, Interval::months(1));
        let from_go: Interval = serde_json::from_str("\"1500ms\"").expect("go-style");
        assert_eq!(from_go, ms(1_500));
        let from_int: Interval = serde_json::from_str("1500").expect("integer");
        assert_eq!(from_int, ms(1_500));
        let e = serde_json::from_str::<Interval>("-5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let e = serde_json::from_str::<Interval>("\"P\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one component"), "{e}");
        let e = serde_json::from_str::<Interval>("1.5")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("non-negative integer number of milliseconds"),
            "{e}"
        );
    }

    #[test]
    fn serde_msgpack() {
        let i = iv("P1DT2H");
        let bytes = rmp_serde::to_vec(&i).expect("encode");
        let back: Interval = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, i);
        let int_bytes = rmp_serde::to_vec(&1500u64).expect("encode int");
        let from_int: Interval = rmp_serde::from_slice(&int_bytes).expect("decode int");
        assert_eq!(from_int, ms(1_500));
        let big = rmp_serde::to_vec(&u64::MAX).expect("encode big");
        assert!(rmp_serde::from_slice::<Interval>(&big).is_err());
    }
}
