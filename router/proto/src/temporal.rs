//! The temporal layer of a video RTP payload (temporal scalability, as a
//! browser sends with `scalabilityMode: "L1T2"` or `"L1T3"`): what an SFU
//! reads to forward a lower frame rate by dropping the upper layers.
//!
//! Two payload formats carry it:
//! - VP8 (RFC 7741 §4.2): the payload descriptor's `TID` field, present when
//!   its `T` bit is set;
//! - AV1 (AOM "RTP Payload Format for AV1" §4.4 and §4.5): the
//!   `temporal_id` of the OBU extension header of the OBUs in the packet.
//!
//! Both functions read only a few header bytes, allocate nothing and never
//! panic: any byte string gives an answer (`None` when the layer cannot be
//! told from this packet alone).

/// The highest frame-rate cap a receiver may ask for (WHEP `max_fps`,
/// the router's `max_fps`): caps run from 1 to this.
pub const MAX_FPS: u8 = 60;

/// Codecs whose RTP payload carries a temporal layer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayeredCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// AV1 (AOM RTP payload format).
    Av1,
}

/// The temporal layer id of an RTP `payload` of `codec` (see [`vp8_temporal_id`]
/// and [`av1_temporal_id`]).
#[inline]
pub fn temporal_id(codec: LayeredCodec, payload: &[u8]) -> Option<u8> {
    match codec {
        LayeredCodec::Vp8 => vp8_temporal_id(payload),
        LayeredCodec::Av1 => av1_temporal_id(payload),
    }
}

