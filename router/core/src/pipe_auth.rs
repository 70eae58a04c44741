//! The keys of one link to another router (cascading): every pipe datagram
//! is sealed with AEAD under the link's key (`corecast_proto::pipe_seal`).
//!
//! The calls service draws a new key each time it opens a link, and opens
//! it on both routers: the call's home first, the leaf (`uplink`) second.
//! Opening an open link again is a re-key: the link keeps its newest key and
//! the one before, and a datagram names its key by id. The leaf seals with
//! the new key at once (the home already has it) and tells the home so with
//! an `Open` under it; the home keeps sealing with the previous key (the
//! leaf may not have the new one yet) until a datagram under the new one
//! authenticates. A key's counter thus never restarts: a re-open is a new
//! key, never the old one from 0.

use bytes::BytesMut;
use corecast_proto::pipe_seal::{LinkKeys, PipeKey, PipeSealError};

use crate::stats::DropReason;

/// One end's keys of one link: the newest and the one before.
#[derive(Debug)]
pub(crate) struct LinkCrypto {
    /// `[0]` the newest key, `[1]` the one before.
    keys: [Option<LinkKeys>; 2],
    /// Which of them this end seals with.
    tx: usize,
}

impl LinkCrypto {
    /// A link opened with `key`; `home`: this end is the call's home.
    pub fn new(key: &PipeKey, home: bool) -> LinkCrypto {
        LinkCrypto { keys: [Some(key.keys(home)), None], tx: 0 }
    }

    /// The link opened again with `key`: whether it is a new key (a key it
    /// holds already changes nothing).
    pub fn rekey(&mut self, key: &PipeKey, home: bool) -> bool {
        let id = key.id();
        if self.keys.iter().flatten().any(|k| k.id == id) {
            return false;
        }
        let before = self.keys[0].take();
        self.keys = [Some(key.keys(home)), before];
        self.tx = usize::from(home);
        true
    }

    /// What this end seals with now.
    #[inline]
    pub fn sealing(&self) -> Option<&LinkKeys> {
        self.keys[self.tx].as_ref().or(self.keys[0].as_ref())
    }

    /// Opens a datagram under key `id` (header `header_len` bytes), appending
    /// the header and the plaintext to `out`; on error nothing changes here
    /// and `out` is as it was. A datagram under the newest key makes this
    /// end seal with it too.
    #[inline]
    pub fn open(&mut self, id: u32, packet: &[u8], header_len: usize, out: &mut BytesMut) -> Result<(), DropReason> {
        let i =
            self.keys.iter().position(|k| k.as_ref().is_some_and(|k| k.id == id)).ok_or(DropReason::PipeAuthFailed)?;
        let keys = self.keys[i].as_mut().ok_or(DropReason::PipeAuthFailed)?;
        match keys.opener.open(packet, header_len, out) {
            Ok(_) => {
                if i == 0 {
                    self.tx = 0;
                }
                Ok(())
            }
            Err(PipeSealError::Replayed) => Err(DropReason::PipeReplayed),
            Err(_) => Err(DropReason::PipeAuthFailed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(keys: &LinkKeys, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&keys.id.to_be_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(body);
        keys.sealer.seal(&mut out, 0, 12).unwrap();
        out.to_vec()
    }

    fn open(end: &mut LinkCrypto, d: &[u8]) -> Result<(), DropReason> {
        let id = u32::from_be_bytes(d[..4].try_into().unwrap());
        end.open(id, d, 12, &mut BytesMut::new())
    }

    #[test]
    fn a_rekey_switches_the_leaf_at_once_and_the_home_once_the_leaf_used_it() {
        let (k1, k2) = (PipeKey::new([1; 32]), PipeKey::new([2; 32]));
        let mut home = LinkCrypto::new(&k1, true);
        let mut leaf = LinkCrypto::new(&k1, false);
        assert_eq!(open(&mut leaf, &sealed(home.sealing().unwrap(), b"a")), Ok(()));
        // The calls service re-opens: the home first.
        assert!(home.rekey(&k2, true));
        assert!(!home.rekey(&k2, true), "the same key again changes nothing");
        let from_home = sealed(home.sealing().unwrap(), b"b");
        assert_eq!(open(&mut leaf, &from_home), Ok(()), "the home still seals with the key the leaf has");
        assert!(leaf.rekey(&k2, false));
        let from_leaf = sealed(leaf.sealing().unwrap(), b"c");
        assert_eq!(leaf.sealing().unwrap().id, k2.id());
        assert_eq!(open(&mut home, &from_leaf), Ok(()));
        assert_eq!(home.sealing().unwrap().id, k2.id(), "the leaf used the new key: the home does too");
        assert_eq!(open(&mut leaf, &sealed(home.sealing().unwrap(), b"d")), Ok(()));
        // In flight under the old key: still taken (once).
        assert_eq!(open(&mut leaf, &from_home), Err(DropReason::PipeReplayed));
        // A third key: the first is gone.
        let k3 = PipeKey::new([3; 32]);
        assert!(leaf.rekey(&k3, false));
        let stale = sealed(&k1.keys(true), b"e");
        assert_eq!(open(&mut leaf, &stale), Err(DropReason::PipeAuthFailed));
    }
}
