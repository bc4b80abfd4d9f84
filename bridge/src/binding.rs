//! What one consumer serves: a stream, its consumer group, the function.
//!
//! Normally derived from protocol's [`ROUTES`]; `--routes` replaces them
//! (tests, or an operator wiring a custom function to a stream).

use std::str::FromStr;

use hemostat_protocol::{
    EventKind,
    routes::{ROUTES, Route},
};

use crate::error::BridgeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub stream: String,
    /// `bridge:{function}`, as protocol's [`Route::group`].
    pub group: String,
    /// The deployed function name (prefix applied).
    pub function: String,
}

impl Binding {
    pub fn from_route(route: &Route, prefix: &str) -> Self {
        Binding { stream: route.stream(), group: route.group(), function: route.function_name(prefix) }
    }

    /// protocol's routes, or the `--routes` override when given.
    pub fn all(overrides: &[RouteSpec], prefix: &str) -> Vec<Binding> {
        if overrides.is_empty() {
            return ROUTES.iter().map(|r| Binding::from_route(r, prefix)).collect();
        }
        overrides.iter().map(|spec| spec.binding(prefix)).collect()
    }
}

/// One `--routes` item: `stream=function`. The stream is an event kind
/// (`health_alert`) or a full stream name; the function is the short name
/// (`analyzer`), prefixed like protocol's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub stream: String,
    pub function: String,
}

impl RouteSpec {
    fn binding(&self, prefix: &str) -> Binding {
        let function = if prefix.is_empty() { self.function.clone() } else { format!("{prefix}-{}", self.function) };
        Binding { stream: self.stream.clone(), group: format!("bridge:{}", self.function), function }
    }
}

impl FromStr for RouteSpec {
    type Err = BridgeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BridgeError::Route(s.to_owned());
        let (stream, function) = s.split_once('=').ok_or_else(bad)?;
        let (stream, function) = (stream.trim(), function.trim());
        if stream.is_empty() || function.is_empty() || function.contains(char::is_whitespace) {
            return Err(bad());
        }
        let stream = match stream.parse::<EventKind>() {
            Ok(kind) => kind.stream(),
            Err(_) => stream.to_owned(),
        };
        Ok(RouteSpec { stream, function: function.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_protocol_routes() {
        let all = Binding::all(&[], "hemostat");
        assert_eq!(all.len(), ROUTES.len());
        assert_eq!(all[0].function, "hemostat-analyzer");
        assert_eq!(all[0].group, "bridge:analyzer");
        assert_eq!(all[0].stream, "hemostat:stream:health_alert");
    }

    #[test]
    fn parses_overrides_by_kind_or_stream_name() {
        let a: RouteSpec = "health_alert=broken".parse().unwrap();
        let b: RouteSpec = "my:stream = healthy".parse().unwrap();
        let all = Binding::all(&[a, b], "t");
        assert_eq!(
            all[0],
            Binding {
                stream: "hemostat:stream:health_alert".into(),
                group: "bridge:broken".into(),
                function: "t-broken".into()
            }
        );
        assert_eq!(all[1].stream, "my:stream");
        assert_eq!(all[1].function, "t-healthy");
        assert!("nofunction".parse::<RouteSpec>().is_err());
        assert!("=x".parse::<RouteSpec>().is_err());
    }
}
