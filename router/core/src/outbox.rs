//! The router's output queue and counters: everything the core emits goes
//! through here, so every transmit and pipe message is counted in one place.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use corecast_proto::token::CallId;

use crate::api::{Event, Output, PipeSend, Transmit};
use crate::pipe::PipeMessage;
use crate::stats::{DropReason, RouterStats};

/// Pending outputs, drained by `Router::poll_output`, and the counters.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    pub stats: RouterStats,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox { queue: VecDeque::with_capacity(1024), stats: RouterStats::default() }
    }

    pub fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// A datagram from the router's UDP port.
    #[inline]
    pub fn transmit(&mut self, destination: SocketAddr, contents: Bytes) {
        self.stats.tx_datagrams += 1;
        self.queue.push_back(Output::Transmit(Transmit { destination, contents }));
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
