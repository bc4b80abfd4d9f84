//! Which containers this collector manages.
//!
//! Three layers, checked in order: HemoStat never touches itself
//! (`hemostat.role`); an owner can always opt a container out
//! (`hemostat.enable=false`, or autoheal's `autoheal=false`); then the
//! operator's scope: an optional label selector (run several collectors, or
//! several test stacks, on one engine without them acting on each other's
//! containers) and an optional opt-in mode (only `hemostat.enable=true`, or
//! autoheal's `autoheal=true` for drop-in use).

use std::collections::HashMap;

use hemostat_protocol::config::parse_bool;

/// `hemostat.enable=false` opts a container out; `=true` opts it in.
pub const LABEL_ENABLE: &str = "hemostat.enable";
/// Present on HemoStat's own containers (collector, bridge, ...).
pub const LABEL_ROLE: &str = "hemostat.role";
/// docker-autoheal's opt-in label, honoured for drop-in replacement.
pub const LABEL_AUTOHEAL: &str = "autoheal";

const OUTSIDE_SELECTOR: &str = "outside this collector's label selector";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Every pair must match: `key` alone means the label is present.
    selector: Vec<(String, Option<String>)>,
    opt_in: bool,
}

impl Scope {
    /// `selector` is `key=value,key2,...` (empty: every container).
    pub fn new(selector: &str, opt_in: bool) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
                None => (part, None),
            };
            if key.is_empty() {
                return Err(format!("label selector {part:?} has no key"));
            }
            pairs.push((key.to_owned(), value));
        }
        Ok(Scope { selector: pairs, opt_in })
    }

    /// Whether the label selector takes in a container with these labels:
    /// one this collector answers for (those outside are another
    /// collector's, or another stack's).
    pub fn selects(&self, labels: &HashMap<String, String>) -> bool {
        self.selector.iter().all(|(k, v)| match v {
            Some(v) => labels.get(k) == Some(v),
            None => labels.contains_key(k),
        })
    }

    /// Why this collector must leave a container alone, if it must.
    pub fn excludes(&self, labels: &HashMap<String, String>) -> Option<&'static str> {
        let flag = |key: &str| labels.get(key).and_then(|v| parse_bool(v));
        if labels.contains_key(LABEL_ROLE) {
            return Some("HemoStat's own container (hemostat.role)");
        }
        if flag(LABEL_ENABLE) == Some(false) {
            return Some("container opted out (hemostat.enable=false)");
        }
        // docker-autoheal's opt-out, for drop-in use; hemostat.enable=true
        // (the more specific label) overrides it.
        if flag(LABEL_AUTOHEAL) == Some(false) && flag(LABEL_ENABLE) != Some(true) {
            return Some("container opted out (autoheal=false)");
        }
        if !self.selects(labels) {
            return Some(OUTSIDE_SELECTOR);
        }
        if self.opt_in && flag(LABEL_ENABLE) != Some(true) && flag(LABEL_AUTOHEAL) != Some(true) {
            return Some("opt-in mode: container has neither hemostat.enable=true nor autoheal=true");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn own_containers_and_opt_outs_are_always_excluded() {
        let all = Scope::default();
        assert!(all.excludes(&labels(&[])).is_none());
        assert!(all.excludes(&labels(&[("hemostat.role", "collector")])).is_some());
        assert!(all.excludes(&labels(&[("hemostat.enable", "FALSE")])).is_some());
        assert!(all.excludes(&labels(&[("hemostat.enable", "true")])).is_none());
        assert!(all.excludes(&labels(&[("autoheal", "False")])).is_some());
        assert!(all.excludes(&labels(&[("autoheal", "false"), ("hemostat.enable", "true")])).is_none());
    }

    #[test]
    fn selector_and_opt_in() {
        let scoped = Scope::new("team=web, tier", false).unwrap();
        assert!(scoped.excludes(&labels(&[("team", "web"), ("tier", "x")])).is_none());
        assert!(scoped.excludes(&labels(&[("team", "db"), ("tier", "x")])).is_some());
        assert!(scoped.excludes(&labels(&[("team", "web")])).is_some());
        assert!(Scope::new("=x", false).is_err());

        let opt_in = Scope::new("", true).unwrap();
        assert!(opt_in.excludes(&labels(&[])).is_some());
        assert!(opt_in.excludes(&labels(&[("hemostat.enable", "true")])).is_none());
        assert!(opt_in.excludes(&labels(&[("autoheal", "true")])).is_none());
        assert!(opt_in.excludes(&labels(&[("autoheal", "true"), ("hemostat.enable", "false")])).is_some());
    }
}
