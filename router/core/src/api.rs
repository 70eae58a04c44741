//! The types at the sans-IO boundary: what goes in ([`Input`], [`Command`])
//! and what comes out ([`Output`]: transmits, pipe messages, events, the
//! next deadline).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::Ssrc;

use crate::pipe::PipeMessage;

/// An input to the router.
#[derive(Debug, Clone)]
pub enum Input {
    /// A datagram arrived on the router's UDP port.
    Receive {
        /// Its source address.
        source: SocketAddr,
        /// Its bytes.
        contents: Bytes,
    },
    /// A message arrived on the pipe transport from another worker's share
    /// of a spread call (media is parsed again here: only the buffer crosses).
    Pipe {
        /// The worker it came from.
        from_worker: usize,
        /// The call.
        call: CallId,
        /// The message.
        message: PipeMessage,
    },
    /// The deadline of the last [`Output::Timeout`] passed.
    Timeout,
    /// A command from the control plane.
    Command(Command),
    /// How busy the worker was lately, per mille of wall time (measured by
    /// the driver): the overload protection's input (`overload`).
    Load {
        /// Busy per mille (0..=1000).
        busy_permille: u16,
    },
}

/// Control-plane commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The call ended: drop every participant now and refuse its tokens.
    EndCall(CallId),
    /// The calls service places the call on this router (again: it ended here, moved to another
    /// router, and moved back): forget that it ended, so that its tokens admit again. Tokens of
    /// participants who left or were removed stay refused until they expire.
    ReopenCall(CallId),
    /// Remove one participant.
    RemoveParticipant(CallId, ParticipantId),
    /// Link the call's share here to its share on the router whose media
    /// address (for this call: its owning worker's) is `peer` (cascading;
    /// only the call's owning worker acts, see `cascade`). Both routers
    /// get it, each naming the other.
    OpenPipe {
        /// The call.
        call: CallId,
        /// The other router's address for the call.
        peer: SocketAddr,
        /// `peer` is the call's home router (this one a leaf of the star):
        /// the link closes once no participant is left here (the last one
        /// left, or none joined within `RouterConfig::uplink_grace`).
        uplink: bool,
        /// The link's key, drawn by the calls service for this opening
        /// (both ends get the same; every datagram is sealed with it, see
        /// `pipe_auth`). Opening an open link with a new key re-keys it.
        key: corecast_proto::pipe_seal::PipeKey,
    },
    /// Close that link (the far end is told).
    ClosePipe {
        /// The call.
        call: CallId,
        /// The other router's address for the call.
        peer: SocketAddr,
    },
}

impl Command {
    /// The call the command is about.
    pub fn call(&self) -> CallId {
        match self {
            Command::EndCall(c)
            | Command::ReopenCall(c)
            | Command::RemoveParticipant(c, _)
            | Command::OpenPipe { call: c, .. }
            | Command::ClosePipe { call: c, .. } => *c,
        }
    }
}

/// An output of the router.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `contents` to `destination` from the router's UDP port.
    Transmit(Transmit),
    /// Hand a message to another worker's share of a call (its pipe transport).
    Pipe(PipeSend),
    /// Something the control plane (or the driver) should know.
    Event(Event),
    /// Nothing more to do until this instant (then pass [`Input::Timeout`]).
    Timeout(Instant),
}

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// What (for forwarded RTP, the received buffer itself).
    pub contents: Bytes,
}

/// A message for another worker (deliver it as [`Input::Pipe`] there, in order).
#[derive(Debug, Clone)]
pub struct PipeSend {
    /// The worker.
    pub worker: usize,
    /// The call.
    pub call: CallId,
    /// The message (media: the received buffer itself).
    pub message: PipeMessage,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It sent a leave message.
    Left,
    /// It was silent longer than the silence timeout.
    Timeout,
    /// The control plane removed it.
    Removed,
    /// The call ended.
    CallEnded,
}

/// Events for the control plane and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first participant of a call joined this worker.
    CallStarted(CallId),
    /// The last participant left, or the call was ended.
    CallClosed(CallId),
    /// A participant was admitted.
    ParticipantJoined {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// Its role.
        role: Role,
        /// The address it was admitted from.
        source: SocketAddr,
    },
    /// A participant is gone.
    ParticipantLeft {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A participant started sending a new SSRC.
    ProducerAdded {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// The SSRC.
        ssrc: Ssrc,
    },
    /// The call's first SD receiver appeared (`needed: true`: start a mixer
    /// for it) or its last one went (`needed: false`: the mixer may leave).
    MixerDemand {
        /// Call.
        call: CallId,
        /// Whether a mixer is needed now.
        needed: bool,
    },
    /// A receiver switched between HD and SD.
    QualityChanged {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// New quality.
        quality: Quality,
    },
    /// The audio streams SD receivers get (the call's loudest speakers,
    /// loudest first) changed. Emitted only when the ranking holds some
    /// stream back or lets one through again; calls with at most
    /// `RouterConfig::sd_audio_streams` speakers never see it.
    ActiveSpeakers {
        /// Call.
        call: CallId,
        /// The SSRCs forwarded to SD receivers, loudest first (streams
        /// without audio levels are forwarded too but not listed).
        ssrcs: Vec<Ssrc>,
    },
    /// The call's dominant speaker changed (ranked while a receiver of the
    /// call asks for Last-N; Last-N receivers are told the whole stage, see
    /// `router/PROTOCOL.md`).
    DominantSpeaker {
        /// Call.
        call: CallId,
        /// The publisher now loudest.
        participant: ParticipantId,
    },
}
