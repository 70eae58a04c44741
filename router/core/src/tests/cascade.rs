//! Cascading: one call over three routers (three `Router`s on a simulated
//! network, synthetic time), linked in a star around the home router.

use std::collections::{HashMap, VecDeque};

use super::*;
use crate::cascade;
use crate::PipeMessage;
use corecast_proto::pipe_seal::{LinkKeys, PipeKey};

/// The routers' media addresses: 0 is the call's home.
fn router_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 5000))
}

/// Participant `pid`'s address.
fn client(pid: u64) -> SocketAddr {
    SocketAddr::from(([192, 168, 0, pid as u8], 40_000))
}

/// Which router participant `pid` is on: two on each.
fn home_of(pid: u64) -> usize {
    ((pid - 1) / 2) as usize
}

const PIDS: [u64; 6] = [1, 2, 3, 4, 5, 6];

/// A datagram seen on the wire between two routers.
#[derive(Debug, Clone)]
struct Crossing {
    from: usize,
    to: usize,
    message: PipeMessage,
    /// The datagram as sealed, its key id and counter.
    raw: Bytes,
    key_id: u32,
    counter: u64,
}

struct Net {
    routers: Vec<Router>,
    now: Instant,
    key: SigningKey,
    /// Datagrams in flight: (source, transmit).
    wire: VecDeque<(SocketAddr, Transmit)>,
    /// What each client got.
    got: HashMap<SocketAddr, Vec<Bytes>>,
    crossings: Vec<Crossing>,
    /// The key the calls service hands out for the link of each leaf to the
    /// home (by leaf), and an onlooker's copy of every receiving end's
    /// keys, to read the wire with.
    link_keys: HashMap<usize, PipeKey>,
    onlooker: HashMap<(usize, usize), Vec<LinkKeys>>,
}

/// The link key of `leaf`'s link, generation `g`.
fn key_of(leaf: usize, g: u8) -> PipeKey {
    PipeKey::new([leaf as u8 * 16 + g; 32])
}

impl Net {
    fn new() -> Net {
        let key = token::dev_signing_key();
        let now = Instant::now();
        let cfg = || keyed(RouterConfig::default());
        let routers = (0..3).map(|_| Router::new(cfg(), key.verifying_key(), now, EPOCH_MS)).collect();
        Net {
            routers,
            now,
            key,
            wire: VecDeque::new(),
            got: HashMap::new(),
            crossings: Vec::new(),
            link_keys: HashMap::new(),
            onlooker: HashMap::new(),
        }
    }

    fn input(&mut self, r: usize, input: Input) {
        self.routers[r].handle_input(self.now, input);
        self.drain(r);
    }

