//! Silences: an operator's "leave this alone until then, because ...".
//!
//! A silence names a target (a container, a host, an image, a compose
//! project or a label selector), a reason, who set it and until when. While
//! it holds, the responder's gate refuses every action on a matching
//! container with the reason `silenced: <reason> (until <RFC 3339>)`.
//!
//! All silences live in one sorted set, [`keys::SILENCES`]: member = the
//! silence's JSON, score = its end in epoch ms. One key, so the whole list
//! is one read on a single node and on a cluster alike; readers prune what
//! has ended (`ZREMRANGEBYSCORE -inf now`) before they read, so silences
//! expire by themselves without a sweeper. There are few silences (a
//! handful per maintenance), so one key is no hot spot.
//!
//! Recurring silences (maintenance windows) are stored apart, in
//! [`crate::maintenance`]; [`live`] and [`holding`] add the windows open now
//! as silences that end with their window ([`Silence::window`]), so every
//! reader applies both alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::{
    container::ContainerRef, envelope::Envelope, error::ProtocolError, event::EventKind, keys,
    publisher::ENVELOPE_FIELD,
};

/// What a silence applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// `host/name`, or a bare name on every host.
    Container,
    Host,
    /// An image as configured (`shop/api:2`), or a repository without a tag
    /// (`shop/api`): every tag of it.
    Image,
    /// A compose project (label `com.docker.compose.project`).
    Project,
    /// A label selector: `key=value`, or `key` (any value).
    Label,
}

impl TargetKind {
    pub const ALL: [TargetKind; 5] =
        [TargetKind::Container, TargetKind::Host, TargetKind::Image, TargetKind::Project, TargetKind::Label];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Container => "container",
            TargetKind::Host => "host",
            TargetKind::Image => "image",
            TargetKind::Project => "project",
            TargetKind::Label => "label",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compose labels, which the alert's evidence carries: a label silence
/// on one of them is matched by the gate itself. Any other label is
/// matched by the collector, which alone reads labels
/// ([`Silence::selects`], [`HealthAlert::silenced_by`]).
///
/// [`HealthAlert::silenced_by`]: crate::event::HealthAlert::silenced_by
pub use crate::policy::{COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL};

/// One silence, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Short random id, what `silence rm` takes.
    pub id: String,
    pub kind: TargetKind,
    /// The target's value: `host/name`, a host, an image, a project, a selector.
    pub target: String,
    pub reason: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC: when it ends by itself.
    pub until: String,
    /// Who set it.
    pub by: String,
    /// The schedule, when this is a maintenance window open now (never
    /// stored in [`keys::SILENCES`]: made from a [`Recurring`] or a
    /// container's `hemostat.maintenance` label as it is read).
    ///
    /// [`Recurring`]: crate::maintenance::Recurring
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// What the gate knows of a container when it looks for silences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub host: String,
    pub name: String,
    pub image: Option<String>,
    pub project: Option<String>,
    /// The labels known for it: the compose ones, from the evidence.
    pub labels: BTreeMap<String, String>,
    /// The label silences the collector found matching its labels (their ids).
    pub label_silences: BTreeSet<String>,
}

impl Subject {
    pub fn of(container: &ContainerRef) -> Self {
        Subject { host: container.host.clone(), name: container.name.clone(), ..Default::default() }
    }

    /// The container's compose project and service (as [`compose_of`]
    /// reads them): the project, and both as labels.
    pub fn with_compose(mut self, project: Option<String>, service: Option<String>) -> Self {
        for (label, value) in [(COMPOSE_PROJECT_LABEL, &project), (COMPOSE_SERVICE_LABEL, &service)] {
            if let Some(value) = value {
                self.labels.insert(label.to_owned(), value.clone());
            }
        }
        self.project = project;
        self
    }

    /// What the container's latest alert said of it.
    pub fn with_facts(self, facts: AlertFacts) -> Self {
        let mut s = self.with_compose(facts.compose_project, facts.compose_service);
        s.label_silences = facts.silenced_by.into_iter().collect();
        s
    }
}

/// What a health alert tells the gate about its container beyond its name:
/// its compose project and service (from the evidence) and the label
/// silences the collector matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFacts {
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    pub silenced_by: Vec<String>,
}

