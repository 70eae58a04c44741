//! A call's share on this worker: its participants, the pipes to the other
//! workers its share is spread over, and who owns which SSRC.

use std::time::Instant;

use bytes::Bytes;
use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::Ssrc;

use crate::hash::FxHashMap;
use crate::outbox::Outbox;
use crate::participant::Participant;
use crate::pipe::{PipePeer, PipeTransport};
use crate::producer::Producer;

/// Who produces an SSRC: a participant on this worker, or one on the worker
/// at the other end of a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Participant(ParticipantId),
    Pipe(PipePeer),
}

/// Where a packet came from or goes to within the call: a participant's
/// transport or a pipe (indices into `participants` / `pipes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Participant(usize),
    Pipe(usize),
}

/// One call on this worker.
#[derive(Debug)]
pub(crate) struct Call {
    pub id: CallId,
    /// This worker owns the call: it is the hub of the call's pipes
    /// (placement is fixed, so this is computed once, not per packet).
    pub hub: bool,
    /// Members on this worker.
    pub participants: Vec<Participant>,
    /// Links to this call's shares on other workers (on the owning worker,
    /// one per worker it spread to; elsewhere, the one to the owner).
    pub pipes: Vec<PipeTransport>,
    pub ssrc_owner: FxHashMap<Ssrc, Owner>,
    /// Seats the owning worker granted here for joins it redirected, and
    /// until when they hold (on the other workers only).
    pub granted: Vec<(ParticipantId, Instant)>,
    /// Whether a mixer was wanted at the last check (SD receivers present).
    pub mixer_wanted: bool,
    /// Round-robin position for spreading new receivers over other workers.
    pub next_spread: usize,
    /// The speakers list last sent to the call's mixer (video SSRCs, loudest first).
    pub speakers_sent: Vec<Ssrc>,
    /// The dominant speaker, as last told (Last-N: `speakers::stage`).
    pub dominant: Option<ParticipantId>,
}

impl Call {
    pub fn new(id: CallId, hub: bool) -> Call {
        Call {
            id,
            hub,
            participants: Vec::with_capacity(8),
            pipes: Vec::new(),
            ssrc_owner: FxHashMap::default(),
            granted: Vec::new(),
            mixer_wanted: false,
            next_spread: 0,
            speakers_sent: Vec::new(),
            dominant: None,
        }
    }

    #[inline]
    pub fn index_of(&self, pid: ParticipantId) -> Option<usize> {
        self.participants.iter().position(|p| p.id == pid)
    }

    #[inline]
    pub fn pipe_index(&self, peer: PipePeer) -> Option<usize> {
        self.pipes.iter().position(|p| p.peer == peer)
    }

    /// Every producer of the call known here: local ones, then those
    /// announced over pipes.
    pub fn producers(&self) -> impl Iterator<Item = &Producer> {
        self.participants
            .iter()
            .flat_map(|p| p.producers.iter())
            .chain(self.pipes.iter().flat_map(|p| p.producers.iter()))
    }

    pub fn producers_mut(&mut self) -> impl Iterator<Item = &mut Producer> {
        self.participants
            .iter_mut()
            .flat_map(|p| p.producers.iter_mut())
            .chain(self.pipes.iter_mut().flat_map(|p| p.producers.iter_mut()))
    }

    /// The producer of `ssrc`, wherever it is.
    pub fn producer(&self, ssrc: Ssrc) -> Option<&Producer> {
        let list = match self.endpoint_of(*self.ssrc_owner.get(&ssrc)?)? {
            Endpoint::Participant(i) => &self.participants[i].producers,
            Endpoint::Pipe(i) => &self.pipes[i].producers,
        };
        list.iter().find(|p| p.ssrc == ssrc)
    }

    /// The producer of `ssrc`, wherever it is (to change it).
    pub fn producer_mut(&mut self, ssrc: Ssrc) -> Option<&mut Producer> {
        let list = match self.endpoint_of(*self.ssrc_owner.get(&ssrc)?)? {
            Endpoint::Participant(i) => &mut self.participants[i].producers,
            Endpoint::Pipe(i) => &mut self.pipes[i].producers,
        };
        list.iter_mut().find(|p| p.ssrc == ssrc)
    }

    pub fn endpoint_of(&self, owner: Owner) -> Option<Endpoint> {
        match owner {
            Owner::Participant(pid) => self.index_of(pid).map(Endpoint::Participant),
            Owner::Pipe(w) => self.pipe_index(w).map(Endpoint::Pipe),
        }
    }

    /// Where requests about `ssrc` (PLI, NACK, reports) go.
    pub fn owner_endpoint(&self, ssrc: Ssrc) -> Option<Endpoint> {
        self.endpoint_of(*self.ssrc_owner.get(&ssrc)?)
    }

    /// Sends a packet of this call to one endpoint.
    pub fn send_to(&mut self, out: &mut Outbox, to: Endpoint, contents: Bytes) {
        match to {
            Endpoint::Participant(i) => self.participants[i].transport.send(out, contents),
            Endpoint::Pipe(i) => self.pipes[i].send_media(out, self.id, contents),
        }
    }

    /// A mixer takes part (here or on another worker), so SD receivers get
    /// its composite instead of raw video.
    pub fn has_mixer(&self) -> bool {
        self.participants.iter().any(|p| p.role == Role::Mixer)
            || self.pipes.iter().any(|p| p.producers.iter().any(|s| s.role == Role::Mixer))
    }

    /// Receivers on this worker that take SD (the mixer itself excluded).
    pub fn sd_receivers(&self) -> usize {
        self.participants.iter().filter(|p| p.quality.current == Quality::Sd && p.role != Role::Mixer).count()
    }

    /// Members of the whole call as this worker counts them: its own
    /// participants plus, on the owning worker, the seats on other workers
    /// (participants there and joins redirected there).
    ///
    /// A WHEP leg that watches one participant is not a member of its own:
    /// its person is already counted (a web client opens one per person it
    /// watches), and it is bounded by the worker's receiver limit instead.
    pub fn members(&self) -> usize {
        self.participants.iter().filter(|p| !p.is_watch_leg()).count()
            + self.pipes.iter().map(|p| p.seats.len()).sum::<usize>()
    }

    /// A participant joined here: uplinks to other routers count it (see `cascade`).
    pub fn mark_joined(&mut self) {
        for p in self.pipes.iter_mut().filter(|p| p.uplink_since.is_some()) {
            p.joined = true;
        }
    }

    /// Forgets the producers of `pid` announced over pipe `i`.
    pub fn drop_remote_participant(&mut self, i: usize, pid: ParticipantId) {
        let pipe = &mut self.pipes[i];
        pipe.seats.retain(|s| s.participant != pid);
        let ssrc_owner = &mut self.ssrc_owner;
        pipe.producers.retain(|p| {
            let keep = p.participant != pid;
            if !keep {
                ssrc_owner.remove(&p.ssrc);
            }
            keep
        });
    }
}
