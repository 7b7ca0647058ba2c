//! The Grafana dashboard in dashboards/handshake.json queries only what `handshake
//! metrics` exports: every metric name in every query is a series of the exporter's
//! output, and a query grouped by port reads a series that has a port label.

use std::collections::BTreeSet;

use handshake::{
    counters::Snapshot,
    metrics,
    stats::{Gone, Sample},
};
use handshake_common::counters::PortCounters;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../dashboards/handshake.json");

/// Every PromQL expression of the dashboard: panel targets and template queries.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        // A datasource variable's query names a plugin, not metrics.
        Value::Object(object) if object.get("type") == Some(&Value::from("datasource")) => {}
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", Value::String(text)) => {
                        found.push(text.clone())
                    }
                    _ => expressions(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| expressions(item, found)),
        _ => {}
    }
}

/// The `handshake_...` names an expression reads.
fn metric_names(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("handshake_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.push(name);
    }
    names
}

/// Series names of the exporter's output, and those with a port label.
fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let sample = Sample {
        iface: "eth0".to_owned(),
        counters: Snapshot::default(),
        ports: [(443, PortCounters::default())].into_iter().collect(),
        dry_run: false,
        limits: Default::default(),
    };
    let gone = Gone {
        iface: "eth1".to_owned(),
        problem: String::new(),
    };
    let text = metrics::render(&[sample], &[gone]).unwrap();
    let mut names = BTreeSet::new();
    let mut per_port = BTreeSet::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let name: String = line
            .chars()
            .take_while(|c| *c != '{' && *c != ' ')
            .collect();
        if line.contains("port=\"") {
            per_port.insert(name.clone());
        }
        names.insert(name);
    }
    (names, per_port)
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboards/handshake.json");
    let mut found = Vec::new();
    expressions(&dashboard, &mut found);
    let (names, per_port) = exported();
    let mut queried = BTreeSet::new();
    for expression in &found {
        let read = metric_names(expression);
        assert!(!read.is_empty(), "{expression:?} reads no handshake metric");
        for name in read {
            assert!(
                names.contains(&name),
                "the dashboard queries {name} ({expression:?}), which `handshake metrics` does not export; it exports {names:?}"
            );
            if expression.contains("port)") {
                assert!(
                    per_port.contains(&name),
                    "{expression:?} groups by port, but {name} has no port label"
                );
            }
            queried.insert(name);
        }
    }
    // What the dashboard is for: answers, validated and forged ACKs, drops by reason,
    // the source lists, the rate limits, dry run.
    for needed in [
        "handshake_syn_ack_sent_total",
        "handshake_ack_validated_total",
        "handshake_ack_dropped_forged_total",
        "handshake_syn_dropped_invalid_total",
        "handshake_dropped_denied_total",
        "handshake_passed_allowed_total",
        "handshake_syn_dropped_rate_limited_total",
        "handshake_syn_dropped_reflection_cap_total",
        "handshake_dry_run",
        "handshake_protected",
    ] {
        assert!(queried.contains(needed), "no panel shows {needed}");
    }
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids must be unique");
}