impl AlertFacts {
    /// From a `health_alert`'s `data` as JSON.
    pub fn of_alert(data: &serde_json::Value) -> AlertFacts {
        let state = data.pointer("/evidence/state");
        let field = |name: &str| state.and_then(|s| s.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
        let silenced_by = data
            .get("silenced_by")
            .and_then(|v| v.as_array())
            .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        AlertFacts { compose_project: field("compose_project"), compose_service: field("compose_service"), silenced_by }
    }

    /// Whether matching `silences` needs them (else the lookup is skipped).
    pub fn needed_by<'a>(silences: impl IntoIterator<Item = &'a Silence>) -> bool {
        silences.into_iter().any(|s| matches!(s.kind, TargetKind::Project | TargetKind::Label))
    }
}

/// Parses an operator's target: `kind:value` (`host:web-1`, `image:shop/api:2`,
/// `project:shop`, `label:team=payments`, `container:web-1/api`), or a bare
/// `host/name` for a container.
pub fn parse_target(text: &str) -> Result<(TargetKind, String), String> {
    let text = text.trim();
    let (kind, value) = match text.split_once(':') {
        Some((k, v)) if TargetKind::ALL.iter().any(|t| t.as_str() == k) => {
            (TargetKind::ALL.into_iter().find(|t| t.as_str() == k).unwrap_or(TargetKind::Container), v.trim())
        }
        _ if ContainerRef::parse(text).is_some() => (TargetKind::Container, text),
        _ => {
            return Err(format!(
                "target {text:?}: expected host/name, or one of container:, host:, image:, project:, label: \
                 followed by a value"
            ));
        }
    };
    if value.is_empty() {
        return Err(format!("target {text:?}: the {kind} is empty"));
    }
    if kind == TargetKind::Label && value.split_once('=').is_some_and(|(k, _)| k.is_empty()) {
        return Err(format!("target {text:?}: a label selector is key=value or key"));
    }
    Ok((kind, value.to_owned()))
}

impl Silence {
    /// When it ends, in epoch ms (0 when `until` is unreadable: ended).
    pub fn until_ms(&self) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&self.until).map(|t| t.timestamp_millis()).unwrap_or(0)
    }

    /// `host/name`, `host:web-1`, ...: how the CLI shows the target.
    pub fn target_text(&self) -> String {
        match self.kind {
            TargetKind::Container => self.target.clone(),
            kind => format!("{kind}:{}", self.target),
        }
    }

    /// The gate's refusal reason while this silence holds.
    pub fn refusal(&self) -> String {
        match self.window {
            Some(_) => format!("silenced: {} (maintenance window until {})", self.reason, self.until),
            None => format!("silenced: {} (until {})", self.reason, self.until),
        }
    }

    pub fn matches(&self, s: &Subject) -> bool {
        match self.kind {
            TargetKind::Container => match ContainerRef::parse(&self.target) {
                Some(c) => c.host == s.host && c.name == s.name,
                None => self.target == s.name,
            },
            TargetKind::Host => self.target == s.host,
            TargetKind::Image => s.image.as_deref().is_some_and(|image| {
                image == self.target || (!repository_has_tag(&self.target) && image_repository(image) == self.target)
            }),
            TargetKind::Project => s.project.as_deref() == Some(self.target.as_str()),
            TargetKind::Label => self.selector_matches(|key| s.labels.get(key)) || s.label_silences.contains(&self.id),
        }
    }

    /// Whether this label silence selects a container with `labels` (all of
    /// them, as the collector reads them); false for other kinds.
    pub fn selects(&self, labels: &HashMap<String, String>) -> bool {
        self.kind == TargetKind::Label && self.selector_matches(|key| labels.get(key))
    }

    fn selector_matches<'a>(&self, label: impl Fn(&str) -> Option<&'a String>) -> bool {
        match self.target.split_once('=') {
            Some((key, value)) => label(key).is_some_and(|v| v == value),
            None => label(&self.target).is_some(),
        }
    }
}

/// `shop/api:2` -> `shop/api`; a registry port (`reg:5000/api`) is not a tag.
fn image_repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(at) if !image[at..].contains('/') => &image[..at],
        _ => image,
    }
}

fn repository_has_tag(image: &str) -> bool {
    image.contains('@') || image_repository(image) != image
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Stores `silence`; it ends by itself at `until`.
pub async fn add<C: ConnectionLike + Send>(conn: &mut C, silence: &Silence) -> Result<(), ProtocolError> {
    let json = serde_json::to_string(silence)?;
    let () = redis::pipe()
        .cmd("ZADD")
        .arg(keys::SILENCES)
        .arg(silence.until_ms())
        .arg(json)
        .ignore()
        .query_async(conn)
        .await?;
    Ok(())
}

/// Every silence still holding, soonest end first, without pruning the
/// ended ones: for readers that must not write (the collector).
pub async fn holding<C: ConnectionLike + Send>(conn: &mut C) -> Result<Vec<Silence>, ProtocolError> {
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::SILENCES)
        .arg(format!("({}", now_ms()))
        .arg("+inf")
        .arg("BYSCORE")
        .query_async(conn)
        .await?;
    let mut silences: Vec<Silence> = members.iter().filter_map(|m| serde_json::from_str(m).ok()).collect();
    with_windows(conn, &mut silences).await?;
    Ok(silences)
}

