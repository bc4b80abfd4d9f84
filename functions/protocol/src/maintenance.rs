//! Maintenance windows: silences that recur ("every day at 02:00 for 45m,
//! Berlin time"), for work that stops a container on purpose and on a
//! schedule, such as a nightly backup stopping its database.
//!
//! Two ways to declare one, answered by the same [`Schedule`]:
//! - an operator's recurring silence, `hemostat silence add TARGET --every
//!   day --at 02:00 --for 45m --tz Europe/Berlin --reason backup`, on any
//!   target a silence takes ([`Recurring`]);
//! - the container's own label, `hemostat.maintenance=every day at 02:00
//!   for 45m tz Europe/Berlin` (its owner's, set with the backup job that
//!   stops it), which travels in its policy like the other `hemostat.*`
//!   labels ([`crate::policy::LABEL_MAINTENANCE`]).
//!
//! While a window is open, the gate refuses every action on a container it
//! covers with `silenced: <reason> (maintenance window until <RFC 3339>)`:
//! a stop or an exit inside the window is still seen, alerted and audited
//! (the refusal is the audit entry), just never "healed". Once the window
//! closes, the next failure is acted on as usual. An open window is handed
//! to every reader as an ordinary [`Silence`] that ends with the window
//! ([`Recurring::silence_at`]), so the gate, the collector (label targets,
//! its own edge restarts), `hemostat explain` and the dashboard apply it
//! with the code that applies silences.
//!
//! Storage: not the silences' sorted set, whose score is the silence's end
//! (readers drop a member once its score is past, and a schedule has no
//! end). Every recurring silence lives in one hash, [`keys::MAINTENANCE`]:
//! field = id, value = the JSON of a [`Recurring`]. One key, so the whole
//! list is one `HGETALL` on a single node and on a cluster alike, and `rm`
//! is one `HDEL`. One with an end date (`--until`) opens no window past it;
//! readers skip it then, and `hemostat silence ls` removes it.
//!
//! The schedule: a set of weekdays, a local start time, a length, and an
//! IANA time zone (UTC by default), written as the CLI's flags are:
//! `every mon,thu at 23:30 for 1h tz Europe/Berlin`. Small on purpose: it
//! says what a backup's crontab line says and nothing a reader could take
//! two ways. Times are local wall-clock times in the zone, with its DST:
//! - a start that does not exist (02:30 on a spring-forward day in Berlin)
//!   moves forward by the gap (03:30 CEST), as RFC 5545 and cron do, so the
//!   window still opens that day;
//! - a start that exists twice (02:30 on a fall-back day) is the first;
//! - the length is elapsed time: `for 45m` is 45 real minutes even across a
//!   DST change;
//! - a window may cross midnight (`at 23:30 for 2h` on a Monday is open
//!   until 01:30 on Tuesday); the day named is the day it starts.
//!
//! The zone database is the one bundled in the binaries (jiff's), not the
//! host's, so a Lambda gate and a host collector agree on every rule.

use std::{collections::HashMap, fmt, time::Duration};

use jiff::{Timestamp, civil::Date, tz::TimeZone};
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::{
    container::ContainerRef,
    error::ProtocolError,
    keys,
    silence::{Silence, TargetKind},
};

/// The shortest window.
pub const MIN_LENGTH: Duration = Duration::from_secs(60);
/// The longest window: a week, so a window is open at most until the same
/// weekday's next one starts and [`Schedule::window_at`] looks back 8 days.
pub const MAX_LENGTH: Duration = Duration::from_secs(7 * 24 * 3600);

/// Each weekday's short and full name (`--every mon` or `--every monday`), Monday first.
const DAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];
const EVERY_DAY: u8 = 0b111_1111;
const WEEKDAYS: u8 = 0b001_1111;
const WEEKENDS: u8 = 0b110_0000;

