//! The OpenAPI document matches the routes: every route is documented, every documented
//! path exists, and every listed route is really served (not the JSON 404 fallback / 405).

mod common;

use common::*;
use corecast_control::openapi::{AUTH_ROUTES, CALLS_ROUTES, OPENAPI_JSON};

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json parses");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    let mut listed = std::collections::BTreeSet::new();
    for (method, path) in AUTH_ROUTES.iter().chain(CALLS_ROUTES) {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} undocumented"))[method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} undocumented");
        assert!(op["responses"].is_object(), "{method} {path} has no responses");
        listed.insert((method.to_lowercase(), path.to_string()));
    }
    for (path, item) in paths {
        for (k, _) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch"].contains(&k.as_str()) {
                assert!(listed.contains(&(k.clone(), path.clone())), "{k} {path} documented but not routed");
            }
        }
    }
}

#[tokio::test]
async fn every_listed_route_is_served() {
    let s = start(|_| {}).await;
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    for (base, routes) in [(&s.auth, AUTH_ROUTES), (&s.calls, CALLS_ROUTES)] {
        for (method, path) in routes {
            let url = format!("{base}{}", path.replace("{id}", id).replace("{session}", "1.YWI.AAAA"));
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = send(s.http.request(m, &url).header("content-type", "application/json").body("{}")).await;
            assert_ne!(r.status, 405, "{method} {path}");
            assert_ne!(r.body["error"]["message"], "no such route", "{method} {path} not routed");
        }
        // Methods not documented for a path are not served either.
        let documented: Vec<_> = routes.iter().collect();
        for (_, path) in routes {
            for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if documented.iter().any(|(dm, dp)| *dm == m && dp == path) {
                    continue;
                }
                let url = format!("{base}{}", path.replace("{id}", id).replace("{session}", "1.YWI.AAAA"));
                let r = send(s.http.request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), &url)).await;
                assert_eq!(r.status, 405, "{m} {path} is served but not documented");
            }
        }
    }
    s.shutdown().await;
}

/// The route lists above are checked against the services' own `.route(..)`
/// calls, so a route added in code but not to the lists (and the document)
/// fails here.
#[test]
fn the_route_lists_are_the_routes_in_the_code() {
    fn routes_in(src: &str) -> std::collections::BTreeSet<(String, String)> {
        let mut out = std::collections::BTreeSet::new();
        for line in src.lines() {
            let Some(at) = line.find(".route(\"") else { continue };
            let rest = &line[at + ".route(\"".len()..];
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            // The handlers: `get(h)`, `.delete(h)`, ... after the path.
            let handlers = &rest[end..];
            for m in ["get", "post", "put", "patch", "delete"] {
                let pat = format!("{m}(");
                let routed = handlers
                    .match_indices(&pat)
                    .any(|(i, _)| i == 0 || matches!(handlers.as_bytes()[i - 1], b' ' | b'.' | b','));
                if routed {
                    out.insert((m.to_uppercase(), path.to_string()));
                }
            }
        }
        out
    }
    let listed = |r: &[(&str, &str)]| -> std::collections::BTreeSet<(String, String)> {
        r.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect()
    };
    // `/metrics` comes with the request counting both services get (`metrics::instrument`).
    let metrics = routes_in(include_str!("../src/metrics.rs"));
    let mut auth = routes_in(include_str!("../src/auth.rs"));
    auth.extend(metrics.iter().cloned());
    assert_eq!(auth, listed(AUTH_ROUTES), "auth routes");
    let mut calls = routes_in(include_str!("../src/calls.rs"));
    calls.extend(routes_in(include_str!("../src/whip.rs")));
    calls.extend(metrics);
    assert_eq!(calls, listed(CALLS_ROUTES), "calls routes");
}
