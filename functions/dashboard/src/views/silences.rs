//! `/api/silences`: the operators' silences still holding, and their
//! maintenance windows (recurring silences) with the next opening of each.

use serde::Serialize;

use hemostat_protocol::{
    maintenance::{self, Recurring},
    silence::{Silence, TargetKind},
};

/// One live silence, for the silences panel and `/api/silences`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceRow {
    /// What `hemostat silence rm` takes.
    pub id: String,
    /// `container`, `host`, `image`, `project` or `label`.
    pub kind: TargetKind,
    /// The target's value (`web-1/api`, `shop/api`, `team=payments`).
    pub target: String,
    /// As the CLI shows it: `web-1/api`, `host:web-1`, `image:shop/api`...
    pub target_text: String,
    pub reason: String,
    pub by: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC: when it ends by itself.
    pub until: String,
    /// Its end in epoch ms (the sorted set's score).
    pub until_ms: i64,
    pub seconds_left: f64,
}

/// One maintenance window, for the silences panel and `/api/silences`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRow {
    /// What `hemostat silence rm` takes.
    pub id: String,
    pub kind: TargetKind,
    pub target: String,
    pub target_text: String,
    pub reason: String,
    pub by: String,
    /// `every day at 02:00 for 45m tz Europe/Berlin`.
    pub schedule: String,
    /// Whether a window is open now (then `next_*` is the open one).
    pub open: bool,
    /// The open window's start, else the next one's: RFC 3339, UTC.
    pub next_start: String,
    pub next_start_ms: i64,
    pub next_end: String,
    pub next_end_ms: i64,
    /// Until the open window closes, else until the next one opens.
    pub seconds_to_change: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilencesView {
    pub generated_at_ms: i64,
    /// Soonest end first.
    pub silences: Vec<SilenceRow>,
    /// Every maintenance window that will open again, the soonest change
    /// (an open one closing, a closed one opening) first.
    pub windows: Vec<WindowRow>,
    /// Members of the set that are not silences (skipped).
    pub skipped: usize,
}

/// The silences still holding at `now_ms`, soonest end first, from the
/// sorted set's members and scores (its end in ms). Ended ones are left out
/// without removing them: the dashboard only reads (the CLI and the gate
/// prune them). A member that is not a silence is counted, not shown.
pub fn live_silences(raw: &[(String, f64)], now_ms: i64) -> (Vec<(Silence, i64)>, usize) {
    let mut skipped = 0;
    let mut live: Vec<(Silence, i64)> = raw
        .iter()
        .filter(|(_, score)| *score as i64 > now_ms)
        .filter_map(|(member, score)| match serde_json::from_str::<Silence>(member) {
            Ok(s) => Some((s, *score as i64)),
            Err(_) => {
                skipped += 1;
                None
            }
        })
        .collect();
    live.sort_by_key(|(_, end)| *end);
    (live, skipped)
}

/// Adds the maintenance windows open at `now_ms` (from the hash's values)
/// to `live`, as silences ending with their window, soonest end first.
pub fn add_open_windows(live: &mut Vec<(Silence, i64)>, windows: &[String], now_ms: i64) {
    let recurring = maintenance::parse_all(windows);
    live.extend(maintenance::open_silences(&recurring, now_ms).into_iter().map(|s| {
        let end = s.until_ms();
        (s, end)
    }));
    live.sort_by_key(|(_, end)| *end);
}