    fn drain(&mut self, r: usize) {
        loop {
            match self.routers[r].poll_output() {
                Output::Transmit(t) => self.wire.push_back((router_addr(r), t)),
                Output::Pipe(p) => panic!("single worker piped {p:?}"),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
    }

    /// Delivers everything in flight, in order, until the wire is quiet.
    fn run(&mut self) {
        while let Some((source, t)) = self.wire.pop_front() {
            match (0..3).find(|&i| router_addr(i) == t.destination) {
                Some(to) => {
                    let from = (0..3).find(|&i| router_addr(i) == source).expect("only routers send to routers");
                    let (_, key_id) = cascade::parse_header(&t.contents).expect("a pipe datagram");
                    let mut c = [0u8; 8];
                    c.copy_from_slice(&t.contents[cascade::PIPE_HEADER - 8..cascade::PIPE_HEADER]);
                    let keys = self.onlooker.get_mut(&(from, to)).and_then(|v| v.iter_mut().find(|k| k.id == key_id));
                    let keys = keys.expect("sealed with a key the calls service handed out");
                    let (_, message) = cascade::open(keys, &t.contents).expect("opens with the link's key");
                    let (raw, counter) = (t.contents.clone(), u64::from_be_bytes(c));
                    self.crossings.push(Crossing { from, to, message, raw, key_id, counter });
                    self.input(to, Input::Receive { source, contents: t.contents });
                }
                None => self.got.entry(t.destination).or_default().push(t.contents),
            }
        }
    }

    fn join(&mut self, pid: u64) {
        let claims = Claims {
            call_id: call(1),
            participant_id: ParticipantId(pid),
            role: Role::Publisher,
            expires_at_ms: EPOCH_MS + 600_000,
        };
        let tok = token::sign(&self.key, &claims).to_vec();
        let base = pid as u32 * 100;
        let m = SessionMessage::Join {
            txid: [1; 12],
            token: tok.clone(),
            ssrcs: vec![(Ssrc(base), MediaKind::Audio), (Ssrc(base + 1), MediaKind::Video)],
            quality: Quality::Hd,
            srtp: false,
        };
        let r = home_of(pid);
        self.input(r, Input::Receive { source: client(pid), contents: Bytes::from(signed(&m, &tok)) });
        self.run();
        let ack = self.got.remove(&client(pid)).unwrap_or_default();
        assert!(
            ack.iter().any(|b| matches!(SessionMessage::parse(b), Ok(SessionMessage::JoinAck { .. }))),
            "participant {pid} joined router {r}"
        );
    }

    /// Opens `r`'s end of its link to `peer` with the link's current key.
    fn open(&mut self, r: usize, peer: usize) {
        let uplink = peer == 0;
        let leaf = r.max(peer);
        let key = self.link_keys.entry(leaf).or_insert_with(|| key_of(leaf, 0)).clone();
        // Both ways, as each end opens them.
        for (from, to) in [(peer, r), (r, peer)] {
            let keys = self.onlooker.entry((from, to)).or_default();
            if !keys.iter().any(|k| k.id == key.id()) {
                keys.push(key.keys(to == 0));
            }
        }
        let cmd = Command::OpenPipe { call: call(1), peer: router_addr(peer), uplink, key };
        self.input(r, Input::Command(cmd));
        self.run();
    }

    fn send(&mut self, pid: u64, b: Vec<u8>) {
        self.input(home_of(pid), Input::Receive { source: client(pid), contents: Bytes::from(b) });
        self.run();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        for r in 0..3 {
            self.input(r, Input::Timeout);
        }
        self.run();
    }

    /// RTP each client got, as bytes.
    fn rtp_got(&self, pid: u64) -> Vec<Bytes> {
        let v = self.got.get(&client(pid)).cloned().unwrap_or_default();
        v.into_iter().filter(|b| classify(b) == Kind::Rtp).collect()
    }
}

/// A packet of `ssrc` unique to its sequence number, with an audio level for audio.
fn media(ssrc: u32, seq: u16) -> Vec<u8> {
    let audio = ssrc.is_multiple_of(100);
    let mut p = RtpPacket {
        pt: Pt(if audio { 111 } else { 96 }),
        seq: SeqNo(seq),
        ssrc: Ssrc(ssrc),
        payload: (0..120).map(|i| (i as u32 ^ ssrc ^ u32::from(seq)) as u8).collect(),
        ..Default::default()
    };
    p.timestamp = corecast_proto::MediaTime(u32::from(seq) * 3000);
    p.to_vec().unwrap()
}

/// Every participant joined (one after the links opened), links opened leaf first.
fn three_routers() -> Net {
    let mut n = Net::new();
    for pid in 1..=5 {
        n.join(pid);
    }
    // The leaves open before the home: their first announcements are lost,
    // and the home's `Open` gets them again.
    n.open(1, 0);
    n.open(2, 0);
    n.open(0, 1);
    n.open(0, 2);
    n.join(6);
    n
}

#[test]
fn every_participant_gets_every_other_packet_once_and_each_crosses_each_link_once() {
    let mut n = three_routers();
    n.crossings.clear();
    let mut sent: HashMap<u64, Vec<Bytes>> = HashMap::new();
    for seq in 0..20u16 {
        for pid in PIDS {
            for ssrc in [pid as u32 * 100, pid as u32 * 100 + 1] {
                let b = media(ssrc, seq);
                sent.entry(pid).or_default().push(Bytes::from(b.clone()));
                n.send(pid, b);
            }
        }
        n.advance(Duration::from_millis(20));
    }
    for pid in PIDS {
        let mut got = n.rtp_got(pid);
        let mut want: Vec<Bytes> = PIDS.iter().filter(|&&o| o != pid).flat_map(|o| sent[o].clone()).collect();
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len(), "participant {pid}: every other participant's packets, once each");
        assert!(got == want, "participant {pid}: byte for byte");
    }
    // Each RTP packet crosses each link of the star once, away from its router.
    let mut crossed: HashMap<(Bytes, usize, usize), u32> = HashMap::new();
    for c in &n.crossings {
        if let PipeMessage::Media(b) = &c.message {
            if classify(b) == Kind::Rtp {
                *crossed.entry((b.clone(), c.from, c.to)).or_default() += 1;
            }
        }
    }
    for (pid, packets) in &sent {
        let origin = home_of(*pid);
        let links: Vec<(usize, usize)> = match origin {
            0 => vec![(0, 1), (0, 2)],
            leaf => vec![(leaf, 0), (0, 3 - leaf)],
        };
        for b in packets {
            for &(f, t) in &links {
                assert_eq!(crossed.remove(&(b.clone(), f, t)), Some(1), "participant {pid}'s packet over {f}->{t}");
            }
        }
    }
    assert!(crossed.is_empty(), "nothing else crossed (no loop, nothing back): {:?}", crossed.len());
    // Every datagram sealed under its own nonce: no counter repeats on a link's direction.
    let mut nonces = std::collections::HashSet::new();
    for c in &n.crossings {
        assert!(
            nonces.insert((c.from, c.to, c.key_id, c.counter)),
            "{}->{} reused counter {}",
            c.from,
            c.to,
            c.counter
        );
    }
    assert_eq!(nonces.len(), n.crossings.len());
    assert!(n.crossings.iter().all(|c| c.from == 0 || c.to == 0), "leaves talk only to the home");
    // The routers' own counters agree with the wire, per link and both ways.
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0)] {
        let on_wire = n.crossings.iter().filter(|c| (c.from, c.to) == (a, b)).count() as u64;
        let media_on_wire = n
            .crossings
            .iter()
            .filter(|c| (c.from, c.to) == (a, b) && matches!(c.message, PipeMessage::Media(_)))
            .count() as u64;
        let out = link(&n.routers[a], b);
        let inn = link(&n.routers[b], a);
        assert_eq!(out.media_out, media_on_wire, "{a}->{b} media out");
        assert_eq!(inn.media_in, media_on_wire, "{a}->{b} media in");
        assert!(out.media_out + out.control_out >= on_wire);
    }
    // A leaf's RTP out is exactly what its two publishers sent.
    let rtp_1_to_0 = n
        .crossings
        .iter()
        .filter(|c| (c.from, c.to) == (1, 0) && matches!(&c.message, PipeMessage::Media(b) if classify(b) == Kind::Rtp))
        .count();
    assert_eq!(rtp_1_to_0, sent[&3].len() + sent[&4].len());
    // The only drops: the leaves' first announcements, sent before the home
    // opened its links (an Open and 4 producers from router 1, an Open and 2 from router 2).
    assert_eq!(n.routers[0].stats().dropped_pipe_unadmitted, 8);
    for r in &n.routers {
        assert_eq!(r.stats().dropped() - r.stats().dropped_pipe_unadmitted, 0, "{:?}", r.stats());
    }
}

