//! The OpenAPI description of both services (`control/openapi.json`).

/// The OpenAPI 3.0 document, as shipped in `control/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Routes of the auth service as `(METHOD, path)`; a test checks each is documented.
pub const AUTH_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/register"),
    ("POST", "/v1/login"),
    ("POST", "/v1/logout"),
    ("GET", "/v1/me"),
    ("GET", "/v1/health"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// Routes of the calls service as `(METHOD, path)` (`calls.rs` and `whip.rs`).
pub const CALLS_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/calls"),
    ("GET", "/v1/calls/{id}"),
    ("DELETE", "/v1/calls/{id}"),
    ("POST", "/v1/calls/{id}/join"),
    ("POST", "/v1/calls/{id}/leave"),
    ("POST", "/v1/calls/{id}/rejoin"),
    ("POST", "/v1/calls/{id}/mixer"),
    ("PATCH", "/v1/calls/{id}/participants/{participant}"),
    ("POST", "/v1/calls/{id}/whip"),
    ("POST", "/v1/calls/{id}/whep"),
    ("PATCH", "/v1/calls/{id}/sessions/{session}"),
    ("DELETE", "/v1/calls/{id}/sessions/{session}"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/routers"),
    ("GET", "/v1/routers"),
    ("PATCH", "/v1/routers/{id}"),
    ("POST", "/v1/routers/{id}/events"),
    ("GET", "/v1/health"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];
