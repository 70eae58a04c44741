//! corecast-router: the UDP media router.
//!
//! - [`net`]: socket backends (`basic`, `mmsg`, `uring/`), the send plan
//!   (GSO grouping), one `msghdr` builder; all `unsafe` code of the router
//!   lives there (`#![deny(unsafe_code)]` everywhere else);
//! - [`worker`]: one pinned thread per core running the sans-IO
//!   [`corecast_core::Router`] over one backend, and the rings that carry the
//!   core's pipe transports between workers;
//! - [`server`]: starts the workers, places calls on them and gives the control
//!   plane a handle (end a call, list calls, collect events and counters);
//! - [`config`]: the TOML configuration with environment overrides;
//! - [`admin`]: the admin HTTP API (end a call, list calls, counters, health);
//! - [`metrics`]: the workers' counters in the Prometheus text format;
//! - [`pipes_admin`]: the admin routes that link routers for cascading;
//! - [`link`]: registration, heartbeat, re-sync and event reports to the calls service.
#![recursion_limit = "256"]
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod config;
pub mod link;
pub mod metrics;
#[allow(unsafe_code)]
pub mod net;
pub mod pipes_admin;
pub mod server;
pub mod webrtc;
pub mod worker;

pub use server::{RouterServer, ServerEvent};
