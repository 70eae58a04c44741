//! The Dependency Descriptor RTP header extension (AV1 RTP payload format,
//! appendix A; what browsers send with AV1, and VP9, SVC): which frame a
//! packet belongs to and, through the template structure sent with
//! keyframes, that frame's spatial and temporal layer. An SFU reads layers
//! from it without touching the payload, so end-to-end encrypted payloads
//! (SFrame, insertable streams) are forwarded by layer all the same.
//!
//! Only what forwarding needs is kept: the mandatory fields and, when the
//! structure is present, its template id offset, decode target count, each
//! template's layers and each spatial layer's render resolution if it has
//! them (what a receiver's requested size is held against). The decode
//! target indications, frame diffs and chains in between are read past, not
//! kept. Parsing allocates only the structure's two lists, never panics, and
//! rejects what does not fit its bit lengths (a structure cut short).
//!
//! ```text
//! //= https://aomediacodec.github.io/av1-rtp-spec/#a82-syntax
//! dependency_descriptor(sz) {
//!   mandatory_descriptor_fields()   // start_of_frame f(1), end_of_frame f(1),
//!                                   // frame_dependency_template_id f(6), frame_number f(16)
//!   if (sz > 3) extended_descriptor_fields()
//!   ...
//! }
//! extended_descriptor_fields() {
//!   template_dependency_structure_present_flag f(1)
//!   active_decode_targets_present_flag f(1)
//!   custom_dtis_flag f(1); custom_fdiffs_flag f(1); custom_chains_flag f(1)
//!   if (template_dependency_structure_present_flag) template_dependency_structure()
//!   ...
//! }
//! template_dependency_structure() {
//!   template_id_offset f(6); dt_cnt_minus_one f(5); template_layers()
//!   template_dtis()        // f(2) per template per decode target
//!   template_fdiffs()      // per template: while (f(1)) fdiff_minus_one f(4)
//!   template_chains()      // chain_cnt ns(DtCnt + 1); if > 0: ns(chain_cnt) per
//!                          // decode target, f(4) per template per chain
//!   resolutions_present_flag f(1)
//!   if (resolutions_present_flag) render_resolutions()
//!                          // per spatial layer: width - 1 f(16), height - 1 f(16)
//! }
//! ```

/// How many templates a structure may have (template ids are 6 bits).
pub const MAX_TEMPLATES: usize = 64;

/// A frame as one packet's descriptor tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdFrame {
    /// The packet is the frame's first.
    pub start_of_frame: bool,
    /// The packet is the frame's last.
    pub end_of_frame: bool,
    /// Which template of the structure the frame follows.
    pub template_id: u8,
    /// The frame's number (16 bits, wrapping).
    pub frame_number: u16,
    /// A new template structure (sent with keyframes), if this packet has one.
    pub structure: Option<DdStructure>,
}

/// A template structure: each template's spatial and temporal layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdStructure {
    /// Template ids count from here (mod 64).
    pub template_id_offset: u8,
    /// Decode targets (1..=32).
    pub decode_targets: u8,
    /// (spatial id, temporal id) of each template, in template order.
    pub layers: Vec<(u8, u8)>,
    /// Each spatial layer's largest render size (width, height), lowest
    /// layer first; empty when the structure does not give them.
    pub resolutions: Vec<(u16, u16)>,
}

impl DdStructure {
    /// The (spatial, temporal) layer of a frame following `template_id`.
    pub fn layer_of(&self, template_id: u8) -> Option<(u8, u8)> {
        let i = (usize::from(template_id) + MAX_TEMPLATES - usize::from(self.template_id_offset)) % MAX_TEMPLATES;
        self.layers.get(i).copied()
    }

    /// The highest spatial and temporal ids any template has.
    pub fn max_layers(&self) -> (u8, u8) {
        let s = self.layers.iter().map(|l| l.0).max().unwrap_or(0);
        let t = self.layers.iter().map(|l| l.1).max().unwrap_or(0);
        (s, t)
    }
}

/// Reads big-endian bit fields; `None` past the end.
struct Bits<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.b.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }

    /// Passes over `n` bits; `None` if fewer are left.
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.at.checked_add(n)?;
        (end <= self.b.len() * 8).then(|| self.at = end)
    }

    /// A value coded as `ns(n)` (non-symmetric: `n` possible values, some
    /// one bit shorter than the others).
    fn read_ns(&mut self, n: u32) -> Option<u32> {
        let w = 32 - n.leading_zeros();
        if w == 0 {
            return None;
        }
        let m = (1u32 << w) - n;
        let v = self.read(w as usize - 1)?;
        if v < m {
            return Some(v);
        }
        Some((v << 1) - m + self.read(1)?)
    }
}

