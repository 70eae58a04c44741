//! AV1 RTP payload format (AOM "RTP Payload Format for AV1"): packetizer and depacketizer.
