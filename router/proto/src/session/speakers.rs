//! The speakers list: an RTCP APP packet (subtype 0, name `SPKR`) in which
//! the router tells a call's mixer who is speaking. Its data is the video
//! SSRCs of the call's loudest participants, loudest first, four bytes each.
//! It is corecast's own, not standard RTCP (see `router/PROTOCOL.md`); the
//! router drops APP packets from participants, so only it can send one.

use crate::ids::Ssrc;
use crate::rtcp::App;

/// Name of the speakers APP packet.
pub const SPEAKERS_APP_NAME: [u8; 4] = *b"SPKR";

/// Most SSRCs a speakers APP packet carries.
pub const MAX_SPEAKERS: usize = 32;

/// A speakers packet from `sender` listing `video_ssrcs` (loudest first;
/// beyond [`MAX_SPEAKERS`] dropped).
pub fn app(sender: Ssrc, video_ssrcs: &[Ssrc]) -> App {
    let data = video_ssrcs.iter().take(MAX_SPEAKERS).flat_map(|s| s.0.to_be_bytes()).collect();
    App { subtype: 0, ssrc: sender, name: SPEAKERS_APP_NAME, data }
}

/// The SSRCs of a speakers packet; `None` for any other APP packet or a
/// malformed one.
pub fn parse(app: &App) -> Option<Vec<Ssrc>> {
    if app.name != SPEAKERS_APP_NAME || app.subtype != 0 || !app.data.len().is_multiple_of(4) {
        return None;
    }
    let v: Vec<Ssrc> = app.data.chunks_exact(4).map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect();
    (v.len() <= MAX_SPEAKERS).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{parse_compound, write_compound, RtcpPacket};

    #[test]
    fn speakers_app_round_trips_and_rejects_others() {
        let ssrcs = [Ssrc(7), Ssrc(0xdead_beef), Ssrc(3)];
        let b = write_compound(&[RtcpPacket::App(app(Ssrc(1), &ssrcs))]).unwrap();
        let back = parse_compound(&b).unwrap();
        let RtcpPacket::App(a) = &back[0] else { panic!("{back:?}") };
        assert_eq!(parse(a).unwrap(), ssrcs);
        assert_eq!(parse(&app(Ssrc(1), &[])), Some(vec![]));
        let many: Vec<Ssrc> = (0..40).map(Ssrc).collect();
        assert_eq!(parse(&app(Ssrc(1), &many)).unwrap().len(), MAX_SPEAKERS);
        assert_eq!(parse(&App { name: *b"XXXX", ..app(Ssrc(1), &ssrcs) }), None);
        assert_eq!(parse(&App { data: vec![0; 6], ..app(Ssrc(1), &ssrcs) }), None);
        assert_eq!(parse(&App { data: vec![0; 4 * 33], ..app(Ssrc(1), &ssrcs) }), None);
    }
}
