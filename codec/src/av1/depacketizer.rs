//! RTP payloads back to temporal units, with loss detection and keyframe
//! requests.

use std::collections::VecDeque;

use corecast_proto::{MediaTime, SeqNo};

use super::obu::{is_sent, read_leb128, Obu, OBU_FRAME, OBU_FRAME_HEADER, OBU_SEQUENCE_HEADER, TEMPORAL_DELIMITER};
use super::{Av1Error, AGG_N, AGG_W_SHIFT, AGG_Y, AGG_Z};

/// One complete temporal unit from the [`Depacketizer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Frame {
    /// RTP timestamp of the unit.
    pub timestamp: MediaTime,
    /// Low-overhead OBU stream: a temporal delimiter, then every received
    /// OBU with its size field.
    pub data: Vec<u8>,
    /// The unit has a sequence header and a key frame (a decoder can start here).
    pub keyframe: bool,
}

/// Counters kept by the [`Depacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Payloads handled (not counting late ones).
    pub packets: u64,
    /// Packets missing according to sequence numbers.
    pub lost_packets: u64,
    /// Packets older than one already handled (reordered or duplicated), ignored.
    pub late_packets: u64,
    /// Payloads or OBUs that did not parse.
    pub malformed: u64,
    /// Complete temporal units given out.
    pub frames: u64,
    /// Temporal units dropped because data was missing or malformed.
    pub corrupt_frames: u64,
    /// Temporal units dropped while waiting for a keyframe.
    pub skipped_frames: u64,
}

/// Reassembles temporal units from the RTP payloads of one AV1 stream.
///
/// Feed packets in arrival order with [`Depacketizer::handle_packet`], then
/// drain [`Depacketizer::poll_frame`] and [`Depacketizer::poll_keyframe_request`].
/// A unit ends at the marker bit (or, leniently, when the timestamp changes
/// with nothing pending). Any sequence-number gap drops the unit it hits and
/// everything up to the next keyframe, and raises a keyframe request; so does
/// the start of the stream, since a decoder must start at a keyframe.
#[derive(Debug)]
pub struct Depacketizer {
    last_seq: Option<SeqNo>,
    ts: Option<MediaTime>,
    /// Sized OBUs of the current unit.
    tu: Vec<u8>,
    /// OBU element being assembled across packets.
    frag: Vec<u8>,
    in_frag: bool,
    /// The current unit lost data.
    broken: bool,
    /// Whether anything was received for the current unit.
    started: bool,
    seq_header: bool,
    key: Option<bool>,
    waiting_keyframe: bool,
    keyframe_request: bool,
    frames: VecDeque<Av1Frame>,
    stats: DepacketizerStats,
}

impl Default for Depacketizer {
    fn default() -> Self {
        Depacketizer::new()
    }
}

