//! One leg's SRTP sessions, both ways: a WebRTC leg's (keyed by DTLS) and a
//! native leg's (keyed from its join key, `corecast_proto::join_key`).
//! Packets are sealed and opened in the outbox's arena: one copy, no
//! allocation.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::srtp::{SrtpContext, SrtpError, SrtpKey};

use crate::outbox::Outbox;
use crate::stats::DropReason;

/// Payload type of the RTX packets (RFC 4588) the router resends on
/// native SRTP legs: a resent packet must not be sealed again under its
/// first SRTP index, so it goes on the RTX SSRC of its stream
/// (`webrtc::rtx_ssrc`) with the RTX stream's own sequence numbers.
pub const NATIVE_RTX_PT: u8 = 99;

/// SRTP both ways.
#[derive(Debug)]
pub(crate) struct SrtpPair {
    /// What the router seals with.
    pub tx: SrtpContext,
    /// What the router opens the peer's packets with.
    pub rx: SrtpContext,
}

impl SrtpPair {
    /// The pair for `tx` and `rx` keys.
    pub fn new(tx: &SrtpKey, rx: &SrtpKey) -> Result<SrtpPair, SrtpError> {
        Ok(SrtpPair { tx: SrtpContext::new(tx)?, rx: SrtpContext::new(rx)? })
    }

    /// Decrypts an SRTP (or, `rtcp`, SRTCP) packet from the peer.
    pub fn unprotect(&mut self, packet: &[u8], rtcp: bool, out: &mut Outbox) -> Result<Bytes, DropReason> {
        let arena = out.arena();
        let r = if rtcp { self.rx.unprotect_rtcp(packet, arena) } else { self.rx.unprotect_rtp(packet, arena) };
        match r {
            Ok(()) => Ok(out.take_arena()),
            Err(e) => {
                out.discard_arena();
                Err(match e {
                    SrtpError::Replay => DropReason::SrtpReplay,
                    _ => DropReason::SrtpAuth,
                })
            }
        }
    }

    /// Writes one RTP packet with `write` (which appends it to `arena`, or
    /// writes nothing and says `false`), seals it there and sends it to
    /// `dest`. `None`: sealing failed (counted); `Some(false)`: nothing written.
    pub fn seal_and_send(
        &mut self,
        out: &mut Outbox,
        dest: SocketAddr,
        write: impl FnOnce(&mut BytesMut) -> bool,
    ) -> Option<bool> {
        let sealed = self.seal(out, write)?;
        let written = sealed.is_some();
        if let Some(b) = sealed {
            out.transmit(dest, b);
        }
        Some(written)
    }

    /// [`seal_and_send`](Self::seal_and_send) without the sending: the
    /// sealed packet (`Some(None)`: nothing written).
    pub fn seal(&mut self, out: &mut Outbox, write: impl FnOnce(&mut BytesMut) -> bool) -> Option<Option<Bytes>> {
        let arena = out.arena();
        let start = arena.len();
        if !write(arena) {
            arena.truncate(start);
            return Some(None);
        }
        if self.tx.protect_rtp_in_place(arena, start).is_err() {
            out.discard_arena();
            out.stats.srtp_seal_failed += 1;
            return None;
        }
        Some(Some(out.take_arena()))
    }

    /// Seals an RTCP compound and sends it to `dest`.
    pub fn send_rtcp(&mut self, out: &mut Outbox, dest: SocketAddr, contents: &[u8]) {
        if self.tx.protect_rtcp(contents, out.arena()).is_ok() {
            let b = out.take_arena();
            out.transmit(dest, b);
        } else {
            out.discard_arena();
            out.stats.srtp_seal_failed += 1;
        }
    }
}

/// Appends `packet` (parsed as `h`) to `out` as RTX (RFC 4588 §4): the
/// header with `pt`, `seq` and `ssrc` put in and no padding, then the
/// original sequence number, then the original payload.
pub(crate) fn write_rtx(packet: &[u8], h: &RtpHeader, pt: u8, seq: u16, ssrc: u32, out: &mut BytesMut) -> bool {
    let Some(payload) = packet.get(h.payload_offset..h.payload_offset + h.payload_len) else { return false };
    let start = out.len();
    out.extend_from_slice(&packet[..h.payload_offset]);
    out[start] &= !0x20; // no padding
    out[start + 1] = (out[start + 1] & 0x80) | (pt & 0x7F);
    out[start + 2..start + 4].copy_from_slice(&seq.to_be_bytes());
    out[start + 8..start + 12].copy_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&h.seq.0.to_be_bytes());
    out.extend_from_slice(payload);
    true
}

/// Where RTX stream `ssrc`'s next sequence number is kept in `seqs` (a new
/// stream starts at a number of its own, RFC 4588 §8.1: like any RTP stream).
pub(crate) fn rtx_slot(seqs: &mut Vec<(u32, u16)>, ssrc: u32) -> usize {
    match seqs.iter().position(|(s, _)| *s == ssrc) {
        Some(i) => i,
        None => {
            seqs.push((ssrc, ssrc as u16 & 0x7FFF));
            seqs.len() - 1
        }
    }
}

impl crate::Router {
    /// Opens an SRTP or SRTCP packet from native participant `pid` (whose
    /// leg is keyed from its join key).
    pub(crate) fn unprotect_native(
        &mut self,
        call: corecast_proto::token::CallId,
        pid: corecast_proto::token::ParticipantId,
        kind: corecast_proto::demux::Kind,
        contents: &[u8],
    ) -> Result<Bytes, DropReason> {
        use corecast_proto::demux::Kind;
        let rtcp = match kind {
            Kind::Rtp => false,
            Kind::Rtcp => true,
            _ => return Err(DropReason::Malformed),
        };
        let c = self.calls.get_mut(&call).ok_or(DropReason::Unadmitted)?;
        let i = c.index_of(pid).ok_or(DropReason::Unadmitted)?;
        match &mut c.participants[i].transport {
            crate::transport::Transport::Udp(u) => match u.srtp.as_mut() {
                Some(srtp) => srtp.unprotect(contents, rtcp, &mut self.out),
                None => Err(DropReason::Unadmitted),
            },
            crate::transport::Transport::WebRtc(_) => Err(DropReason::Unadmitted),
        }
    }
}
