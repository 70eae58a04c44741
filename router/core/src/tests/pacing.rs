//! Pacing to a browser, end to end: once the receiver's estimate has
//! settled, a keyframe the publisher sends as one burst reaches the
//! browser at 2.5 × the estimate (`webrtc::pacing`), numbered in the order
//! it leaves, with nothing lost. Synthetic time, 1 ms steps.

use std::time::Duration;

use super::bwe::{twcc_seq, Link};
use super::webrtc::video;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_keyframe_burst_to_a_paced_browser_leaves_at_its_pace() {
    let mut l = Link::new();
    // 0.85 Mbit/s over a steady 20 ms path: the estimate settles, the leg is paced.
    l.run(4000, |_| ms(20));
    let e = l.estimate().expect("settled");
    let pace_bytes_per_ms = (e as f64 * 2.5 / 8_000.0) as usize;
    let paced_before = l.h.r.stats().paced;
    l.h.take();

    // Forty 1 000-byte packets at one instant.
    for _ in 0..40 {
        l.h.input(addr(1), video(0x1111, l.next_seq, 45));
        l.next_seq = l.next_seq.wrapping_add(1);
    }
    // (offset in ms, size as sent, transport-wide number), for 400 ms.
    let mut got: Vec<(u64, usize, u16)> = Vec::new();
    let to_b = l.b.addr;
    for step in 0..400 {
        for t in l.h.take().into_iter().filter(|t| t.destination == to_b && classify(&t.contents) == Kind::Rtp) {
            let q = l.b.open_rtp(&t.contents);
            got.push((step, q.payload.len(), twcc_seq(&q)));
        }
        l.h.advance(ms(1));
    }
    assert_eq!(got.len(), 40, "every packet, once");
    let first = got[0].2;
    assert_eq!(l.next_twcc, Some(first), "numbered after what went before");
    for (i, (_, _, seq)) in got.iter().enumerate() {
        assert_eq!(*seq, first.wrapping_add(i as u16), "numbered in the order they left");
    }
    // At once: at most the pacer's burst (40 ms of pace) and one packet.
    let at_once: usize = got.iter().filter(|g| g.0 == 0).map(|g| g.1).sum();
    assert!(at_once <= pace_bytes_per_ms * 40 + 1000, "{at_once} bytes at once, pace {pace_bytes_per_ms}/ms");
    // Then no more than the pace allows in any 10 ms (plus a packet of debt and a tick's rounding).
    for w in 1..390 {
        let bytes: usize = got.iter().filter(|g| g.0 >= w && g.0 < w + 10).map(|g| g.1).sum();
        assert!(
            bytes <= pace_bytes_per_ms * 12 + 1000,
            "{bytes} bytes in [{w}, {w}+10) ms, pace {pace_bytes_per_ms}/ms"
        );
    }
    // And the burst was spread over what the pace takes for it, not longer.
    let last = got.last().unwrap().0 as usize;
    let spread = (40_000 - at_once.min(40_000)) / pace_bytes_per_ms;
    assert!(last + 3 >= spread.saturating_sub(5) && last <= 40_000 / pace_bytes_per_ms + 5, "{last} ms, {spread}");
    let stats = l.h.r.stats();
    assert!(stats.paced - paced_before >= 20, "{}", stats.paced - paced_before);
    assert_eq!(stats.pacer_overdue, 0);
}
