//! WebRTC legs end to end on synthetic time: a peer made of the same
//! building blocks a browser has (an ICE check writer, `dimpl` as the DTLS
//! client, SRTP) checks, handshakes and exchanges media with native
//! participants and other WebRTC legs through the router; and what the
//! router must refuse (unknown ufrags, bad integrity, DTLS before ICE,
//! tampered and replayed SRTP) is dropped, counted and leaves no state.

use std::sync::Arc;

use bytes::BytesMut;
use corecast_proto::ice::{Check, Role as IceRole, Username};
use corecast_proto::srtp::{keys_from_dtls, SrtpContext, SrtpProfile};

use super::*;
use crate::webrtc::{Codec, DtlsIdentity, IceCredentials, LegExtensions, LegMedia, WebRtcLeg};

const AUDIO_SSRC: u32 = 0xA0;
pub(super) const VIDEO_SSRC: u32 = 0xB0;
pub(super) const VIDEO_RTX_SSRC: u32 = 0xB1;

/// A WebRTC peer: what a browser does, sans IO.
pub(super) struct Peer {
    pub(super) addr: SocketAddr,
    ufrag: String,
    pub(super) router_ufrag: String,
    router_pwd: String,
    dtls: dimpl::Dtls,
    pub(super) tx: Option<SrtpContext>,
    pub(super) rx: Option<SrtpContext>,
    profile: Option<SrtpProfile>,
}

pub(super) fn identity() -> Arc<DtlsIdentity> {
    Arc::new(DtlsIdentity::generate().expect("certificate"))
}

fn media(publisher: bool) -> Vec<LegMedia> {
    vec![
        LegMedia {
            mid: "0".into(),
            kind: MediaKind::Audio,
            codec: Codec::Opus,
            payload_type: 111,
            rtx_payload_type: None,
            red_payload_type: None,
            receives: publisher,
            sends: !publisher,
            remote_ssrcs: if publisher { vec![Ssrc(AUDIO_SSRC)] } else { vec![] },
            remote_rtx: vec![],
            rids: vec![],
        },
        LegMedia {
            mid: "1".into(),
            kind: MediaKind::Video,
            codec: Codec::Av1,
            // A browser's own number for AV1, unlike the native client's 45.
            payload_type: 35,
            rtx_payload_type: Some(36),
            red_payload_type: None,
            receives: publisher,
            sends: !publisher,
            remote_ssrcs: if publisher { vec![Ssrc(VIDEO_SSRC), Ssrc(VIDEO_RTX_SSRC)] } else { vec![] },
            remote_rtx: if publisher { vec![(Ssrc(VIDEO_SSRC), Ssrc(VIDEO_RTX_SSRC))] } else { vec![] },
            rids: vec![],
        },
    ]
}

impl Peer {
    /// Opens a leg for the peer on the router and returns the peer.
    fn open(h: &mut H, i: u16, c: CallId, pid: u64, publisher: bool, subscribe: Option<u64>) -> Peer {
        Peer::open_with(h, i, c, pid, publisher, subscribe, (dimpl::Config::builder().build().unwrap(), Quality::Hd))
    }

    /// [`Peer::open`] with the peer's own DTLS configuration and the leg's
    /// quality (SD: a WHEP composite view).
    pub(super) fn open_with(
        h: &mut H,
        i: u16,
        c: CallId,
        pid: u64,
        publisher: bool,
        subscribe: Option<u64>,
        (config, quality): (dimpl::Config, Quality),
    ) -> Peer {
        Peer::open_edited(h, i, (c, pid, publisher, subscribe), config, |leg| leg.quality = quality)
    }

    /// [`Peer::open`] with the peer's own DTLS configuration and the leg
    /// changed by `edit` before it opens (a quality, a frame-rate cap).
    pub(super) fn open_edited(
        h: &mut H,
        i: u16,
        (c, pid, publisher, subscribe): (CallId, u64, bool, Option<u64>),
        config: dimpl::Config,
        edit: impl FnOnce(&mut WebRtcLeg),
    ) -> Peer {
        let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
        let config = Arc::new(config);
        let mut dtls = dimpl::Dtls::new_auto(config, cert.clone(), h.now);
        dtls.set_active(true);
        let mut leg = Peer::leg(h, i, c, pid, publisher, subscribe, &cert);
        edit(&mut leg);
        let (router_ufrag, router_pwd) = (leg.ice.local_ufrag.clone(), leg.ice.local_pwd.clone());
        h.r.open_webrtc(h.now, leg).expect("leg opens");
        h.drain();
        Peer {
            addr: addr(i),
            ufrag: format!("p{i}"),
            router_ufrag,
            router_pwd,
            dtls,
            tx: None,
            rx: None,
            profile: None,
        }
    }

