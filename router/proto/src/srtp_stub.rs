//! TEMPORARY stub of the SRTP API (replaced by the real module at merge).
#![allow(missing_docs, dead_code, clippy::all)]
use bytes::BytesMut;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpProfile {
    AeadAes128Gcm,
    AeadAes256Gcm,
    Aes128CmHmacSha1_80,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    Malformed,
    Auth,
    Replay,
}
#[derive(Debug, Clone)]
pub struct SrtpKey;
#[derive(Debug)]
pub struct SrtpContext;
pub fn keys_from_dtls(_p: SrtpProfile, _m: &[u8], _s: bool) -> Result<(SrtpKey, SrtpKey), SrtpError> {
    Err(SrtpError::Malformed)
}
impl SrtpContext {
    pub fn new(_k: &SrtpKey) -> Result<SrtpContext, SrtpError> {
        Ok(SrtpContext)
    }
    pub fn protect_rtp(&mut self, _p: &[u8], _o: &mut BytesMut) -> Result<(), SrtpError> {
        Err(SrtpError::Malformed)
    }
    pub fn unprotect_rtp(&mut self, _p: &[u8], _o: &mut BytesMut) -> Result<(), SrtpError> {
        Err(SrtpError::Malformed)
    }
    pub fn protect_rtcp(&mut self, _p: &[u8], _o: &mut BytesMut) -> Result<(), SrtpError> {
        Err(SrtpError::Malformed)
    }
    pub fn unprotect_rtcp(&mut self, _p: &[u8], _o: &mut BytesMut) -> Result<(), SrtpError> {
        Err(SrtpError::Malformed)
    }
}
