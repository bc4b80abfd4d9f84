//! `--env-vars FILE`: per-function environment variables, in the JSON
//! `sam local invoke --env-vars` takes:
//!
//! ```json
//! { "Parameters": { "RUST_LOG": "debug" },
//!   "ResponderFunction": { "REDIS_URL": "redis://hemostat-responder:...@127.0.0.1:6379" } }
//! ```
//!
//! `Parameters` applies to every function, an entry named by a function's
//! logical id or name to that function (and wins). As with SAM, only the
//! variables the template declares for a function are set, and these values
//! win over the emulator's own environment. It is how each function gets
//! credentials of its own (its Redis ACL user) while sharing one emulator.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use crate::error::Error;

/// The key of the entry that applies to every function.
const PARAMETERS: &str = "Parameters";

/// The file's content: variables by function (logical id or name).
#[derive(Debug, Clone, Default)]
pub struct EnvVars {
    entries: BTreeMap<String, BTreeMap<String, String>>,
}

impl EnvVars {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<EnvVars, Error> {
        let invalid = |reason: String| Error::EnvVars { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        EnvVars::parse(&text).map_err(invalid)
    }

    /// Parses the JSON: an object of objects whose values are strings
    /// (numbers and booleans are taken as their text, as SAM does).
    pub fn parse(text: &str) -> Result<EnvVars, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let object = value.as_object().ok_or("expected an object of functions")?;
        let mut entries = BTreeMap::new();
        for (function, vars) in object {
            let vars = vars.as_object().ok_or_else(|| format!("{function:?}: expected an object of variables"))?;
            let mut values = BTreeMap::new();
            for (key, value) in vars {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return Err(format!("{function:?}.{key}: expected a string")),
                };
                values.insert(key.clone(), text);
            }
            entries.insert(function.clone(), values);
        }
        Ok(EnvVars { entries })
    }

    /// Entries that name none of the functions `known` (names and logical
    /// ids): typos, or functions not run.
    pub fn unknown<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.entries.keys().filter(|k| *k != PARAMETERS && !known.contains(&k.as_str())).map(String::as_str).collect()
    }

    /// `host_env` with this file's values for the function `name` (logical
    /// id `logical_id`) on top.
    pub fn environment_for(
        &self,
        name: &str,
        logical_id: &str,
        host_env: &HashMap<String, String>,
    ) -> HashMap<String, String> {
        let mut env = host_env.clone();
        let named = [PARAMETERS, name, logical_id];
        for vars in named.iter().filter_map(|n| self.entries.get(*n)) {
            env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_entry_wins_over_parameters_which_win_over_the_host() {
        let vars = EnvVars::parse(r#"{"Parameters": {"A": "p", "B": "p"}, "Responder": {"A": "f"}, "X": {}}"#).unwrap();
        let host: HashMap<String, String> =
            [("A", "h"), ("B", "h"), ("C", "h")].map(|(k, v)| (k.into(), v.into())).into();
        let env = vars.environment_for("hemostat-responder", "Responder", &host);
        assert_eq!((env["A"].as_str(), env["B"].as_str(), env["C"].as_str()), ("f", "p", "h"));
        let env = vars.environment_for("hemostat-alert", "Alert", &host);
        assert_eq!((env["A"].as_str(), env["B"].as_str()), ("p", "p"));
        assert_eq!(vars.unknown(&["hemostat-responder", "Responder"]), ["X"]);
    }

    #[test]
    fn parses_sam_shape_and_refuses_others() {
        let vars = EnvVars::parse(r#"{"Parameters": {"A": "1", "N": 5, "B": true}, "Fn": {"A": "2"}}"#).unwrap();
        assert_eq!(vars.entries["Parameters"]["N"], "5");
        assert_eq!(vars.entries["Parameters"]["B"], "true");
        for bad in ["[]", "{\"Fn\": 1}", "{\"Fn\": {\"A\": [1]}}", "{\"Fn\": {\"A\": null}}", "not json"] {
            assert!(EnvVars::parse(bad).is_err(), "{bad}");
        }
    }
}
