//! A video stream's frame size, read from the first packet of a keyframe:
//! what lets the router give a receiver that asked for small video (a
//! WHEP viewer's `max_height`) the simulcast layer of that size.
//!
//! - VP8: the key frame header's width and height (RFC 6386 §9.1, after
//!   the payload descriptor, RFC 7741 §4.2).
//! - AV1: the sequence header OBU that opens a coded video sequence (the
//!   aggregation header's `N` bit), its `max_frame_width_minus_1` and
//!   `max_frame_height_minus_1` (AV1 specification §5.5.1).
//! - H.264: the sequence parameter set sent with an IDR picture, its
//!   picture size in macroblocks less the cropping (H.264 §7.3.2.1.1).
//!
//! Each function allocates nothing and never panics: any byte string gives
//! `None` or a size (`None` when the packet carries none or is truncated).

use crate::keyframe::{vp8_frame_start, VideoCodec};

/// A frame's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// The frame size an RTP `payload` of `codec` carries: only the first
/// packet of a keyframe does.
pub fn frame_size(codec: VideoCodec, payload: &[u8]) -> Option<FrameSize> {
    match codec {
        VideoCodec::Vp8 => vp8_frame_size(payload),
        VideoCodec::Av1 => av1_frame_size(payload),
        VideoCodec::H264 => h264_frame_size(payload),
    }
}

