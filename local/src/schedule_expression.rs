//! Schedule expressions, `rate(...)` and AWS's six-field `cron(...)` (UTC), parsed
//! and evaluated, and the `Type: Schedule` event of a template that carries one.
//!
//! cron's `L`, `W` and `#` are recognised but not evaluated: such an expression
//! parses as [`Expression::Unsupported`], and the scheduler skips its rule.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};

/// One `Type: Schedule` event of a function, as the template declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEvent {
    /// The key under the function's `Events`.
    pub event_id: String,
    /// The EventBridge rule's name (`Name`, or what SAM would derive).
    pub rule_name: String,
    pub expression: Expression,
    /// `Enabled: false` or `State: DISABLED` rules exist but never fire.
    pub enabled: bool,
    /// The rule's `Input`: JSON sent instead of the scheduled-event JSON.
    pub input: Option<String>,
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Rate(Duration),
    Cron(Box<Cron>),
    /// Valid for AWS but not emulated (cron's `L`, `W`, `#`); why, for the warning.
    Unsupported {
        text: String,
        reason: String,
    },
}

impl Expression {
    /// Parses `rate(5 minutes)` or `cron(0 12 * * ? *)`; malformed expressions are errors.
    pub fn parse(text: &str) -> Result<Expression, String> {
        let text = text.trim();
        if let Some(body) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
            return parse_rate(body).map(Expression::Rate);
        }
        if let Some(body) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
            return match Cron::parse(body) {
                Ok(cron) => Ok(Expression::Cron(Box::new(cron))),
                Err(CronError::Unsupported(reason)) => Ok(Expression::Unsupported { text: text.to_owned(), reason }),
                Err(CronError::Invalid(reason)) => Err(format!("{text}: {reason}")),
            };
        }
        Err(format!("{text:?} is neither rate(VALUE UNIT) nor cron(MIN HOUR DAY MONTH WEEKDAY YEAR)"))
    }
}

/// `N minute|minutes|hour|hours|day|days`. AWS wants the singular for 1 and
/// the plural otherwise; both are accepted here, since either is unambiguous.
fn parse_rate(body: &str) -> Result<Duration, String> {
    let invalid = || format!("rate({body}): expected rate(VALUE UNIT), e.g. rate(5 minutes)");
    let mut words = body.split_whitespace();
    let (Some(value), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(invalid());
    };
    let value: u64 = value.parse().map_err(|_| invalid())?;
    if value == 0 {
        return Err(format!("rate({body}): the value must be positive"));
    }
    let unit_secs = match unit {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return Err(invalid()),
    };
    value.checked_mul(unit_secs).map(Duration::from_secs).ok_or_else(invalid)
}

enum CronError {
    Invalid(String),
    Unsupported(String),
}

/// AWS's cron: minutes, hours, day of month, month, day of week (1 = Sunday),
/// year; in UTC. Each field is the sorted list of values it allows; `None`
/// for a `?` day field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days_of_month: Option<Vec<u32>>,
    months: Vec<u32>,
    days_of_week: Option<Vec<u32>>,
    years: Vec<u32>,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// The years EventBridge accepts.
const YEARS: (u32, u32) = (1970, 2199);

