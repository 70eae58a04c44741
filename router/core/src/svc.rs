//! Scalable video (SVC) described by the Dependency Descriptor: a publisher
//! sends one stream whose frames are in spatial and temporal layers (AV1
//! `L2T2`, `L3T3`, VP9 SVC), each frame's layers named by the descriptor's
//! template (`corecast_proto::dd`); the payload is never read.
//!
//! - Temporal layers serve frame-rate caps (`framerate`).
//! - Spatial layers serve bandwidth: each receiver gets the spatial layers
//!   up to the one its estimate allows (`simulcast::allocate` chooses, from
//!   each spatial layer's measured bitrate). Frames of higher spatial layers
//!   are not sent to it, and its sequence numbers close over them (no gap, no
//!   NACK). It moves down at the next frame, and up only at a keyframe (a
//!   packet carrying the template structure, which browsers send with
//!   keyframes), since a higher spatial layer's frames refer to its own
//!   earlier ones.
//! - Spatial layers serve requested sizes: a receiver that asked for frames
//!   at most `max_height` high (a WHEP leg's `?max_height=`) gets only the
//!   spatial layers the structure's render resolutions show within it (at
//!   least the base layer). A structure without resolutions caps nothing.
//! - Overload (`overload`): a busy worker holds a receiver at spatial layer
//!   0 of every SVC stream it gets, whatever its estimate, until the load
//!   has fallen; then its estimate chooses again (up at the next keyframe).

use bytes::Bytes;
use corecast_proto::dd::{self, DdStructure};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::Ssrc;

use crate::consumer::Consumers;

/// Spatial layers counted at most.
pub(crate) const MAX_SPATIAL: usize = 4;

/// One packet's layers, as its descriptor gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SvcPacket {
    pub spatial: u8,
    pub temporal: u8,
    /// It carries the template structure: the start of a keyframe.
    pub keyframe: bool,
    /// The first packet of its frame.
    pub starts: bool,
    /// The last packet of its frame.
    pub ends: bool,
    /// The stream's highest spatial layer (by the structure).
    pub top: u8,
}

/// A producer's SVC: its latest template structure and each spatial layer's bitrate.
#[derive(Debug, Clone)]
pub(crate) struct SvcState {
    structure: DdStructure,
    window_bytes: [u64; MAX_SPATIAL],
    /// Bits/s of each spatial layer over the last rate window.
    pub spatial_bps: [u64; MAX_SPATIAL],
}

impl SvcState {
    /// Reads one packet's descriptor `ext` (of `len` bytes): a structure it
    /// carries is kept for the frames after it. `None`: it cannot tell (no
    /// structure yet, an unknown template, malformed).
    pub fn on_packet(state: &mut Option<Box<SvcState>>, ext: &[u8], len: usize) -> Option<SvcPacket> {
        let frame = dd::parse(ext)?;
        let keyframe = frame.structure.is_some();
        if let Some(s) = frame.structure {
            match state {
                Some(st) => st.structure = s,
                None => {
                    *state = Some(Box::new(SvcState {
                        structure: s,
                        window_bytes: [0; MAX_SPATIAL],
                        spatial_bps: [0; MAX_SPATIAL],
                    }))
                }
            }
        }
        let st = state.as_mut()?;
        let (spatial, temporal) = st.structure.layer_of(frame.template_id)?;
        if let Some(b) = st.window_bytes.get_mut(usize::from(spatial)) {
            *b += len as u64;
        }
        let top = st.structure.max_layers().0;
        Some(SvcPacket { spatial, temporal, keyframe, starts: frame.start_of_frame, ends: frame.end_of_frame, top })
    }

    /// Ends a rate window of `secs` seconds.
    pub fn end_window(&mut self, secs: f64) {
        for (bps, bytes) in self.spatial_bps.iter_mut().zip(&mut self.window_bytes) {
            *bps = (*bytes as f64 * 8.0 / secs) as u64;
            *bytes = 0;
        }
    }

    /// How many spatial layers the structure has.
    pub fn spatial_layers(&self) -> u8 {
        self.structure.max_layers().0 + 1
    }

    /// More than one spatial layer, and one above the base being sent
    /// (measured over the last rate window): a receiver of it has a lower
    /// layer to go to (`overload`).
    pub fn layered(&self) -> bool {
        let n = usize::from(self.spatial_layers()).min(MAX_SPATIAL);
        n > 1 && self.spatial_bps[1..n].iter().any(|b| *b > 0)
    }