    /// The (HD) leg the calls service would open for peer `i` with `cert`.
    fn leg(
        h: &H,
        i: u16,
        c: CallId,
        pid: u64,
        publisher: bool,
        subscribe: Option<u64>,
        cert: &dimpl::DtlsCertificate,
    ) -> WebRtcLeg {
        let router_ufrag = format!("r{i}uf");
        let router_pwd = format!("router-password-{i:06}-xx");
        WebRtcLeg {
            call: c,
            participant: ParticipantId(pid),
            role: if publisher { Role::Publisher } else { Role::Subscriber },
            ice: IceCredentials {
                local_ufrag: router_ufrag.clone(),
                local_pwd: router_pwd.clone(),
                remote_ufrag: format!("p{i}"),
            },
            remote_fingerprint: cert.fingerprint(),
            media: media(publisher),
            extensions: LegExtensions {
                mid: Some(9),
                audio_level: Some(1),
                transport_cc: Some(3),
                ..Default::default()
            },
            subscribe: subscribe.map(ParticipantId),
            quality: Quality::Hd,
            max_fps: None,
            max_height: None,
            last_n: None,
            pending_until: h.now + Duration::from_secs(10),
        }
    }

    fn check(&self, txid: u8, use_candidate: bool, password: &str) -> Vec<u8> {
        let mut b = Vec::new();
        Check {
            txid: [txid; 12],
            username: Username { local: &self.router_ufrag, remote: &self.ufrag },
            priority: 1,
            role: IceRole::Controlling(7),
            use_candidate,
        }
        .write(&mut b, password.as_bytes());
        b
    }

    /// An ICE check and its answer.
    pub(super) fn connect_ice(&self, h: &mut H) {
        h.input(self.addr, self.check(1, true, &self.router_pwd));
        let t = h.take();
        assert_eq!(t.len(), 1, "one binding response");
        assert_eq!(t[0].destination, self.addr);
        assert_eq!(&t[0].contents[..2], &[0x01, 0x01], "a Binding success response");
    }

    /// The DTLS handshake through the router, until SRTP is keyed both ways.
    pub(super) fn handshake(&mut self, h: &mut H) {
        let mut buf = vec![0u8; 4096];
        for _ in 0..50 {
            let mut to_router = Vec::new();
            loop {
                match self.dtls.poll_output(&mut buf) {
                    dimpl::Output::Packet(p) => to_router.push(p.to_vec()),
                    dimpl::Output::Timeout(_) => break,
                    dimpl::Output::KeyingMaterial(km, profile) => {
                        let profile = match profile {
                            dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
                            dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
                            _ => SrtpProfile::Aes128CmHmacSha1_80,
                        };
                        let (ours, theirs) = keys_from_dtls(profile, &km, false).unwrap();
                        self.tx = Some(SrtpContext::new(&ours).unwrap());
                        self.rx = Some(SrtpContext::new(&theirs).unwrap());
                        self.profile = Some(profile);
                    }
                    _ => {}
                }
            }
            for p in to_router {
                h.input(self.addr, p);
            }
            // (Keyframe requests to publishers go elsewhere when the leg connects.)
            let replies: Vec<_> = h.take().into_iter().filter(|t| t.destination == self.addr).collect();
            for t in &replies {
                self.dtls.handle_packet(&t.contents).unwrap();
            }
            if self.tx.is_some() && h.r.stats().dtls_connected > 0 && replies.is_empty() {
                return;
            }
            self.dtls.handle_timeout(h.now).unwrap();
        }
        panic!("DTLS handshake did not complete");
    }

    pub(super) fn join(h: &mut H, i: u16, c: CallId, pid: u64, publisher: bool, subscribe: Option<u64>) -> Peer {
        let mut p = Peer::open(h, i, c, pid, publisher, subscribe);
        p.connect_ice(h);
        p.handshake(h);
        p
    }

