//! Metrics of the auth and calls services, in the Prometheus text format (`GET /metrics`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `corecast_http_requests_total` | counter | `service`, `route`, `method`, `status` |
//! | `corecast_http_request_duration_seconds` | histogram | `service`, `route`, `method` |
//! | `corecast_store_errors_total` | counter | `service`, `store`, `op`, `kind` |
//! | `corecast_calls_moved_total` | counter (calls only) | `service`, `reason` |
//!
//! `route` is the matched route template (`/v1/calls/{id}/join`, never the raw path, so that
//! the number of series stays bounded); requests no route matched are counted as
//! `route="unmatched"`. `method` is one of the standard methods or `OTHER`. Store errors are
//! counted where a store call fails ([`crate::stores::counted`]): `kind` is `unavailable` (the
//! server is down or too slow) or `internal`; a conflict (a taken login) is not an error.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MoveLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
    op: &'static str,
    kind: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Latency buckets: 1 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// One service's metrics (auth or calls): requests, latency, store errors.
#[derive(Debug)]
pub struct ServiceMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    store_errors: Family<StoreLabels, Counter>,
    calls_moved: Family<MoveLabels, Counter>,
}

impl ServiceMetrics {
    /// Metrics of `service` (`auth` or `calls`: the `service` label of every series).
    pub fn new(service: &'static str) -> Arc<Self> {
        let mut registry = Registry::with_labels(std::iter::once((Cow::Borrowed("service"), Cow::Borrowed(service))));
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "corecast_http_requests",
            "HTTP requests answered, by route template and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "corecast_http_request_duration",
            "Time to answer HTTP requests, by route template",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "corecast_store_errors",
            "Store calls that failed, by store and operation",
            store_errors.clone(),
        );
        let calls_moved = Family::<MoveLabels, Counter>::default();
        if service == "calls" {
            registry.register(
                "corecast_calls_moved",
                "Calls this instance moved off a router: reason dead (failover) or drained (drain deadline)",
                calls_moved.clone(),
            );
        }
        Arc::new(ServiceMetrics { registry, requests, latency, store_errors, calls_moved })
    }

    /// Counts a call moved off a router (`dead` or `drained`).
    pub fn call_moved(&self, reason: &'static str) {
        self.calls_moved.get_or_create(&MoveLabels { reason }).inc();
    }

    /// Counts a failed store call.
    pub fn store_error(&self, store: &'static str, op: &'static str, kind: &'static str) {
        self.store_errors.get_or_create(&StoreLabels { store, op, kind }).inc();
    }

    /// Counts an answered request and observes its latency (what the middleware does for
    /// every request; a family shows on `/metrics` from its first sample on).
    pub fn request(&self, route: Cow<'static, str>, method: &'static str, status: StatusCode, seconds: f64) {
        self.latency.get_or_create(&RouteLabels { route: route.clone(), method }).observe(seconds);
        self.requests.get_or_create(&RequestLabels { route, method, status: status.as_u16() }).inc();
    }

    /// Everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// A bounded method label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// Middleware: counts every request by route template, method and status, and observes its
/// latency (to the response head; a streamed body is not waited for).
async fn track(State(m): State<Arc<ServiceMetrics>>, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => Cow::Owned(p.as_str().to_owned()),
        None => Cow::Borrowed("unmatched"),
    };
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    m.request(route, method, resp.status(), started.elapsed().as_secs_f64());
    resp
}

/// Adds `GET /metrics` to `app` and counts every request to it (the routes `app` has now,
/// and its fallback).
pub fn instrument(app: Router, metrics: &Arc<ServiceMetrics>) -> Router {
    let m = metrics.clone();
    app.route("/metrics", get(move || scrape(m.clone())))
        .layer(axum::middleware::from_fn_with_state(metrics.clone(), track))
}

async fn scrape(m: Arc<ServiceMetrics>) -> Response {
    ([("content-type", prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], m.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_the_service_label() {
        let m = ServiceMetrics::new("auth");
        m.request(Cow::Borrowed("/v1/login"), "POST", StatusCode::OK, 0.003);
        m.request(Cow::Borrowed("/v1/login"), "POST", StatusCode::OK, 0.5);
        m.store_error("users", "by_login", "unavailable");
        let text = m.render();
        assert!(text.contains("# TYPE corecast_http_requests_total counter\n"), "{text}");
        assert!(text.contains("# HELP corecast_http_requests_total "), "{text}");
        assert!(
            text.contains(
                "corecast_http_requests_total{service=\"auth\",route=\"/v1/login\",method=\"POST\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE corecast_http_request_duration_seconds histogram\n"), "{text}");
        assert!(
            text.contains(
                "corecast_http_request_duration_seconds_count{service=\"auth\",route=\"/v1/login\",method=\"POST\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("corecast_http_request_duration_seconds_bucket{service=\"auth\",route=\"/v1/login\",method=\"POST\",le=\"0.004\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("corecast_store_errors_total{service=\"auth\",store=\"users\",op=\"by_login\",kind=\"unavailable\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