fn link(r: &Router, peer: usize) -> crate::LinkStats {
    r.link_stats().into_iter().find(|(a, _)| *a == router_addr(peer)).map(|(_, s)| s).unwrap_or_default()
}

#[test]
fn keyframe_requests_cross_to_the_publishers_router() {
    let mut n = three_routers();
    n.send(3, media(301, 1)); // publisher 3 (router 1) sends video
    n.got.clear();
    // Participant 6 on router 2 asks for a keyframe of 3's video.
    let pli =
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(601), media_ssrc: Ssrc(301) })]).unwrap();
    n.send(6, pli);
    let to_3 = n.got.remove(&client(3)).unwrap_or_default();
    let plis: Vec<_> = to_3
        .iter()
        .filter_map(|b| rtcp::parse_compound(b).ok())
        .flatten()
        .filter(|p| matches!(p, RtcpPacket::Pli(p) if p.media_ssrc == Ssrc(301)))
        .collect();
    assert_eq!(plis.len(), 1, "the PLI reached the publisher across two links");
    assert!(n.got.keys().all(|a| *a != client(4) && *a != client(5)), "nobody else got it: {:?}", n.got.keys());
}

#[test]
fn each_router_ranks_every_speaker_of_the_call() {
    let mut n = three_routers();
    // Only participant 5 (router 2) speaks, loud (audio level extension).
    for seq in 0..50u16 {
        let p = RtpPacket {
            pt: Pt(111),
            seq: SeqNo(seq),
            ssrc: Ssrc(500),
            payload: vec![1; 40],
            extensions: vec![(RouterConfig::default().audio_level_ext_id, vec![0x80 | 10])],
            ..Default::default()
        };
        n.send(5, p.to_vec().unwrap());
        n.advance(Duration::from_millis(20));
    }
    n.advance(Duration::from_secs(1));
    for (i, r) in n.routers.iter().enumerate() {
        let loud = r.calls[&call(1)].producer(Ssrc(500)).map(|p| p.loudness);
        assert!(loud.is_some_and(|l| l > 0), "router {i} hears participant 5: {loud:?}");
    }
}

