//! The router's output queue and counters: everything the core emits goes
//! through here, so every transmit and pipe message is counted in one place.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use corecast_proto::token::{CallId, ParticipantId};

use crate::api::{Event, Output, PipeSend, Transmit};
use crate::pipe::PipeMessage;
use crate::stats::{DropReason, RouterStats};

/// Pending outputs, drained by `Router::poll_output`, and the counters.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    pub stats: RouterStats,
    /// Where sealed (and unsealed) packets are written and split off.
    arena: BytesMut,
    /// While a session message is handled: its source and length. A reply
    /// to that source longer than the message is not sent (counted as
    /// `replies_withheld`): the source may be spoofed, and the router must
    /// not answer it with more bytes than it got (no amplification).
    reply_limit: Option<(SocketAddr, usize)>,
    /// The time of the input being handled: what a send is recorded at
    /// (a WebRTC leg's transport-wide send history) without passing the
    /// time down every send path. Set by each entry point that takes one.
    now: Instant,
    /// WebRTC legs with packets waiting for their pace (`webrtc::pacing`),
    /// and the earliest time one of them may send.
    paced_legs: Vec<(CallId, ParticipantId)>,
    pace_due: Option<Instant>,
    /// Counters per other router this worker has a link to (`cascade`).
    pub links: crate::hash::FxHashMap<SocketAddr, crate::cascade::LinkStats>,
}

/// The arena grows by this much at a time: once every packet split off a
/// chunk is sent and dropped, `reserve` reuses the chunk's memory.
const ARENA_CHUNK: usize = 256 * 1024;
/// Room kept for one packet (sealing adds at most a tag and an index).
const ARENA_PACKET: usize = 2048;

impl Outbox {
    pub fn new(now: Instant) -> Outbox {
        Outbox {
            now,
            queue: VecDeque::with_capacity(1024),
            stats: RouterStats::default(),
            arena: BytesMut::new(),
            reply_limit: None,
            paced_legs: Vec::new(),
            pace_due: None,
            links: Default::default(),
        }
    }

    /// The arena, with room for one more packet after what it holds.
    #[inline]
    pub fn arena(&mut self) -> &mut BytesMut {
        if self.arena.capacity() - self.arena.len() < ARENA_PACKET {
            self.arena.reserve(ARENA_CHUNK);
        }
        &mut self.arena
    }

    /// What was written into the arena since the last take, as its own buffer.
    #[inline]
    pub fn take_arena(&mut self) -> Bytes {
        self.arena.split().freeze()
    }

    /// Forgets what was written into the arena since the last take.
    #[inline]
    pub fn discard_arena(&mut self) {
        self.arena.clear();
    }

    /// The time of the input being handled.
    #[inline]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sets [`Outbox::now`] (at each input; time never goes back).
    #[inline]
    pub fn set_now(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Wakes `leg`'s send queue at `at` (or earlier); `add`: the leg is
    /// not on the list yet.
    #[inline]
    pub fn wake_pacer(&mut self, leg: (CallId, ParticipantId), at: Instant, add: bool) {
        if add {
            self.paced_legs.push(leg);
        }
        self.pace_due = Some(self.pace_due.map_or(at, |d| d.min(at)));
    }

    /// When a leg's send queue is to be woken next.
    #[inline]
    pub fn pace_due(&self) -> Option<Instant> {
        self.pace_due
    }

    /// The legs to wake (the list is left empty, to be refilled by the
    /// legs that still wait; hand the vector back with [`Self::paced_legs_back`]).
    pub fn take_paced_legs(&mut self) -> Vec<(CallId, ParticipantId)> {
        self.pace_due = None;
        std::mem::take(&mut self.paced_legs)
    }

    /// Returns the (drained) vector of [`Self::take_paced_legs`], keeping its allocation.
    pub fn paced_legs_back(&mut self, mut legs: Vec<(CallId, ParticipantId)>) {
        legs.clear();
        legs.append(&mut self.paced_legs);
        self.paced_legs = legs;
    }

    pub fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// A datagram from the router's UDP port.
    #[inline]
    pub fn transmit(&mut self, destination: SocketAddr, contents: Bytes) {
        if let Some((to, max)) = self.reply_limit {
            if to == destination && contents.len() > max {
                self.stats.replies_withheld += 1;
                return;
            }
        }
        self.stats.tx_datagrams += 1;
        self.stats.tx_bytes += contents.len() as u64;
        self.queue.push_back(Output::Transmit(Transmit { destination, contents }));
    }

    /// Replies to `source` longer than `len` bytes are withheld until
    /// [`end_reply_limit`](Self::end_reply_limit).
    pub fn limit_replies(&mut self, source: SocketAddr, len: usize) {
        self.reply_limit = Some((source, len));
    }

    /// Ends [`limit_replies`](Self::limit_replies).
    pub fn end_reply_limit(&mut self) {
        self.reply_limit = None;
    }

    /// A message to another worker's share of `call`.
    #[inline]
    pub fn pipe(&mut self, worker: usize, call: CallId, message: PipeMessage) {
        match message {
            PipeMessage::Media(_) => self.stats.pipe_media += 1,
            _ => self.stats.pipe_control += 1,
        }
        self.queue.push_back(Output::Pipe(PipeSend { worker, call, message }));
    }

    pub fn event(&mut self, e: Event) {
        self.queue.push_back(Output::Event(e));
    }

    pub fn drop_packet(&mut self, reason: DropReason) {
        self.stats.count_drop(reason);
    }
}