/// VP8: a key frame's 10-byte header: 3-byte frame tag (bit 0 clear), the
/// start code `9d 01 2a`, then 14-bit width and height, little-endian, each
/// under 2 scaling bits.
pub fn vp8_frame_size(payload: &[u8]) -> Option<FrameSize> {
    let at = vp8_frame_start(payload)?;
    let h = payload.get(at..at + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let height = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some(FrameSize { width, height })
}

/// AV1: the first OBU element of a packet that starts a coded video
/// sequence (`N` set, `Z` clear), when it is a sequence header.
pub fn av1_frame_size(payload: &[u8]) -> Option<FrameSize> {
    const OBU_SEQUENCE_HEADER: u8 = 1;
    let (&agg, rest) = payload.split_first()?;
    if agg & 0x80 != 0 || agg & 0x08 == 0 {
        return None;
    }
    // W (the number of OBU elements; 0: each with a length field): with
    // W = 1 the only element runs to the end, else the first has a length.
    let obu = if (agg >> 4) & 0x03 == 1 {
        rest
    } else {
        let (len, n) = leb128(rest)?;
        rest.get(n..)?.get(..usize::try_from(len).ok()?)?
    };
    let (&header, mut body) = obu.split_first()?;
    if (header >> 3) & 0x0f != OBU_SEQUENCE_HEADER {
        return None;
    }
    if header & 0x04 != 0 {
        body = body.get(1..)?;
    }
    if header & 0x02 != 0 {
        let (len, n) = leb128(body)?;
        body = body.get(n..)?;
        body = body.get(..usize::try_from(len).ok()?.min(body.len()))?;
    }
    av1_sequence_header_size(body)
}

/// `max_frame_width_minus_1` and `max_frame_height_minus_1` of an AV1
/// sequence header OBU's payload (AV1 specification §5.5.1).
fn av1_sequence_header_size(obu: &[u8]) -> Option<FrameSize> {
    let mut b = Bits::new(obu);
    let _seq_profile = b.bits(3)?;
    let _still_picture = b.bit()?;
    if b.bit()? {
        // reduced_still_picture_header: one operating point, no timing.
        let _seq_level_idx = b.bits(5)?;
    } else {
        let mut decoder_model = false;
        let mut delay_len = 0;
        if b.bit()? {
            // timing_info()
            b.bits(32)?;
            b.bits(32)?;
            if b.bit()? {
                b.uvlc()?;
            }
            decoder_model = b.bit()?;
            if decoder_model {
                delay_len = b.bits(5)? + 1;
                b.bits(32)?;
                b.bits(5)?;
                b.bits(5)?;
            }
        }
        let initial_display_delay = b.bit()?;
        let operating_points = b.bits(5)? + 1;
        for _ in 0..operating_points {
            let _idc = b.bits(12)?;
            if b.bits(5)? > 7 {
                let _tier = b.bit()?;
            }
            if decoder_model && b.bit()? {
                b.bits(delay_len)?;
                b.bits(delay_len)?;
                b.bit()?;
            }
            if initial_display_delay && b.bit()? {
                b.bits(4)?;
            }
        }
    }
    let width_bits = b.bits(4)? + 1;
    let height_bits = b.bits(4)? + 1;
    let width = b.bits(width_bits)? + 1;
    let height = b.bits(height_bits)? + 1;
    Some(FrameSize { width: u16::try_from(width).ok()?, height: u16::try_from(height).ok()? })
}

/// H.264: the sequence parameter set in a packet: a single NAL unit of
/// type 7, one in a STAP-A, or the first fragment (FU-A) of one.
pub fn h264_frame_size(payload: &[u8]) -> Option<FrameSize> {
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let &b0 = payload.first()?;
    match b0 & 0x1F {
        STAP_A => {
            let mut at = 1;
            loop {
                let len = usize::from(u16::from_be_bytes([*payload.get(at)?, *payload.get(at + 1)?]));
                let nal = payload.get(at + 2..at + 2 + len)?;
                if nal.first()? & 0x1F == SPS {
                    return h264_sps_size(nal.get(1..)?);
                }
                at += 2 + len;
            }
        }
        FU_A if payload.get(1).is_some_and(|&fu| fu & 0x80 != 0 && fu & 0x1F == SPS) => h264_sps_size(&payload[2..]),
        SPS => h264_sps_size(&payload[1..]),
        _ => None,
    }
}

/// The cropped picture size of an SPS's RBSP (after its NAL header byte).
fn h264_sps_size(sps: &[u8]) -> Option<FrameSize> {
    // The RBSP without emulation prevention bytes (00 00 03 -> 00 00); an
    // SPS is tens of bytes, 256 hold any the router meets.
    let mut rbsp = [0u8; 256];
    let mut n = 0;
    let mut zeros = 0;
    for &byte in sps {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        let Some(slot) = rbsp.get_mut(n) else { break };
        *slot = byte;
        n += 1;
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    let mut b = Bits::new(&rbsp[..n]);
    let profile_idc = b.bits(8)?;
    b.bits(16)?; // constraint flags, level_idc
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 && b.bit()? {
            chroma_format_idc = 0; // separate colour planes: cropped as monochrome
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? {
            // seq_scaling_matrix_present_flag: the lists are skipped.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + b.se()? + 256).rem_euclid(256);
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let cycle = b.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(b.ue()?) + 1;
    let height_units = u64::from(b.ue()?) + 1;
    let frame_mbs_only = b.bit()?;
    if !frame_mbs_only {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if b.bit()? {
        let (left, right, top, bottom) = (b.ue()?, b.ue()?, b.ue()?, b.ue()?);
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let field = if frame_mbs_only { 1 } else { 2 };
        crop_x = sub_w * (u64::from(left) + u64::from(right));
        crop_y = sub_h * field * (u64::from(top) + u64::from(bottom));
    }
    let width = (width_mbs * 16).checked_sub(crop_x)?;
    let height = (height_units * 16 * if frame_mbs_only { 1 } else { 2 }).checked_sub(crop_y)?;
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(width), Ok(height)) if width > 0 && height > 0 => Some(FrameSize { width, height }),
        _ => None,
    }
}

/// An unsigned LEB128 number (AV1's `leb128()`, at most 8 bytes) and the
/// bytes it took.
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads bits most significant first; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits { data, at: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.at / 8)?;
        let bit = byte >> (7 - self.at % 8) & 1;
        self.at += 1;
        Some(bit == 1)
    }

    /// `n` bits (at most 32) as a number.
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = v << 1 | u32::from(self.bit()?);
        }
        Some(v)
    }

    /// The count of zero bits before the next one bit (at most 31).
    fn leading_zeros(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(zeros)
    }

    /// AV1's `uvlc()`.
    fn uvlc(&mut self) -> Option<u32> {
        let zeros = self.leading_zeros()?;
        Some(self.bits(zeros)?.wrapping_add((1u32 << zeros) - 1))
    }

    /// H.264's `ue(v)` (Exp-Golomb): the same code.
    fn ue(&mut self) -> Option<u32> {
        self.uvlc()
    }

    /// H.264's `se(v)`.
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests;
