//! What a WebRTC leg negotiated (its m-lines, payload types and header
//! extension ids), and the per-receiver RTP header rewrite: a browser gets
//! each packet with its own payload type for the codec and its own `mid`
//! (so it demultiplexes by MID, RFC 8843), with only the header extensions
//! it negotiated, under its ids.

use bytes::BytesMut;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::{MediaKind, Ssrc};

/// Codecs the router forwards to WebRTC legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus, 48 kHz stereo.
    Opus,
    /// AV1 (AOM RTP payload format).
    Av1,
    /// VP8.
    Vp8,
    /// H.264.
    H264,
    /// Retransmissions (RFC 4588) of the leg's video.
    Rtx,
}

/// One negotiated m-line of a leg (BUNDLE: all share the transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegMedia {
    /// `a=mid`.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec chosen for it.
    pub codec: Codec,
    /// Its payload type on this leg.
    pub payload_type: u8,
    /// The RTX payload type, when negotiated.
    pub rtx_payload_type: Option<u8>,
    /// Audio the router sends: the RED (RFC 2198) payload type, when negotiated.
    pub red_payload_type: Option<u8>,
    /// Whether the peer sends media on it (a publisher's m-line).
    pub receives: bool,
    /// Whether the router sends media on it (a subscriber's m-line).
    pub sends: bool,
    /// The SSRCs the peer announced for it (`a=ssrc`): the streams it will send.
    pub remote_ssrcs: Vec<Ssrc>,
    /// Its streams' RTX SSRCs, as `(media, rtx)` (`a=ssrc-group:FID`;
    /// for simulcast layers, learned from the repaired RID: see `rid`).
    pub remote_rtx: Vec<(Ssrc, Ssrc)>,
    /// The simulcast layers the peer sends on it (`a=rid:<id> send`), lowest
    /// quality first; empty: no simulcast.
    pub rids: Vec<String>,
}

/// RFC 8285 header extension ids a leg negotiated (one id space: BUNDLE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegExtensions {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid`.
    pub mid: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464).
    pub audio_level: Option<u8>,
    /// Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01).
    pub transport_cc: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id` (RFC 8852): a simulcast layer's RID.
    pub rid: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id`: the RID an RTX stream repairs.
    pub repaired_rid: Option<u8>,
    /// The Dependency Descriptor (a publisher's video layers without the
    /// payload: `corecast_proto::dd`); on a subscriber's leg, the
    /// publishers' descriptors are forwarded under it.
    pub dependency_descriptor: Option<u8>,
    /// `a=extmap-allow-mixed` (RFC 8285 §6): the two-byte header form may be
    /// sent, as a descriptor longer than 16 bytes (with its template
    /// structure) needs.
    pub allow_mixed: bool,
}

/// How one sender's packets are to be read: the codec of each payload type
/// and the id its audio levels use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderFormat {
    /// Payload type → codec.
    pub codecs: Vec<(u8, Codec)>,
    /// Id of the RFC 6464 audio-level extension (0: none).
    pub audio_level: u8,
    /// Id of the Dependency Descriptor extension (0: none).
    pub dependency_descriptor: u8,
}

impl SenderFormat {
    /// The codec of payload type `pt`.
    #[inline]
    pub fn codec(&self, pt: u8) -> Option<Codec> {
        self.codecs.iter().find(|(p, _)| *p == pt).map(|(_, c)| *c)
    }
}

/// A received packet as a WebRTC receiver needs it described.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub codec: Codec,
    pub kind: MediaKind,
    /// The sender's audio-level extension id (0: none).
    pub audio_level: u8,
    /// The sender's Dependency Descriptor extension id (0: none).
    pub dd: u8,
}

/// The per-leg media description the router writes packets for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LegFormat {
    pub media: Vec<LegMedia>,
    pub extensions: LegExtensions,
    /// The first [`SEND_LINES`] m-lines the router sends on, copied inline:
    /// the rewrite reads no `media` (nor its `mid` strings) off the heap.
    sends: [Option<SendLine>; SEND_LINES],
    /// The router sends on more m-lines than that.
    more_sends: bool,
}