#[test]
fn unadmitted_pipe_datagrams_are_dropped_and_counted() {
    let mut n = three_routers();
    let before = n.routers[0].stats().dropped_pipe_unadmitted;
    let stranger = PipeKey::new([99; 32]).keys(false);
    let forged = cascade::seal(&stranger, call(1), &PipeMessage::Media(Bytes::from(media(901, 1)))).unwrap();
    // From a client's address, and from router 2 to router 1 (no link between leaves).
    n.input(0, Input::Receive { source: client(1), contents: forged.clone() });
    n.input(1, Input::Receive { source: router_addr(2), contents: forged });
    n.run();
    assert_eq!(n.routers[0].stats().dropped_pipe_unadmitted, before + 1);
    assert_eq!(n.routers[1].stats().dropped_pipe_unadmitted, 1);
    assert!(n.rtp_got(2).is_empty() && n.rtp_got(3).is_empty());
    // Garbage after the magic byte is malformed.
    n.input(0, Input::Receive { source: router_addr(1), contents: Bytes::from_static(&[0xCC, 0x21, 1]) });
    assert_eq!(n.routers[0].stats().dropped_malformed, 1);
}

#[test]
fn a_closed_link_takes_its_participants_away_and_an_empty_leaf_closes() {
    let mut n = three_routers();
    // Participants 5 and 6 leave router 2: its uplink closes by itself.
    for pid in [5, 6] {
        let m = SessionMessage::Leave { txid: [2; 12] };
        let claims = Claims {
            call_id: call(1),
            participant_id: ParticipantId(pid),
            role: Role::Publisher,
            expires_at_ms: EPOCH_MS + 600_000,
        };
        let tok = token::sign(&n.key, &claims).to_vec();
        n.send(pid, signed(&m, &tok));
    }
    n.run();
    assert_eq!(n.routers[2].cascade_count(), 1, "kept a moment: calls may just have placed a join here");
    n.advance(cascade::UPLINK_HOLD);
    assert_eq!(n.routers[2].call_count(), 0, "the leaf's share closed after its last participant");
    assert_eq!(n.routers[0].cascade_count(), 1, "the home keeps its link to router 1");
    assert!(n.routers[0].calls[&call(1)].producer(Ssrc(500)).is_none());
    assert!(n.routers[1].calls[&call(1)].producer(Ssrc(500)).is_none(), "router 1 was told too");
    // Media goes on between the two others.
    n.got.clear();
    n.send(1, media(101, 7));
    assert_eq!(n.rtp_got(3).len(), 1);
    assert!(n.rtp_got(5).is_empty());
}

#[test]
fn producers_are_announced_again_on_every_link() {
    let mut n = three_routers();
    n.crossings.clear();
    for _ in 0..cascade::REANNOUNCE_SWEEPS {
        n.advance(RouterConfig::default().sweep_interval);
    }
    // The home knows 12 producers: 4 come from each leaf, 8 go to it.
    let announced = |f: usize, t: usize| {
        n.crossings
            .iter()
            .filter(|c| (c.from, c.to) == (f, t) && matches!(c.message, PipeMessage::Producer { .. }))
            .count()
    };
    assert_eq!(announced(0, 1), 8);
    assert_eq!(announced(0, 2), 8);
    // A leaf announces its own 4 producers (not those the home told it of).
    assert_eq!(announced(1, 0), 4);
    assert_eq!(announced(2, 0), 4);
}

#[test]
fn a_leaf_link_nobody_joined_closes_after_its_grace_and_the_home_is_told() {
    let mut n = Net::new();
    n.open(1, 0);
    n.open(0, 1);
    n.open(2, 0); // the home never linked back: router 2's datagrams are refused there
    assert_eq!((n.routers[1].cascade_count(), n.routers[0].cascade_count()), (1, 1));
    n.advance(RouterConfig::default().uplink_grace - Duration::from_millis(600));
    assert_eq!(n.routers[1].cascade_count(), 1);
    for _ in 0..4 {
        n.advance(Duration::from_millis(500));
    }
    assert_eq!(n.routers[1].call_count(), 0, "the idle leaf closed its share");
    assert_eq!(n.routers[2].call_count(), 0);
    assert_eq!(n.routers[0].cascade_count(), 0, "the home was told");
    assert_eq!(n.routers[0].call_count(), 0, "and its empty share closed");
}

