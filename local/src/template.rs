//! Reads the functions out of a SAM `template.yaml`.
//!
//! Only what the emulator needs is understood: `Parameters` defaults, `Globals.Function`,
//! `Conditions`, and `AWS::Serverless::Function` resources (and their `Schedule` events), with
//! the intrinsics `Ref`, `Fn::Sub`, `Fn::Join` and `Fn::If` (conditions: `Fn::Equals`, `Fn::Not`,
//! `Fn::And`, `Fn::Or`, `Condition`) in both their short (`!Ref`) and long (`{"Ref": ..}`) forms.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde_yaml_ng::{Mapping, Value};
use tracing::warn;

use crate::{
    error::{Error, Result},
    schedule_expression::{Expression, ScheduleEvent},
};

/// SAM's defaults for properties a template leaves out.
const DEFAULT_MEMORY_MB: u32 = 128;
const DEFAULT_TIMEOUT_SECS: u64 = 3;
const DEFAULT_HANDLER: &str = "bootstrap";

/// One function as the emulator will run it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub name: String,
    /// File name of the executable inside the binary directory.
    pub binary: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_secs: u64,
    /// `None` marks a variable whose template value could not be resolved locally;
    /// it is only set if the emulator's own environment provides it.
    pub environment: BTreeMap<String, Option<String>>,
    pub reserved_concurrency: Option<u32>,
    /// Set when the function has a SAM `FunctionUrlConfig`: it is then also
    /// reachable over plain HTTP, as a Function URL.
    pub url: Option<FunctionUrlConfig>,
    /// Its `Events` of `Type: Schedule`, in template order.
    pub schedules: Vec<ScheduleEvent>,
}

/// A function's `FunctionUrlConfig`, as far as the emulator honours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUrlConfig {
    /// `NONE` or `AWS_IAM`. The emulator checks no signatures either way, but
    /// keeps the value so the event's `requestContext` can say which it was.
    pub auth_type: String,
}

/// Values that intrinsics resolve against.
#[derive(Debug, Clone)]
pub struct TemplateSettings {
    pub parameter_overrides: BTreeMap<String, String>,
    pub region: String,
    pub account_id: String,
    pub stack_name: String,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        TemplateSettings {
            parameter_overrides: BTreeMap::new(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            stack_name: "hemostat-local".into(),
        }
    }
}

/// The functions a template declares, in template order.
#[derive(Debug, Clone)]
pub struct Template {
    pub functions: Vec<FunctionSpec>,
}

impl Template {
    pub fn load(path: &Path, settings: &TemplateSettings) -> Result<Template> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::TemplateRead { path: path.to_owned(), source })?;
        let root: Value =
            serde_yaml_ng::from_str(&text).map_err(|source| Error::TemplateParse { path: path.to_owned(), source })?;
        Template::from_value(&root, settings)
    }

    pub fn parse(yaml: &str, settings: &TemplateSettings) -> Result<Template> {
        let root: Value = serde_yaml_ng::from_str(yaml).map_err(|e| Error::Template(e.to_string()))?;
        Template::from_value(&root, settings)
    }

    fn from_value(root: &Value, settings: &TemplateSettings) -> Result<Template> {
        let root = root.as_mapping().ok_or_else(|| Error::Template("the document is not a mapping".into()))?;
        let resolver = Resolver::new(root, settings);
        let globals = root.get("Globals").and_then(|g| g.get("Function")).and_then(Value::as_mapping);
        let resources = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| Error::Template("no Resources section".into()))?;

        let mut functions = Vec::new();
        for (id, resource) in resources {
            let Some(id) = id.as_str() else { continue };
            let kind = resource.get("Type").and_then(Value::as_str);
            if kind != Some("AWS::Serverless::Function") {
                continue;
            }
            functions.push(function_spec(id, resource, globals, &resolver)?);
        }
        if functions.is_empty() {
            return Err(Error::Template("no AWS::Serverless::Function resources".into()));
        }
        Ok(Template { functions })
    }
}