/// How many sending m-lines a [`LegFormat`] keeps inline (more: `media` is searched).
const SEND_LINES: usize = 4;

/// A sending m-line as the rewrite needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SendLine {
    kind: MediaKind,
    codec: Codec,
    payload_type: u8,
    rtx_payload_type: Option<u8>,
    red_payload_type: Option<u8>,
    /// The `mid`, written when 1 to 16 bytes long (`mid_len` 0: none).
    mid: [u8; 16],
    mid_len: u8,
}

impl SendLine {
    fn of(m: &LegMedia) -> SendLine {
        let mut mid = [0u8; 16];
        let fits = !m.mid.is_empty() && m.mid.len() <= mid.len();
        if fits {
            mid[..m.mid.len()].copy_from_slice(m.mid.as_bytes());
        }
        let (kind, codec, payload_type) = (m.kind, m.codec, m.payload_type);
        let (rtx_payload_type, red_payload_type) = (m.rtx_payload_type, m.red_payload_type);
        let mid_len = if fits { m.mid.len() as u8 } else { 0 };
        SendLine { kind, codec, payload_type, rtx_payload_type, red_payload_type, mid, mid_len }
    }

    /// The payload type of `codec` on this line, if it carries it.
    #[inline]
    fn payload_type(&self, codec: Codec) -> Option<u8> {
        if self.codec == codec {
            Some(self.payload_type)
        } else if codec == Codec::Rtx {
            self.rtx_payload_type
        } else {
            None
        }
    }
}

impl LegFormat {
    /// The format of a leg that negotiated `media` and `extensions`.
    pub fn new(media: Vec<LegMedia>, extensions: LegExtensions) -> LegFormat {
        let mut sends = [None; SEND_LINES];
        for (slot, m) in sends.iter_mut().zip(media.iter().filter(|m| m.sends)) {
            *slot = Some(SendLine::of(m));
        }
        let more_sends = media.iter().filter(|m| m.sends).count() > SEND_LINES;
        LegFormat { media, extensions, sends, more_sends }
    }

    /// The m-line the router sends `kind`/`codec` on, with the payload type.
    #[inline]
    fn send_line(&self, kind: MediaKind, codec: Codec) -> Option<(SendLine, u8)> {
        if self.more_sends {
            // More lines than kept inline: the first match among all of them.
            return self.media.iter().filter(|m| m.sends && m.kind == kind).find_map(|m| {
                let line = SendLine::of(m);
                line.payload_type(codec).map(|pt| (line, pt))
            });
        }
        self.sends.iter().flatten().filter(|l| l.kind == kind).find_map(|l| l.payload_type(codec).map(|pt| (*l, pt)))
    }

    /// The codec table of what this leg sends to the router.
    pub fn sender_format(&self) -> SenderFormat {
        let mut codecs = Vec::new();
        for m in self.media.iter().filter(|m| m.receives) {
            codecs.push((m.payload_type, m.codec));
            if let Some(rtx) = m.rtx_payload_type {
                codecs.push((rtx, Codec::Rtx));
            }
        }
        SenderFormat {
            codecs,
            audio_level: self.extensions.audio_level.unwrap_or(0),
            dependency_descriptor: self.extensions.dependency_descriptor.unwrap_or(0),
        }
    }