    pub(super) fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(plain.len() + 32);
        self.tx.as_mut().unwrap().protect_rtp(plain, &mut out).unwrap();
        out.to_vec()
    }

    pub(super) fn seal_rtcp(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(plain.len() + 32);
        self.tx.as_mut().unwrap().protect_rtcp(plain, &mut out).unwrap();
        out.to_vec()
    }

    pub(super) fn open_rtcp(&mut self, sealed: &[u8]) -> Vec<RtcpPacket> {
        let mut out = BytesMut::with_capacity(sealed.len());
        self.rx.as_mut().unwrap().unprotect_rtcp(sealed, &mut out).expect("the leg's own keys open it");
        rtcp::parse_compound(&out).unwrap()
    }

    pub(super) fn open_rtp(&mut self, sealed: &[u8]) -> RtpPacket {
        let mut out = BytesMut::with_capacity(sealed.len());
        self.rx.as_mut().unwrap().unprotect_rtp(sealed, &mut out).expect("the leg's own keys open it");
        RtpPacket::parse(&out).unwrap()
    }
}

pub(super) fn video(ssrc: u32, seq: u16, pt: u8) -> Vec<u8> {
    RtpPacket {
        pt: Pt(pt),
        seq: SeqNo(seq),
        ssrc: Ssrc(ssrc),
        extensions: vec![(3, vec![0, seq as u8])],
        payload: vec![seq as u8; 1000],
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

#[test]
fn a_browser_publisher_reaches_a_native_receiver_and_a_browser_subscriber() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(1);
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    let mut b = Peer::join(&mut h, 3, c, 3, false, Some(1));
    assert_eq!(h.r.stats().dtls_connected, 3 - 1, "both WebRTC legs keyed");
    for seq in 0..20u16 {
        let sealed = a.seal(&video(VIDEO_SSRC, seq, 35));
        h.input(a.addr, sealed);
        let t = h.take();
        let to_native: Vec<_> = t.iter().filter(|t| t.destination == addr(2)).collect();
        let to_b: Vec<_> = t.iter().filter(|t| t.destination == b.addr).collect();
        assert_eq!((to_native.len(), to_b.len()), (1, 1), "one copy each at seq {seq}");
        // The native receiver gets the plain packet as the browser sent it.
        assert_eq!(&to_native[0].contents[..], &video(VIDEO_SSRC, seq, 35)[..]);
        // The browser receiver gets it sealed with its own keys, with its own
        // payload type (35 → 35 here) and mid, the router's own transport-wide
        // number (the leg negotiated transport-cc: id 3), no other extension.
        let q = b.open_rtp(&to_b[0].contents);
        assert_eq!((q.ssrc, q.seq, q.pt), (Ssrc(VIDEO_SSRC), SeqNo(seq), Pt(35)));
        assert_eq!(q.extensions.len(), 2);
        assert_eq!(q.extensions[0], (9, b"1".to_vec()));
        assert_eq!(q.extensions[1].0, 3);
        assert_eq!(q.payload, vec![seq as u8; 1000]);
        assert_ne!(&to_b[0].contents[..], &to_native[0].contents[..]);
    }
    assert_eq!(h.r.stats().forwarded_rtp, 40);
}

#[test]
fn the_router_picks_aes_128_gcm_first_and_aes_cm_when_that_is_all_a_peer_offers() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(9);
    // dimpl's client offers AES-256-GCM first, as a browser may: the router's
    // preference decides (RFC 5764 §4.1.1).
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    assert_eq!(a.profile, Some(SrtpProfile::AeadAes128Gcm));
    // A peer without AEAD profiles gets the fallback, and media flows with it.
    let cm_only = dimpl::Config::builder().srtp_profiles(&[dimpl::SrtpProfile::AES128_CM_SHA1_80]).build().unwrap();
    let mut b = Peer::open_with(&mut h, 2, c, 2, false, Some(1), (cm_only, Quality::Hd));
    b.connect_ice(&mut h);
    b.handshake(&mut h);
    assert_eq!(b.profile, Some(SrtpProfile::Aes128CmHmacSha1_80));
    h.input(a.addr, a.seal(&video(VIDEO_SSRC, 7, 35)));
    let to_b: Vec<_> = h.take().into_iter().filter(|t| t.destination == b.addr).collect();
    assert_eq!(to_b.len(), 1);
    assert_eq!(b.open_rtp(&to_b[0].contents).seq, SeqNo(7));
}

