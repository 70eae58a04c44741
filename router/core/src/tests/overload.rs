//! Overload protection on synthetic time: a worker whose load figure nears
//! its budget moves its heaviest HD receivers to SD, one a second, before
//! anything is dropped; good loss reports do not bring them back, the load
//! falling does, one every five seconds.

use super::*;

/// Publishers 1, 2, 3 (video 101, 201, 301) at addr(1..=3) and a subscriber
/// 4 at addr(4), with a second of video from each publisher (so the router
/// knows the streams' rates).
fn call_with_video(h: &mut H) {
    for pid in 1..=3u64 {
        h.join(addr(pid as u16), call(1), pid, pid as u32 * 100 + 1);
    }
    let token = h.token(call(1), 4, Role::Subscriber);
    h.session(addr(4), SessionMessage::Join { txid: [1; 12], token, ssrcs: vec![], quality: Quality::Hd, srtp: false });
    send_video(h, 0, 50);
}

fn send_video(h: &mut H, from: u16, frames: u16) {
    for seq in from..from + frames {
        for pid in 1..=3u32 {
            h.input(addr(pid as u16), rtp(pid * 100 + 1, seq));
        }
        h.advance(Duration::from_millis(20));
    }
    h.take();
}

/// A load figure (and keepalives from everyone, whom the seconds of the
/// test would otherwise time out).
fn load(h: &mut H, busy_permille: u16) {
    for pid in 1..=4u16 {
        h.session(addr(pid), SessionMessage::Keepalive { txid: [0; 12] });
    }
    h.r.handle_input(h.now, Input::Load { busy_permille });
    h.drain();
}

/// The quality changes so far, as (participant, SD?).
fn changes(h: &H) -> Vec<(u64, bool)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::QualityChanged { participant, quality, .. } => Some((participant.0, *quality == Quality::Sd)),
            _ => None,
        })
        .collect()
}

#[test]
fn overload_moves_the_heaviest_receivers_to_sd_one_a_second_and_back_when_it_falls() {
    let mut h = H::new();
    call_with_video(&mut h);
    load(&mut h, 899);
    assert!(changes(&h).is_empty(), "below the budget: nothing moves");
    // Over the budget: the subscriber gets three videos (the publishers two each): it goes first.
    load(&mut h, 950);
    assert_eq!(changes(&h), vec![(4, true)]);
    load(&mut h, 980);
    assert_eq!(changes(&h).len(), 1, "one step a second");
    h.advance(Duration::from_secs(1));
    load(&mut h, 950);
    assert_eq!(changes(&h), vec![(4, true), (1, true)], "then the heaviest left (ties: lowest id)");
    assert_eq!(h.r.stats().overload_shed, 2);
    // Good reports from a receiver on SD for the load do not bring it back.
    for _ in 0..15 {
        h.input(addr(4), rr(0x44, 101, 0));
        h.advance(Duration::from_secs(1));
        load(&mut h, 800);
    }
    assert_eq!(changes(&h).len(), 2, "between the thresholds, with good reports: it stays");
    // Calm for the recovery time (10 s from the first calm figure): one back
    // to HD every 5 s, the lowest id first.
    for _ in 0..11 {
        h.advance(Duration::from_secs(1));
        load(&mut h, 500);
    }
    assert_eq!(changes(&h)[2..], [(1, false)]);
    for _ in 0..5 {
        h.advance(Duration::from_secs(1));
        load(&mut h, 500);
    }
    assert_eq!(changes(&h)[2..], [(1, false), (4, false)]);
    assert_eq!(h.r.stats().overload_restored, 2);
    assert_eq!(h.r.stats().dropped(), 0, "nothing dropped on the way");
}

#[test]
fn a_receiver_that_chose_sd_or_hd_itself_is_left_to_its_choice() {
    let mut h = H::new();
    call_with_video(&mut h);
    // The subscriber asks for SD itself: pinned, never moved back by the load.
    h.session(addr(4), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd });
    load(&mut h, 950);
    assert_eq!(changes(&h), vec![(4, true), (1, true)], "the load moved publisher 1, not the pinned subscriber");
    // An explicit HD request ends the load's hold on 1.
    h.session(addr(1), SessionMessage::Quality { txid: [0; 12], quality: Quality::Hd });
    for _ in 0..20 {
        h.advance(Duration::from_secs(1));
        load(&mut h, 100);
    }
    assert_eq!(changes(&h), vec![(4, true), (1, true), (1, false)], "nothing left to restore: 4 stays on SD");
    assert_eq!(h.r.stats().overload_restored, 0);
}
