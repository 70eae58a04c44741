//! Send planning shared by the fast backends: groups the datagrams queued in
//! one batch by destination (keeping each destination's order) and cuts each
//! destination's list into GSO runs: consecutive datagrams of one size, the
//! last of a run allowed to be shorter (that is how `UDP_SEGMENT` splits).
//!
//! Safe code only; [`super::msghdr`] turns a plan into `msghdr`s.

use std::net::SocketAddr;

use bytes::Bytes;
use corecast_core::hash::FxHashMap;

use super::sock::RawAddr;

/// Most segments one GSO send may carry (the kernel's `UDP_MAX_SEGMENTS` is 64
/// on older kernels, 128 on newer).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Most payload bytes one GSO send may carry (an IPv4 datagram's 65535 bytes
/// minus IP and UDP headers).
pub const MAX_GSO_BYTES: usize = 65507;

/// One send: a plain datagram, or a GSO run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanEntry {
    /// Index into [`SendPlan::dests`].
    pub dest: u32,
    /// First index into [`SendPlan::order`].
    pub start: u32,
    /// Number of datagrams (1 for a plain send).
    pub count: u32,
    /// GSO segment size, 0 for a plain send.
    pub segment: u16,
}

impl PlanEntry {
    /// Whether this entry is a GSO send.
    pub fn is_gso(&self) -> bool {
        self.segment != 0
    }
}

/// A plan for one flush. All vectors keep their capacity between flushes, so
/// planning does not allocate in steady state.
#[derive(Debug, Default)]
pub struct SendPlan {
    /// Destination → group (FxHash: the keys are addresses the router already admitted).
    slots: FxHashMap<SocketAddr, u32>,
    heads: Vec<(u32, u32)>,
    next: Vec<u32>,
    /// Destination of each group, in kernel layout.
    pub dests: Vec<RawAddr>,
    /// Queue indices in send order (grouped by destination, order kept).
    pub order: Vec<u32>,
    /// The sends.
    pub entries: Vec<PlanEntry>,
}

const NONE: u32 = u32::MAX;

impl SendPlan {
    /// Plans the sends of `queue`. With `gso` false every datagram is a plain
    /// entry; datagrams longer than `max_segment` are never GSO segments (a
    /// segment must fit the path MTU or the kernel refuses the send).
    pub fn build(&mut self, queue: &[(SocketAddr, Bytes)], gso: bool, v6_socket: bool, max_segment: usize) {
        self.slots.clear();
        self.heads.clear();
        self.next.clear();
        self.dests.clear();
        self.order.clear();
        self.entries.clear();
        if !gso {
            // No grouping needed: plain sends in queue order keep per-destination order.
            for (i, (dst, _)) in queue.iter().enumerate() {
                let d = match self.slots.get(dst) {
                    Some(&d) => d,
                    None => {
                        let d = self.dests.len() as u32;
                        self.slots.insert(*dst, d);
                        self.dests.push(RawAddr::new(*dst, v6_socket));
                        d
                    }
                };
                self.order.push(i as u32);
                self.entries.push(PlanEntry { dest: d, start: i as u32, count: 1, segment: 0 });
            }
            return;
        }
        // Group: singly linked list per destination through `next`.
        self.next.resize(queue.len(), NONE);
        for (i, (dst, _)) in queue.iter().enumerate() {
            let i = i as u32;
            match self.slots.get(dst) {
                Some(&d) => {
                    let tail = self.heads[d as usize].1;
                    self.next[tail as usize] = i;
                    self.heads[d as usize].1 = i;
                }
                None => {
                    let d = self.heads.len() as u32;
                    self.slots.insert(*dst, d);
                    self.heads.push((i, i));
                    self.dests.push(RawAddr::new(*dst, v6_socket));
                }
            }
        }
        // Cut each destination's list into runs.
        for d in 0..self.heads.len() {
            let mut p = self.heads[d].0;
            let mut run: Option<(PlanEntry, usize, usize)> = None; // (entry, segment size, bytes)
            while p != NONE {
                let len = queue[p as usize].1.len();
                let pos = self.order.len() as u32;
                self.order.push(p);
                run = match run {
                    Some((mut e, seg, bytes))
                        if len <= seg
                            && (e.count as usize) < MAX_GSO_SEGMENTS
                            && bytes + len <= MAX_GSO_BYTES
                            && len > 0 =>
                    {
                        e.count += 1;
                        if len < seg {
                            // A shorter datagram ends the run.
                            self.push_run(e, seg);
                            None
                        } else {
                            Some((e, seg, bytes + len))
                        }
                    }
                    prev => {
                        if let Some((e, seg, _)) = prev {
                            self.push_run(e, seg);
                        }
                        let e = PlanEntry { dest: d as u32, start: pos, count: 1, segment: 0 };
                        if len == 0 || len > max_segment.min(usize::from(u16::MAX)) {
                            self.entries.push(e);
                            None
                        } else {
                            Some((e, len, len))
                        }
                    }
                };
                p = self.next[p as usize];
            }
            if let Some((e, seg, _)) = run {
                self.push_run(e, seg);
            }
        }
    }

