//! A native leg's SRTP, client side (the reference client, the codec pool): keyed from the join key
//! (`JoinKey::native_srtp_keys`, AEAD_AES_128_GCM), sealed by the sending
//! thread and opened by each receiving thread with a context of its own.

use std::sync::Mutex;

use super::{SrtpContext, SrtpKey};
use crate::demux::{classify, Kind};
use crate::join_key::JoinKey;
use bytes::BytesMut;

/// What a native client seals with, and the key its receivers open with.
#[derive(Debug)]
pub struct NativeSrtp {
    tx: Mutex<SrtpContext>,
    down: SrtpKey,
}

impl NativeSrtp {
    /// The client's SRTP for a leg joined with `key`.
    pub fn new(key: &JoinKey) -> NativeSrtp {
        let (up, down) = key.native_srtp_keys();
        let tx = SrtpContext::new(&up).expect("the derived key has the profile's lengths");
        NativeSrtp { tx: Mutex::new(tx), down }
    }

    /// `plain` (an RTP packet or RTCP compound) sealed; `None` if it cannot be.
    pub fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut out = BytesMut::with_capacity(plain.len() + 32);
        let mut tx = self.tx.lock().ok()?;
        let r = match classify(plain) {
            Kind::Rtp => tx.protect_rtp(plain, &mut out),
            Kind::Rtcp => tx.protect_rtcp(plain, &mut out),
            _ => return None,
        };
        r.ok().map(|()| out.to_vec())
    }

    /// An opener for one receiving thread.
    pub fn opener(&self) -> Opener {
        Opener(Some(SrtpContext::new(&self.down).expect("the derived key has the profile's lengths")), BytesMut::new())
    }
}

/// Opens what the router sends one receiving thread (or passes it through
/// on a plain leg).
#[derive(Debug)]
pub struct Opener(Option<SrtpContext>, BytesMut);

impl Opener {
    /// The opener of a plain leg: passes everything through.
    pub fn plain() -> Opener {
        Opener(None, BytesMut::new())
    }

    /// `datagram` opened if it is SRTP or SRTCP (`None`: it fails
    /// authentication or is a replay); anything else as it is.
    pub fn open<'a>(&'a mut self, datagram: &'a [u8]) -> Option<&'a [u8]> {
        let Some(rx) = &mut self.0 else { return Some(datagram) };
        self.1.clear();
        let r = match classify(datagram) {
            Kind::Rtp => rx.unprotect_rtp(datagram, &mut self.1),
            Kind::Rtcp => rx.unprotect_rtcp(datagram, &mut self.1),
            _ => return Some(datagram),
        };
        r.ok()?;
        Some(&self.1[..])
    }
}
