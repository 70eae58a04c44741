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
];

/// Routes of the calls service as `(METHOD, path)`.
pub const CALLS_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/calls"),
    ("GET", "/v1/calls/{id}"),
    ("DELETE", "/v1/calls/{id}"),
    ("POST", "/v1/calls/{id}/join"),
    ("POST", "/v1/calls/{id}/leave"),
    ("POST", "/v1/calls/{id}/mixer"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/routers"),
    ("POST", "/v1/routers/{id}/events"),
    ("GET", "/v1/health"),
];