/// The temporal layer id (`TID`, 0..=3) of a VP8 RTP payload.
///
/// ```text
/// //= https://www.rfc-editor.org/rfc/rfc7741#section-4.2
///        0 1 2 3 4 5 6 7
///       +-+-+-+-+-+-+-+-+
///       |X|R|N|S|R| PID | (REQUIRED)
///       +-+-+-+-+-+-+-+-+
///  X:   |I|L|T|K| RSV   | (OPTIONAL)
///       +-+-+-+-+-+-+-+-+
///  I:   |M| PictureID   | (OPTIONAL, 7 bits, or 15 with M)
///       +-+-+-+-+-+-+-+-+
///  L:   |   TL0PICIDX   | (OPTIONAL)
///       +-+-+-+-+-+-+-+-+
///  T/K: |TID|Y| KEYIDX  | (OPTIONAL)
///       +-+-+-+-+-+-+-+-+
/// ```
///
/// `Some(0)` for a descriptor without the `T` bit (no `X` byte, or `X`
/// without `T`): a stream without temporal layers, all of it the base layer.
/// `None` when the descriptor is truncated.
pub fn vp8_temporal_id(payload: &[u8]) -> Option<u8> {
    let &b0 = payload.first()?;
    if b0 & 0x80 == 0 {
        return Some(0);
    }
    let &x = payload.get(1)?;
    let (i, l, t) = (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0);
    let mut at = 2;
    if i {
        let &pid = payload.get(at)?;
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    if l {
        at += 1;
    }
    if !t {
        // A byte for K alone may follow; without T its TID means nothing.
        return Some(0);
    }
    let &tk = payload.get(at)?;
    Some(tk >> 6)
}

/// The temporal layer id (`temporal_id`, 0..=7) of an AV1 RTP payload: the
/// `temporal_id` of the first OBU element in the packet that has an
/// extension header (a packet holds OBUs of one temporal unit, so of one
/// layer); 0 when none of its first [`MAX_ELEMENTS`] elements has one
/// (libaom writes none for an OBU of layer T0/S0, and a sequence header or
/// metadata belongs to no layer: with a frame OBU after it in the same
/// packet, the frame's extension decides).
///
/// ```text
/// //= AOM RTP Payload Format for AV1, §4.4 (aggregation header)
///  0 1 2 3 4 5 6 7
/// +-+-+-+-+-+-+-+-+
/// |Z|Y| W |N|-|-|-|
/// +-+-+-+-+-+-+-+-+
/// //= AV1 bitstream §5.3.2, §5.3.3 (OBU header, extension)
/// |F| type  |X|S|R|   then, with X:   | tid |sid|  R  |
/// ```
///
/// `None` when the packet starts with the continuation of an OBU
/// fragmented over packets (`Z` = 1: its header is in an earlier packet),
/// or when the first element's OBU header is missing or malformed
/// (forbidden bit, a truncated extension, a bad LEB128 length).
pub fn av1_temporal_id(payload: &[u8]) -> Option<u8> {
    let &agg = payload.first()?;
    if agg & 0x80 != 0 {
        return None;
    }
    let w = usize::from((agg >> 4) & 0x03);
    let mut rest = &payload[1..];
    let mut tid: Option<u8> = None;
    let mut element = 0usize;
    while !rest.is_empty() && element < MAX_ELEMENTS {
        element += 1;
        // W = 0: every element has a length; W = n: all but the n-th (last).
        let obu = if w != 0 && element == w {
            std::mem::take(&mut rest)
        } else {
            let (len, n) = leb128(rest)?;
            let body = &rest[n..];
            let len = usize::try_from(len).ok().filter(|&l| l <= body.len())?;
            rest = &body[len..];
            &body[..len]
        };
        match obu_temporal_id(obu) {
            Some(Extension::Layer(t)) => return Some(t),
            Some(Extension::None) => tid = Some(0),
            None if tid.is_none() => return None,
            None => break,
        }
    }
    tid
}

/// OBU elements of one packet looked at, at most: real packets hold a few
/// (a sequence header, a frame), and this bounds the work on any input.
pub const MAX_ELEMENTS: usize = 16;

/// What one OBU element's header says of its layer.
enum Extension {
    /// No extension header (or an empty element).
    None,
    /// The extension header's `temporal_id`.
    Layer(u8),
}

/// The extension of one OBU element (`None`: a malformed header).
fn obu_temporal_id(obu: &[u8]) -> Option<Extension> {
    let Some(&h) = obu.first() else { return Some(Extension::None) };
    if h & 0x80 != 0 {
        return None;
    }
    if h & 0x04 == 0 {
        return Some(Extension::None);
    }
    let &ext = obu.get(1)?;
    Some(Extension::Layer(ext >> 5))
}

/// An unsigned LEB128 value (at most 8 bytes, AV1 spec §4.10.5) and the
/// number of bytes it took.
fn leb128(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(8).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A VP8 descriptor with the given optional fields, then two payload bytes.
    fn vp8(pid: Option<u16>, tl0: Option<u8>, tid: Option<u8>, key: Option<u8>) -> Vec<u8> {
        let x = pid.is_some() || tl0.is_some() || tid.is_some() || key.is_some();
        let mut b = vec![if x { 0x90 } else { 0x10 }]; // X, S=1, PID 0
        if !x {
            b.extend_from_slice(&[0x9d, 0x01]);
            return b;
        }
        let mut xb = 0u8;
        xb |= if pid.is_some() { 0x80 } else { 0 };
        xb |= if tl0.is_some() { 0x40 } else { 0 };
        xb |= if tid.is_some() { 0x20 } else { 0 };
        xb |= if key.is_some() { 0x10 } else { 0 };
        b.push(xb);
        match pid {
            Some(p) if p > 0x7f => b.extend_from_slice(&(0x8000 | p).to_be_bytes()),
            Some(p) => b.push(p as u8),
            None => {}
        }
        if let Some(t) = tl0 {
            b.push(t);
        }
        if tid.is_some() || key.is_some() {
            b.push((tid.unwrap_or(0) << 6) | 0x20 | key.unwrap_or(0));
        }
        b.extend_from_slice(&[0x9d, 0x01]);
        b
    }

    #[test]
    fn vp8_descriptors() {
        // RFC 7741 §4.2 field combinations, built by hand.
        assert_eq!(vp8_temporal_id(&[0x10, 0x9d, 0x01]), Some(0), "no X: one layer");
        assert_eq!(vp8_temporal_id(&[0x90, 0xE0, 0x12, 0x05, 0x80]), Some(2), "I (7-bit), L, T");
        assert_eq!(vp8_temporal_id(&[0x90, 0xE0, 0x81, 0x23, 0x05, 0x40]), Some(1), "I (15-bit), L, T");
        assert_eq!(vp8_temporal_id(&[0x90, 0x20, 0xC0]), Some(3), "T only");
        assert_eq!(vp8_temporal_id(&[0x90, 0x10, 0xC5]), Some(0), "K without T: no layer");
        assert_eq!(vp8_temporal_id(&[0x90, 0x80, 0x12]), Some(0), "I only");
        for (pid, tl0, tid, key) in [
            (Some(5), Some(9), Some(0), None),
            (Some(300), Some(9), Some(2), Some(7)),
            (Some(300), None, Some(1), None),
            (None, Some(1), Some(2), Some(3)),
            (None, None, None, Some(3)),
            (Some(1), None, None, None),
            (None, None, None, None),
        ] {
            let want = tid.unwrap_or(0);
            assert_eq!(vp8_temporal_id(&vp8(pid, tl0, tid, key)), Some(want), "{pid:?} {tl0:?} {tid:?} {key:?}");
        }
    }

    #[test]
    fn vp8_truncated_is_unknown() {
        assert_eq!(vp8_temporal_id(&[]), None);
        assert_eq!(vp8_temporal_id(&[0x90]), None, "X without its byte");
        assert_eq!(vp8_temporal_id(&[0x90, 0x80]), None, "I without the picture id");
        assert_eq!(vp8_temporal_id(&[0x90, 0xA0, 0x81, 0x23]), None, "T byte missing");
        assert_eq!(vp8_temporal_id(&[0x90, 0xE0, 0x05]), None, "TL0PICIDX and T byte missing");
    }

    /// An OBU header byte: type, extension flag, has_size 0.
    fn obu(ty: u8, tid: Option<u8>) -> Vec<u8> {
        match tid {
            Some(t) => vec![(ty << 3) | 0x04, t << 5, 0xAA, 0xBB],
            None => vec![ty << 3, 0xAA, 0xBB],
        }
    }

    #[test]
    fn av1_packets() {
        // One element without a length (W = 1): a frame OBU of T2, then T1, then T0 without extension.
        let mut p = vec![0x10];
        p.extend(obu(6, Some(2)));
        assert_eq!(av1_temporal_id(&p), Some(2));
        let mut p = vec![0x10];
        p.extend(obu(6, Some(1)));
        assert_eq!(av1_temporal_id(&p), Some(1));
        let mut p = vec![0x18]; // W = 1, N = 1 (a keyframe)
        p.extend(obu(6, None));
        assert_eq!(av1_temporal_id(&p), Some(0));
        // A fragment's continuation (Z = 1): the header was in an earlier packet.
        assert_eq!(av1_temporal_id(&[0xD0, 0x12, 0x34]), None);
        // Y = 1 (continues in the next packet): the header is still here.
        let mut p = vec![0x50];
        p.extend(obu(6, Some(2)));
        assert_eq!(av1_temporal_id(&p), Some(2));
    }

    #[test]
    fn av1_sequence_header_then_frame_takes_the_frames_layer() {
        // W = 2: a sequence header (no extension) with a length, then a frame OBU of T1 without one.
        let seq = obu(1, None);
        let mut p = vec![0x20, seq.len() as u8];
        p.extend(&seq);
        p.extend(obu(6, Some(1)));
        assert_eq!(av1_temporal_id(&p), Some(1));
        // W = 0: every element has a length.
        let frame = obu(6, Some(2));
        let mut p = vec![0x00, seq.len() as u8];
        p.extend(&seq);
        p.push(frame.len() as u8);
        p.extend(&frame);
        assert_eq!(av1_temporal_id(&p), Some(2));
        // A sequence header then a T0 frame: 0.
        let mut p = vec![0x28, seq.len() as u8]; // W = 2, N = 1
        p.extend(&seq);
        p.extend(obu(6, None));
        assert_eq!(av1_temporal_id(&p), Some(0));
    }

    #[test]
    fn av1_lengths_in_leb128() {
        // A 200-byte element: its length takes two LEB128 bytes (0xC8 0x01).
        let mut frame = obu(6, Some(1));
        frame.resize(200, 0x55);
        let mut p = vec![0x00, 0xC8, 0x01];
        p.extend(&frame);
        assert_eq!(av1_temporal_id(&p), Some(1));
        assert_eq!(leb128(&[0xC8, 0x01]), Some((200, 2)));
        assert_eq!(leb128(&[0x80; 9]), None, "longer than 8 bytes");
    }

    #[test]
    fn av1_malformed_is_unknown() {
        assert_eq!(av1_temporal_id(&[]), None);
        assert_eq!(av1_temporal_id(&[0x10, 0x80 | (6 << 3)]), None, "forbidden bit");
        assert_eq!(av1_temporal_id(&[0x10, (6 << 3) | 0x04]), None, "extension missing");
        assert_eq!(av1_temporal_id(&[0x00, 0x05, 0x30]), None, "length past the end");
        assert_eq!(av1_temporal_id(&[0x00, 0x80]), None, "LEB128 cut short");
        assert_eq!(av1_temporal_id(&[0x10]), None, "aggregation header alone");
        // A good first element and a bad second one: the first's layer.
        let mut p = vec![0x00, 0x04];
        p.extend(obu(6, Some(1)));
        p.extend(&[0x03, 0x80 | 0x30, 0, 0]);
        assert_eq!(av1_temporal_id(&p), Some(1));
    }

    #[test]
    fn many_empty_elements() {
        // W = 0 and a thousand zero-length elements: counted without overflow.
        assert_eq!(av1_temporal_id(&[0u8; 1000]), Some(0));
        // Only the first MAX_ELEMENTS are looked at.
        let frame = [0x02, 0x34, 0x40];
        let mut p = vec![0u8; MAX_ELEMENTS];
        p.extend(frame);
        assert_eq!(av1_temporal_id(&p), Some(2));
        let mut p = vec![0u8; MAX_ELEMENTS + 1];
        p.extend(frame);
        assert_eq!(av1_temporal_id(&p), Some(0));
    }

    #[test]
    fn dispatch_by_codec() {
        assert_eq!(temporal_id(LayeredCodec::Vp8, &[0x90, 0x20, 0x80]), Some(2));
        assert_eq!(temporal_id(LayeredCodec::Av1, &[0x10, 0x34, 0x40]), Some(2));
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1500)) {
            if let Some(t) = vp8_temporal_id(&b) {
                prop_assert!(t <= 3);
            }
            if let Some(t) = av1_temporal_id(&b) {
                prop_assert!(t <= 7);
            }
        }

        #[test]
        fn vp8_tid_round_trips(pid in proptest::option::of(0u16..0x8000), tl0 in proptest::option::of(any::<u8>()),
                               tid in proptest::option::of(0u8..4), key in proptest::option::of(0u8..32)) {
            prop_assert_eq!(vp8_temporal_id(&vp8(pid, tl0, tid, key)), Some(tid.unwrap_or(0)));
        }

        #[test]
        fn av1_single_obu_round_trips(ty in 1u8..16, tid in proptest::option::of(0u8..8), body in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut o = obu(ty, tid);
            o.extend(&body);
            let mut p = vec![0x10];
            p.extend(&o);
            prop_assert_eq!(av1_temporal_id(&p), Some(tid.unwrap_or(0)));
            // The same with a length field (W = 0).
            let mut q = vec![0x00, o.len() as u8];
            q.extend(&o);
            prop_assert_eq!(av1_temporal_id(&q), Some(tid.unwrap_or(0)));
        }
    }
}