    /// The header extensions (RFC 8285) the leg negotiated, appended to
    /// `out` as an extension block (profile, length, elements, padding):
    /// the `mid` of `line`, the audio level `level`, the transport-wide
    /// sequence number `twcc`, the publisher's Dependency Descriptor `dd`.
    /// The one-byte form, or the two-byte form when the descriptor is
    /// longer than 16 bytes (only where the leg allows it: else the
    /// descriptor is left out). Whether it wrote any.
    fn write_extensions(
        &self,
        line: &SendLine,
        level: Option<u8>,
        twcc: Option<u16>,
        dd: Option<&[u8]>,
        out: &mut BytesMut,
    ) -> bool {
        let dd = dd.filter(|d| (1..=255).contains(&d.len()));
        let two = dd.is_some_and(|d| d.len() > 16);
        let dd = dd.filter(|_| !two || self.extensions.allow_mixed);
        let two = two && dd.is_some();
        let id_fits = |id: &u8| if two { *id > 0 } else { (1..=14).contains(id) };
        let mid = &line.mid[..usize::from(line.mid_len)];
        let mid = self.extensions.mid.filter(id_fits).filter(|_| !mid.is_empty()).map(|id| (id, mid));
        let level = self.extensions.audio_level.filter(id_fits).zip(level);
        let twcc = self.extensions.transport_cc.filter(id_fits).zip(twcc);
        let dd = self.extensions.dependency_descriptor.filter(id_fits).zip(dd);
        if mid.is_none() && level.is_none() && twcc.is_none() && dd.is_none() {
            return false;
        }
        let at = out.len();
        out.extend_from_slice(if two { &[0x10, 0x00, 0, 0] } else { &[0xBE, 0xDE, 0, 0] });
        let mut put = |id: u8, data: &[u8]| {
            if two {
                out.extend_from_slice(&[id, data.len() as u8]);
            } else {
                out.extend_from_slice(&[(id << 4) | (data.len() as u8 - 1)]);
            }
            out.extend_from_slice(data);
        };
        if let Some((id, mid)) = mid {
            put(id, mid);
        }
        if let Some((id, level)) = level {
            put(id, &[level]);
        }
        if let Some((id, seq)) = twcc {
            put(id, &seq.to_be_bytes());
        }
        if let Some((id, dd)) = dd {
            put(id, dd);
        }
        let body = out.len() - at - 4;
        let words = body.div_ceil(4);
        out.resize(at + 4 + words * 4, 0);
        out[at + 2..at + 4].copy_from_slice(&(words as u16).to_be_bytes());
        true
    }

    /// Appends `packet` (parsed as `h`) to `out` as this leg receives it:
    /// its payload type, its `mid`, the audio level under its id, the
    /// transport-wide sequence number `twcc` (when the leg negotiated
    /// transport-cc and the router numbers what it sends it), the
    /// publisher's Dependency Descriptor (when both negotiated it), nothing
    /// else of the sender's extensions. `false`: the leg has no m-line for
    /// this stream (it is not sent).
    pub fn rewrite(&self, packet: &[u8], h: &RtpHeader, src: Source, twcc: Option<u16>, out: &mut BytesMut) -> bool {
        let Some((line, pt)) = self.send_line(src.kind, src.codec) else { return false };
        let audio = src.kind == MediaKind::Audio && src.audio_level != 0;
        let level = if audio && self.extensions.audio_level.is_some() {
            h.extensions(packet)
                .flatten()
                .find(|e| e.id == src.audio_level)
                .filter(|e| e.data.len() == 1)
                .map(|e| e.data[0])
        } else {
            None
        };
        let dd = if src.dd != 0 && src.kind == MediaKind::Video && self.extensions.dependency_descriptor.is_some() {
            h.extensions(packet).flatten().find(|e| e.id == src.dd).map(|e| e.data)
        } else {
            None
        };
        let csrcs = 12 + 4 * h.csrc_count as usize;
        let start = out.len();
        // V=2, P as received, X when there are extensions (below), CC as received.
        out.extend_from_slice(&[packet[0] & 0xEF, (packet[1] & 0x80) | (pt & 0x7F)]);
        out.extend_from_slice(&packet[2..csrcs]);
        if self.write_extensions(&line, level, twcc, dd, out) {
            out[start] |= 0x10;
        }
        out.extend_from_slice(&packet[h.payload_offset..]);
        true
    }

