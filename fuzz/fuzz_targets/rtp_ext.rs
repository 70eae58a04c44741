//! RFC 8285 header extensions: the element iterator never panics, every element lies inside the
//! packet's extension block with a well-formed id and length, iteration ends after an error;
//! the RFC 6464 audio-level reader never panics; arbitrary elements that the writer accepts
//! parse back equal (one-byte or two-byte form, whichever the writer chose).
#![no_main]
use corecast_proto::rtp::{parse_audio_level, RtpHeader, RtpPacket};
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = RtpHeader::parse(data) {
        let (start, len) = h.ext_range;
        assert!(start + len <= h.payload_offset, "extension block inside the header");
        let mut it = h.extensions(data);
        while let Some(e) = it.next() {
            match e {
                Ok(el) => {
                    let off = el.data.as_ptr() as usize - data.as_ptr() as usize;
                    assert!(off >= start && off + el.data.len() <= start + len, "element inside the block");
                    assert_ne!(el.id, 0, "id 0 is padding");
                    if h.ext_profile == Some(0xBEDE) {
                        assert!(el.id <= 14 && (1..=16).contains(&el.data.len()));
                    }
                    let _ = parse_audio_level(el.data);
                }
                Err(_) => {
                    assert!(it.next().is_none(), "iteration ends after an error");
                    break;
                }
            }
        }
    }
    // Elements from the input: [id, len, bytes...]*
    let mut exts = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && exts.len() < 16 {
        let (id, n) = (rest[0], (rest[1] as usize).min(rest.len() - 2));
        exts.push((id, rest[2..2 + n].to_vec()));
        rest = &rest[2 + n..];
    }
    let p = RtpPacket {
        marker: true,
        pt: Pt(96),
        seq: SeqNo(1),
        timestamp: MediaTime(2),
        ssrc: Ssrc(3),
        csrcs: vec![],
        extensions: exts,
        payload: rest.to_vec(),
        padding: 0,
    };
    if let Ok(b) = p.to_vec() {
        let back = RtpPacket::parse(&b).expect("what the writer wrote parses");
        assert_eq!(back, p, "extensions round-trip");
    }
});