    fn push_run(&mut self, mut e: PlanEntry, seg: usize) {
        if e.count > 1 {
            e.segment = seg as u16;
        }
        self.entries.push(e);
    }

    /// Queue indices of entry `e`.
    pub fn packets(&self, e: &PlanEntry) -> &[u32] {
        &self.order[e.start as usize..(e.start + e.count) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(items: &[(u16, usize)]) -> Vec<(SocketAddr, Bytes)> {
        items
            .iter()
            .enumerate()
            .map(|(i, &(port, len))| (SocketAddr::from(([127, 0, 0, 1], port)), Bytes::from(vec![i as u8; len])))
            .collect()
    }

    #[test]
    fn groups_by_destination_in_order() {
        let queue = q(&[(1, 100), (2, 100), (1, 100), (2, 100), (1, 60), (1, 100)]);
        let mut plan = SendPlan::default();
        plan.build(&queue, true, false, 1472);
        let got: Vec<(u32, Vec<u32>, u16)> =
            plan.entries.iter().map(|e| (e.dest, plan.packets(e).to_vec(), e.segment)).collect();
        assert_eq!(got, vec![(0, vec![0, 2, 4], 100), (0, vec![5], 0), (1, vec![1, 3], 100)]);
    }

    #[test]
    fn larger_datagram_starts_a_new_run_and_limits_hold() {
        let mut items = vec![(1, 50), (1, 80), (1, 80)];
        items.extend(std::iter::repeat_n((1, 1000), 70));
        let queue = q(&items);
        let mut plan = SendPlan::default();
        plan.build(&queue, true, false, 1472);
        let counts: Vec<(u32, u16)> = plan.entries.iter().map(|e| (e.count, e.segment)).collect();
        // 65 * 1000 > MAX_GSO_BYTES, so the 1000-byte runs are capped at 64 segments / 65 KB.
        assert_eq!(counts, vec![(1, 0), (2, 80), (64, 1000), (6, 1000)]);
        let total: u32 = plan.entries.iter().map(|e| e.count).sum();
        assert_eq!(total as usize, queue.len());
    }

    #[test]
    fn datagrams_over_the_segment_limit_go_plain() {
        let queue = q(&[(1, 2000), (1, 2000), (1, 1400), (1, 1400)]);
        let mut plan = SendPlan::default();
        plan.build(&queue, true, false, 1472);
        let counts: Vec<(u32, u16)> = plan.entries.iter().map(|e| (e.count, e.segment)).collect();
        assert_eq!(counts, vec![(1, 0), (1, 0), (2, 1400)]);
    }

    #[test]
    fn without_gso_every_datagram_is_plain_in_queue_order() {
        let queue = q(&[(1, 10), (2, 10), (1, 10)]);
        let mut plan = SendPlan::default();
        plan.build(&queue, false, false, 1472);
        assert!(plan.entries.iter().all(|e| e.count == 1 && !e.is_gso()));
        assert_eq!(plan.order, vec![0, 1, 2]);
        assert_eq!(plan.dests.len(), 2);
    }
}