#[test]
fn a_native_publisher_reaches_a_browser_with_the_browsers_payload_type() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(2);
    h.join(addr(1), c, 1, 0x1111);
    let mut b = Peer::join(&mut h, 2, c, 2, false, None);
    h.input(addr(1), video(0x1111, 5, 45));
    let t = h.take();
    assert_eq!(t.len(), 1);
    let q = b.open_rtp(&t[0].contents);
    assert_eq!((q.pt, q.seq), (Pt(35), SeqNo(5)), "native AV1 (45) arrives as the browser's AV1 (35)");
    // A codec the browser did not negotiate is not sent to it.
    h.input(addr(1), video(0x1111, 6, 96));
    assert!(h.take().is_empty());
    assert!(h.r.stats().webrtc_not_ready >= 1);
}

#[test]
fn a_whep_leg_gets_only_the_participant_it_named() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(3);
    h.join(addr(1), c, 1, 0x1111);
    h.join(addr(2), c, 2, 0x2222);
    let _b = Peer::join(&mut h, 3, c, 3, false, Some(2));
    h.input(addr(1), video(0x1111, 1, 45));
    assert_eq!(dests(&h.take()), vec![addr(2)], "participant 1 is not sent to the leg watching 2");
    h.input(addr(2), video(0x2222, 1, 45));
    let d: Vec<_> = h.take().iter().map(|t| t.destination).collect();
    assert!(d.contains(&addr(1)) && d.contains(&addr(3)));
}

#[test]
fn whep_legs_watching_one_participant_do_not_fill_the_call() {
    // Two people fill a call capped at 2; each still opens a WHEP leg per
    // person it watches (as the web app does), and a third person is refused.
    let mut h = H::with(RouterConfig { max_participants_per_call: 2, ..Default::default() });
    h.r.set_dtls_identity(identity());
    let c = call(8);
    h.join(addr(1), c, 1, 0x1111);
    h.join(addr(2), c, 2, 0x2222);
    let _watch_2 = Peer::join(&mut h, 3, c, 3, false, Some(2));
    let _watch_1 = Peer::join(&mut h, 4, c, 4, false, Some(1));
    assert_eq!(h.r.stats().dtls_connected, 2);
    let leg = Peer::leg(&h, 5, c, 5, true, None, &dimpl::certificate::generate_self_signed_certificate().unwrap());
    assert_eq!(h.r.open_webrtc(h.now, leg), Err(crate::LegRefusal::CallFull), "a third publisher is a third person");
}

#[test]
fn bad_ice_checks_are_dropped_and_keep_nothing() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(4);
    let p = Peer::open(&mut h, 1, c, 1, true, None);
    // Wrong password, unknown ufrag, malformed STUN: no answer, counted.
    h.input(p.addr, p.check(1, true, "not-the-password-at-all"));
    let mut stranger = Peer::open(&mut h, 2, c, 2, false, None);
    stranger.router_ufrag = "nobody".into();
    h.input(stranger.addr, stranger.check(2, true, &stranger.router_pwd));
    h.input(p.addr, vec![0, 1, 0, 4, 0x21, 0x12]);
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_ice_refused, 2);
    // DTLS and SRTP from an address that passed no check: dropped, unanswered.
    let mut dtls = dimpl::Dtls::new_auto(
        Arc::new(dimpl::Config::builder().build().unwrap()),
        dimpl::certificate::generate_self_signed_certificate().unwrap(),
        h.now,
    );
    dtls.set_active(true);
    let mut buf = vec![0u8; 4096];
    let hello = match dtls.poll_output(&mut buf) {
        dimpl::Output::Packet(p) => p.to_vec(),
        o => panic!("no ClientHello: {o:?}"),
    };
    let before = h.r.stats().dropped_unadmitted;
    h.input(p.addr, hello);
    h.input(p.addr, video(VIDEO_SSRC, 1, 35));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_unadmitted, before + 2);
}

