//! corecast control plane: the `auth` and `calls` services.
//!
//! * [`auth`]: users (PostgreSQL or embedded redb) and sessions (Redis or memory).
//! * [`calls`]: active calls (Tarantool or memory), join tokens, router placement and the
//!   router link; [`cascade`]: a call over several routers (placement of joins, links);
//!   [`whip`]: WHIP (RFC 9725) and WHEP ingest/egress of WebRTC legs, placed like joins
//!   ([`leg_router`]);
//!   [`participants`]: a publisher's muted state; [`web`]: the web app (`web/`).
//!
//! * [`metrics`] and [`health`]: `/metrics` (requests by route and status, latency, store
//!   errors), `/healthz` and `/readyz` on both services.
//!
//! Each service is an [`axum::Router`] built from a state value, so the binaries, `make run`
//! and the tests start them the same way (see [`run`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod call_view;
pub mod calls;
pub mod cascade;
pub mod config;
pub mod error;
pub mod failover;
pub mod geo;
pub mod health;
pub mod http;
pub mod keys;
pub mod leg_router;
pub mod metrics;
pub mod openapi;
pub mod participants;
pub mod router_admin;
pub mod router_cli;
pub mod routers;
pub mod run;
pub mod stores;
pub mod tarantool;
pub mod util;
pub mod web;
pub mod whip;
pub mod whip_resource;
