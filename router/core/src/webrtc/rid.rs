//! Simulcast from a WebRTC publisher (a browser with `a=simulcast`): its
//! layers come on SSRCs it never announced, each packet naming its layer in
//! the RID header extension (RFC 8852), and each layer's RTX stream naming
//! the layer it repairs in the repaired-RID one. The first packet of a new
//! SSRC with a RID of a simulcast m-line makes it a producer and a layer of
//! that m-line's group (see `simulcast`; the layer's place is its RID's in
//! the offer's `a=rid` lines, lowest quality first); the first packet of a
//! new RTX SSRC with a repaired RID pairs it with its layer, so the repairs
//! it carries are unwrapped as any announced RTX stream's are.

use corecast_proto::rtp::RtpHeader;
use corecast_proto::token::{CallId, ParticipantId};
use corecast_proto::MediaKind;

use super::WebRtcTransport;
use crate::call::Owner;
use crate::pipe::PipeMessage;
use crate::reports::PublisherSr;
use crate::simulcast::Layer;
use crate::transport::Transport;
use crate::Router;

/// The value of header extension `id` in `packet`, if it carries one.
fn ext<'a>(h: &RtpHeader, packet: &'a [u8], id: Option<u8>) -> Option<&'a [u8]> {
    let id = id?;
    h.extensions(packet).flatten().find(|e| e.id == id).map(|e| e.data)
}

impl WebRtcTransport {
    /// Reads a packet on an SSRC not known yet: a new layer of one of the
    /// leg's simulcast m-lines (its group and place, the group being the
    /// m-line's first layer seen, or this one), or an RTX stream of a known
    /// layer (paired with it here: `None`).
    pub(crate) fn learn_rid(&mut self, h: &RtpHeader, packet: &[u8]) -> Option<Layer> {
        let pt = h.pt.0;
        let line = self.format.media.iter().position(|m| {
            m.receives && !m.rids.is_empty() && (m.payload_type == pt || m.rtx_payload_type == Some(pt))
        })?;
        let m = &self.format.media[line];
        let index_of = |rid: &[u8]| m.rids.iter().position(|r| r.as_bytes() == rid);
        if m.rtx_payload_type == Some(pt) && m.payload_type != pt {
            let index = index_of(ext(h, packet, self.format.extensions.repaired_rid)?)?;
            let (.., media) = *self.rid_layers.iter().find(|(l, i, _)| *l == line && usize::from(*i) == index)?;
            if !m.remote_rtx.iter().any(|(_, rtx)| *rtx == h.ssrc) {
                self.format.media[line].remote_rtx.push((media, h.ssrc));
            }
            return None;
        }
        let index = index_of(ext(h, packet, self.format.extensions.rid)?)? as u8;
        if usize::from(index) >= corecast_proto::session::MAX_LAYERS
            || self.rid_layers.iter().any(|(l, i, _)| *l == line && *i == index)
        {
            return None;
        }
        let group = self.rid_layers.iter().find(|(l, ..)| *l == line).map_or(h.ssrc, |(.., s)| *s);
        self.rid_layers.push((line, index, h.ssrc));
        Some(Layer { group, index })
    }
}

impl Router {
    /// A WebRTC publisher's packet `plain` on an SSRC the call does not
    /// know: if it is a simulcast layer (or its RTX stream), learns it
    /// before the packet goes on (see the module's documentation).
    pub(crate) fn learn_rid_layer(&mut self, call_id: CallId, pid: ParticipantId, plain: &[u8]) {
        let Ok(h) = RtpHeader::parse(plain) else { return };
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        if call.ssrc_owner.contains_key(&h.ssrc) {
            return;
        }
        let Some(i) = call.index_of(pid) else { return };
        let p = &mut call.participants[i];
        if p.producers.len() >= self.config.max_learned_ssrcs {
            return;
        }
        let Transport::WebRtc(w) = &mut p.transport else { return };
        let Some(layer) = w.learn_rid(&h, plain) else { return };
        p.add_producer(h.ssrc, MediaKind::Video);
        let sr = p.reports.take_pending(h.ssrc);
        if let Some(prod) = p.producers.last_mut() {
            prod.layer = Some(layer);
            prod.recv.last_sr = sr.map(|(sr, at)| PublisherSr::of(&sr, at));
        }
        let announce = p.producers.last().map(PipeMessage::producer);
        call.ssrc_owner.insert(h.ssrc, Owner::Participant(pid));
        if let Some(m) = announce {
            call.broadcast_pipes(&mut self.out, None, &m);
        }
        self.out.event(crate::Event::ProducerAdded { call: call_id, participant: pid, ssrc: h.ssrc });
    }
}