impl Cron {
    fn parse(body: &str) -> Result<Cron, CronError> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields[..] else {
            return Err(CronError::Invalid(format!(
                "expected 6 fields (minutes hours day-of-month month day-of-week year), got {}",
                fields.len()
            )));
        };
        for (name, field) in [("day-of-month", dom), ("day-of-week", dow)] {
            if field.contains(['L', 'W', '#']) && !field.eq_ignore_ascii_case("?") {
                let upper = field.to_ascii_uppercase();
                // Month and weekday names contain no L/W/#, except "WED": strip names first.
                let stripped = WEEKDAYS.iter().fold(upper, |f, d| f.replace(d, ""));
                if stripped.contains(['L', 'W', '#']) {
                    return Err(CronError::Unsupported(format!(
                        "{name} {field:?} uses L, W or #, which the emulator does not schedule"
                    )));
                }
            }
        }
        let (dom_any, dow_any) = (dom == "?", dow == "?");
        if dom_any == dow_any {
            return Err(CronError::Invalid("exactly one of day-of-month and day-of-week must be ?".into()));
        }
        Ok(Cron {
            minutes: field("minutes", minutes, 0, 59, &[])?,
            hours: field("hours", hours, 0, 23, &[])?,
            days_of_month: if dom_any { None } else { Some(field("day-of-month", dom, 1, 31, &[])?) },
            months: field("month", month, 1, 12, &MONTHS)?,
            days_of_week: if dow_any { None } else { Some(field("day-of-week", dow, 1, 7, &WEEKDAYS)?) },
            years: field("year", year, YEARS.0, YEARS.1, &[])?,
        })
    }

    /// The first whole minute strictly after `after` that the expression matches.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)?.checked_add_signed(chrono::Duration::minutes(1))?;
        let mut day = start.date_naive();
        let last = NaiveDate::from_ymd_opt(*self.years.last()? as i32, 12, 31)?;
        while day <= last {
            if self.day_matches(day) {
                for &hour in &self.hours {
                    for &minute in &self.minutes {
                        let time = NaiveTime::from_hms_opt(hour, minute, 0)?;
                        let candidate = Utc.from_utc_datetime(&day.and_time(time));
                        if candidate >= start {
                            return Some(candidate);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    fn day_matches(&self, day: NaiveDate) -> bool {
        let year_ok = u32::try_from(day.year()).is_ok_and(|y| self.years.contains(&y));
        let month_ok = self.months.contains(&day.month());
        let dom_ok = self.days_of_month.as_ref().is_none_or(|d| d.contains(&day.day()));
        let dow_ok = self.days_of_week.as_ref().is_none_or(|d| d.contains(&day.weekday().number_from_sunday()));
        year_ok && month_ok && dom_ok && dow_ok
    }
}

/// One cron field: `*`, `?` (handled by the caller), `a`, `a-b`, `a/n`, `a-b/n`,
/// `*/n`, comma-separated; `names` (if any) stand for `min`, `min + 1`, ...
fn field(name: &str, text: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<u32>, CronError> {
    let invalid = |why: &str| CronError::Invalid(format!("{name} {text:?}: {why}"));
    let value = |v: &str| -> Result<u32, CronError> {
        let upper = v.to_ascii_uppercase();
        let n = match names.iter().position(|n| *n == upper) {
            Some(i) => min + i as u32,
            None => v.parse().map_err(|_| invalid(&format!("{v:?} is not a number")))?,
        };
        if n < min || n > max {
            return Err(invalid(&format!("{n} is outside {min}-{max}")));
        }
        Ok(n)
    };
    let mut allowed = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| invalid("the step is not a number"))?;
                if step == 0 {
                    return Err(invalid("the step must be positive"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` runs from 5 to the end; a lone `5` is just 5.
                None if step > 1 => (value(range)?, max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(invalid(&format!("{from}-{to} is an empty range")));
        }
        allowed.extend((from..=to).step_by(step as usize));
    }
    allowed.sort_unstable();
    allowed.dedup();
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn cron(text: &str) -> Cron {
        match Expression::parse(text) {
            Ok(Expression::Cron(cron)) => *cron,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn rates() {
        let rate = |t: &str| Expression::parse(t);
        assert_eq!(rate("rate(1 minute)"), Ok(Expression::Rate(Duration::from_secs(60))));
        assert_eq!(rate("rate(5 minutes)"), Ok(Expression::Rate(Duration::from_secs(300))));
        assert_eq!(rate(" rate(2 hours) "), Ok(Expression::Rate(Duration::from_secs(7200))));
        assert_eq!(rate("rate(1 day)"), Ok(Expression::Rate(Duration::from_secs(86_400))));
        for bad in
            ["rate(0 minutes)", "rate(5)", "rate(five minutes)", "rate(5 weeks)", "every 5 minutes", "rate(1 minute"]
        {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_next_runs() {
        // Every day at 12:00 UTC.
        let noon = cron("cron(0 12 * * ? *)");
        assert_eq!(noon.next_after(at("2025-03-01T11:59:30Z")), Some(at("2025-03-01T12:00:00Z")));
        assert_eq!(noon.next_after(at("2025-03-01T12:00:00Z")), Some(at("2025-03-02T12:00:00Z")));
        // Every 15 minutes from 5 past, weekdays (MON-FRI), 2025-03-01 is a Saturday.
        let quarter = cron("cron(5/15 * ? * MON-FRI *)");
        assert_eq!(quarter.next_after(at("2025-03-01T10:00:00Z")), Some(at("2025-03-03T00:05:00Z")));
        assert_eq!(quarter.next_after(at("2025-03-03T00:05:00Z")), Some(at("2025-03-03T00:20:00Z")));
        assert_eq!(quarter.next_after(at("2025-03-03T23:50:00Z")), Some(at("2025-03-04T00:05:00Z")));
        // First of the month, lists and names.
        let monthly = cron("cron(30 6,18 1 JAN,jul ? 2026-2027)");
        assert_eq!(monthly.next_after(at("2025-03-01T00:00:00Z")), Some(at("2026-01-01T06:30:00Z")));
        assert_eq!(monthly.next_after(at("2026-01-01T06:30:00Z")), Some(at("2026-01-01T18:30:00Z")));
        assert_eq!(monthly.next_after(at("2026-01-01T18:30:00Z")), Some(at("2026-07-01T06:30:00Z")));
        assert_eq!(monthly.next_after(at("2027-07-01T18:30:00Z")), None);
        // Weekday numbers: 1 is Sunday. 2025-03-02 is a Sunday.
        let sunday = cron("cron(0 0 ? * 1 *)");
        assert_eq!(sunday.next_after(at("2025-02-27T00:00:00Z")), Some(at("2025-03-02T00:00:00Z")));
        // WED is a name, not the W wildcard.
        assert!(matches!(Expression::parse("cron(0 0 ? * WED *)"), Ok(Expression::Cron(_))));
    }

    #[test]
    fn cron_errors_and_unsupported() {
        for bad in [
            "cron(0 12 * * * *)",
            "cron(0 12 ? * ? *)",
            "cron(0 12 * *)",
            "cron(60 * * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 0 32 * ? *)",
            "cron(0 0 ? * 8 *)",
            "cron(0 0 ? FOO * *)",
            "cron(*/0 * * * ? *)",
            "cron(0 0 5-1 * ? *)",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad}");
        }
        for unsupported in ["cron(0 0 L * ? *)", "cron(0 0 15W * ? *)", "cron(0 0 ? * 6#3 *)", "cron(0 0 ? * 6L *)"] {
            assert!(matches!(Expression::parse(unsupported), Ok(Expression::Unsupported { .. })), "{unsupported}");
        }
    }
}
