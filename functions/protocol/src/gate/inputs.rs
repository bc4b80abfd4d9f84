//! What the gate is told about a container beyond the state its scripts
//! read from Redis: the one place that turns a container's facts into the
//! gate's inputs, for the responder deciding and `hemostat explain`
//! previewing alike, so both give the same reasons in the same order.

use crate::{
    ContainerRef,
    facts::{Facts, Observed},
    gate::{GateSettings, Ladder},
    maintenance,
    policy::{ActionPolicy, LABEL_ACTION, Policy},
    silence::{AlertFacts, Silence},
};

/// What a request says about its container: it may only ask for less than
/// the container's collector allows (a stricter policy, a hold, a silence),
/// never change who the container is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    /// The container id the request was made for, if it names one.
    pub container_id: Option<&'a str>,
    pub policy: Option<&'a Policy>,
    pub held: Option<&'a str>,
    pub silenced_by: &'a [String],
}

/// What the gate believes about a container: its collector's account
/// ([`Facts`]), made stricter by what a request asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Belief {
    /// Identity, image, compose labels: the collector's alone; the policy,
    /// its own made stricter by the request's.
    pub observed: Observed,
    /// The collector's hold while it holds, else the request's.
    pub held: Option<String>,
    /// The silences the collector matched, and any the request names.
    pub silenced_by: Vec<String>,
    /// The container's own maintenance window (`hemostat.maintenance`),
    /// while it is open, as a silence.
    pub window: Option<Silence>,
}

impl Belief {
    /// `Err(refusal)` when the gate must not act whatever it finds: no
    /// collector reports the container, or the request is about another
    /// container than the one of that name now (recreated since).
    pub fn of(facts: Option<&Facts>, c: &ContainerRef, asked: &Asked<'_>, now_ms: i64) -> Result<Belief, String> {
        let Some((facts, observed)) = facts.and_then(|f| Some((f, f.container.as_ref()?))) else {
            return Err(format!(
                "unknown container: no collector reports {c} (a request cannot vouch for a container its collector does not know)"
            ));
        };
        if let Some(asked_id) = asked.container_id.filter(|id| !id.is_empty())
            && !same_id(asked_id, &observed.id)
        {
            return Err(format!(
                "container id mismatch: the request is for {}, {c} is now {} (recreated since?)",
                short(asked_id),
                short(&observed.id)
            ));
        }
        let policy = match asked.policy {
            Some(asked) => observed.policy.stricter(asked),
            None => observed.policy.clone(),
        };
        let held = facts.held_at(now_ms).or(asked.held.filter(|h| !h.is_empty())).map(str::to_owned);
        let mut silenced_by = facts.silenced_by.clone();
        silenced_by.extend(asked.silenced_by.iter().filter(|id| !facts.silenced_by.contains(id)).cloned());
        let window = observed.policy.maintenance.as_deref().and_then(|s| maintenance::label_silence(c, s, now_ms));
        Ok(Belief { observed: Observed { policy, ..observed.clone() }, held, silenced_by, window })
    }

    /// What silences are matched against besides the container's name,
    /// host and image.
    pub fn alert_facts(&self) -> AlertFacts {
        AlertFacts {
            compose_project: self.observed.compose_project.clone(),
            compose_service: self.observed.compose_service.clone(),
            silenced_by: self.silenced_by.clone(),
        }
    }

    /// The gate's facts, with the silence that holds for the container
    /// (an operator's, else its own maintenance window while open).
    pub fn facts<'a>(&'a self, silence: Option<&'a Silence>) -> ContainerFacts<'a> {
        ContainerFacts {
            policy: Some(&self.observed.policy),
            held: self.held.as_deref(),
            silence: silence.or(self.window.as_ref()),
        }
    }
}

/// Whether two references to a container id agree: the full id, or an id
/// prefix of at least Docker's short 12 digits.
fn same_id(asked: &str, known: &str) -> bool {
    asked == known || (asked.len() >= 12 && known.starts_with(asked))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A container's facts, as the newest alert about it tells them (the
/// responder reads them from the request's context, which the analyzer
/// copied from the alert; `hemostat` from the alert itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerFacts<'a> {
    /// Its policy, from its labels.
    pub policy: Option<&'a Policy>,
    /// The alert's `held`: why HemoStat must not act on it now (an
    /// operator's own docker command within the grace, a deploy, its
    /// parent's failure).
    pub held: Option<&'a str>,
    /// The first live silence that holds for it.
    pub silence: Option<&'a Silence>,
}

/// What the gate's container script takes besides its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInputs {
    /// A refusal decided before the gate's own limits, refused and audited
    /// with this reason.
    pub refusal: Option<String>,
    /// The container's own cooldown (`hemostat.cooldown`), else the fleet's.
    pub cooldown_seconds: u64,
    /// The container's own hourly cap (`hemostat.max_actions_per_hour`),
    /// else the fleet's.
    pub max_per_hour: u64,
    /// The container's own escalation ladder (`hemostat.escalation`), else
    /// the fleet's.
    pub ladder: Ladder,
    /// How long its ladder position is kept after a step: its cooldown,
    /// then the quiet period.
    pub ladder_seconds: u64,
}