fn function_spec(id: &str, resource: &Value, globals: Option<&Mapping>, resolver: &Resolver) -> Result<FunctionSpec> {
    let empty = Mapping::new();
    let props = resource.get("Properties").and_then(Value::as_mapping).unwrap_or(&empty);
    // Function-level properties override Globals wholesale, except the environment (below).
    let prop = |key: &str| props.get(key).or_else(|| globals.and_then(|g| g.get(key)));
    let resolved = |key: &str| -> Result<Option<String>> {
        match prop(key) {
            None => Ok(None),
            Some(v) => resolver
                .resolve(v)
                .map(Some)
                .map_err(|what| Error::Template(format!("{id}.{key}: cannot resolve {what}"))),
        }
    };
    let number = |key: &str| -> Result<Option<u64>> {
        match resolved(key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Template(format!("{id}.{key}: {s:?} is not a whole number"))),
        }
    };

    let name = resolved("FunctionName")?.unwrap_or_else(|| id.to_owned());
    let binary = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .map_or_else(|| id.to_lowercase(), str::to_owned);
    let handler = resolved("Handler")?.unwrap_or_else(|| DEFAULT_HANDLER.into());
    let memory_mb = number("MemorySize")?.map_or(Ok(DEFAULT_MEMORY_MB), |m| {
        u32::try_from(m).map_err(|_| Error::Template(format!("{id}.MemorySize: {m} is too large")))
    })?;
    let timeout_secs = number("Timeout")?.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout_secs == 0 {
        return Err(Error::Template(format!("{id}.Timeout must be at least 1")));
    }
    let reserved_concurrency = number("ReservedConcurrentExecutions")?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| Error::Template(format!("{id}.ReservedConcurrentExecutions: {n} is too large")))
        })
        .transpose()?;

    let url = match prop("FunctionUrlConfig") {
        None | Some(Value::Null) => None,
        Some(config) => {
            let auth_type = match config.get("AuthType") {
                Some(v) => resolver.resolve(v).map_err(|what| {
                    Error::Template(format!("{id}.FunctionUrlConfig.AuthType: cannot resolve {what}"))
                })?,
                // AuthType is required by CloudFormation; fail like a deploy would.
                None => {
                    return Err(Error::Template(format!(
                        "{id}.FunctionUrlConfig: AuthType is required (NONE or AWS_IAM)"
                    )));
                }
            };
            if auth_type != "NONE" && auth_type != "AWS_IAM" {
                return Err(Error::Template(format!(
                    "{id}.FunctionUrlConfig.AuthType: {auth_type:?} is not NONE or AWS_IAM"
                )));
            }
            Some(FunctionUrlConfig { auth_type })
        }
    };

    let mut environment = BTreeMap::new();
    let global_vars = globals.and_then(|g| variables(g.get("Environment")));
    let own_vars = variables(props.get("Environment"));
    for (key, value) in global_vars.into_iter().chain(own_vars).flatten() {
        let Some(key) = key.as_str() else { continue };
        let value = match resolver.resolve(value) {
            Ok(v) => Some(v),
            Err(what) => {
                warn!(function = %name, variable = key, "cannot resolve {what} locally; the variable is only set if the emulator's environment has it");
                None
            }
        };
        environment.insert(key.to_owned(), value);
    }

    let schedules = schedule_events(id, props.get("Events"), resolver)?;

    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        name,
        binary,
        handler,
        memory_mb,
        timeout_secs,
        environment,
        reserved_concurrency,
        url,
        schedules,
    })
}

/// EventBridge rule names are at most 64 characters.
const MAX_RULE_NAME: usize = 64;