#[test]
fn a_leaf_the_home_cuts_off_ends_the_call_there() {
    let mut n = three_routers();
    n.got.clear();
    n.input(0, Input::Command(Command::ClosePipe { call: call(1), peer: router_addr(1) }));
    n.run();
    assert_eq!(n.routers[0].cascade_count(), 1);
    assert_eq!(n.routers[1].call_count(), 0, "the call ended on router 1");
    for pid in [3, 4] {
        let got = n.got.get(&client(pid)).cloned().unwrap_or_default();
        assert!(got.iter().any(|b| matches!(SessionMessage::parse(b), Ok(SessionMessage::CallEnded { .. }))));
    }
    assert!(n.routers[2].calls[&call(1)].producer(Ssrc(300)).is_none(), "router 2 forgot router 1's producers");
    assert!(n.routers[2].calls[&call(1)].producer(Ssrc(100)).is_some());
}

#[test]
fn a_call_ended_on_its_home_ends_on_every_leaf() {
    let mut n = three_routers();
    n.got.clear();
    n.input(0, Input::Command(Command::EndCall(call(1))));
    n.run();
    for r in 0..3 {
        assert_eq!(n.routers[r].call_count(), 0, "router {r}");
    }
    for pid in PIDS {
        let got = n.got.get(&client(pid)).cloned().unwrap_or_default();
        let ended = got.iter().filter(|b| matches!(SessionMessage::parse(b), Ok(SessionMessage::CallEnded { .. })));
        assert_eq!(ended.count(), 1, "participant {pid} was told");
    }
    // Nothing crossed after the end: only the open race's drops on the home.
    let drops: Vec<u64> = n.routers.iter().map(|r| r.stats().dropped()).collect();
    assert_eq!(drops, vec![8, 0, 0]);
}

#[test]
fn snapshots_name_the_links_and_the_uplink() {
    let n = three_routers();
    assert_eq!(n.routers[1].snapshot()[0].links, vec![(router_addr(0), true)]);
    let home = &n.routers[0].snapshot()[0];
    assert_eq!(home.links.len(), 2);
    assert!(home.links.iter().all(|(_, uplink)| !uplink));
}

#[test]
fn a_participant_removed_on_the_home_is_removed_on_its_leaf() {
    let mut n = three_routers();
    n.got.clear();
    n.input(0, Input::Command(Command::RemoveParticipant(call(1), ParticipantId(5))));
    n.run();
    let got = n.got.get(&client(5)).cloned().unwrap_or_default();
    assert!(got.iter().any(|b| matches!(SessionMessage::parse(b), Ok(SessionMessage::CallEnded { .. }))));
    assert!(n.routers[2].calls[&call(1)].index_of(ParticipantId(5)).is_none());
    assert!(n.routers[1].calls[&call(1)].producer(Ssrc(500)).is_none(), "the others forgot its streams");
    assert!(n.routers[2].calls[&call(1)].index_of(ParticipantId(6)).is_some(), "its neighbour stays");
    // A leaf cannot remove the home's participants (sealed with router 1's
    // own key, past every counter it used).
    let leaf = key_of(1, 0).keys(false);
    for _ in 0..=link(&n.routers[1], 0).control_out + link(&n.routers[1], 0).media_out {
        cascade::seal(&leaf, call(1), &PipeMessage::Open);
    }
    let forged = cascade::seal(&leaf, call(1), &PipeMessage::Remove(ParticipantId(1))).unwrap();
    n.input(0, Input::Receive { source: router_addr(1), contents: forged });
    n.run();
    assert!(n.routers[0].calls[&call(1)].index_of(ParticipantId(1)).is_some());
}

/// The first datagram on the wire from `from` to `to` carrying `ssrc`'s RTP.
fn sealed_rtp(n: &Net, from: usize, to: usize, ssrc: u32) -> Bytes {
    let c = n.crossings.iter().find(|c| {
        (c.from, c.to) == (from, to)
            && matches!(&c.message, PipeMessage::Media(b) if RtpHeader::parse(b).is_ok_and(|h| h.ssrc.0 == ssrc))
    });
    c.expect("it crossed").raw.clone()
}