impl GateSettings {
    /// The gate's inputs for a container. The refusals come first, in this
    /// order (the first that applies is the reason given): an operator's
    /// silence, the owner's policy (notify or none), then `held`; the script
    /// then checks the cooldown, the open circuit breaker and the hourly
    /// cap.
    pub fn inputs(&self, facts: &ContainerFacts<'_>) -> GateInputs {
        let policy = facts.policy;
        let refusal = facts
            .silence
            .map(Silence::refusal)
            .or_else(|| match policy.map(|p| p.action) {
                Some(ActionPolicy::Notify) => {
                    Some(format!("policy: notify ({LABEL_ACTION}=notify: alert only, never act)"))
                }
                Some(ActionPolicy::None) => Some(format!("policy: none ({LABEL_ACTION}=none: never act)")),
                _ => None,
            })
            .or_else(|| facts.held.filter(|h| !h.is_empty()).map(str::to_owned));
        let cooldown_seconds = policy.and_then(|p| p.cooldown_seconds).unwrap_or(self.cooldown_seconds);
        GateInputs {
            refusal,
            cooldown_seconds,
            max_per_hour: policy.and_then(|p| p.max_actions_per_hour).map_or(self.max_per_hour, u64::from),
            // The collector validated the label; one that no longer parses
            // leaves the fleet's ladder.
            ladder: policy
                .and_then(|p| p.escalation.as_deref())
                .and_then(|text| Ladder::parse(text).ok())
                .unwrap_or(self.escalation),
            ladder_seconds: cooldown_seconds.saturating_add(self.escalation_quiet_seconds).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::silence::TargetKind;

    fn silence() -> Silence {
        Silence {
            id: "s1".into(),
            kind: TargetKind::Host,
            target: "h1".into(),
            reason: "kernel upgrade".into(),
            created: "2026-12-02T10:00:00+00:00".into(),
            until: "2099-01-01T00:00:00+00:00".into(),
            by: "alice".into(),
            window: None,
        }
    }

    #[test]
    fn a_silence_outranks_the_policy_which_outranks_held() {
        let settings =
            GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 60, ..GateSettings::default() };
        let notify = Policy { action: ActionPolicy::Notify, ..Policy::default() };
        let s = silence();
        let held = Some("operator: docker restart 4 s ago (grace 30 s)");
        let all = ContainerFacts { policy: Some(&notify), held, silence: Some(&s) };
        assert_eq!(
            settings.inputs(&all).refusal.as_deref(),
            Some("silenced: kernel upgrade (until 2099-01-01T00:00:00+00:00)")
        );
        let no_silence = ContainerFacts { silence: None, ..all };
        assert_eq!(
            settings.inputs(&no_silence).refusal.as_deref(),
            Some("policy: notify (hemostat.action=notify: alert only, never act)")
        );
        let only_held = ContainerFacts { held, ..ContainerFacts::default() };
        assert_eq!(settings.inputs(&only_held).refusal.as_deref(), held);
        let empty_held = ContainerFacts { held: Some(""), ..ContainerFacts::default() };
        assert_eq!(settings.inputs(&empty_held).refusal, None);
    }

    #[test]
    fn a_containers_own_limits_replace_the_fleets() {
        let settings =
            GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 60, ..GateSettings::default() };
        let fleet = settings.inputs(&ContainerFacts::default());
        assert_eq!((fleet.refusal, fleet.cooldown_seconds, fleet.max_per_hour), (None, 3600, 3));
        let own = Policy { cooldown_seconds: Some(90), max_actions_per_hour: Some(1), ..Policy::default() };
        let inputs = settings.inputs(&ContainerFacts { policy: Some(&own), ..ContainerFacts::default() });
        assert_eq!((inputs.cooldown_seconds, inputs.max_per_hour), (90, 1));
        // The ladder: the container's own, kept its cooldown plus the quiet period.
        assert_eq!((fleet.ladder, fleet.ladder_seconds), (Ladder::OFF, 3600 + 3600));
        let fleet_ladder = GateSettings { escalation: Ladder::parse("restart,stop").unwrap(), ..settings };
        let own = Policy { escalation: Some("restart,recreate,stop".into()), cooldown_seconds: Some(30), ..own };
        let inputs = fleet_ladder.inputs(&ContainerFacts { policy: Some(&own), ..ContainerFacts::default() });
        assert_eq!((inputs.ladder.to_string().as_str(), inputs.ladder_seconds), ("restart,recreate,stop", 30 + 3600));
        let opted_out = Policy { escalation: Some("off".into()), ..Policy::default() };
        let inputs = fleet_ladder.inputs(&ContainerFacts { policy: Some(&opted_out), ..ContainerFacts::default() });
        assert!(inputs.ladder.is_off());
        assert_eq!(fleet_ladder.inputs(&ContainerFacts::default()).ladder.to_string(), "restart,stop");
    }

