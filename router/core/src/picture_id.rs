//! VP8 picture ids across simulcast switches: each layer numbers its
//! frames on its own (PictureID, 7 or 15 bits, and TL0PICIDX, RFC 7741
//! §4.2), so a receiver moved to another layer would see the numbers jump,
//! often backwards, and a decoder's reference finder (libwebrtc's) takes
//! the new layer's frames for old ones and drops them. At a switch, the
//! receiver's consumer shifts the new layer's numbers to follow the last
//! ones it sent, as it does sequence numbers and timestamps.
//!
//! ```text
//! //= RFC 7741 §4.2 (VP8 payload descriptor)
//!  |X|R|N|S|R| PID |   X: |I|L|T|K| RSV |   I: |M| PictureID (7 or 15) |
//!                                            L: |      TL0PICIDX       |
//! ```

use corecast_proto::rtp::RtpHeader;

/// Where a VP8 packet's ids are (offsets into the RTP packet) and what they say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Vp8Ids {
    /// PictureID: offset, 15 bits (else 7), value.
    pub picture: Option<(usize, bool, u16)>,
    /// TL0PICIDX: offset, value.
    pub tl0: Option<(usize, u8)>,
}

impl Vp8Ids {
    /// Reads the ids of a VP8 RTP `packet` (none when it carries none or is truncated).
    pub fn read(packet: &[u8]) -> Vp8Ids {
        let mut ids = Vp8Ids::default();
        let Ok(h) = RtpHeader::parse(packet) else { return ids };
        let at = h.payload_offset;
        let Some(&b0) = packet.get(at) else { return ids };
        if b0 & 0x80 == 0 {
            return ids;
        }
        let Some(&x) = packet.get(at + 1) else { return ids };
        let mut i = at + 2;
        if x & 0x80 != 0 {
            let Some(&p0) = packet.get(i) else { return ids };
            if p0 & 0x80 != 0 {
                let Some(&p1) = packet.get(i + 1) else { return ids };
                ids.picture = Some((i, true, (u16::from(p0 & 0x7F) << 8) | u16::from(p1)));
                i += 2;
            } else {
                ids.picture = Some((i, false, u16::from(p0)));
                i += 1;
            }
        }
        if x & 0x40 != 0 {
            if let Some(&t) = packet.get(i) {
                ids.tl0 = Some((i, t));
            }
        }
        ids
    }
}

/// A receiver's shift of one group's VP8 ids, and the last ones it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PictureIds {
    /// Outgoing = incoming + these (PictureID mod 2^15 or 2^7; TL0PICIDX mod 2^8).
    pub picture_offset: u16,
    pub tl0_offset: u8,
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl PictureIds {
    /// At the first packet of a switch's keyframe (`ids` its ids): the new
    /// layer's numbers follow the last ones sent.
    pub fn on_switch(&mut self, ids: &Vp8Ids) {
        if let (Some(last), Some((_, _, p))) = (self.last_picture, ids.picture) {
            self.picture_offset = last.wrapping_add(1).wrapping_sub(p);
        }
        if let (Some(last), Some((_, t))) = (self.last_tl0, ids.tl0) {
            self.tl0_offset = last.wrapping_add(1).wrapping_sub(t);
        }
    }

    /// Whether packets need rewriting.
    #[inline]
    pub fn shifted(&self) -> bool {
        self.picture_offset != 0 || self.tl0_offset != 0
    }

    /// Remembers a packet's ids as the last sent (sent as they came: no shift).
    pub fn note(&mut self, ids: &Vp8Ids) {
        if let Some((_, _, p)) = ids.picture {
            self.last_picture = Some(p);
        }
        if let Some((_, t)) = ids.tl0 {
            self.last_tl0 = Some(t);
        }
    }

    /// Rewrites `packet`'s ids (read as `ids`) in place by the offsets, and
    /// remembers them as the last sent.
    pub fn apply(&mut self, packet: &mut [u8], ids: &Vp8Ids) {
        let (picture, tl0) = shift(packet, ids, self.picture_offset, self.tl0_offset);
        if picture.is_some() {
            self.last_picture = picture;
        }
        if tl0.is_some() {
            self.last_tl0 = tl0;
        }
    }
}