/// The function's `Type: Schedule` events. Other event types are other
/// services' business and are not emulated; they are skipped with a note.
fn schedule_events(id: &str, events: Option<&Value>, resolver: &Resolver) -> Result<Vec<ScheduleEvent>> {
    let Some(events) = events.and_then(Value::as_mapping) else {
        return Ok(Vec::new());
    };
    let mut schedules = Vec::new();
    for (event_id, event) in events {
        let Some(event_id) = event_id.as_str() else {
            continue;
        };
        let at = format!("{id}.Events.{event_id}");
        let kind = event.get("Type").and_then(Value::as_str).unwrap_or_default();
        if kind != "Schedule" {
            warn!(function = %id, event = %event_id, kind, "event source not emulated locally; only Type: Schedule is");
            continue;
        }
        let empty = Mapping::new();
        let props = event.get("Properties").and_then(Value::as_mapping).unwrap_or(&empty);
        let resolved = |key: &str| -> Result<Option<String>> {
            props
                .get(key)
                .map(|v| resolver.resolve(v))
                .transpose()
                .map_err(|what| Error::Template(format!("{at}.Properties.{key}: cannot resolve {what}")))
        };
        let text =
            resolved("Schedule")?.ok_or_else(|| Error::Template(format!("{at}.Properties.Schedule is required")))?;
        let expression =
            Expression::parse(&text).map_err(|why| Error::Template(format!("{at}.Properties.Schedule: {why}")))?;
        let enabled = match (resolved("Enabled")?, resolved("State")?) {
            (Some(enabled), _) => match enabled.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(Error::Template(format!("{at}.Properties.Enabled: {other:?} is not true or false")));
                }
            },
            (None, Some(state)) => match state.as_str() {
                "ENABLED" => true,
                "DISABLED" => false,
                other => {
                    return Err(Error::Template(format!(
                        "{at}.Properties.State: {other:?} is not ENABLED or DISABLED"
                    )));
                }
            },
            (None, None) => true,
        };
        let input = resolved("Input")?;
        if let Some(input) = &input {
            // EventBridge refuses a rule whose Input is not JSON; so does a deploy.
            serde_json::from_str::<serde::de::IgnoredAny>(input)
                .map_err(|e| Error::Template(format!("{at}.Properties.Input is not valid JSON: {e}")))?;
        }
        // SAM names the rule `{stack}-{function id}{event id}-{random}`; locally there is one stack.
        let rule_name = match resolved("Name")? {
            Some(name) => name,
            None => {
                let stack = resolver.reference("AWS::StackName").unwrap_or_default();
                format!("{stack}-{id}{event_id}").chars().take(MAX_RULE_NAME).collect()
            }
        };
        schedules.push(ScheduleEvent { event_id: event_id.to_owned(), rule_name, expression, enabled, input });
    }
    Ok(schedules)
}

fn variables(environment: Option<&Value>) -> Option<&Mapping> {
    environment?.get("Variables")?.as_mapping()
}

/// Evaluates the intrinsic functions the emulator can know the answer to.
struct Resolver {
    parameters: HashMap<String, String>,
    pseudo: HashMap<&'static str, String>,
    /// The template's `Conditions`, evaluated on demand by `!If`.
    conditions: Mapping,
}

/// What could not be resolved, for the warning ("!GetAtt Foo.Arn").
type Unresolved = String;

impl Resolver {
    fn new(root: &Mapping, settings: &TemplateSettings) -> Resolver {
        let mut parameters = HashMap::new();
        if let Some(params) = root.get("Parameters").and_then(Value::as_mapping) {
            for (name, param) in params {
                let (Some(name), Some(default)) = (name.as_str(), param.get("Default")) else {
                    continue;
                };
                if let Some(value) = scalar(default) {
                    parameters.insert(name.to_owned(), value);
                }
            }
        }
        for (name, value) in &settings.parameter_overrides {
            if root.get("Parameters").and_then(|p| p.get(name.as_str())).is_none() {
                warn!(parameter = %name, "parameter override does not match any template parameter");
            }
            parameters.insert(name.clone(), value.clone());
        }
        let pseudo = HashMap::from([
            ("AWS::Region", settings.region.clone()),
            ("AWS::AccountId", settings.account_id.clone()),
            ("AWS::StackName", settings.stack_name.clone()),
            ("AWS::Partition", "aws".to_owned()),
            ("AWS::URLSuffix", "amazonaws.com".to_owned()),
        ]);
        let conditions = root.get("Conditions").and_then(Value::as_mapping).cloned().unwrap_or_default();
        Resolver { parameters, pseudo, conditions }
    }

