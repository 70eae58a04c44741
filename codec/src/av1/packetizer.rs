//! Temporal units to RTP payloads (RTP spec §4.4, §5).

use super::obu::{is_sent, leb128_len, obus, write_leb128, OBU_FRAME, OBU_FRAME_HEADER, OBU_SEQUENCE_HEADER};
use super::{Av1Error, AGG_N, AGG_W_SHIFT, AGG_Y, AGG_Z};

/// Splits temporal units into RTP payloads (RTP spec §4.4, §5).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

/// Smallest `max_payload` a [`Packetizer`] accepts.
pub const MIN_PAYLOAD: usize = 8;

impl Packetizer {
    /// A packetizer producing payloads of at most `max_payload` bytes
    /// (RTP MTU minus RTP header and extensions).
    pub fn new(max_payload: usize) -> Result<Packetizer, Av1Error> {
        if max_payload < MIN_PAYLOAD {
            return Err(Av1Error::MtuTooSmall);
        }
        Ok(Packetizer { max_payload })
    }

    /// Maximum payload size.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends the payloads for one temporal unit to `out` and returns how
    /// many were added (0 if the unit had nothing to send). The caller sends
    /// them with one RTP timestamp and sets the marker bit on the last one.
    pub fn packetize(&self, tu: &[u8], out: &mut Vec<Vec<u8>>) -> Result<usize, Av1Error> {
        // OBU elements: OBUs without size fields, in one buffer.
        let mut elems = Vec::with_capacity(tu.len());
        let mut bounds = Vec::new();
        let mut seq_header = false;
        let mut key = false;
        let mut first_frame = true;
        for obu in obus(tu) {
            let obu = obu?;
            let t = obu.obu_type();
            if !is_sent(t) {
                continue;
            }
            if t == OBU_SEQUENCE_HEADER {
                seq_header = true;
            }
            if first_frame && matches!(t, OBU_FRAME | OBU_FRAME_HEADER) {
                first_frame = false;
                key = obu.is_key_frame_header();
            }
            let start = elems.len();
            obu.write_element(&mut elems);
            bounds.push((start, elems.len()));
        }
        if bounds.is_empty() {
            return Ok(0);
        }

        // Plan the packets: each is a list of (start, end) ranges of `elems`.
        struct Plan {
            parts: Vec<(usize, usize)>,
            z: bool,
            y: bool,
        }
        let mut plans: Vec<Plan> = Vec::new();
        let mut parts = Vec::new();
        let mut room = self.max_payload - 1;
        let mut z = false;
        for &(start, end) in &bounds {
            let mut off = start;
            while off < end {
                let rest = end - off;
                let need = leb128_len(rest as u64) + rest;
                if need <= room {
                    parts.push((off, end));
                    room -= need;
                    off = end;
                    continue;
                }
                // With at most three elements (W != 0) the last one needs
                // no length field, so it may take the whole room.
                let w_last = parts.len() < 3;
                if w_last && rest <= room {
                    parts.push((off, end));
                    off = end;
                    plans.push(Plan { parts: std::mem::take(&mut parts), z, y: false });
                    z = false;
                    room = self.max_payload - 1;
                    continue;
                }
                // Does not fit: fragment into what is left, unless that is
                // only a sliver and the packet already carries something.
                let mut f = room;
                if !w_last {
                    f -= leb128_len(room as u64).min(room);
                    while f > 0 && f + leb128_len(f as u64) > room {
                        f -= 1;
                    }
                }
                let fragment = f > 0 && (parts.is_empty() || f >= 16);
                if fragment {
                    parts.push((off, off + f));
                    off += f;
                }
                plans.push(Plan { parts: std::mem::take(&mut parts), z, y: fragment });
                z = fragment;
                room = self.max_payload - 1;
            }
        }
        if !parts.is_empty() {
            plans.push(Plan { parts, z, y: false });
        }

        let n = plans.len();
        for (i, plan) in plans.into_iter().enumerate() {
            let count = plan.parts.len();
            let w = if count <= 3 { count as u8 } else { 0 };
            let mut agg = w << AGG_W_SHIFT;
            if plan.z {
                agg |= AGG_Z;
            }
            if plan.y {
                agg |= AGG_Y;
            }
            if i == 0 && seq_header && key {
                agg |= AGG_N;
            }
            let mut p = Vec::with_capacity(self.max_payload);
            p.push(agg);
            for (j, &(s, e)) in plan.parts.iter().enumerate() {
                if w == 0 || j + 1 < count {
                    write_leb128((e - s) as u64, &mut p);
                }
                p.extend_from_slice(&elems[s..e]);
            }
            debug_assert!(p.len() <= self.max_payload);
            out.push(p);
        }
        Ok(n)
    }
}