#[test]
fn tampered_and_replayed_srtp_is_dropped_and_counted() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(5);
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    let sealed = a.seal(&video(VIDEO_SSRC, 1, 35));
    let mut tampered = sealed.clone();
    let n = tampered.len();
    tampered[n - 20] ^= 1;
    h.input(a.addr, tampered);
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_srtp_auth, 1);
    h.input(a.addr, sealed.clone());
    assert_eq!(h.take().len(), 1, "the genuine packet still passes after the forgery");
    h.input(a.addr, sealed);
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_srtp_replay, 1);
    // Garbage after the handshake, of every first-byte class.
    for first in [0u8, 22, 0x80, 0xFF] {
        h.input(a.addr, vec![first; 40]);
    }
    assert!(h.take().iter().all(|t| t.destination == a.addr), "nothing forwarded");
}

#[test]
fn consent_expires_thirty_seconds_after_the_last_check() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(6);
    let a = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    // Keep the native participant alive; the browser sends media but no checks.
    for s in 0..58 {
        h.advance(Duration::from_millis(500));
        h.input(addr(2), video(0x2222, s, 45));
        if s % 10 == 0 {
            // Only checks renew consent, not media.
            h.input(a.addr, vec![0x80; 4]);
        }
    }
    assert_eq!(h.r.participant_count(), 2, "29 s: still in");
    for s in 58..66 {
        h.advance(Duration::from_millis(500));
        h.input(addr(2), video(0x2222, s, 45));
    }
    assert_eq!(h.r.participant_count(), 1, "past 30 s without a check the leg is closed");
    assert!(h.events.iter().any(
        |e| matches!(e, Event::ParticipantLeft { participant, reason: LeaveReason::Timeout, .. } if participant.0 == 1)
    ));
}

#[test]
fn a_leg_that_is_never_checked_is_dropped_at_its_deadline() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let _p = Peer::open(&mut h, 1, call(7), 1, false, None);
    assert_eq!(h.r.participant_count(), 1);
    h.advance(Duration::from_secs(11));
    assert_eq!(h.r.participant_count(), 0);
}

#[test]
fn a_checked_address_change_is_followed_and_an_unchecked_one_is_not() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(8);
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    let moved = addr(9);
    let sealed = a.seal(&video(VIDEO_SSRC, 1, 35));
    h.input(moved, sealed);
    assert!(h.take().is_empty(), "media from an unchecked address is dropped");
    let mut check_from_moved = a.check(5, true, &a.router_pwd);
    h.input(moved, std::mem::take(&mut check_from_moved));
    assert_eq!(h.take().len(), 1, "the check is answered");
    let sealed = a.seal(&video(VIDEO_SSRC, 2, 35));
    h.input(moved, sealed);
    assert_eq!(dests(&h.take()), vec![addr(2)]);
}

#[test]
fn without_a_certificate_webrtc_is_refused() {
    let mut h = H::new();
    let leg = WebRtcLeg {
        call: call(9),
        participant: ParticipantId(1),
        role: Role::Publisher,
        ice: IceCredentials { local_ufrag: "a".into(), local_pwd: "b".into(), remote_ufrag: "c".into() },
        remote_fingerprint: vec![0; 32],
        media: media(true),
        extensions: LegExtensions::default(),
        subscribe: None,
        quality: Quality::Hd,
        max_fps: None,
        max_height: None,
        last_n: None,
        pending_until: h.now,
    };
    assert_eq!(h.r.open_webrtc(h.now, leg), Err(crate::LegRefusal::NoCertificate));
}