/// Parses a Dependency Descriptor extension's value.
pub fn parse(ext: &[u8]) -> Option<DdFrame> {
    if ext.len() < 3 {
        return None;
    }
    let mut r = Bits { b: ext, at: 0 };
    let start_of_frame = r.read(1)? == 1;
    let end_of_frame = r.read(1)? == 1;
    let template_id = r.read(6)? as u8;
    let frame_number = r.read(16)? as u16;
    let mut structure = None;
    if ext.len() > 3 && r.read(1)? == 1 {
        let _active_decode_targets_present = r.read(1)?;
        let _custom_dtis_fdiffs_chains = r.read(3)?;
        let template_id_offset = r.read(6)? as u8;
        let decode_targets = r.read(5)? as u8 + 1;
        let mut layers = Vec::new();
        let (mut spatial, mut temporal) = (0u8, 0u8);
        loop {
            if layers.len() == MAX_TEMPLATES {
                return None;
            }
            layers.push((spatial, temporal));
            match r.read(2)? {
                0 => {}
                1 => temporal = temporal.checked_add(1)?,
                2 => {
                    temporal = 0;
                    spatial = spatial.checked_add(1)?;
                }
                _ => break,
            }
        }
        let resolutions = past_layers(&mut r, layers.len(), decode_targets, layers[layers.len() - 1].0)?;
        structure = Some(DdStructure { template_id_offset, decode_targets, layers, resolutions });
    }
    Some(DdFrame { start_of_frame, end_of_frame, template_id, frame_number, structure })
}