impl Depacketizer {
    /// A depacketizer that waits for a keyframe and has a keyframe request pending.
    pub fn new() -> Depacketizer {
        Depacketizer {
            last_seq: None,
            ts: None,
            tu: Vec::new(),
            frag: Vec::new(),
            in_frag: false,
            broken: false,
            started: false,
            seq_header: false,
            key: None,
            waiting_keyframe: true,
            keyframe_request: true,
            frames: VecDeque::new(),
            stats: DepacketizerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// True while frames are dropped until a keyframe arrives.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Handles one RTP payload of the stream.
    pub fn handle_packet(&mut self, seq: SeqNo, timestamp: MediaTime, marker: bool, payload: &[u8]) {
        let mut lost = false;
        if let Some(last) = self.last_seq {
            if !seq.is_newer_than(last) {
                self.stats.late_packets += 1;
                return;
            }
            let gap = last.delta(seq) as u16 - 1;
            if gap > 0 {
                self.stats.lost_packets += u64::from(gap);
                lost = true;
            }
        }
        self.last_seq = Some(seq);
        self.stats.packets += 1;
        let agg = payload.first().copied().unwrap_or(0);

        if self.ts != Some(timestamp) {
            if self.started {
                // The previous unit ended without its marker bit.
                let complete = !lost && !self.in_frag;
                self.end_unit(complete);
            }
            self.ts = Some(timestamp);
        }
        if lost {
            self.waiting_keyframe = true;
            self.keyframe_request = true;
            // What was lost may belong to this unit, unless this packet
            // visibly starts a coded video sequence.
            let starts_here = !self.started && agg & AGG_N != 0 && agg & AGG_Z == 0;
            if !starts_here {
                self.broken = true;
            }
            self.in_frag = false;
            self.frag.clear();
        }
        self.started = true;

        if self.parse_payload(payload).is_err() {
            self.stats.malformed += 1;
            self.broken = true;
            self.in_frag = false;
            self.frag.clear();
        }
        if marker {
            if self.in_frag {
                // Y set on the last packet of a unit.
                self.stats.malformed += 1;
                self.broken = true;
                self.in_frag = false;
                self.frag.clear();
            }
            self.end_unit(true);
        }
    }

    /// The next complete temporal unit, in order.
    pub fn poll_frame(&mut self) -> Option<Av1Frame> {
        self.frames.pop_front()
    }

    /// True once after each event that needs a keyframe from the sender
    /// (stream start, loss). The caller sends PLI and should repeat it at
    /// its own pace while [`Depacketizer::waiting_for_keyframe`] holds.
    pub fn poll_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// Asks for a keyframe request to be raised again (e.g. after the
    /// decoder failed on a unit this depacketizer gave out).
    pub fn request_keyframe(&mut self) {
        self.waiting_keyframe = true;
        self.keyframe_request = true;
    }

    fn parse_payload(&mut self, payload: &[u8]) -> Result<(), Av1Error> {
        let (&agg, body) = payload.split_first().ok_or(Av1Error::Truncated)?;
        let z = agg & AGG_Z != 0;
        let y = agg & AGG_Y != 0;
        let w = usize::from((agg >> AGG_W_SHIFT) & 3);
        let mut pos = 0;
        let mut idx = 0;
        while pos < body.len() {
            let last_by_w = w != 0 && idx + 1 == w;
            let len = if last_by_w {
                body.len() - pos
            } else {
                let (v, n) = read_leb128(&body[pos..])?;
                pos += n;
                usize::try_from(v).map_err(|_| Av1Error::Truncated)?
            };
            let end = pos.checked_add(len).filter(|&e| e <= body.len()).ok_or(Av1Error::Truncated)?;
            let elem = &body[pos..end];
            pos = end;
            let is_last = pos == body.len();
            if idx == 0 && z {
                if self.in_frag {
                    self.frag.extend_from_slice(elem);
                } else {
                    // The start of this OBU is missing.
                    self.broken = true;
                }
            } else {
                if self.in_frag {
                    // A fragment was announced (Y) but never continued (Z).
                    self.broken = true;
                }
                self.frag.clear();
                self.frag.extend_from_slice(elem);
                self.in_frag = true;
            }
            if !(is_last && y) && self.in_frag {
                self.in_frag = false;
                let r = self.finish_obu();
                self.frag.clear();
                r?;
            }
            idx += 1;
            if last_by_w {
                break;
            }
        }
        if w != 0 && idx != w {
            return Err(Av1Error::Truncated);
        }
        Ok(())
    }

    fn finish_obu(&mut self) -> Result<(), Av1Error> {
        if self.frag.is_empty() {
            return Ok(());
        }
        let (obu, _) = Obu::parse(&self.frag)?;
        let t = obu.obu_type();
        if !is_sent(t) {
            return Ok(());
        }
        if t == OBU_SEQUENCE_HEADER {
            self.seq_header = true;
        }
        if self.key.is_none() && matches!(t, OBU_FRAME | OBU_FRAME_HEADER) {
            self.key = Some(obu.is_key_frame_header());
        }
        obu.write_sized(&mut self.tu);
        Ok(())
    }

    fn end_unit(&mut self, complete: bool) {
        let keyframe = self.seq_header && self.key == Some(true);
        let has_data = !self.tu.is_empty();
        if !complete || self.broken {
            if has_data || self.broken {
                self.stats.corrupt_frames += 1;
            }
            if !self.waiting_keyframe {
                self.waiting_keyframe = true;
                self.keyframe_request = true;
            }
        } else if has_data {
            if self.waiting_keyframe && !keyframe {
                self.stats.skipped_frames += 1;
            } else {
                self.waiting_keyframe = false;
                let mut data = Vec::with_capacity(TEMPORAL_DELIMITER.len() + self.tu.len());
                data.extend_from_slice(&TEMPORAL_DELIMITER);
                data.extend_from_slice(&self.tu);
                self.stats.frames += 1;
                self.frames.push_back(Av1Frame { timestamp: self.ts.unwrap_or_default(), data, keyframe });
            }
        }
        self.tu.clear();
        self.frag.clear();
        self.in_frag = false;
        self.broken = false;
        self.started = false;
        self.seq_header = false;
        self.key = None;
    }
}