/// When a window opens and for how long: weekdays, a local start, a
/// length, a time zone. Written and read as its text
/// (`every day at 02:00 for 45m tz Europe/Berlin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Bit `i`: the window opens on weekday `i` (Monday = 0).
    days: u8,
    hour: i8,
    minute: i8,
    length_seconds: u32,
    zone: String,
    tz: TimeZone,
}

/// One occurrence of a window: open from `start_ms` (included) to `end_ms`
/// (excluded), epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    pub fn is_open_at(&self, now_ms: i64) -> bool {
        self.start_ms <= now_ms && now_ms < self.end_ms
    }
}

impl Schedule {
    /// From the CLI's flags: `--every` (`day`, `weekdays`, `weekends`, or
    /// days such as `mon,thu`), `--at` (`HH:MM`, local), `--for` (`45m`,
    /// `2h`), `--tz` (an IANA zone, `UTC` when absent).
    pub fn new(every: &str, at: &str, length: &str, zone: Option<&str>) -> Result<Schedule, String> {
        let days = parse_days(every)?;
        let (hour, minute) = parse_at(at)?;
        let length = crate::config::parse_duration(length).map_err(|e| format!("for {length:?}: {e}"))?;
        if length < MIN_LENGTH || length > MAX_LENGTH {
            return Err(format!("for {}: a window lasts from 1m to 168h (a week)", length_text(length.as_secs())));
        }
        if length.subsec_nanos() != 0 {
            return Err("for: whole seconds".to_owned());
        }
        let zone = zone.map(str::trim).filter(|z| !z.is_empty()).unwrap_or("UTC");
        let tz = TimeZone::get(zone)
            .map_err(|_| format!("tz {zone:?}: not a time zone (an IANA name such as Europe/Berlin, or UTC)"))?;
        Ok(Schedule { days, hour, minute, length_seconds: length.as_secs() as u32, zone: zone.to_owned(), tz })
    }

