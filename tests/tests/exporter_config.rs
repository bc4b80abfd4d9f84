//! The monitoring configuration shipped in infra/: Prometheus' config and
//! rules pass promtool (config, rules, and the rules' unit tests), and the
//! Grafana dashboard asks only for metrics the exporter exports.

mod exporter_support;

use std::{collections::BTreeSet, process::Command};

use exporter_support::promtool;
use hemostat_e2e::workspace_root;
use hemostat_exporter::metrics;
use serde_json::Value;

fn promtool_ok(args: &[&str]) -> String {
    let dir = workspace_root().join("infra/prometheus");
    let out = Command::new(promtool())
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool not found: run scripts/test-env.sh install (Debian package prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    let config = promtool_ok(&["check", "config", "prometheus.yml"]);
    assert!(config.contains("SUCCESS"), "{config}");
    let rules = promtool_ok(&["check", "rules", "hemostat.rules.yml"]);
    assert!(rules.contains("5 rules found"), "{rules}");
    // The missing-collector alert fires after a minute of hemostat_collector_up == 0, and stops.
    let tests = promtool_ok(&["test", "rules", "hemostat.rules.test.yml"]);
    assert!(tests.contains("SUCCESS"), "{tests}");
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => map.iter().for_each(|(k, v)| match (k.as_str(), v) {
            ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
            ("query", Value::Object(q)) => out.extend(q.get("query").and_then(Value::as_str).map(str::to_owned)),
            _ => exprs(v, out),
        }),
        Value::Array(items) => items.iter().for_each(|i| exprs(i, out)),
        _ => {}
    }
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("hemostat_") {
        let start = i + at;
        let end =
            expr[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(expr.len(), |n| start + n);
        // Not part of a longer identifier, nor inside a label value.
        let inside_quotes = expr[..start].matches('"').count() % 2 == 1;
        if (start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_')) && !inside_quotes {
            names.insert(expr[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[test]
fn grafana_dashboard_uses_only_exported_metrics() {
    let path = workspace_root().join("infra/grafana/hemostat.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    assert_eq!(dashboard["uid"], "hemostat");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id {}", p["id"]);
        if p["type"] != "row" {
            assert!(p["datasource"]["uid"] == "${datasource}", "panel {} has no datasource", p["title"]);
            assert!(!p["targets"].as_array().unwrap().is_empty(), "panel {} has no query", p["title"]);
        }
    }
    let exported: BTreeSet<String> = metrics::ALL.iter().flat_map(|f| f.sample_names()).collect();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    let used: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics the exporter does not export: {unknown:?}");
    // The issue's headline metrics each have a panel.
    for family in [
        &metrics::ALERTS,
        &metrics::REMEDIATIONS,
        &metrics::ANALYSES,
        &metrics::CONFIDENCE,
        &metrics::DETECTION_TO_FIX,
        &metrics::COLLECTOR_UP,
        &metrics::COLLECTOR_LAST_SEEN,
        &metrics::CONTAINER_CPU,
        &metrics::CONTAINER_MEMORY,
        &metrics::CONTAINER_STATUS,
    ] {
        assert!(family.sample_names().iter().any(|n| used.contains(n)), "no panel shows {}", family.name);
    }
    assert_eq!(
        metric_names(r#"sum(hemostat_a_total{x="hemostat_b"}) / hemostat_c"#),
        BTreeSet::from(["hemostat_a_total".to_owned(), "hemostat_c".to_owned()])
    );
}