#[test]
fn a_publisher_gets_transport_wide_congestion_feedback() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(10);
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    for seq in 0..10u16 {
        let sealed = a.seal(&video(VIDEO_SSRC, seq, 35));
        h.input(a.addr, sealed);
        h.now += Duration::from_millis(5);
    }
    h.take();
    h.advance(Duration::from_millis(60));
    let to_a: Vec<_> = h.take().into_iter().filter(|t| t.destination == a.addr).collect();
    assert!(!to_a.is_empty(), "feedback is sent to the publisher");
    let mut plain = BytesMut::new();
    a.rx.as_mut().unwrap().unprotect_rtcp(&to_a[0].contents, &mut plain).expect("SRTCP with the leg's keys");
    let packets = rtcp::parse_compound(&plain).unwrap();
    let fb = packets
        .iter()
        .find_map(|p| match p {
            RtcpPacket::TransportFeedback(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a transport-wide feedback message");
    assert_eq!(fb.received(), 10);
    assert_eq!(fb.base_seq, SeqNo(0));
}

#[test]
fn a_whep_leg_stays_in_hd_whatever_it_reports() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(11);
    h.join(addr(1), c, 1, 0x1111);
    let mut b = Peer::join(&mut h, 2, c, 2, false, Some(1));
    for i in 0..5u16 {
        h.input(addr(1), video(0x1111, i, 45));
        // Heavy loss reported, over SRTCP.
        let mut out = BytesMut::new();
        b.tx.as_mut().unwrap().protect_rtcp(&rr(0x2, 0x1111, 200), &mut out).unwrap();
        h.input(b.addr, out.to_vec());
        h.advance(Duration::from_secs(1));
    }
    assert!(!h.events.iter().any(|e| matches!(e, Event::QualityChanged { .. })), "{:?}", h.events);
    h.take();
    h.input(addr(1), video(0x1111, 9, 45));
    assert_eq!(dests(&h.take()), vec![b.addr]);
}

#[test]
fn an_ice_restart_takes_new_credentials_and_keeps_the_session_name() {
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(12);
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    h.join(addr(2), c, 2, 0x2222);
    let session = a.router_ufrag.clone();
    let creds = IceCredentials {
        local_ufrag: "restarted".into(),
        local_pwd: "a-new-router-password-0001".into(),
        remote_ufrag: "p1new".into(),
    };
    assert!(h.r.restart_ice(&session, creds));
    assert_eq!(h.r.webrtc_remote_ufrag(&session).as_deref(), Some("p1new"), "PATCH still names it by its session");
    // Old credentials no longer pass; the new ones do, and media keeps flowing.
    h.input(a.addr, a.check(3, true, &a.router_pwd));
    assert!(h.take().is_empty());
    a.router_ufrag = "restarted".into();
    a.router_pwd = "a-new-router-password-0001".into();
    a.ufrag = "p1new".into();
    h.input(a.addr, a.check(4, true, &a.router_pwd));
    assert_eq!(h.take().len(), 1, "answered");
    let sealed = a.seal(&video(VIDEO_SSRC, 1, 35));
    h.input(a.addr, sealed);
    assert_eq!(dests(&h.take()), vec![addr(2)]);
    // Leaving forgets both names.
    h.r.handle_input(h.now, Input::Command(Command::RemoveParticipant(c, ParticipantId(1))));
    h.drain();
    assert_eq!(h.r.webrtc_remote_ufrag(&session), None);
    assert_eq!(h.r.webrtc_remote_ufrag("restarted"), None);
}

/// The core's own cost per forwarded packet, native receivers against
/// WebRTC receivers (rewrite + seal), without sockets: where the time SRTP
/// adds goes. `cargo test -p corecast-core --release core_seal_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn core_seal_cost() {
    const N: u16 = 20_000;
    let run = |webrtc: bool| -> f64 {
        let mut h = H::new();
        h.r.set_dtls_identity(identity());
        let c = call(13);
        let mut a = Peer::join(&mut h, 1, c, 1, true, None);
        let mut subs = Vec::new();
        for i in 0..4u16 {
            if webrtc {
                subs.push(Peer::join(&mut h, 10 + i, c, 10 + u64::from(i), false, None));
            } else {
                let tok = h.token(c, 10 + u64::from(i), Role::Subscriber);
                h.join_with(addr(10 + i), tok, vec![]);
            }
        }
        let sealed = (0..N).map(|s| (a.addr, Bytes::from(a.seal(&video(VIDEO_SSRC, s, 35))))).collect();
        h.take();
        let (sent, ns) = super::webrtc_scale::forward_timed(&mut h, sealed);
        assert!(sent >= 4 * N as usize);
        ns
    };
    let native = run(false);
    let webrtc = run(true);
    println!("core, per egress packet (1 SRTP publisher, 4 receivers): native receivers {native:.0} ns, WebRTC receivers {webrtc:.0} ns, added {:.0} ns", webrtc - native);
}