    /// What packet `packet` (parsed as `h`) from the peer is, if it is on
    /// one of the RTX streams the peer announced (`a=ssrc-group:FID`) with
    /// the RTX payload type of its m-line: the packet it repairs (RFC 4588
    /// §4: the original sequence number taken out of the payload, the
    /// stream's SSRC and payload type back, the header and its extensions
    /// kept, padding dropped), or a padding-only probe.
    pub fn unwrap_rtx(&self, packet: &[u8], h: &RtpHeader) -> RtxIn {
        let Some(m) = self.media.iter().find(|m| m.receives && m.rtx_payload_type == Some(h.pt.0)) else {
            return RtxIn::NotRtx;
        };
        let Some(&(media, _)) = m.remote_rtx.iter().find(|(_, rtx)| *rtx == h.ssrc) else { return RtxIn::NotRtx };
        let payload = h.payload(packet);
        if payload.len() <= 2 {
            // Padding only (a bandwidth probe) or no media: nothing to repair.
            return RtxIn::Probe;
        }
        let mut v = Vec::with_capacity(h.payload_offset + payload.len() - 2);
        v.extend_from_slice(&packet[..h.payload_offset]);
        v[0] &= !0x20;
        v[1] = (v[1] & 0x80) | (m.payload_type & 0x7F);
        v[2..4].copy_from_slice(&payload[..2]);
        v[8..12].copy_from_slice(&media.0.to_be_bytes());
        v.extend_from_slice(&payload[2..]);
        RtxIn::Repair(v)
    }

    /// Whether this leg negotiated RED (RFC 2198) for the audio it gets.
    #[inline]
    pub fn has_red(&self) -> bool {
        self.send_line(MediaKind::Audio, Codec::Opus).is_some_and(|(l, _)| l.red_payload_type.is_some())
    }

    /// Appends the Opus packet `packet` (parsed as `h`) to `out` as RED
    /// (RFC 2198) on this leg: rewritten as [`LegFormat::rewrite`] does,
    /// then the leg's RED payload type, and a payload of two blocks: the
    /// previous packet's payload `prev` (sent `ts_offset` earlier in the
    /// stream's clock) as the redundant one, then this packet's. `false`:
    /// no RED on this leg, or `prev` does not fit a block (over 1023 bytes,
    /// or an offset of 2^14 or more).
    #[allow(clippy::too_many_arguments)]
    pub fn rewrite_red(
        &self,
        packet: &[u8],
        h: &RtpHeader,
        src: Source,
        prev: &[u8],
        ts_offset: u32,
        twcc: Option<u16>,
        out: &mut BytesMut,
    ) -> bool {
        let Some((line, pt)) = self.send_line(src.kind, src.codec) else { return false };
        let Some(red_pt) = line.red_payload_type.filter(|_| src.kind == MediaKind::Audio) else { return false };
        if prev.len() > 1023 || ts_offset == 0 || ts_offset >= 1 << 14 {
            return false;
        }
        let start = out.len();
        if !self.rewrite(packet, h, src, twcc, out) {
            return false;
        }
        let tail = packet.len() - h.payload_offset;
        let payload_at = out.len() - tail;
        let gap = 5 + prev.len();
        out.resize(out.len() + gap, 0);
        out.copy_within(payload_at..payload_at + tail, payload_at + gap);
        // The redundant block's header: F=1, its payload type, offset (14 bits), length (10 bits).
        let word = (ts_offset << 10) | prev.len() as u32;
        out[payload_at] = 0x80 | (pt & 0x7F);
        out[payload_at + 1..payload_at + 4].copy_from_slice(&word.to_be_bytes()[1..]);
        // The primary block's header: F=0, its payload type.
        out[payload_at + 4] = pt & 0x7F;
        out[payload_at + 5..payload_at + gap].copy_from_slice(prev);
        out[start + 1] = (out[start + 1] & 0x80) | (red_pt & 0x7F);
        true
    }

    /// Whether this leg negotiated RTX (RFC 4588) for video of `codec`.
    #[inline]
    pub fn has_rtx(&self, codec: Codec) -> bool {
        self.send_line(MediaKind::Video, codec).is_some_and(|(l, _)| l.rtx_payload_type.is_some())
    }

