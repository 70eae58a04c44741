//! `corecast-bench pipe-seal`: what sealing a cascading pipe datagram costs
//! (`corecast_proto::pipe_seal`, PROTOCOL.md §6), on one core, with no
//! sockets: per datagram, the router's seal (the header and the packet
//! copied into a reused buffer, as into the worker's arena, then sealed in
//! place) and the far router's open (checked against the replay window,
//! copied out and decrypted), beside the library's bare AES-256-GCM
//! `seal_in_place_separate_tag` of the same body. Medians over rounds.

use std::time::Instant;

use bytes::BytesMut;
use corecast_core::PIPE_HEADER;
use corecast_proto::pipe_seal::{PipeKey, PIPE_TAG_LEN};

/// `corecast-bench pipe-seal` options.
#[derive(Debug, clap::Args)]
pub struct PipeSealArgs {
    /// Bytes of the sealed datagram on the wire (header, body, tag).
    #[arg(long, default_value_t = 1200)]
    datagram: usize,
    /// Datagrams sealed and opened per round.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: PipeSealArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.datagram > PIPE_HEADER + PIPE_TAG_LEN, "a datagram holds a header and a tag");
    anyhow::ensure!(a.count > 0 && a.rounds > 0, "count and rounds must be positive");
    let body = vec![0x5Au8; a.datagram - PIPE_HEADER - PIPE_TAG_LEN];
    let mut header = [0u8; PIPE_HEADER];
    header[0] = 0xCC;
    header[1] = 0x21;
    let (mut seal, mut open, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    let mut check = 0u8;
    for _ in 0..a.rounds {
        let key = PipeKey::new(rand::random());
        let home = key.keys(true);
        let mut leaf = key.keys(false);
        header[18..22].copy_from_slice(&home.id.to_be_bytes());
        // Seal: each datagram into the reused buffer.
        let mut buf = BytesMut::with_capacity(4096);
        let seal_one = |buf: &mut BytesMut| -> anyhow::Result<()> {
            buf.clear();
            buf.extend_from_slice(&header);
            buf.extend_from_slice(&body);
            home.sealer.seal(buf, 0, PIPE_HEADER).map_err(|e| anyhow::anyhow!("seal: {e}"))?;
            Ok(())
        };
        let t0 = Instant::now();
        for _ in 0..a.count {
            seal_one(&mut buf)?;
            check ^= buf[buf.len() - 1];
        }
        seal.push(t0.elapsed().as_nanos() as f64 / a.count as f64);
        // As many more (counters go on), kept for the open: not timed.
        let mut wire = Vec::with_capacity(a.count * a.datagram);
        for _ in 0..a.count {
            seal_one(&mut buf)?;
            wire.extend_from_slice(&buf);
        }
        // Open: every datagram once, in order, into the reused buffer.
        let t1 = Instant::now();
        for d in wire.chunks_exact(a.datagram) {
            buf.clear();
            leaf.opener.open(d, PIPE_HEADER, &mut buf).map_err(|e| anyhow::anyhow!("open: {e}"))?;
            check ^= buf[buf.len() - 1];
        }
        open.push(t1.elapsed().as_nanos() as f64 / a.count as f64);
        bare.push(bare_seal_ns(body.len(), a.count));
    }
    std::hint::black_box(check);
    let (seal, open, bare) = (median(seal), median(open), median(bare));
    if a.json {
        let v = serde_json::json!({
            "datagram_bytes": a.datagram, "count": a.count, "rounds": a.rounds,
            "seal_ns": seal, "open_ns": open, "seal_plus_open_ns": seal + open,
            "aws_lc_aes256gcm_seal_ns": bare,
        });
        println!("{v}");
    } else {
        println!(
            "pipe datagram of {} B ({} B body), median of {} rounds of {}: seal {seal:.0} ns, open {open:.0} ns, \
             seal+open {:.0} ns; aws-lc-rs AES-256-GCM seal_in_place_separate_tag of the body alone {bare:.0} ns",
            a.datagram,
            body.len(),
            a.rounds,
            a.count,
            seal + open
        );
    }
    Ok(())
}

/// ns per bare `seal_in_place_separate_tag` of `len` bytes with AES-256-GCM.
fn bare_seal_ns(len: usize, count: usize) -> f64 {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("AES-256-GCM key"));
    let mut data = vec![0x5Au8; len];
    let header = [0xCCu8; PIPE_HEADER];
    let mut x = 0u8;
    let t0 = Instant::now();
    for i in 0..count as u64 {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&header), &mut data)
            .expect("seal");
        x ^= tag.as_ref()[0];
    }
    std::hint::black_box(x);
    t0.elapsed().as_nanos() as f64 / count as f64
}
