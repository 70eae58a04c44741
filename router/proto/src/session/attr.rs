/// ERROR-CODE (RFC 8489 §14.8).
pub const ERROR_CODE: u16 = 0x0009;
/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// ALTERNATE-SERVER (RFC 8489 §14.15).
pub const ALTERNATE_SERVER: u16 = 0x8023;
/// The 98-byte join token.
pub const TOKEN: u16 = 0xC001;
/// SSRCs the participant will send, 4 bytes each.
pub const SSRCS: u16 = 0xC002;
/// Requested quality: 1 byte, 0 = HD, 1 = SD.
pub const QUALITY: u16 = 0xC003;
/// Participant id, 8 bytes.
pub const PARTICIPANT: u16 = 0xC004;
/// Silence timeout the router applies, u32 milliseconds.
pub const TIMEOUT: u16 = 0xC005;
/// Leave marker (empty).
pub const LEAVE: u16 = 0xC006;
/// Call-ended marker (empty).
pub const CALL_ENDED: u16 = 0xC007;
/// Media kind of each SSRC in SSRCS, 1 byte each in the same order (0 audio, 1 video, 2 unknown).
pub const MEDIA: u16 = 0xC008;
/// Last-N: how many of the call's most active speakers' video the client
/// wants, 1 byte (0: everyone's).
pub const LAST_N: u16 = 0xC009;
/// Address check marker (empty): a router's Check, a client's CheckReply.
pub const CHECK: u16 = 0xC00A;
/// MESSAGE-INTEGRITY (RFC 8489 §14.5), keyed with the join key.
pub const MESSAGE_INTEGRITY: u16 = crate::ice::attr::MESSAGE_INTEGRITY;
/// The SRTP profile a native Join asks for, 2 bytes: the DTLS-SRTP id
/// (0x0007 AEAD_AES_128_GCM, the only one taken); absent: plain RTP.
pub const SRTP: u16 = 0xC00B;
/// Simulcast layers: 2 to 4 SSRCs of video the sender declared, 4 bytes
/// each, lowest quality first: one stream of which each receiver gets one
/// layer (under the first SSRC).
pub const SIMULCAST: u16 = 0xC00C;
/// Requested size: the tallest video the client wants, 2 bytes, pixels
/// ([`crate::session::MAX_HEIGHT_RANGE`]; 0: no limit).
pub const MAX_HEIGHT: u16 = 0xC00D;