    /// From its text: `every <days> at <HH:MM> for <length> [tz <zone>]`,
    /// the words in any order (what a `hemostat.maintenance` label holds).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut words = text.split_whitespace();
        let mut given: HashMap<&str, &str> = HashMap::new();
        while let Some(word) = words.next() {
            let key = word.to_ascii_lowercase();
            let key = match key.as_str() {
                "every" => "every",
                "at" => "at",
                "for" => "for",
                "tz" => "tz",
                _ => {
                    return Err(format!(
                        "{word:?}: expected `every <days> at <HH:MM> for <length> [tz <zone>]` \
                         (e.g. every day at 02:00 for 45m tz Europe/Berlin)"
                    ));
                }
            };
            let value = words.next().ok_or_else(|| format!("`{key}` needs a value"))?;
            if given.insert(key, value).is_some() {
                return Err(format!("`{key}` is given twice"));
            }
        }
        let need = |key: &str| given.get(key).copied().ok_or_else(|| format!("`{key}` is missing (in {text:?})"));
        Schedule::new(need("every")?, need("at")?, need("for")?, given.get("tz").copied())
    }

    pub fn length(&self) -> Duration {
        Duration::from_secs(u64::from(self.length_seconds))
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The window open at `now_ms`, if any (of two overlapping ones, the
    /// one that ends last).
    pub fn window_at(&self, now_ms: i64) -> Option<Window> {
        let today = self.local_date(now_ms)?;
        let mut day = today;
        let mut open: Option<Window> = None;
        // A window opened at most a week ago (MAX_LENGTH) is still open; a
        // day more for a zone's date being ahead of another's.
        for _ in 0..=8 {
            if let Some(w) = self.window_on(day).filter(|w| w.is_open_at(now_ms))
                && open.is_none_or(|o| w.end_ms > o.end_ms)
            {
                open = Some(w);
            }
            match day.yesterday() {
                Ok(before) => day = before,
                Err(_) => break, // the start of time
            }
        }
        open
    }

    /// The window open at `now_ms`, else the next one to open.
    pub fn next_window(&self, now_ms: i64) -> Option<Window> {
        if let Some(open) = self.window_at(now_ms) {
            return Some(open);
        }
        let mut day = self.local_date(now_ms)?.yesterday().ok()?;
        for _ in 0..=9 {
            if let Some(w) = self.window_on(day).filter(|w| w.start_ms > now_ms) {
                return Some(w);
            }
            match day.tomorrow() {
                Ok(after) => day = after,
                Err(_) => break, // the end of time
            }
        }
        None
    }

    /// The window that starts on local `day`, if the schedule opens one then.
    fn window_on(&self, day: Date) -> Option<Window> {
        let bit = 1u8 << day.weekday().to_monday_zero_offset();
        if self.days & bit == 0 {
            return None;
        }
        // Compatible disambiguation: a start in a DST gap moves forward by
        // the gap, a start in a fold is the earlier of the two.
        let start = self.tz.to_zoned_datetime(day.at(self.hour, self.minute, 0, 0)).ok()?.timestamp();
        let start_ms = start.as_millisecond();
        Some(Window { start_ms, end_ms: start_ms + i64::from(self.length_seconds) * 1000 })
    }

    fn local_date(&self, now_ms: i64) -> Option<Date> {
        Some(Timestamp::from_millisecond(now_ms).ok()?.to_zoned_datetime(self.tz.clone()).date())
    }

    /// `every mon,thu` part's value.
    fn days_text(&self) -> String {
        match self.days {
            EVERY_DAY => "day".to_owned(),
            WEEKDAYS => "weekdays".to_owned(),
            WEEKENDS => "weekends".to_owned(),
            days => DAYS
                .iter()
                .enumerate()
                .filter(|(i, _)| days & (1 << i) != 0)
                .map(|(_, (name, _))| *name)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "every {} at {:02}:{:02} for {} tz {}",
            self.days_text(),
            self.hour,
            self.minute,
            length_text(u64::from(self.length_seconds)),
            self.zone
        )
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Schedule, String> {
        Schedule::parse(s)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_days(every: &str) -> Result<u8, String> {
    let every = every.trim().to_ascii_lowercase();
    match every.as_str() {
        "day" | "daily" => return Ok(EVERY_DAY),
        "weekdays" => return Ok(WEEKDAYS),
        "weekends" => return Ok(WEEKENDS),
        _ => {}
    }
    let mut days = 0u8;
    for name in every.split(',') {
        let name = name.trim();
        let Some(i) = DAYS.iter().position(|(_, full)| name.len() >= 3 && full.starts_with(name)) else {
            return Err(format!(
                "every {every:?}: expected day, weekdays, weekends, or days such as mon,thu (mon tue wed thu fri sat sun)"
            ));
        };
        days |= 1 << i;
    }
    Ok(days)
}

fn parse_at(at: &str) -> Result<(i8, i8), String> {
    let bad = || format!("at {at:?}: expected a local time HH:MM (00:00 to 23:59)");
    let (h, m) = at.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let hour: i8 = h.parse().map_err(|_| bad())?;
    let minute: i8 = m.parse().map_err(|_| bad())?;
    if !(0..24).contains(&hour) || !(0..60).contains(&minute) {
        return Err(bad());
    }
    Ok((hour, minute))
}

/// `2700` -> `45m`, `7200` -> `2h`, `90` -> `90s`: the shortest exact form.
fn length_text(seconds: u64) -> String {
    if seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An operator's recurring silence, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurring {
    /// Short random id, what `silence rm` takes (as for a silence).
    pub id: String,
    pub kind: TargetKind,
    /// As [`Silence::target`].
    pub target: String,
    pub reason: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub by: String,
    pub schedule: Schedule,
    /// RFC 3339, UTC: no window opens at or after it (one open then runs
    /// to its end); none: it recurs until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl Recurring {
    fn until_ms(&self) -> Option<i64> {
        self.until.as_deref().map(|u| chrono::DateTime::parse_from_rfc3339(u).map_or(0, |t| t.timestamp_millis()))
    }

    fn counts(&self, w: Window) -> bool {
        self.until_ms().is_none_or(|until| w.start_ms < until)
    }

    /// Its window open at `now_ms`, if any.
    pub fn window_at(&self, now_ms: i64) -> Option<Window> {
        self.schedule.window_at(now_ms).filter(|w| self.counts(*w))
    }

    /// Its window open at `now_ms`, else its next one; none once its end
    /// date is past.
    pub fn next_window(&self, now_ms: i64) -> Option<Window> {
        self.schedule.next_window(now_ms).filter(|w| self.counts(*w))
    }

    /// Whether it will never open a window again after `now_ms`.
    pub fn ended(&self, now_ms: i64) -> bool {
        self.next_window(now_ms).is_none()
    }

    /// The silence its window open at `now_ms` stands for: same id, target
    /// and reason, ending with the window.
    pub fn silence_at(&self, now_ms: i64) -> Option<Silence> {
        let w = self.window_at(now_ms)?;
        Some(Silence {
            id: self.id.clone(),
            kind: self.kind,
            target: self.target.clone(),
            reason: self.reason.clone(),
            created: self.created.clone(),
            until: rfc3339(w.end_ms),
            by: self.by.clone(),
            window: Some(self.schedule.to_string()),
        })
    }

    /// `host/name`, `host:web-1`, ...: as [`Silence::target_text`].
    pub fn target_text(&self) -> String {
        match self.kind {
            TargetKind::Container => self.target.clone(),
            kind => format!("{kind}:{}", self.target),
        }
    }
}

/// Who set the silence a `hemostat.maintenance` label stands for.
pub const LABEL_BY: &str = "label";

/// The silence a container's own `hemostat.maintenance` label stands for
/// while its window is open: the container alone, with the label as the
/// reason. `schedule` is the label's value as the policy carries it.
pub fn label_silence(container: &ContainerRef, schedule: &str, now_ms: i64) -> Option<Silence> {
    let schedule = Schedule::parse(schedule).ok()?;
    let w = schedule.window_at(now_ms)?;
    Some(Silence {
        id: crate::policy::LABEL_MAINTENANCE.to_owned(),
        kind: TargetKind::Container,
        target: container.key(),
        reason: format!("{}={schedule}", crate::policy::LABEL_MAINTENANCE),
        created: rfc3339(w.start_ms),
        until: rfc3339(w.end_ms),
        by: LABEL_BY.to_owned(),
        window: Some(schedule.to_string()),
    })
}

/// The silences of the windows open at `now_ms`.
pub fn open_silences(all: &[Recurring], now_ms: i64) -> Vec<Silence> {
    all.iter().filter_map(|r| r.silence_at(now_ms)).collect()
}

/// Stores `recurring` (under its id).
pub async fn add<C: ConnectionLike + Send>(conn: &mut C, recurring: &Recurring) -> Result<(), ProtocolError> {
    let json = serde_json::to_string(recurring)?;
    let () = redis::cmd("HSET").arg(keys::MAINTENANCE).arg(&recurring.id).arg(json).query_async(conn).await?;
    Ok(())
}

/// Every recurring silence stored, in id order, ended ones included; a
/// value that does not read (someone else's, a newer version's) is skipped.
pub async fn all<C: ConnectionLike + Send>(conn: &mut C) -> Result<Vec<Recurring>, ProtocolError> {
    let raw: HashMap<String, String> = redis::cmd("HGETALL").arg(keys::MAINTENANCE).query_async(conn).await?;
    Ok(parse_all(raw.values()))
}

/// The recurring silences among `values` (a hash's), in id order.
pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a String>) -> Vec<Recurring> {
    let mut all: Vec<Recurring> = values.into_iter().filter_map(|v| serde_json::from_str(v).ok()).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// Removes the recurring silence `id`; `false` when there was none.
pub async fn remove<C: ConnectionLike + Send>(conn: &mut C, id: &str) -> Result<bool, ProtocolError> {
    let removed: u64 = redis::cmd("HDEL").arg(keys::MAINTENANCE).arg(id).query_async(conn).await?;
    Ok(removed > 0)
}

/// Removes those whose end date is past and that will open no window
/// again; returns the ones left.
pub async fn prune<C: ConnectionLike + Send>(
    conn: &mut C,
    all: Vec<Recurring>,
    now_ms: i64,
) -> Result<Vec<Recurring>, ProtocolError> {
    let (ended, left): (Vec<Recurring>, Vec<Recurring>) = all.into_iter().partition(|r| r.ended(now_ms));
    for r in ended {
        remove(conn, &r.id).await?;
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch ms of an RFC 3339 instant.
    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    fn window(start: &str, end: &str) -> Window {
        Window { start_ms: at(start), end_ms: at(end) }
    }

    #[test]
    fn the_text_reads_back_as_written_and_the_flags_make_the_same() {
        let s = Schedule::parse("every day at 02:00 for 45m tz Europe/Berlin").unwrap();
        assert_eq!(s.to_string(), "every day at 02:00 for 45m tz Europe/Berlin");
        assert_eq!(Schedule::new("daily", "2:00", "2700s", Some("Europe/Berlin")).unwrap(), s);
        let s = Schedule::parse("for 90m AT 23:30 every Thursday,mon").unwrap();
        assert_eq!(s.to_string(), "every mon,thu at 23:30 for 90m tz UTC", "UTC by default, days in week order");
        assert_eq!(
            Schedule::parse("every sat,sun at 00:00 for 2h").unwrap().to_string().split(" at").next(),
            Some("every weekends")
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"every mon,thu at 23:30 for 90m tz UTC\"");
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let cases = [
            ("every day at 02:00", "`for` is missing"),
            ("every day at 24:00 for 1h", "at \"24:00\""),
            ("every day at 2 for 1h", "at \"2\""),
            ("every funday at 02:00 for 1h", "every \"funday\""),
            ("every mo at 02:00 for 1h", "every \"mo\""),
            ("every day at 02:00 for 30s", "from 1m to 168h"),
            ("every day at 02:00 for 8d", "unknown unit"),
            ("every day at 02:00 for 169h", "from 1m to 168h"),
            ("every day at 02:00 for 1h tz Mars/Olympus", "not a time zone"),
            ("every day at 02:00 for 1h at 03:00", "given twice"),
            ("nightly", "expected `every"),
            ("every", "needs a value"),
        ];
        for (text, want) in cases {
            let e = Schedule::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_daily_window_is_open_from_its_start_to_its_end_in_its_zone() {
        // 02:00 Berlin in winter is 01:00 UTC.
        let s = Schedule::parse("every day at 02:00 for 45m tz Europe/Berlin").unwrap();
        let w = window("2026-12-07T01:00:00Z", "2026-12-07T01:45:00Z");
        assert_eq!(s.window_at(at("2026-12-07T01:00:00Z")), Some(w), "the start is included");
        assert_eq!(s.window_at(at("2026-12-07T01:44:59.999Z")), Some(w));
        assert_eq!(s.window_at(at("2026-12-07T01:45:00Z")), None, "the end is not");
        assert_eq!(s.window_at(at("2026-12-07T00:59:59Z")), None);
        // Closed: the next is tomorrow's; open: the next is the open one.
        assert_eq!(
            s.next_window(at("2026-12-07T01:45:00Z")),
            Some(window("2026-12-08T01:00:00Z", "2026-12-08T01:45:00Z"))
        );
        assert_eq!(s.next_window(at("2026-12-07T01:30:00Z")), Some(w));
        assert_eq!(s.next_window(at("2026-12-06T22:00:00Z")), Some(w));
        // In summer the same local time is 00:00 UTC.
        assert_eq!(
            s.window_at(at("2026-07-01T00:10:00Z")),
            Some(window("2026-07-01T00:00:00Z", "2026-07-01T00:45:00Z"))
        );
    }

    #[test]
    fn a_window_crossing_midnight_belongs_to_the_day_it_starts() {
        // Monday 2026-12-07 23:30 UTC for 2h: open until Tuesday 01:30.
        let s = Schedule::parse("every mon at 23:30 for 2h").unwrap();
        let monday = window("2026-12-07T23:30:00Z", "2026-12-08T01:30:00Z");
        assert_eq!(s.window_at(at("2026-12-08T01:00:00Z")), Some(monday), "Tuesday 01:00 is Monday's window");
        assert_eq!(s.window_at(at("2026-12-08T01:30:00Z")), None);
        // Tuesday night opens nothing: the next is the Monday after.
        assert_eq!(
            s.next_window(at("2026-12-08T02:00:00Z")),
            Some(window("2026-12-14T23:30:00Z", "2026-12-15T01:30:00Z"))
        );
    }

    #[test]
    fn weekdays_are_the_zones_own() {
        // Thursday 23:30 in Los Angeles is Friday 07:30 UTC (PST, -8).
        let s = Schedule::parse("every thu at 23:30 for 1h tz America/Los_Angeles").unwrap();
        assert_eq!(
            s.window_at(at("2026-12-11T07:45:00Z")),
            Some(window("2026-12-11T07:30:00Z", "2026-12-11T08:30:00Z"))
        );
        assert_eq!(s.window_at(at("2026-12-10T23:45:00Z")), None, "23:45 Thursday in UTC is not 23:30 in Los Angeles");
        let weekdays = Schedule::parse("every weekdays at 12:00 for 1h").unwrap();
        assert!(weekdays.window_at(at("2026-12-11T12:30:00Z")).is_some(), "Friday");
        assert!(weekdays.window_at(at("2026-12-12T12:30:00Z")).is_none(), "Saturday");
        assert_eq!(
            weekdays.next_window(at("2026-12-12T12:30:00Z")).unwrap().start_ms,
            at("2026-12-14T12:00:00Z"),
            "Monday"
        );
    }

    #[test]
    fn a_start_in_the_spring_forward_gap_moves_forward_by_the_gap() {
        // 2027-03-28, Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let s = Schedule::parse("every day at 02:30 for 45m tz Europe/Berlin").unwrap();
        // 03:30 CEST = 01:30 UTC; the day before, 02:30 CET = 01:30 UTC as well.
        let gap_day = window("2027-03-28T01:30:00Z", "2027-03-28T02:15:00Z");
        assert_eq!(s.window_at(at("2027-03-28T01:40:00Z")), Some(gap_day));
        assert_eq!(s.next_window(at("2027-03-28T00:00:00Z")), Some(gap_day), "the window still opens that day");
        // The day after, 02:30 CEST = 00:30 UTC.
        assert_eq!(s.next_window(at("2027-03-28T03:00:00Z")).unwrap().start_ms, at("2027-03-29T00:30:00Z"));
    }

    #[test]
    fn a_start_in_the_fall_back_fold_is_the_first_and_the_length_is_elapsed_time() {
        // 2026-10-25, Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let s = Schedule::parse("every day at 02:30 for 1h tz Europe/Berlin").unwrap();
        // The first 02:30 is CEST (00:30 UTC); an hour of real time later is
        // 02:30 CET, the second one.
        assert_eq!(
            s.window_at(at("2026-10-25T01:00:00Z")),
            Some(window("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"))
        );
        assert_eq!(s.window_at(at("2026-10-25T01:30:00Z")), None);
        // A window across the change lasts its length in real time: 23:30 CEST
        // + 4h is 02:30 CET (local clocks moved 5 h).
        let night = Schedule::parse("every sat at 23:30 for 4h tz Europe/Berlin").unwrap();
        assert_eq!(
            night.window_at(at("2026-10-24T22:00:00Z")),
            Some(window("2026-10-24T21:30:00Z", "2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn overlapping_windows_give_the_later_end_and_a_week_long_one_is_found() {
        let s = Schedule::parse("every day at 00:00 for 30h").unwrap();
        // Tuesday 03:00: Monday's (to Tuesday 06:00) and Tuesday's (to Wednesday 06:00).
        assert_eq!(s.window_at(at("2026-12-08T03:00:00Z")).unwrap().end_ms, at("2026-12-09T06:00:00Z"));
        let week = Schedule::parse("every mon at 00:00 for 168h").unwrap();
        assert_eq!(week.window_at(at("2026-12-13T23:59:00Z")).unwrap().start_ms, at("2026-12-07T00:00:00Z"));
    }

    fn recurring(until: Option<&str>) -> Recurring {
        Recurring {
            id: "m1".into(),
            kind: TargetKind::Container,
            target: "db-1/postgres".into(),
            reason: "nightly backup".into(),
            created: "2026-12-01T10:00:00.000Z".into(),
            by: "alice".into(),
            schedule: Schedule::parse("every day at 02:00 for 45m tz Europe/Berlin").unwrap(),
            until: until.map(str::to_owned),
        }
    }

    #[test]
    fn an_open_window_is_a_silence_ending_with_it() {
        let r = recurring(None);
        let s = r.silence_at(at("2026-12-07T01:10:00Z")).unwrap();
        assert_eq!(
            (s.id.as_str(), s.target_text().as_str(), s.until.as_str()),
            ("m1", "db-1/postgres", "2026-12-07T01:45:00.000Z")
        );
        assert_eq!(s.refusal(), "silenced: nightly backup (maintenance window until 2026-12-07T01:45:00.000Z)");
        assert!(s.matches(&crate::silence::Subject::of(&ContainerRef::new("db-1", "postgres"))));
        assert_eq!(r.silence_at(at("2026-12-07T02:00:00Z")), None);
        assert_eq!(
            open_silences(&[r.clone(), recurring(Some("2026-12-01T00:00:00Z"))], at("2026-12-07T01:10:00Z")).len(),
            1
        );
        let back: Recurring = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn an_end_date_stops_new_windows_not_an_open_one() {
        let r = recurring(Some("2026-12-07T01:30:00Z"));
        assert!(r.window_at(at("2026-12-07T01:40:00Z")).is_some(), "opened before the end date");
        assert!(r.ended(at("2026-12-07T01:45:00Z")));
        assert!(!recurring(None).ended(at("2099-01-01T00:00:00Z")));
        // An end date that does not read is past (as a silence's `until`).
        assert!(recurring(Some("garbage")).ended(at("2026-12-07T00:00:00Z")));
    }

    #[test]
    fn a_containers_label_is_a_silence_of_it_alone_while_its_window_is_open() {
        let c = ContainerRef::new("db-1", "postgres");
        let label = "every day at 02:00 for 45m tz Europe/Berlin";
        let s = label_silence(&c, label, at("2026-12-07T01:10:00Z")).unwrap();
        assert_eq!(
            s.refusal(),
            "silenced: hemostat.maintenance=every day at 02:00 for 45m tz Europe/Berlin \
             (maintenance window until 2026-12-07T01:45:00.000Z)"
        );
        assert!(s.matches(&crate::silence::Subject::of(&c)));
        assert!(!s.matches(&crate::silence::Subject::of(&ContainerRef::new("db-2", "postgres"))));
        assert_eq!(label_silence(&c, label, at("2026-12-07T03:00:00Z")), None);
        assert_eq!(label_silence(&c, "whenever", at("2026-12-07T01:10:00Z")), None);
    }
}
