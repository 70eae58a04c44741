//! Where a keyframe starts in a video RTP stream: what an SFU reads to
//! switch a receiver from one simulcast layer to another (a layer can be
//! joined only at a keyframe of its own).
//!
//! Each function reads a few header bytes of the RTP payload, allocates
//! nothing and never panics: any byte string gives an answer (`false` when
//! the packet is not, or cannot be told to be, the first of a keyframe).

/// Video codecs whose keyframes the router finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// AV1 (AOM RTP payload format).
    Av1,
    /// H.264 (RFC 6184).
    H264,
}

/// Whether an RTP `payload` of `codec` is the first packet of a keyframe.
#[inline]
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_starts_keyframe(payload),
        VideoCodec::Av1 => av1_starts_keyframe(payload),
        VideoCodec::H264 => h264_starts_keyframe(payload),
    }
}

/// VP8: the packet starts partition 0 of a frame (`S` set, `PID` 0) and
/// the VP8 payload header's `P` bit (inverse key frame flag, RFC 7741 §4.3)
/// is 0.
///
/// ```text
/// //= https://www.rfc-editor.org/rfc/rfc7741#section-4.2
///       |X|R|N|S|R| PID |   then, with X: |I|L|T|K| RSV |,
///       I: PictureID (1 or 2 bytes), L: TL0PICIDX, T/K: 1 byte
/// ```
pub fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    vp8_frame_start(payload).and_then(|at| payload.get(at)).is_some_and(|&h| h & 0x01 == 0)
}

/// Where the VP8 payload header starts when the packet starts partition 0
/// of a frame (`S` set, `PID` 0): the payload descriptor's length. `None`
/// for any other packet or a truncated descriptor.
pub(crate) fn vp8_frame_start(payload: &[u8]) -> Option<usize> {
    let &b0 = payload.first()?;
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return None;
    }
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let &x = payload.get(1)?;
        at = 2;
        if x & 0x80 != 0 {
            let &pic = payload.get(at)?;
            at += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    Some(at)
}

/// AV1: the aggregation header's `N` bit, set on the first packet of a
/// coded video sequence (which begins with a keyframe).
///
/// ```text
/// //= https://aomediacodec.github.io/av1-rtp-spec/#44-av1-aggregation-header
///       |Z|Y| W |N|-|-|-|
/// ```
pub fn av1_starts_keyframe(payload: &[u8]) -> bool {
    payload.first().is_some_and(|&h| h & 0x08 != 0)
}

/// H.264: the packet starts an IDR picture or the parameter sets sent
/// before one: a single NAL unit of type 5 (IDR) or 7 (SPS), a STAP-A
/// holding one, or the first fragment (FU-A with `S`) of one.
pub fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let key = |t: u8| t == IDR || t == SPS;
    let Some(&b0) = payload.first() else { return false };
    match b0 & 0x1F {
        STAP_A => {
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                match payload.get(at + 2) {
                    Some(&nal) if len > 0 => {
                        if key(nal & 0x1F) {
                            return true;
                        }
                    }
                    _ => return false,
                }
                at += 2 + len;
            }
            false
        }
        FU_A => payload.get(1).is_some_and(|&fu| fu & 0x80 != 0 && key(fu & 0x1F)),
        t => key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_start_partition_zero_with_p_clear() {
        // No X: descriptor then payload header.
        assert!(vp8_starts_keyframe(&[0x10, 0x00]));
        assert!(!vp8_starts_keyframe(&[0x10, 0x01]), "P set: an interframe");
        assert!(!vp8_starts_keyframe(&[0x00, 0x00]), "not the start of a partition");
        assert!(!vp8_starts_keyframe(&[0x11, 0x00]), "partition 1");
        // X with I (15-bit picture id), L and T: 1 + 1 + 2 + 1 + 1 bytes, then the header.
        assert!(vp8_starts_keyframe(&[0x90, 0xE0, 0x80, 0x01, 0x05, 0x40, 0x00]));
        assert!(!vp8_starts_keyframe(&[0x90, 0xE0, 0x80, 0x01, 0x05, 0x40, 0x01]));
        // Truncated descriptors are not keyframes, and do not panic.
        for n in 0..7 {
            assert!(!vp8_starts_keyframe(&[0x90, 0xE0, 0x80, 0x01, 0x05, 0x40, 0x00][..n]));
        }
    }

    #[test]
    fn av1_keyframes_carry_the_new_sequence_bit() {
        assert!(av1_starts_keyframe(&[0x18, 0x00]));
        assert!(!av1_starts_keyframe(&[0x10, 0x00]));
        assert!(!av1_starts_keyframe(&[]));
    }

    #[test]
    fn h264_keyframes_in_every_packetization() {
        assert!(h264_starts_keyframe(&[0x65, 0x88]), "a single IDR NAL unit");
        assert!(h264_starts_keyframe(&[0x67, 0x42]), "an SPS");
        assert!(!h264_starts_keyframe(&[0x41, 0x9a]), "a non-IDR slice");
        // STAP-A: an SEI (type 6) then an SPS.
        assert!(h264_starts_keyframe(&[0x78, 0x00, 0x01, 0x06, 0x00, 0x02, 0x67, 0x42]));
        assert!(!h264_starts_keyframe(&[0x78, 0x00, 0x01, 0x06, 0x00, 0x02, 0x41, 0x42]));
        assert!(!h264_starts_keyframe(&[0x78, 0x00, 0x09, 0x06]), "truncated");
        assert!(!h264_starts_keyframe(&[0x78, 0x00, 0x00, 0x67]), "an empty unit ends the walk");
        // FU-A: the first fragment of an IDR, then a middle one.
        assert!(h264_starts_keyframe(&[0x7C, 0x85, 0x00]));
        assert!(!h264_starts_keyframe(&[0x7C, 0x05, 0x00]));
        assert!(!h264_starts_keyframe(&[0x7C]));
    }
}