    /// Appends `packet` (parsed as `h`) to `out` as a retransmission on
    /// this leg (RFC 4588 §4): rewritten as [`LegFormat::rewrite`] does,
    /// then sent as RTX: the RTX payload type, SSRC `rtx_ssrc` and sequence
    /// number `rtx_seq`, the original sequence number (as the receiver saw
    /// it) in front of the payload. `false`: no RTX for it on this leg.
    #[allow(clippy::too_many_arguments)]
    pub fn rewrite_rtx(
        &self,
        packet: &[u8],
        h: &RtpHeader,
        src: Source,
        rtx_ssrc: u32,
        rtx_seq: u16,
        twcc: Option<u16>,
        out: &mut BytesMut,
    ) -> bool {
        let Some(rtx_pt) = self.send_line(src.kind, src.codec).and_then(|(l, _)| l.rtx_payload_type) else {
            return false;
        };
        let start = out.len();
        if !self.rewrite(packet, h, src, twcc, out) {
            return false;
        }
        // The rewrite copied the header and its extensions before the payload.
        let payload_at = start + (out.len() - start) - (packet.len() - h.payload_offset);
        let osn = [out[start + 2], out[start + 3]];
        out.extend_from_slice(&osn);
        out[payload_at..].rotate_right(2);
        out[start + 1] = (out[start + 1] & 0x80) | (rtx_pt & 0x7F);
        out[start + 2..start + 4].copy_from_slice(&rtx_seq.to_be_bytes());
        out[start + 8..start + 12].copy_from_slice(&rtx_ssrc.to_be_bytes());
        true
    }

    /// Appends to `out` a padding-only RTX packet (RFC 4588 with RFC 3550
    /// padding: a bandwidth probe) on this leg's RTX payload type for video
    /// of `codec`: SSRC `rtx_ssrc`, sequence number `rtx_seq`, timestamp
    /// `ts`, the leg's `mid` and the transport-wide number `twcc`, then
    /// `padding` (1..=255) bytes of padding. `false`: no RTX for it here.
    #[allow(clippy::too_many_arguments)]
    pub fn write_padding(
        &self,
        codec: Codec,
        rtx_ssrc: u32,
        rtx_seq: u16,
        ts: u32,
        twcc: Option<u16>,
        padding: u8,
        out: &mut BytesMut,
    ) -> bool {
        let Some((line, _)) = self.send_line(MediaKind::Video, codec) else { return false };
        let (Some(rtx_pt), true) = (line.rtx_payload_type, padding > 0) else { return false };
        let start = out.len();
        // V=2, P, X when there are extensions (below), no CSRC.
        out.extend_from_slice(&[0xA0, rtx_pt & 0x7F]);
        out.extend_from_slice(&rtx_seq.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&rtx_ssrc.to_be_bytes());
        if self.write_extensions(&line, None, twcc, None, out) {
            out[start] |= 0x10;
        }
        let at = out.len();
        out.resize(at + usize::from(padding), 0);
        out[at + usize::from(padding) - 1] = padding;
        true
    }
}

/// An RTP packet from a peer, as far as RTX goes ([`LegFormat::unwrap_rtx`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RtxIn {
    /// Not on an RTX stream of the peer's: forwarded as it is.
    NotRtx,
    /// An RTX packet with no media (padding: a probe): dropped.
    Probe,
    /// The packet an RTX packet repairs, as first sent.
    Repair(Vec<u8>),
}

/// The SSRC on which the router retransmits stream `media` to WebRTC legs
/// (announced with `a=ssrc-group:FID` where the stream is known when the
/// leg is answered). Derived, not drawn: every leg and every worker name a
/// stream's RTX alike, with no state to keep. A fixed bit pattern mixed in
/// keeps it apart from the stream itself.
#[inline]
pub fn rtx_ssrc(media: u32) -> u32 {
    media.rotate_left(16) ^ 0x5254_5831
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