#[test]
fn forged_tampered_replayed_and_truncated_pipe_datagrams_are_dropped_and_counted() {
    let mut n = three_routers();
    // Participant 3's packet leaves router 1 for the home, and is held back.
    n.input(1, Input::Receive { source: client(3), contents: Bytes::from(media(300, 1)) });
    let held = n.wire.iter().position(|(_, t)| t.destination == router_addr(0)).expect("sent to the home");
    let genuine = n.wire.remove(held).expect("held").1.contents;
    n.run();
    n.got.clear();
    let before = *n.routers[0].stats();
    let from_leaf = |n: &mut Net, b: Vec<u8>| {
        n.input(0, Input::Receive { source: router_addr(1), contents: Bytes::from(b) });
        n.run();
    };
    // Tampered: a byte of the key id, the counter, the body, the tag.
    for i in [19, 27, cascade::PIPE_HEADER + 5, genuine.len() - 1] {
        let mut t = genuine.to_vec();
        t[i] ^= 0x04;
        from_leaf(&mut n, t);
    }
    // Another key, under the link's key id (and a counter never used).
    let other = key_of(1, 9).keys(false);
    let mut forged = bytes::BytesMut::new();
    let m = PipeMessage::Media(Bytes::from(media(300, 2)));
    assert!(cascade::encode_into(&mut forged, call(1), key_of(1, 0).id(), &m));
    for _ in 0..1000 {
        cascade::seal(&other, call(1), &PipeMessage::Open);
    }
    other.sealer.seal(&mut forged, 0, cascade::PIPE_HEADER).unwrap();
    from_leaf(&mut n, forged.to_vec());
    // Truncated: one byte short (fails authentication); shorter than a header and a tag (malformed).
    from_leaf(&mut n, genuine[..genuine.len() - 1].to_vec());
    from_leaf(&mut n, genuine[..40].to_vec());
    let after = *n.routers[0].stats();
    assert_eq!(after.dropped_pipe_auth_failed - before.dropped_pipe_auth_failed, 6);
    assert_eq!(after.dropped_malformed - before.dropped_malformed, 1);
    assert_eq!(after.cascade_media_in, before.cascade_media_in, "none taken");
    assert!(n.got.is_empty(), "nothing forwarded: {:?}", n.got.keys());
    // Nothing was kept: the genuine datagram goes through, once.
    from_leaf(&mut n, genuine.to_vec());
    assert_eq!(n.rtp_got(1), vec![Bytes::from(media(300, 1))]);
    n.got.clear();
    from_leaf(&mut n, genuine.to_vec());
    assert!(n.got.is_empty(), "a replay is not forwarded");
    let last = *n.routers[0].stats();
    assert_eq!(last.dropped_pipe_replayed - before.dropped_pipe_replayed, 1);
    assert_eq!(last.dropped(), after.dropped() + 1);
}

#[test]
fn a_reopened_link_is_rekeyed_without_losing_a_packet() {
    let mut n = three_routers();
    let drops: Vec<u64> = n.routers.iter().map(|r| r.stats().dropped()).collect();
    // The same key again (another join placed on router 1 by an older calls): nothing changes.
    n.crossings.clear();
    n.open(0, 1);
    n.open(1, 0);
    assert!(n.crossings.is_empty(), "{:?}", n.crossings);
    // A new key: the calls service opens the home's end first, then the leaf's.
    let (old, new) = (key_of(1, 0).id(), key_of(1, 1).id());
    n.link_keys.insert(1, key_of(1, 1));
    n.open(0, 1);
    n.send(1, media(100, 1));
    assert_eq!(sealed_rtp(&n, 0, 1, 100)[18..22], old.to_be_bytes(), "the home waits for the leaf to have it");
    n.crossings.clear();
    n.open(1, 0);
    // The leaf's `Open` under the new key told the home, which answered under it.
    assert!(n.crossings.iter().any(|c| (c.from, c.to, c.key_id) == (1, 0, new)));
    assert!(n.crossings.iter().any(|c| (c.from, c.to, c.key_id) == (0, 1, new)));
    n.got.clear();
    n.crossings.clear();
    for pid in [1, 3] {
        n.send(pid, media(pid as u32 * 100, 2));
    }
    assert!(n.crossings.iter().filter(|c| c.from + c.to == 1).all(|c| c.key_id == new));
    assert_eq!(n.rtp_got(3), vec![Bytes::from(media(100, 2))]);
    assert_eq!(n.rtp_got(1), vec![Bytes::from(media(300, 2))]);
    assert_eq!(n.rtp_got(5).len(), 2, "the other link was left alone");
    let now: Vec<u64> = n.routers.iter().map(|r| r.stats().dropped()).collect();
    assert_eq!(now, drops, "no datagram lost to the re-key");
}