    /// How many of the lowest spatial layers suit a receiver that asked for
    /// frames at most `max_height` high: those the structure's resolutions
    /// show no higher (at least the base layer); all of them when it gives
    /// no resolutions or no size was asked for; the base layer alone for a
    /// receiver that takes no more (`base_only`: `Participant::svc_base_only`).
    pub fn layers_within(&self, max_height: Option<u16>, base_only: bool) -> usize {
        if base_only {
            return 1;
        }
        let n = usize::from(self.spatial_layers()).min(MAX_SPATIAL);
        let (Some(m), false) = (max_height, self.structure.resolutions.is_empty()) else { return n };
        let fit = self.structure.resolutions.iter().take(n).take_while(|r| r.1 <= m).count();
        fit.max(1)
    }

    /// Whether packet `b`, with its descriptor under extension id `dd`,
    /// ends a temporal unit for a receiver whose highest spatial layer is
    /// `on`: the last packet of a frame of that layer, below the stream's
    /// top (a retransmission of it goes with the marker bit it was first
    /// sent with: [`Consumers::on_spatial`]).
    pub fn ends_unit_for(&self, b: &[u8], dd: u8, on: u8) -> bool {
        let Ok(h) = RtpHeader::parse(b) else { return false };
        let Some(f) = h.extensions(b).flatten().find(|e| e.id == dd).and_then(|e| dd::parse(e.data)) else {
            return false;
        };
        let structure = f.structure.as_ref().unwrap_or(&self.structure);
        let layer = structure.layer_of(f.template_id).map(|l| l.0);
        f.end_of_frame && on < structure.max_layers().0 && layer == Some(on)
    }

    /// What receiving spatial layers 0..=s costs, for each s, bits/s.
    pub fn cumulative_bps(&self) -> Vec<u64> {
        let n = usize::from(self.spatial_layers()).min(MAX_SPATIAL);
        self.spatial_bps[..n]
            .iter()
            .scan(0u64, |sum, b| {
                *sum += b;
                Some(*sum)
            })
            .collect()
    }
}

impl Consumers {
    /// Whether a receiver gets this packet of SVC stream `ssrc` with its
    /// spatial cap (see the module's documentation); a packet it does not
    /// get shifts its numbers (`Consumer::skip`). [`Spatial::SendMarked`]:
    /// the last packet of the frame of its highest spatial layer below the
    /// stream's, which ends its temporal unit: sent with the RTP marker bit
    /// (the AV1 RTP format's end of a temporal unit, where a receiver
    /// without the descriptor, as a browser's by default, takes a picture
    /// as complete; the publisher set it on the top layer's last packet,
    /// which this receiver does not get).
    pub fn on_spatial(&mut self, ssrc: Ssrc, p: SvcPacket, base_only: bool) -> Spatial {
        let c = self.entry(ssrc);
        if base_only {
            // Held at the base layer from its first packet (the allocation agrees: `layers_within`).
            c.spatial_target = Some(0);
        }
        let target = c.spatial_target;
        match c.spatial_on {
            // Down at once (at a frame's start), up at a keyframe.
            Some(on) if target.is_some_and(|t| t < on) && p.starts => c.spatial_on = target,
            Some(on) if target.is_none_or(|t| t > on) && p.keyframe => c.spatial_on = Some(target.unwrap_or(u8::MAX)),
            None if p.keyframe || target.is_none() => c.spatial_on = Some(target.unwrap_or(u8::MAX)),
            _ => {}
        }
        let on = c.spatial_on.unwrap_or(0);
        if p.spatial > on {
            c.skip();
            return Spatial::Skip;
        }
        if p.spatial == on && p.ends && on < p.top {
            return Spatial::SendMarked;
        }
        Spatial::Send
    }
}

impl Consumers {
    /// Whether the receiver waits for a keyframe of SVC stream `ssrc` to
    /// move up to the spatial layer it is to get (its estimate, or a
    /// requested size, went up): the router asks the publisher for one, as
    /// for a simulcast layer (throttled per stream).
    pub fn spatial_waits(&self, ssrc: Ssrc) -> bool {
        self.get(ssrc).is_some_and(|c| c.spatial_on.is_some_and(|on| c.spatial_target.unwrap_or(u8::MAX) > on))
    }
}

/// What a receiver makes of an SVC packet ([`Consumers::on_spatial`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spatial {
    /// Sent as it came.
    Send,
    /// Sent with the marker bit set: it ends the receiver's temporal unit.
    SendMarked,
    /// Above the receiver's spatial layer: not sent, its numbers closed over.
    Skip,
}

/// `b` (an RTP packet) with its marker bit set.
pub(crate) fn marked(b: Bytes) -> Bytes {
    if b.len() < 2 || b[1] & 0x80 != 0 {
        return b;
    }
    let mut v = b.to_vec();
    v[1] |= 0x80;
    Bytes::from(v)
}
