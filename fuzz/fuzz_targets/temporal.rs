//! What the router reads of video payloads, from any bytes: temporal layer
//! ids of VP8 and AV1 (a VP8 TID is 2 bits, an AV1 temporal_id 3 bits) and
//! whether a packet starts a keyframe (VP8, AV1, H.264: simulcast switches)
//! and the frame size it carries (a receiver's requested size),
//! and the Dependency Descriptor's frame and template layers. Never a panic.
#![no_main]
use corecast_proto::dd;
use corecast_proto::frame_size::frame_size;
use corecast_proto::keyframe::{starts_keyframe, VideoCodec};
use corecast_proto::temporal::{av1_temporal_id, vp8_temporal_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vp8_temporal_id(data).is_none_or(|t| t <= 3));
    assert!(av1_temporal_id(data).is_none_or(|t| t <= 7));
    for codec in [VideoCodec::Vp8, VideoCodec::Av1, VideoCodec::H264] {
        let key = starts_keyframe(codec, data);
        // A keyframe's first packet has a payload to start it.
        assert!(!key || !data.is_empty());
        // Only a keyframe's first packet carries a size, and never an empty one.
        if let Some(size) = frame_size(codec, data) {
            assert!(key, "{codec:?}: a size in a packet that starts no keyframe");
            assert!(size.width > 0 && size.height > 0);
        }
    }
    if let Some(f) = dd::parse(data) {
        assert!(f.template_id < 64);
        if let Some(s) = f.structure {
            assert!(!s.layers.is_empty() && s.layers.len() <= dd::MAX_TEMPLATES);
            assert!((1..=32).contains(&s.decode_targets));
            let _ = s.layer_of(f.template_id);
            // A size for every spatial layer, or none.
            assert!(s.resolutions.is_empty() || s.resolutions.len() == usize::from(s.max_layers().0) + 1);
        }
    }
});
