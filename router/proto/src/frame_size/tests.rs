use super::*;

/// Writes bits most significant first (the tests' streams).
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
    bits: usize,
}

impl Writer {
    fn put(&mut self, n: u32, v: u64) -> &mut Writer {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = (v >> i) & 1;
            *self.bytes.last_mut().unwrap() |= (bit as u8) << (7 - self.bits % 8);
            self.bits += 1;
        }
        self
    }

    /// Exp-Golomb / uvlc.
    fn ue(&mut self, v: u64) -> &mut Writer {
        let code = v + 1;
        let len = 64 - code.leading_zeros();
        self.put(len - 1, 0).put(len, code)
    }

    fn se(&mut self, v: i64) -> &mut Writer {
        self.ue(if v > 0 { 2 * v as u64 - 1 } else { (-2 * v) as u64 })
    }

    /// The bytes with a stop bit (RBSP trailing bits).
    fn done(&mut self) -> Vec<u8> {
        self.put(1, 1);
        self.bytes.clone()
    }
}

fn size(width: u16, height: u16) -> Option<FrameSize> {
    Some(FrameSize { width, height })
}

#[test]
fn vp8_key_frame_header() {
    // X, S, PID 0; I with a 15-bit picture id; then the frame tag (key,
    // show_frame), the start code, 640 (scale bits set) and 360.
    let key = [0x90, 0x80, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0x68, 0x01, 0x55];
    assert_eq!(vp8_frame_size(&key), size(640, 360));
    assert_eq!(frame_size(VideoCodec::Vp8, &key), size(640, 360));
    // No descriptor extension: 1280x720.
    assert_eq!(vp8_frame_size(&[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]), size(1280, 720));
    let mut inter = key;
    inter[4] |= 0x01;
    assert_eq!(vp8_frame_size(&inter), None, "an interframe has no size");
    let mut later = key;
    later[0] &= !0x10;
    assert_eq!(vp8_frame_size(&later), None, "not the frame's first packet");
    let mut bad_code = key;
    bad_code[8] = 0x02;
    assert_eq!(vp8_frame_size(&bad_code), None, "no start code");
    for n in 0..key.len() - 1 {
        assert_eq!(vp8_frame_size(&key[..n]), None, "truncated to {n}");
    }
}

/// An AV1 sequence header OBU payload: `timing` adds timing and decoder
/// model info, `points` operating points (the second with a high level
/// and tier), each with decoder model and initial display delay fields.
fn av1_sequence_header(width: u64, height: u64, timing: bool, points: u64) -> Vec<u8> {
    let mut w = Writer::default();
    w.put(3, 0).put(1, 0).put(1, 0); // profile, still_picture, reduced_still_picture_header
    w.put(1, timing as u64);
    if timing {
        w.put(32, 1).put(32, 90_000).put(1, 1).ue(2999); // ticks, scale, equal_picture_interval
        w.put(1, 1).put(5, 9).put(32, 1).put(5, 4).put(5, 4); // decoder model info
    }
    w.put(1, 1); // initial_display_delay_present_flag
    w.put(5, points - 1);
    for i in 0..points {
        w.put(12, i).put(5, if i == 1 { 12 } else { 4 });
        if i == 1 {
            w.put(1, 1); // seq_tier
        }
        if timing {
            w.put(1, 1).put(10, 5).put(10, 6).put(1, 0); // operating_parameters_info
        }
        w.put(1, 1).put(4, 3); // initial_display_delay
    }
    w.put(4, 10).put(4, 9).put(11, width - 1).put(10, height - 1);
    w.put(32, 0xdead_beef); // what follows (not read)
    w.done()
}

