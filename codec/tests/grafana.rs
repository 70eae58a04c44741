//! `tuning/grafana/corecast.json` is built from the metrics the services expose: every
//! `corecast_*` name in its queries is a family that the router, the control plane or the
//! codec pool writes on `/metrics`.

use std::collections::BTreeSet;

use corecast_router::worker::WorkerStats;

const DASHBOARD: &str = include_str!("../../tuning/grafana/corecast.json");

/// The series names a scrape can hold: every `# TYPE` family, with a histogram's
/// `_bucket`, `_sum` and `_count`.
fn exposed(text: &str, names: &mut BTreeSet<String>) {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut it = rest.split(' ');
        let (Some(name), Some(kind)) = (it.next(), it.next()) else { continue };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{s}"));
            }
        }
    }
}

#[test]
fn the_dashboard_names_only_exposed_metrics() {
    let mut names = BTreeSet::new();
    exposed(&corecast_router::metrics::render(vec![WorkerStats::default()]), &mut names);
    exposed(&corecast_codec::metrics::render(vec![corecast_codec::PoolStats::default()]), &mut names);
    let control = corecast_control::metrics::ServiceMetrics::new("calls");
    control.store_error("calls", "get", "unavailable");
    control.call_moved("dead");
    control.request("/v1/keys".into(), "GET", axum::http::StatusCode::OK, 0.001);
    exposed(&control.render(), &mut names);

    let doc: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    let mut queries = 0;
    for panel in doc["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            queries += 1;
            let mut rest = expr;
            while let Some(at) = rest.find("corecast_") {
                let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[at + name.len()..];
                used.insert(name);
            }
        }
    }
    assert!(queries >= 20, "{queries} queries");
    let unknown: Vec<_> = used.difference(&names).collect();
    assert!(unknown.is_empty(), "the dashboard uses metrics no service exposes: {unknown:?}");
    for needed in [
        "corecast_rx_bytes_total",
        "corecast_dropped_total",
        "corecast_worker_busy_seconds_total",
        "corecast_http_requests_total",
        "corecast_store_errors_total",
        "corecast_codec_frames_encoded_total",
        "corecast_codec_encode_seconds_total",
    ] {
        assert!(used.contains(needed), "the dashboard has no {needed} panel");
    }
}