fn window_rows(windows: &[String], now_ms: i64) -> Vec<WindowRow> {
    let rfc3339 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let mut rows: Vec<WindowRow> = maintenance::parse_all(windows)
        .into_iter()
        .filter_map(|r: Recurring| {
            let w = r.next_window(now_ms)?;
            let open = w.is_open_at(now_ms);
            let change = if open { w.end_ms } else { w.start_ms };
            Some(WindowRow {
                target_text: r.target_text(),
                schedule: r.schedule.to_string(),
                open,
                next_start: rfc3339(w.start_ms),
                next_start_ms: w.start_ms,
                next_end: rfc3339(w.end_ms),
                next_end_ms: w.end_ms,
                seconds_to_change: ((change - now_ms).max(0) as f64) / 1000.0,
                id: r.id,
                kind: r.kind,
                target: r.target,
                reason: r.reason,
                by: r.by,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.seconds_to_change.total_cmp(&b.seconds_to_change));
    rows
}

/// `/api/silences`: every live silence, every maintenance window.
pub fn silences_view(raw: &[(String, f64)], windows: &[String], now_ms: i64) -> SilencesView {
    let (live, skipped) = live_silences(raw, now_ms);
    let silences = live
        .into_iter()
        .map(|(s, end)| SilenceRow {
            target_text: s.target_text(),
            seconds_left: ((end - now_ms).max(0) as f64) / 1000.0,
            until_ms: end,
            id: s.id,
            kind: s.kind,
            target: s.target,
            reason: s.reason,
            by: s.by,
            created: s.created,
            until: s.until,
        })
        .collect();
    SilencesView { generated_at_ms: now_ms, silences, windows: window_rows(windows, now_ms), skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    use crate::views::fixtures::{HOSTILE, NOW, silence};

    #[test]
    fn silences_are_the_live_ones_soonest_end_first_with_hostile_reasons_as_data() {
        let raw = vec![
            silence("old", TargetKind::Host, "h1", "ended", NOW - 1),
            silence("now", TargetKind::Host, "h1", "ends this very ms", NOW),
            ("not a silence".to_owned(), (NOW + 5_000) as f64),
            silence("b", TargetKind::Image, "shop/api", HOSTILE, NOW + 90_000),
            silence("a", TargetKind::Container, "h1/web", "db migration", NOW + 30_500),
            silence("l", TargetKind::Label, "team=pay", "freeze", NOW + 3_600_000),
        ];
        let view = silences_view(&raw, &[], NOW);
        let ids: Vec<&str> = view.silences.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "l"], "ended ones left out, soonest end first");
        assert_eq!(view.skipped, 1);
        let a = &view.silences[0];
        assert_eq!(
            (a.target_text.as_str(), a.reason.as_str(), a.by.as_str(), a.seconds_left, a.until_ms),
            ("h1/web", "db migration", "alice", 30.5, NOW + 30_500)
        );
        assert!(a.until.starts_with("2027-"), "{}", a.until);
        assert_eq!(view.silences[1].target_text, "image:shop/api");
        assert_eq!(view.silences[1].reason, HOSTILE, "kept verbatim: the page sets it as text");

        let json = crate::handler::escape_json_for_html(&serde_json::to_string(&view).unwrap());
        assert!(!json.contains('<') && !json.contains('>'), "{json}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["silences"][1]["reason"], HOSTILE);
        assert_eq!(back["silences"][0]["kind"], "container");
        assert_eq!(silences_view(&raw, &[], NOW + 4_000_000).silences, []);
    }

    #[test]
    fn windows_show_their_next_opening_and_an_open_one_holds_as_a_silence() {
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis();
        let window = |id: &str, schedule: &str| {
            serde_json::json!({"id": id, "kind": "container", "target": "h1/db", "reason": "backup",
                "created": "2026-12-01T00:00:00Z", "by": "alice", "schedule": schedule})
            .to_string()
        };
        let windows = vec![
            window("open", "every day at 02:00 for 45m tz Europe/Berlin"),
            window("later", "every sat at 12:00 for 1h tz UTC"),
            "not a window".to_owned(),
        ];
        // Monday 2026-12-07 01:10 UTC: 02:10 in Berlin.
        let now = at("2026-12-07T01:10:00Z");
        let view = silences_view(&[], &windows, now);
        let rows: Vec<(&str, bool, &str)> =
            view.windows.iter().map(|w| (w.id.as_str(), w.open, w.next_start.as_str())).collect();
        assert_eq!(
            rows,
            [("open", true, "2026-12-07T01:00:00.000Z"), ("later", false, "2026-12-12T12:00:00.000Z")],
            "the soonest change first"
        );
        assert_eq!(
            (view.windows[0].seconds_to_change, view.windows[0].next_end.as_str()),
            (2100.0, "2026-12-07T01:45:00.000Z")
        );
        assert_eq!(view.windows[1].schedule, "every sat at 12:00 for 1h tz UTC");
        let mut live = Vec::new();
        add_open_windows(&mut live, &windows, now);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].0.refusal(), "silenced: backup (maintenance window until 2026-12-07T01:45:00.000Z)");
        add_open_windows(&mut live, &windows, at("2026-12-07T02:00:00Z"));
        assert_eq!(live.len(), 1, "closed: nothing added");
    }
}
