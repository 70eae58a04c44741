//! The IVF reader (`corecast_codec::av1::parse_ivf`, compiled in from its source): never
//! panics; what it accepts adds up (header + 12 bytes and the data of each frame = the input);
//! frames written as IVF read back equal.
#![no_main]
#[allow(dead_code, unused_imports)]
#[path = "../../codec/src/av1/mod.rs"]
mod av1;

use av1::parse_ivf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = parse_ivf(data) {
        let hdr = usize::from(u16::from_le_bytes([data[6], data[7]]));
        assert_eq!(hdr + frames.iter().map(|f| 12 + f.len()).sum::<usize>(), data.len(), "lengths add up");
    }
    // The input cut into frames ([len, bytes...]*), written as IVF, reads back.
    let mut frames = Vec::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize).min(tail.len());
        frames.push(tail[..n].to_vec());
        rest = &tail[n..];
    }
    let mut file = Vec::new();
    file.extend_from_slice(b"DKIF\0\0\x20\0AV01");
    file.extend_from_slice(&[0u8; 20]);
    for (i, f) in frames.iter().enumerate() {
        file.extend_from_slice(&(f.len() as u32).to_le_bytes());
        file.extend_from_slice(&(i as u64).to_le_bytes());
        file.extend_from_slice(f);
    }
    assert_eq!(parse_ivf(&file).expect("a written file parses"), frames);
});
