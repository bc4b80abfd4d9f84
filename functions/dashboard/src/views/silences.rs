//! `/api/silences`: the operators' silences still holding.

use serde::Serialize;

use hemostat_protocol::silence::{Silence, TargetKind};

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilencesView {
    pub generated_at_ms: i64,
    /// Soonest end first.
    pub silences: Vec<SilenceRow>,
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

/// `/api/silences`: every live silence.
pub fn silences_view(raw: &[(String, f64)], now_ms: i64) -> SilencesView {
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
    SilencesView { generated_at_ms: now_ms, silences, skipped }
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
        let view = silences_view(&raw, NOW);
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
        assert_eq!(silences_view(&raw, NOW + 4_000_000).silences, []);
    }
}
