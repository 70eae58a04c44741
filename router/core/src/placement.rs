//! Which worker owns which call.

use std::net::SocketAddr;

use corecast_proto::token::CallId;

/// Which worker owns which call.
///
/// A call goes to worker `hash(call id) % workers` (FNV-1a + splitmix64
/// finalizer, see `router/PROTOCOL.md`; the function lives in
/// `corecast_proto::placement` so the calls service computes it without the
/// core): every worker computes the same answer with no shared state, so the
/// calls service, the client and every worker agree without talking to each other.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// This worker's index in `addresses`.
    pub index: usize,
    /// The public address of every worker, in index order.
    pub addresses: Vec<SocketAddr>,
}

impl Placement {
    /// The worker index a call is placed on, among `workers`
    /// ([`corecast_proto::placement::worker_for`]).
    pub fn worker_for(call: &CallId, workers: usize) -> usize {
        corecast_proto::placement::worker_for(call, workers)
    }

    /// Number of workers (0 or 1: this worker takes every call).
    pub fn workers(&self) -> usize {
        self.addresses.len()
    }

    /// The worker that owns `call` (the hub of its pipes when spread).
    pub fn owner(&self, call: &CallId) -> usize {
        Placement::worker_for(call, self.workers())
    }

    /// Whether this worker owns `call`.
    pub fn owns(&self, call: &CallId) -> bool {
        self.owner(call) == self.index
    }
}
