//! `corecast-client`'s command line: its subcommands and their arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "corecast reference client")]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Mint a join token with the development key (or --key-hex). For tests and demos only.
    Token {
        /// Call id (UUID).
        #[arg(long)]
        call: String,
        /// Participant id.
        #[arg(long)]
        participant: u64,
        /// publisher, subscriber or mixer.
        #[arg(long, default_value = "publisher")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 60)]
        ttl: u64,
        /// Signing key seed, 64 hex digits (default: the development key).
        #[arg(long, env = "CORECAST_SIGNING_KEY", allow_hyphen_values = true)]
        key_hex: Option<String>,
    },
    /// Create an account (auth service). Prints the user id.
    Register {
        /// Auth service URL.
        #[arg(long, env = "CORECAST_AUTH_URL", default_value = "http://127.0.0.1:8081")]
        auth: String,
        /// Login (≤ 20 characters).
        #[arg(long)]
        login: String,
        /// Password (8..=128 characters).
        #[arg(long, env = "CORECAST_PASSWORD", hide_env_values = true, allow_hyphen_values = true)]
        password: String,
        /// Email (default: LOGIN@example.com).
        #[arg(long)]
        email: Option<String>,
        /// Display name (default: the login).
        #[arg(long)]
        name: Option<String>,
    },
    /// Log in (auth service). Prints the session token. With --register, creates the account first if needed.
    Login {
        /// Auth service URL.
        #[arg(long, env = "CORECAST_AUTH_URL", default_value = "http://127.0.0.1:8081")]
        auth: String,
        /// Login.
        #[arg(long)]
        login: String,
        /// Password.
        #[arg(long, env = "CORECAST_PASSWORD", hide_env_values = true, allow_hyphen_values = true)]
        password: String,
        /// Register first (an existing account is fine).
        #[arg(long)]
        register: bool,
    },
    /// Start a call (calls service). Prints the call id.
    Start {
        /// Calls service URL.
        #[arg(long, env = "CORECAST_CALLS_URL", default_value = "http://127.0.0.1:8082")]
        calls: String,
        /// Session token from `login`.
        #[arg(long, env = "CORECAST_SESSION", allow_hyphen_values = true)]
        session: String,
    },
    /// End a call you own (calls service).
    End {
        /// Calls service URL.
        #[arg(long, env = "CORECAST_CALLS_URL", default_value = "http://127.0.0.1:8082")]
        calls: String,
        /// Session token.
        #[arg(long, env = "CORECAST_SESSION", allow_hyphen_values = true)]
        session: String,
        /// Call id.
        #[arg(long)]
        call: String,
    },
    /// Join a call and send/receive synthetic media, then print a report.
    /// Either with --router and --token, or through the calls service with
    /// --calls, --session and --call.
    Join {
        /// Router address (with --token).
        #[arg(long, requires = "token")]
        router: Option<SocketAddr>,
        /// Join token (base64url), as the calls service returns it.
        #[arg(long, requires = "router", allow_hyphen_values = true)]
        token: Option<String>,
        /// The token's join key (base64url), as the calls service returns it
        /// beside the token. Without it (a token from `mint`), the key is
        /// derived from --router-secret, else from the public development secret.
        #[arg(long, requires = "token", allow_hyphen_values = true)]
        join_key: Option<String>,
        /// The router secret to derive a minted token's join key from.
        #[arg(long, env = "CORECAST_ROUTER_SECRET", hide_env_values = true, requires = "token")]
        router_secret: Option<String>,
        /// Calls service URL (with --session and --call).
        #[arg(long, env = "CORECAST_CALLS_URL", conflicts_with = "token")]
        calls: Option<String>,
        /// Session token from `login`.
        #[arg(long, env = "CORECAST_SESSION", allow_hyphen_values = true)]
        session: Option<String>,
        /// Call id.
        #[arg(long)]
        call: Option<String>,
        /// Join as `subscriber` (receive only: declares no SSRC, sends nothing,
        /// verifies what it receives) instead of publisher. With --calls; a
        /// --token carries its own role.
        #[arg(long)]
        role: Option<String>,
        /// Seconds to send.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Video frames per second (0: audio only).
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Packets per video frame.
        #[arg(long, default_value_t = 4)]
        packets_per_frame: u16,
        /// RFC 6464 level of the audio, dBov (0 loudest ..= 127 silence): the
        /// router lets SD receivers hear only the loudest few speakers.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(0..=127))]
        audio_level: u8,
        /// Receive the SD composite instead of every stream.
        #[arg(long)]
        sd: bool,
        /// Last-N: receive only the video of the call's N most active
        /// speakers (the router ranks them by their audio levels and tells
        /// this client who is on the stage, the dominant speaker first).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..))]
        last_n: Option<u8>,
        /// Requested size: no video taller than this many pixels where a
        /// publisher sends a smaller layer (simulcast or SVC), e.g. the
        /// height the video is shown at.
        #[arg(long, value_parser = clap::value_parser!(u16).range(16..=4320))]
        max_height: Option<u16>,
        /// Send real AV1 video: a moving test pattern in this participant's colour.
        #[arg(long)]
        av1: bool,
        /// Size of the AV1 test pattern, WIDTHxHEIGHT.
        #[arg(long, default_value = "640x360")]
        av1_size: String,
        /// Send the AV1 frames of this IVF file (looped) instead.
        #[arg(long, conflicts_with = "av1")]
        ivf: Option<PathBuf>,
        /// Save every AV1 stream received as DIR/ssrc-XXXXXXXX.ivf (with --av1 or
        /// --ivf the default is a temporary directory).
        #[arg(long)]
        save_ivf: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish over WebRTC through the calls service's WHIP endpoint
    /// (`POST {calls}/v1/calls/{id}/whip`): SDP offer, ICE, DTLS-SRTP, then
    /// paced synthetic Opus and AV1 packets.
    Whip {
        #[command(flatten)]
        leg: WebRtcArgs,
        /// Video frames per second (0: audio only).
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Packets per video frame.
        #[arg(long, default_value_t = 4)]
        packets_per_frame: u16,
        /// Video payload bytes per packet.
        #[arg(long, default_value_t = 1000)]
        packet_size: usize,
    },
    /// Receive one participant over WebRTC through the calls service's WHEP
    /// endpoint (`POST {calls}/v1/calls/{id}/whep?participant=<id>`) and
    /// verify every payload after decryption.
    Whep {
        #[command(flatten)]
        leg: WebRtcArgs,
        /// The participant to receive (a WHIP publisher's `X-Participant-Id`).
        #[arg(long)]
        participant: u64,
    },
}

/// What `whip` and `whep` share.
#[derive(Debug, clap::Args)]
pub(crate) struct WebRtcArgs {
    /// Calls service URL.
    #[arg(long, env = "CORECAST_CALLS_URL", default_value = "http://127.0.0.1:8082")]
    pub(crate) calls: String,
    /// Session token from `login`.
    #[arg(long, env = "CORECAST_SESSION", allow_hyphen_values = true)]
    pub(crate) session: String,
    /// Call id.
    #[arg(long)]
    pub(crate) call: String,
    /// Seconds to send or receive.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// SRTP profiles to offer in DTLS, best first (default: all, as a
    /// browser; the router prefers aes128gcm): aes128gcm, aes256gcm, aescm.
    #[arg(long, value_delimiter = ',', value_parser = parse_srtp_profile)]
    pub(crate) srtp_profile: Vec<corecast_proto::srtp::SrtpProfile>,
}

fn parse_srtp_profile(s: &str) -> Result<corecast_proto::srtp::SrtpProfile, String> {
    corecast_proto::srtp::SrtpProfile::from_name(s)
        .ok_or_else(|| format!("unknown SRTP profile {s:?} (aes128gcm, aes256gcm or aescm)"))
}