    fn facts() -> Facts {
        Facts {
            container: Some(Observed {
                id: "64290c8cfd9c12af940ef1fff24fa7c3".into(),
                image: Some("shop/api:1".into()),
                policy: Policy { action: ActionPolicy::Notify, cooldown_seconds: Some(600), ..Policy::default() },
                compose_project: Some("shop".into()),
                compose_service: Some("api".into()),
            }),
            held: Some(crate::facts::Hold { reason: "operator: docker stop 3 s ago".into(), until_ms: 2_000 }),
            silenced_by: vec!["s1".into()],
        }
    }

    #[test]
    fn the_containers_own_maintenance_window_refuses_while_open_after_an_operators_silence() {
        let c = ContainerRef::new("h1", "api");
        let mut f = facts();
        let observed = f.container.as_mut().unwrap();
        observed.policy =
            Policy { maintenance: Some("every day at 02:00 for 45m tz Europe/Berlin".into()), ..Policy::default() };
        let settings =
            GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 60, ..GateSettings::default() };
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis();
        // 01:10 UTC is 02:10 in Berlin: open; the collector's hold has ended.
        let b = Belief::of(Some(&f), &c, &Asked::default(), at("2026-12-07T01:10:00Z")).unwrap();
        assert_eq!(
            settings.inputs(&b.facts(None)).refusal.as_deref(),
            Some(
                "silenced: hemostat.maintenance=every day at 02:00 for 45m tz Europe/Berlin \
                 (maintenance window until 2026-12-07T01:45:00.000Z)"
            )
        );
        let s = silence();
        assert_eq!(
            settings.inputs(&b.facts(Some(&s))).refusal.as_deref(),
            Some("silenced: kernel upgrade (until 2099-01-01T00:00:00+00:00)"),
            "an operator's silence is named first"
        );
        // 01:50 UTC: closed, nothing refuses.
        let b = Belief::of(Some(&f), &c, &Asked::default(), at("2026-12-07T01:50:00Z")).unwrap();
        assert_eq!((b.window.as_ref(), settings.inputs(&b.facts(None)).refusal), (None, None));
    }

    #[test]
    fn the_gate_believes_the_collector_not_the_request() {
        let c = ContainerRef::new("h1", "api");
        let f = facts();
        let none = Asked::default();
        assert!(
            Belief::of(None, &c, &none, 0).unwrap_err().starts_with("unknown container: no collector reports h1/api")
        );
        let only_alert_news = Facts { container: None, ..f.clone() };
        assert!(Belief::of(Some(&only_alert_news), &c, &none, 0).is_err());

        // A request that claims a looser policy, no hold, no silence, and
        // another image gets the collector's.
        let loose = Policy { action: ActionPolicy::Restart, cooldown_seconds: Some(0), ..Policy::default() };
        let forged = Asked { policy: Some(&loose), ..Asked::default() };
        let b = Belief::of(Some(&f), &c, &forged, 1_000).unwrap();
        assert_eq!((b.observed.policy.action, b.observed.policy.cooldown_seconds), (ActionPolicy::Notify, Some(600)));
        assert_eq!(b.held.as_deref(), Some("operator: docker stop 3 s ago"));
        assert_eq!(
            (b.silenced_by.as_slice(), b.observed.image.as_deref()),
            (&["s1".to_owned()][..], Some("shop/api:1"))
        );

        // Without a cooldown of its own the fleet's holds: a forged 0 is not taken.
        let fleet_only = Facts {
            container: Some(Observed { policy: Policy::default(), ..f.container.clone().unwrap() }),
            ..f.clone()
        };
        let b = Belief::of(Some(&fleet_only), &c, &forged, 1_000).unwrap();
        let settings =
            GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 60, ..GateSettings::default() };
        assert_eq!(settings.inputs(&b.facts(None)).cooldown_seconds, 3600);

        // It may ask for less: a hold of its own once the collector's ended,
        // another silence, a stricter policy.
        let stricter = Policy { action: ActionPolicy::None, ..Policy::default() };
        let more = ["s2".to_owned(), "s1".to_owned()];
        let asked = Asked { policy: Some(&stricter), held: Some("deploy"), silenced_by: &more, ..Asked::default() };
        let b = Belief::of(Some(&f), &c, &asked, 5_000).unwrap();
        assert_eq!((b.observed.policy.action, b.held.as_deref()), (ActionPolicy::None, Some("deploy")));
        assert_eq!(b.silenced_by, ["s1", "s2"]);
        assert_eq!(
            settings.inputs(&b.facts(None)).refusal.as_deref(),
            Some("policy: none (hemostat.action=none: never act)")
        );

        // The id it was made for: the collector's (or its 12-digit prefix),
        // else it is about another container.
        let same = Asked { container_id: Some("64290c8cfd9c"), ..Asked::default() };
        assert!(Belief::of(Some(&f), &c, &same, 0).is_ok());
        let other = Asked { container_id: Some("ffffffffffff0000"), ..Asked::default() };
        let e = Belief::of(Some(&f), &c, &other, 0).unwrap_err();
        assert!(
            e.starts_with("container id mismatch: the request is for ffffffffffff, h1/api is now 64290c8cfd9c"),
            "{e}"
        );
    }
}