/// Reads the rest of a template structure after its layers (`templates`
/// of them, the last one's spatial id `top`): past the decode target
/// indications, frame diffs and chains, and returns the render resolutions.
fn past_layers(r: &mut Bits<'_>, templates: usize, decode_targets: u8, top: u8) -> Option<Vec<(u16, u16)>> {
    let dts = usize::from(decode_targets);
    r.skip(2 * dts * templates)?;
    for _ in 0..templates {
        while r.read(1)? == 1 {
            r.read(4)?;
        }
    }
    let chains = r.read_ns(u32::from(decode_targets) + 1)?;
    if chains > 0 {
        for _ in 0..dts {
            r.read_ns(chains)?;
        }
        r.skip(4 * chains as usize * templates)?;
    }
    let mut resolutions = Vec::new();
    if r.read(1)? == 1 {
        for _ in 0..=top {
            let w = r.read(16)? as u16;
            let h = r.read(16)? as u16;
            resolutions.push((w.saturating_add(1), h.saturating_add(1)));
        }
    }
    Some(resolutions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bit fields (for the tests' descriptors).
    fn bits(fields: &[(u32, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        for &(v, n) in fields {
            for i in (0..n).rev() {
                if at % 8 == 0 {
                    out.push(0);
                }
                let last = out.len() - 1;
                out[last] |= (((v >> i) & 1) as u8) << (7 - at % 8);
                at += 1;
            }
        }
        out
    }

    #[test]
    fn mandatory_fields_alone() {
        let d = parse(&bits(&[(1, 1), (0, 1), (5, 6), (0xBEEF, 16)])).unwrap();
        assert_eq!((d.start_of_frame, d.end_of_frame, d.template_id, d.frame_number), (true, false, 5, 0xBEEF));
        assert_eq!(d.structure, None);
        assert_eq!(parse(&[0x80, 0x00]), None, "too short");
    }

    /// The fields after a structure's layers for `templates` templates and
    /// `dts` decode targets: indications all 0, no frame diffs, no chains
    /// (`ns(dts + 1)` = 0), no resolutions.
    fn plain_tail(templates: usize, dts: u32) -> Vec<(u32, usize)> {
        let mut f = vec![(0, 2); templates * dts as usize];
        f.extend(std::iter::repeat_n((0, 1), templates));
        f.push((0, (32 - (dts + 1).leading_zeros()) as usize - 1));
        f.push((0, 1));
        f
    }

    #[test]
    fn an_l1t3_structure_gives_each_template_its_temporal_layer() {
        // Templates: T0, T0, T1, T2, T2 (next_layer_idc 0, 1, 1, 0, 3), offset 60, 3 decode targets.
        let mut f = vec![(1, 1), (1, 1), (60, 6), (1, 16), (1, 1), (0, 1), (0, 3), (60, 6), (2, 5)];
        f.extend([(0, 2), (1, 2), (1, 2), (0, 2), (3, 2)]);
        f.extend(plain_tail(5, 3));
        let d = parse(&bits(&f)).unwrap();
        let s = d.structure.unwrap();
        assert_eq!(s.decode_targets, 3);
        assert_eq!(s.layers, vec![(0, 0), (0, 0), (0, 1), (0, 2), (0, 2)]);
        assert_eq!(s.layer_of(60), Some((0, 0)));
        assert_eq!(s.layer_of(62), Some((0, 1)), "offset 60: template 2");
        assert_eq!(s.layer_of(63), Some((0, 2)));
        assert_eq!(s.layer_of(0), Some((0, 2)), "ids wrap at 64");
        assert_eq!(s.layer_of(1), None);
        assert_eq!(s.max_layers(), (0, 2));
        assert!(s.resolutions.is_empty());
    }

    /// An L2T2 structure as libwebrtc writes one: indications, frame
    /// diffs, two chains and each spatial layer's resolution.
    fn l2t2(chains: &[(u32, usize)], chain_count: usize, resolutions: bool) -> Vec<(u32, usize)> {
        // S0T0, S0T1, S1T0, S1T1: next_layer_idc 1, 2, 1, 3; 4 decode targets.
        let mut f = vec![(0, 24), (1, 1), (0, 4), (0, 6), (3, 5), (1, 2), (2, 2), (1, 2), (3, 2)];
        // Decode target indications, 2 bits each.
        f.extend([(0b1111_1111, 8), (0b0101_1111, 8), (0b0000_1111, 8), (0b0000_0101, 8)]);
        // Frame diffs: none; 1; 1; 2 and 1 (1-1 and 2-1 in 4 bits each).
        f.extend([(0, 1), (1, 1), (0, 4), (0, 1), (1, 1), (0, 4), (0, 1)]);
        f.extend([(1, 1), (1, 4), (1, 1), (0, 4), (0, 1)]);
        f.extend_from_slice(chains);
        f.extend(std::iter::repeat_n((3, 4), 4 * chain_count)); // each template's chain diffs
        f.push((u32::from(resolutions), 1));
        if resolutions {
            f.extend([(319, 16), (179, 16), (639, 16), (359, 16)]);
        }
        f
    }

    #[test]
    fn an_l2t2_structure_counts_spatial_layers_and_gives_their_sizes() {
        // chain_cnt = 2 as ns(5) (2 bits: 0b10), each target protected by
        // chain 0 or 1 (ns(2): one bit).
        let chains = [(2, 2), (0, 1), (0, 1), (1, 1), (1, 1)];
        let s = parse(&bits(&l2t2(&chains, 2, true))).unwrap().structure.unwrap();
        assert_eq!(s.layers, vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
        assert_eq!(s.resolutions, vec![(320, 180), (640, 360)]);
        let s = parse(&bits(&l2t2(&chains, 2, false))).unwrap().structure.unwrap();
        assert!(s.resolutions.is_empty());
        // chain_cnt = 4: ns(5)'s longer code (0b11 then 1), protected_by ns(4) in 2 bits.
        let chains = [(3, 2), (1, 1), (0, 2), (1, 2), (2, 2), (3, 2)];
        let s = parse(&bits(&l2t2(&chains, 4, true))).unwrap().structure.unwrap();
        assert_eq!(s.resolutions, vec![(320, 180), (640, 360)]);
        // Cut anywhere inside the structure: refused.
        let whole = bits(&l2t2(&chains, 4, true));
        for n in 4..whole.len() {
            assert_eq!(parse(&whole[..n]).and_then(|d| d.structure), None, "cut at {n}");
        }
    }

    #[test]
    fn truncated_and_endless_structures_are_refused() {
        // The structure flag set, then nothing.
        assert_eq!(parse(&bits(&[(0, 24), (1, 1), (0, 7)])), None);
        // 64 templates and still no end (next_layer_idc 0 forever).
        let mut f = vec![(0, 24), (1, 1), (0, 4), (0, 6), (0, 5)];
        f.extend(std::iter::repeat_n((0, 2), 70));
        assert_eq!(parse(&bits(&f)), None);
        for n in 0..12 {
            let _ = parse(&vec![0xFF; n]);
        }
    }
}