/// Adds the maintenance windows open now to `silences`, keeping the
/// soonest end first.
async fn with_windows<C: ConnectionLike + Send>(
    conn: &mut C,
    silences: &mut Vec<Silence>,
) -> Result<(), ProtocolError> {
    let recurring = crate::maintenance::all(conn).await?;
    if recurring.is_empty() {
        return Ok(());
    }
    silences.extend(crate::maintenance::open_silences(&recurring, now_ms()));
    silences.sort_by_key(Silence::until_ms);
    Ok(())
}

/// Every silence still holding, soonest end first; ended ones are removed.
pub async fn live<C: ConnectionLike + Send>(conn: &mut C) -> Result<Vec<Silence>, ProtocolError> {
    let now = now_ms();
    let (members,): (Vec<String>,) = redis::pipe()
        .cmd("ZREMRANGEBYSCORE")
        .arg(keys::SILENCES)
        .arg("-inf")
        .arg(now)
        .ignore()
        .cmd("ZRANGE")
        .arg(keys::SILENCES)
        .arg(format!("({now}"))
        .arg("+inf")
        .arg("BYSCORE")
        .query_async(conn)
        .await?;
    // Someone else's odd member is skipped, not an error that would stop the gate.
    let mut silences: Vec<Silence> = members.iter().filter_map(|m| serde_json::from_str(m).ok()).collect();
    with_windows(conn, &mut silences).await?;
    Ok(silences)
}

/// Removes the silence `id`, or the recurring one of that id; `false` when
/// there was none (or it had ended).
pub async fn remove<C: ConnectionLike + Send>(conn: &mut C, id: &str) -> Result<bool, ProtocolError> {
    let members: Vec<String> = redis::cmd("ZRANGE").arg(keys::SILENCES).arg(0).arg(-1).query_async(conn).await?;
    let Some(member) = members.into_iter().find(|m| serde_json::from_str::<Silence>(m).is_ok_and(|s| s.id == id))
    else {
        return crate::maintenance::remove(conn, id).await;
    };
    let removed: u64 = redis::cmd("ZREM").arg(keys::SILENCES).arg(member).query_async(conn).await?;
    Ok(removed > 0)
}

/// Newest health alerts [`facts_of`] reads.
pub const ALERT_SCAN: usize = 500;

/// What a container's latest health alert says of it ([`AlertFacts`]): the
/// only place its compose labels and its label silences reach Redis. The
/// alert behind a remediation was published a moment before it, so it is
/// among the newest [`ALERT_SCAN`] entries; empty when none of them is its.
pub async fn facts_of<C: ConnectionLike + Send>(
    conn: &mut C,
    container: &ContainerRef,
) -> Result<AlertFacts, ProtocolError> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(EventKind::HealthAlert.stream())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(ALERT_SCAN)
        .query_async(conn)
        .await?;
    for entry in &reply.ids {
        let Some(json) = entry.get::<String>(ENVELOPE_FIELD) else { continue };
        let Ok(env) = Envelope::parse(json.as_bytes()) else { continue };
        let data = &env.data;
        let is = |field: &str, want: &str| data.get(field).and_then(|v| v.as_str()) == Some(want);
        if !is("host", &container.host) || !is("container", &container.name) {
            continue;
        }
        return Ok(AlertFacts::of_alert(data));
    }
    Ok(AlertFacts::default())
}