#[test]
fn av1_sequence_headers() {
    for (timing, points) in [(false, 1), (true, 1), (true, 3), (false, 2)] {
        let seq = av1_sequence_header(1280, 720, timing, points);
        // W = 1, N: the header is the only element.
        let mut one = vec![0x18, 0x08];
        one.extend(&seq);
        assert_eq!(av1_frame_size(&one), size(1280, 720), "timing {timing}, {points} points");
        // W = 2: a length, then a frame OBU after it.
        let mut two = vec![0x28, seq.len() as u8 + 1, 0x08];
        two.extend(&seq);
        two.extend([0x30, 0x10, 0x00]);
        assert_eq!(av1_frame_size(&two), size(1280, 720));
        // An extension byte and a size field in the OBU header.
        let mut sized = vec![0x18, 0x0e, 0x00, seq.len() as u8];
        sized.extend(&seq);
        assert_eq!(av1_frame_size(&sized), size(1280, 720));
        assert_eq!(frame_size(VideoCodec::Av1, &sized), size(1280, 720));
        for n in 0..one.len() - 5 {
            assert_eq!(av1_frame_size(&one[..n]), None, "truncated to {n}");
        }
    }
    // A reduced still picture header: level only.
    let mut w = Writer::default();
    w.put(3, 0).put(1, 1).put(1, 1).put(5, 8).put(4, 8).put(4, 8).put(9, 319).put(9, 179);
    let mut still = vec![0x18, 0x08];
    still.extend(w.done());
    assert_eq!(av1_frame_size(&still), size(320, 180));

    let seq = av1_sequence_header(640, 360, false, 1);
    let packet = |agg: u8, obu: u8| [&[agg, obu][..], &seq].concat();
    assert_eq!(av1_frame_size(&packet(0x18, 0x08)), size(640, 360));
    assert_eq!(av1_frame_size(&packet(0x10, 0x08)), None, "N clear: no new sequence");
    assert_eq!(av1_frame_size(&packet(0x98, 0x08)), None, "Z: a fragment's continuation");
    assert_eq!(av1_frame_size(&packet(0x18, 0x30)), None, "a frame OBU first");
    assert_eq!(av1_frame_size(&[0x28, 0xff, 0xff]), None, "a length past the end");
    assert_eq!(av1_frame_size(&[0x28, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
}

/// An H.264 SPS RBSP (without the NAL header byte).
fn h264_sps(profile: u64, width_mbs: u64, height_units: u64, frame_mbs_only: bool, crop: Option<[u64; 4]>) -> Vec<u8> {
    let mut w = Writer::default();
    w.put(8, profile).put(8, 0xc0).put(8, 31).ue(0);
    if profile == 100 {
        w.ue(1).ue(0).ue(0).put(1, 0); // 4:2:0, 8 bits
        w.put(1, 1); // scaling matrices: list 0 present, the rest not
        w.put(1, 1);
        for _ in 0..16 {
            w.se(1);
        }
        w.put(7, 0);
    }
    w.ue(0).ue(0).ue(4); // log2_max_frame_num_minus4, pic_order_cnt_type 0, lsb
    w.ue(1).put(1, 0).ue(width_mbs - 1).ue(height_units - 1).put(1, frame_mbs_only as u64);
    if !frame_mbs_only {
        w.put(1, 0);
    }
    w.put(1, 1);
    match crop {
        Some([l, r, t, b]) => {
            w.put(1, 1).ue(l).ue(r).ue(t).ue(b);
        }
        None => {
            w.put(1, 0);
        }
    }
    w.put(1, 0); // vui_parameters_present_flag
    w.done()
}

/// Emulation prevention: 00 00 then a byte up to 3 gets 03 between.
fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

#[test]
fn h264_sequence_parameter_sets() {
    // Constrained baseline 640x360: 40x23 macroblocks, 8 rows cropped (4 units of 2).
    let sps = h264_sps(66, 40, 23, true, Some([0, 0, 0, 4]));
    let single = [&[0x67][..], &escape(&sps)].concat();
    assert_eq!(h264_frame_size(&single), size(640, 360));
    assert_eq!(frame_size(VideoCodec::H264, &single), size(640, 360));
    // High profile with a scaling list, 1280x720, no cropping.
    let high = [&[0x67][..], &escape(&h264_sps(100, 80, 45, true, None))].concat();
    assert_eq!(h264_frame_size(&high), size(1280, 720));
    // Interlaced: map units are field pairs.
    let fields = [&[0x67][..], &escape(&h264_sps(77, 45, 17, false, Some([0, 0, 0, 4])))].concat();
    assert_eq!(h264_frame_size(&fields), size(720, 528));
    // In a STAP-A after another unit, and as the first fragment of an FU-A.
    let mut stap = vec![0x78, 0x00, 0x02, 0x06, 0x05, 0x00, single.len() as u8];
    stap.extend(&single);
    assert_eq!(h264_frame_size(&stap), size(640, 360));
    let fu = [&[0x7c, 0x87][..], &escape(&sps)].concat();
    assert_eq!(h264_frame_size(&fu), size(640, 360));
    assert_eq!(h264_frame_size(&[&[0x7c, 0x07][..], &escape(&sps)].concat()), None, "a later fragment");
    assert_eq!(h264_frame_size(&[0x65, 0x88, 0x80]), None, "an IDR slice carries no size");
    assert_eq!(h264_frame_size(&[0x78, 0x00, 0x09, 0x06]), None, "a truncated STAP-A");
    for n in 0..single.len() - 2 {
        assert_eq!(h264_frame_size(&single[..n]), None, "truncated to {n}");
    }
}

#[test]
fn h264_emulation_prevention_bytes_are_removed() {
    // pic_order_cnt_type 1 with large offsets: long runs of zero bits.
    let mut w = Writer::default();
    w.put(8, 66).put(8, 0).put(8, 30).ue(0).ue(0).ue(1);
    w.put(1, 0).se(1 << 28).se(-(1 << 27)).ue(2).se(1 << 26).se(3);
    w.ue(1).put(1, 0).ue(79).ue(44).put(1, 1).put(1, 1).put(1, 0).put(1, 0);
    let rbsp = w.done();
    let escaped = escape(&rbsp);
    assert!(escaped.len() > rbsp.len(), "the test's SPS needs escaping");
    assert_eq!(h264_frame_size(&[&[0x67][..], &escaped].concat()), size(1280, 720));
}

#[test]
fn a_known_x264_sequence_parameter_set() {
    // x264's High profile SPS for 1280x720 (VUI and all), as sent on the wire.
    let sps = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    assert_eq!(h264_frame_size(&sps), size(1280, 720));
}

#[test]
fn any_bytes_give_an_answer() {
    let mut x = 0x1234_5678u32;
    let mut buf = [0u8; 64];
    for _ in 0..20_000 {
        for b in &mut buf {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let n = (x % 64) as usize;
        for codec in [VideoCodec::Vp8, VideoCodec::Av1, VideoCodec::H264] {
            let _ = frame_size(codec, &buf[..n]);
        }
    }
}
