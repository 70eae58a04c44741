//! `corecast-client`: join a call and send/verify synthetic media, or mint a
//! development token.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use corecast_client::{Client, MediaPlan};
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};

#[derive(Debug, Parser)]
#[command(version, about = "corecast reference client")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
        #[arg(long, env = "CORECAST_SIGNING_KEY")]
        key_hex: Option<String>,
    },
    /// Join a call and send/receive synthetic media, then print a report.
    Join {
        /// Router address.
        #[arg(long)]
        router: SocketAddr,
        /// Join token (base64url), as the calls service returns it.
        #[arg(long)]
        token: String,
        /// Seconds to send.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Video frames per second (0: audio only).
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Packets per video frame.
        #[arg(long, default_value_t = 4)]
        packets_per_frame: u16,
        /// Receive the SD composite instead of every stream.
        #[arg(long)]
        sd: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.cmd {
        Cmd::Token { call, participant, role, ttl, key_hex } => {
            let key = match key_hex {
                Some(h) => token::signing_key_from_hex(&h).context("key must be 64 hex digits")?,
                None => token::dev_signing_key(),
            };
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
            let claims = Claims {
                call_id: CallId::parse(&call).context("call must be a UUID")?,
                participant_id: ParticipantId(participant),
                role: Role::from_name(&role).context("role is publisher, subscriber or mixer")?,
                expires_at_ms: now_ms + ttl * 1000,
            };
            println!("{}", token::sign_text(&key, &claims));
        }
        Cmd::Join { router, token: text, seconds, fps, packets_per_frame, sd, json } => {
            let raw = token::decode_text(&text).context("token is not base64url")?;
            let claims = token::peek(&raw).context("token is malformed")?;
            let quality = if sd { Quality::Sd } else { Quality::Hd };
            let client = Client::join(router, &raw, claims.participant_id.0, quality)?;
            eprintln!("joined {} as participant {} via {}", claims.call_id, client.participant(), client.router());
            let rx = client.start_receiving(false);
            let plan = MediaPlan {
                video_fps: fps,
                video_packets_per_frame: packets_per_frame,
                duration: Duration::from_secs(seconds),
                audio: claims.role != Role::Subscriber,
                ..Default::default()
            };
            let sent = if claims.role == Role::Subscriber {
                std::thread::sleep(plan.duration);
                Default::default()
            } else {
                client.send_media(&plan, false)
            };
            std::thread::sleep(Duration::from_millis(300));
            let _ = client.leave();
            let rep = rx.finish();
            if json {
                let v = serde_json::json!({ "participant": client.participant(), "sent": sent.sent, "report": rep });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "sent {}  received {} (unique {}, dup {}, reordered {}, corrupt {})  latency p50 {} us p99 {} us",
                    sent.sent,
                    rep.received,
                    rep.unique,
                    rep.duplicates,
                    rep.reordered,
                    rep.corrupt,
                    rep.latency.p50_us,
                    rep.latency.p99_us
                );
                for (sender, n) in &rep.per_sender {
                    println!("  from participant {sender}: {n} packets");
                }
            }
        }
    }
    Ok(())
}