/// Rewrites `packet`'s ids (read as `ids`) by the offsets; the ids written.
pub(crate) fn shift(packet: &mut [u8], ids: &Vp8Ids, picture_offset: u16, tl0_offset: u8) -> (Option<u16>, Option<u8>) {
    let mut out = (None, None);
    if let Some((at, long, p)) = ids.picture {
        if long {
            let v = p.wrapping_add(picture_offset) & 0x7FFF;
            packet[at] = 0x80 | (v >> 8) as u8;
            packet[at + 1] = v as u8;
            out.0 = Some(v);
        } else {
            let v = p.wrapping_add(picture_offset) & 0x7F;
            packet[at] = v as u8;
            out.0 = Some(v);
        }
    }
    if let Some((at, t)) = ids.tl0 {
        let v = t.wrapping_add(tl0_offset);
        packet[at] = v;
        out.1 = Some(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast_proto::rtp::RtpPacket;
    use corecast_proto::{Pt, SeqNo, Ssrc};

    /// A VP8 packet with a 15-bit PictureID `pid` and TL0PICIDX `tl0`.
    fn vp8(pid: u16, tl0: u8) -> Vec<u8> {
        let payload = vec![0x90, 0xE0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, 0x40, 1, 2, 3];
        RtpPacket { pt: Pt(96), seq: SeqNo(1), ssrc: Ssrc(5), payload, ..Default::default() }.to_vec().unwrap()
    }

    #[test]
    fn a_switch_makes_the_new_layers_ids_follow_the_last_sent() {
        let mut ids = PictureIds::default();
        // The old layer: 0x7FFE, 0x7FFF with TL0PICIDX 9, 10: sent as they are.
        for (pid, tl0) in [(0x7FFE, 9), (0x7FFF, 10)] {
            let mut p = vp8(pid, tl0);
            let r = Vp8Ids::read(&p);
            ids.apply(&mut p, &r);
            assert_eq!(Vp8Ids::read(&p), r);
        }
        // The new layer's keyframe is 100 / 200; then 101 / 200.
        let key = vp8(100, 200);
        ids.on_switch(&Vp8Ids::read(&key));
        let mut got = Vec::new();
        for mut p in [key, vp8(101, 200)] {
            let r = Vp8Ids::read(&p);
            ids.apply(&mut p, &r);
            let w = Vp8Ids::read(&p);
            got.push((w.picture.unwrap().2, w.tl0.unwrap().1));
        }
        // Wrapped at 15 bits: 0, 1; TL0PICIDX 11, 11.
        assert_eq!(got, vec![(0, 11), (0x0001, 11)]);
    }

    #[test]
    fn short_ids_and_truncated_descriptors() {
        // A 7-bit PictureID of 127 shifted by 2 wraps to 1.
        let payload = vec![0x90, 0x80, 0x7F, 1];
        let mut p = RtpPacket { pt: Pt(96), payload, ..Default::default() }.to_vec().unwrap();
        let r = Vp8Ids::read(&p);
        assert_eq!(r.picture, Some((14, false, 127)));
        assert_eq!(shift(&mut p, &r, 2, 0), (Some(1), None));
        assert_eq!(Vp8Ids::read(&p).picture, Some((14, false, 1)));
        // No X byte, or cut short: nothing to read.
        for payload in [vec![0x10, 1], vec![0x90], vec![0x90, 0x80, 0x80]] {
            let p = RtpPacket { pt: Pt(96), payload, ..Default::default() }.to_vec().unwrap();
            assert_eq!(Vp8Ids::read(&p).picture, None);
        }
    }
}
