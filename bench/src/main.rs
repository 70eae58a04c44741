//! `corecast-bench`: load generator and benchmark suite.
//!
//! - `demo`: a bounded call through an in-process router, every packet checked;
//! - `fanout`: forwarding throughput per router core against an ideal and a naive forwarder;
//! - `codec`: cost of the SD composite;
//! - `soak`: minutes of join/leave churn through the control plane and the router, checking that
//!   memory, file descriptors and the router's buffers stay bounded.

#![deny(unsafe_code)]

use clap::{Parser, Subcommand};

mod codec;
mod demo;
mod fanout;
mod measure;
mod pipe_seal;
mod plot;
mod report;
mod soak;
#[allow(unsafe_code)]
mod sys;

#[derive(Debug, Parser)]
#[command(version, about = "corecast load generator and benchmarks")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one bounded call through a router and check every packet.
    Demo(demo::DemoArgs),
    /// Forwarding throughput per router core, side by side with an ideal
    /// (recvmmsg/sendmmsg, with and without GSO) and a naive (tokio) forwarder.
    Fanout(fanout::FanoutArgs),
    /// Cost of one SD composite in the codec pool: CPU per composite, added
    /// latency and memory of a mixer fed pre-encoded 720p or 360p sources.
    Codec(codec::CodecArgs),
    /// Calls with constant join/leave churn through the control plane and the router
    /// (both started here, on loopback), checking for growth in memory, file
    /// descriptors and buffers, for participants left behind and for panics.
    Soak(soak::SoakArgs),
    /// Cost of sealing and opening one cascading pipe datagram (router to
    /// router, per-link AES-256-GCM), on one core, no sockets.
    PipeSeal(pipe_seal::PipeSealArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match Args::parse().cmd {
        Cmd::Demo(a) => demo::run(a),
        Cmd::Fanout(a) => fanout::run(a),
        Cmd::Codec(a) => codec::run(a),
        Cmd::Soak(a) => soak::run(a),
        Cmd::PipeSeal(a) => pipe_seal::run(a),
    }
}
