//! Which worker owns which call.

use std::net::SocketAddr;

use corecast_proto::token::CallId;

/// Which worker owns which call.
///
/// A call goes to worker `hash(call id) % workers` (FNV-1a + splitmix64
/// finalizer, see `router/PROTOCOL.md`): every worker computes the same
/// answer with no shared state, so the calls service, the client and every
/// worker agree without talking to each other.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// This worker's index in `addresses`.
    pub index: usize,
    /// The public address of every worker, in index order.
    pub addresses: Vec<SocketAddr>,
}

impl Placement {
    /// The worker index a call is placed on, among `workers`.
    pub fn worker_for(call: &CallId, workers: usize) -> usize {
        if workers <= 1 {
            return 0;
        }
        // FNV-1a over the id, then the splitmix64 finalizer so that every
        // output bit depends on every input bit (FNV's low bits alone are
        // weak): stable across processes, versions and languages.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in call.0 {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        (h % workers as u64) as usize
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