/// The first live silence matching `subject`, if any.
pub fn matching<'a>(silences: &'a [Silence], subject: &Subject) -> Option<&'a Silence> {
    silences.iter().find(|s| s.matches(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(kind: TargetKind, target: &str) -> Silence {
        Silence {
            id: "s1".into(),
            kind,
            target: target.into(),
            reason: "db migration".into(),
            created: "2026-12-02T10:00:00+00:00".into(),
            until: "2026-12-02T12:00:00+00:00".into(),
            by: "alice".into(),
            window: None,
        }
    }

    fn subject() -> Subject {
        let mut labels = BTreeMap::new();
        labels.insert(COMPOSE_PROJECT_LABEL.to_owned(), "shop".to_owned());
        Subject {
            host: "web-1".into(),
            name: "api".into(),
            image: Some("reg:5000/shop/api:2.4".into()),
            project: Some("shop".into()),
            labels,
            label_silences: BTreeSet::new(),
        }
    }

    #[test]
    fn targets_parse_with_a_kind_or_as_host_slash_name() {
        assert_eq!(parse_target("web-1/api").unwrap(), (TargetKind::Container, "web-1/api".into()));
        assert_eq!(parse_target("image:shop/api:2").unwrap(), (TargetKind::Image, "shop/api:2".into()));
        assert_eq!(parse_target("host:web-1").unwrap(), (TargetKind::Host, "web-1".into()));
        assert_eq!(parse_target("label:team=pay").unwrap(), (TargetKind::Label, "team=pay".into()));
        assert_eq!(parse_target("container:api").unwrap(), (TargetKind::Container, "api".into()));
        for bad in ["api", "host:", "planet:earth", "label:=x", ""] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_kind_matches_what_it_names_and_nothing_else() {
        let s = subject();
        let yes = [
            (TargetKind::Container, "web-1/api"),
            (TargetKind::Container, "api"),
            (TargetKind::Host, "web-1"),
            (TargetKind::Image, "reg:5000/shop/api:2.4"),
            (TargetKind::Image, "reg:5000/shop/api"),
            (TargetKind::Project, "shop"),
            (TargetKind::Label, "com.docker.compose.project=shop"),
            (TargetKind::Label, "com.docker.compose.project"),
        ];
        for (kind, target) in yes {
            assert!(silence(kind, target).matches(&s), "{kind}:{target}");
        }
        let no = [
            (TargetKind::Container, "web-2/api"),
            (TargetKind::Container, "web-1/db"),
            (TargetKind::Host, "web-2"),
            (TargetKind::Image, "reg:5000/shop/api:2.5"),
            (TargetKind::Image, "reg"),
            (TargetKind::Project, "blog"),
            (TargetKind::Label, "com.docker.compose.project=blog"),
            (TargetKind::Label, "team"),
        ];
        for (kind, target) in no {
            assert!(!silence(kind, target).matches(&s), "{kind}:{target}");
        }
        assert!(!silence(TargetKind::Project, "shop").matches(&Subject { project: None, ..subject() }));
    }

    #[test]
    fn the_refusal_names_the_reason_and_the_end() {
        let s = silence(TargetKind::Host, "web-1");
        assert_eq!(s.refusal(), "silenced: db migration (until 2026-12-02T12:00:00+00:00)");
        assert_eq!(s.until_ms(), 1_796_212_800_000);
        assert_eq!(s.target_text(), "host:web-1");
    }

    #[test]
    fn any_other_label_is_selected_by_the_collector_and_matched_by_id() {
        let labels: HashMap<String, String> =
            [("team".to_owned(), "pay".to_owned()), ("tier".to_owned(), String::new())].into();
        assert!(silence(TargetKind::Label, "team=pay").selects(&labels));
        assert!(silence(TargetKind::Label, "tier").selects(&labels));
        assert!(!silence(TargetKind::Label, "team=ops").selects(&labels));
        assert!(!silence(TargetKind::Label, "owner").selects(&labels));
        // Only label silences select: a host silence is the gate's to match.
        assert!(!silence(TargetKind::Host, "team").selects(&labels));

        let team = silence(TargetKind::Label, "team=pay");
        assert!(!team.matches(&subject()), "the gate cannot see the label itself");
        let told = Subject { label_silences: ["s1".to_owned()].into(), ..subject() };
        assert!(team.matches(&told), "the collector said s1 selects it");
        let other = Silence { id: "s2".into(), ..team };
        assert!(!other.matches(&told), "another silence on the same selector was not matched");
    }

    #[test]
    fn an_alerts_facts_are_its_compose_labels_and_the_silences_it_names() {
        let data = serde_json::json!({
            "container": "api", "host": "web-1", "silenced_by": ["s1", 7, "s2"],
            "evidence": {"state": {"compose_project": "shop", "compose_service": "api"}}});
        let facts = AlertFacts::of_alert(&data);
        assert_eq!(facts.compose_project.as_deref(), Some("shop"));
        assert_eq!(facts.compose_service.as_deref(), Some("api"));
        assert_eq!(facts.silenced_by, ["s1", "s2"], "a non-string id is skipped");
        let s = Subject::of(&ContainerRef::new("web-1", "api")).with_facts(facts);
        assert_eq!(s.labels.get(COMPOSE_SERVICE_LABEL).map(String::as_str), Some("api"));
        assert!(s.label_silences.contains("s2"));
        assert_eq!(AlertFacts::of_alert(&serde_json::json!({"container": "api"})), AlertFacts::default());
    }
}