    fn resolve(&self, value: &Value) -> Result<String, Unresolved> {
        if let Some(s) = scalar(value) {
            return Ok(s);
        }
        match value {
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let tag = tag.trim_start_matches('!');
                self.intrinsic(tag, &tagged.value)
            }
            Value::Mapping(map) if map.len() == 1 => {
                let Some((key, arg)) = map.iter().next() else {
                    return Err("an empty mapping".into());
                };
                match key.as_str() {
                    Some("Ref") => self.intrinsic("Ref", arg),
                    Some(other) => match other.strip_prefix("Fn::") {
                        Some(name) => self.intrinsic(name, arg),
                        None => Err(format!("a mapping ({other}: ..)")),
                    },
                    None => Err("a mapping with a non-string key".into()),
                }
            }
            _ => Err("a non-scalar value".into()),
        }
    }

    fn intrinsic(&self, name: &str, arg: &Value) -> Result<String, Unresolved> {
        match name {
            "Ref" => match arg.as_str() {
                Some(r) => self.reference(r),
                None => Err("!Ref with a non-string argument".into()),
            },
            "Sub" => self.sub(arg),
            "Join" => self.join(arg),
            "If" => self.if_(arg),
            other => Err(format!("!{other}")),
        }
    }

    /// `!If [Condition, when true, when false]`; `AWS::NoValue` as the
    /// chosen branch means "not set", reported as unresolved.
    fn if_(&self, arg: &Value) -> Result<String, Unresolved> {
        let Some([condition, yes, no]) = arg.as_sequence().map(Vec::as_slice) else {
            return Err("a malformed !If".into());
        };
        let name = condition.as_str().ok_or_else(|| "!If with a non-string condition".to_owned())?;
        let chosen = if self.condition(name, 0)? { yes } else { no };
        self.resolve(chosen)
    }

    /// A named condition of the template's `Conditions`.
    fn condition(&self, name: &str, depth: usize) -> Result<bool, Unresolved> {
        // A condition naming itself, directly or not, is a template error.
        if depth > 16 {
            return Err(format!("condition {name} (nested too deep)"));
        }
        let definition = self.conditions.get(name).ok_or_else(|| format!("condition {name} (not defined)"))?;
        self.evaluate(definition, depth + 1)
    }

    /// `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`, short
    /// or long form.
    fn evaluate(&self, value: &Value, depth: usize) -> Result<bool, Unresolved> {
        let (function, arg) = match value {
            Value::Tagged(tagged) => (tagged.tag.to_string().trim_start_matches('!').to_owned(), &tagged.value),
            Value::Mapping(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                let key = key.as_str().unwrap_or_default();
                (key.strip_prefix("Fn::").unwrap_or(key).to_owned(), arg)
            }
            _ => return Err("a condition that is not a condition function".into()),
        };
        let operands = || arg.as_sequence().map(Vec::as_slice).unwrap_or_default();
        match function.as_str() {
            "Equals" => match operands() {
                [a, b] => Ok(self.resolve(a)? == self.resolve(b)?),
                _ => Err("a malformed !Equals".into()),
            },
            "Not" => match operands() {
                [c] => Ok(!self.evaluate(c, depth + 1)?),
                _ => Err("a malformed !Not".into()),
            },
            "And" => operands().iter().try_fold(true, |all, c| Ok(all && self.evaluate(c, depth + 1)?)),
            "Or" => operands().iter().try_fold(false, |any, c| Ok(any || self.evaluate(c, depth + 1)?)),
            "Condition" => match arg.as_str() {
                Some(name) => self.condition(name, depth),
                None => Err("!Condition with a non-string name".into()),
            },
            other => Err(format!("!{other} in a condition")),
        }
    }

    fn reference(&self, name: &str) -> Result<String, Unresolved> {
        if name == "AWS::NoValue" {
            return Err("!Ref AWS::NoValue (not set)".into());
        }
        self.pseudo.get(name).or_else(|| self.parameters.get(name)).cloned().ok_or_else(|| format!("!Ref {name}"))
    }

    /// `!Sub "text"` or `!Sub ["text", {Var: value}]`.
    fn sub(&self, arg: &Value) -> Result<String, Unresolved> {
        let (text, vars) = match arg {
            Value::Sequence(items) if items.len() == 2 => (items[0].as_str(), items[1].as_mapping()),
            other => (other.as_str(), None),
        };
        let text = text.ok_or_else(|| "!Sub without a string".to_owned())?;
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Name}` is CloudFormation's escape for a literal `${Name}`.
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = after[..end].trim();
            let value = match vars.and_then(|v| v.get(name)) {
                Some(v) => self.resolve(v)?,
                None if name.contains('.') => return Err(format!("!Sub ${{{name}}} (GetAtt)")),
                None => self.reference(name).map_err(|_| format!("!Sub ${{{name}}}"))?,
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `!Join [",", [a, b]]`, or `!Join [",", !Ref AListParameter]` (a
    /// `CommaDelimitedList` parameter is a list to CloudFormation).
    fn join(&self, arg: &Value) -> Result<String, Unresolved> {
        let items = arg.as_sequence().filter(|s| s.len() == 2);
        let (Some(sep), Some(list)) = (items.and_then(|s| s[0].as_str()), items.map(|s| &s[1])) else {
            return Err("a malformed !Join".into());
        };
        let parts = match list.as_sequence() {
            Some(parts) => parts.iter().map(|p| self.resolve(p)).collect::<Result<Vec<_>, _>>()?,
            None => self.resolve(list)?.split(',').map(str::to_owned).collect(),
        };
        Ok(parts.join(sep))
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}
