//! Which worker owns which call.
//!
//! A call lives on worker `h mod workers`, where `h` is 64-bit FNV-1a over
//! the call id's 16 bytes followed by the splitmix64 finalizer (see
//! "Placement over workers" in `router/PROTOCOL.md`). The function depends on
//! nothing but its inputs, so it is stable across processes, versions and
//! languages: the calls service, the client and every router worker compute
//! the same answer with no shared state. Changing it would split calls
//! between workers that disagree; the test below pins known outputs so that
//! cannot happen silently.

use crate::token::CallId;

/// The worker index a call is placed on, among `workers` (0 when `workers <= 1`).
pub fn worker_for(call: &CallId, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    (hash(call) % workers as u64) as usize
}

/// FNV-1a over the id, then the splitmix64 finalizer so that every output
/// bit depends on every input bit (FNV's low bits alone are weak).
fn hash(call: &CallId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in call.0 {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known outputs, computed with the implementation that lived in
    /// `corecast_core::Placement::worker_for` (and with an independent
    /// Python rendering of the same steps). If this fails, placement changed
    /// and deployed routers, clients and the calls service would disagree.
    #[test]
    fn known_outputs_never_change() {
        let cases: [([u8; 16], u64, [usize; 5]); 4] = [
            ([0; 16], 0x6875_2350_ae1d_483f, [1, 2, 3, 1, 15]),
            ([0xff; 16], 0xbe9b_b220_6637_5ef1, [1, 0, 1, 2, 1]),
            ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], 0x4de8_e30e_abd4_a6be, [0, 2, 2, 0, 14]),
            ([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0x01e8_6ae1_0522_411d, [1, 1, 1, 2, 13]),
        ];
        for (id, h, workers) in cases {
            let call = CallId(id);
            assert_eq!(hash(&call), h, "{call:?}");
            for (n, w) in [2, 3, 4, 7, 16].into_iter().zip(workers) {
                assert_eq!(worker_for(&call, n), w, "{call:?} over {n} workers");
            }
        }
    }

    #[test]
    fn one_or_no_worker_is_worker_zero() {
        let call = CallId([0xff; 16]);
        assert_eq!(worker_for(&call, 0), 0);
        assert_eq!(worker_for(&call, 1), 0);
    }
}
