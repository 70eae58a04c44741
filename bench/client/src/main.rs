//! `corecast-client`: join a call and send/verify synthetic media, or mint a
//! development token.
#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use corecast_client::av1::Av1Source;
use corecast_client::{Client, ControlClient, ControlError, MediaPlan};
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
    /// Create an account (auth service). Prints the user id.
    Register {
        /// Auth service URL.
        #[arg(long, env = "CORECAST_AUTH_URL", default_value = "http://127.0.0.1:8081")]
        auth: String,
        /// Login (≤ 20 characters).
        #[arg(long)]
        login: String,
        /// Password (8..=128 characters).
        #[arg(long, env = "CORECAST_PASSWORD", hide_env_values = true)]
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
        #[arg(long, env = "CORECAST_PASSWORD", hide_env_values = true)]
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
        #[arg(long, env = "CORECAST_SESSION")]
        session: String,
    },
    /// End a call you own (calls service).
    End {
        /// Calls service URL.
        #[arg(long, env = "CORECAST_CALLS_URL", default_value = "http://127.0.0.1:8082")]
        calls: String,
        /// Session token.
        #[arg(long, env = "CORECAST_SESSION")]
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
        #[arg(long, requires = "router")]
        token: Option<String>,
        /// Calls service URL (with --session and --call).
        #[arg(long, env = "CORECAST_CALLS_URL", conflicts_with = "token")]
        calls: Option<String>,
        /// Session token from `login`.
        #[arg(long, env = "CORECAST_SESSION")]
        session: Option<String>,
        /// Call id.
        #[arg(long)]
        call: Option<String>,
        /// Join as `subscriber` (receive only) instead of publisher.
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
        Cmd::Register { auth, login, password, email, name } => {
            let email = email.unwrap_or_else(|| format!("{login}@example.com"));
            let name = name.unwrap_or_else(|| login.clone());
            println!("{}", ControlClient::new().register(&auth, &login, &email, &name, &password)?);
        }
        Cmd::Login { auth, login, password, register } => {
            let c = ControlClient::new();
            if register {
                match c.register(&auth, &login, &format!("{login}@example.com"), &login, &password) {
                    Ok(_) | Err(ControlError::Status { status: 409, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{}", c.login(&auth, &login, &password)?);
        }
        Cmd::Start { calls, session } => {
            println!("{}", ControlClient::new().start_call(&calls, &session)?);
        }
        Cmd::End { calls, session, call } => {
            ControlClient::new().end_call(&calls, &session, &call)?;
        }
        Cmd::Join {
            router,
            token: text,
            calls,
            session,
            call,
            role,
            seconds,
            fps,
            packets_per_frame,
            audio_level,
            sd,
            av1,
            av1_size,
            ivf,
            save_ivf,
            json,
        } => {
            let via_calls = match (&calls, &session, &call) {
                (Some(c), Some(s), Some(id)) => Some((c.clone(), s.clone(), id.clone())),
                _ => None,
            };
            let (router, text) = match (&via_calls, router, text) {
                (_, Some(r), Some(t)) => (r, t),
                (Some((c, s, id)), _, _) => {
                    let g = ControlClient::new().join_call(c, s, id, role.as_deref())?;
                    eprintln!("calls service granted participant {} on router {}", g.participant_id, g.router);
                    (g.router, g.token)
                }
                _ => anyhow::bail!("join needs --router and --token, or --calls, --session and --call"),
            };
            let raw = token::decode_text(&text).context("token is not base64url")?;
            let claims = token::peek(&raw).context("token is malformed")?;
            let quality = if sd { Quality::Sd } else { Quality::Hd };
            let client = Client::join(router, &raw, claims.participant_id.0, quality)?;
            eprintln!("joined {} as participant {} via {}", claims.call_id, client.participant(), client.router());
            if av1 || ivf.is_some() || save_ivf.is_some() {
                let mut source = match (&ivf, av1) {
                    (Some(path), _) => {
                        Some(Av1Source::ivf(path).with_context(|| format!("reading {}", path.display()))?)
                    }
                    (None, true) => {
                        let (w, h) = av1_size
                            .split_once('x')
                            .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
                            .context("--av1-size is WIDTHxHEIGHT")?;
                        Some(Av1Source::pattern(w, h, fps.max(1), claims.participant_id.0 as usize % 9)?)
                    }
                    _ => None,
                };
                let dir = save_ivf
                    .unwrap_or_else(|| std::env::temp_dir().join(format!("corecast-ivf-{}", client.participant())));
                let key = Arc::new(AtomicBool::new(false));
                let rec = client.start_recording_av1(&dir, key.clone())?;
                let sent = match (&mut source, claims.role != Role::Subscriber) {
                    (Some(src), true) => client.send_av1(src, fps.max(1), Duration::from_secs(seconds), &key),
                    _ => {
                        std::thread::sleep(Duration::from_secs(seconds));
                        Default::default()
                    }
                };
                std::thread::sleep(Duration::from_millis(300));
                let _ = client.leave();
                leave_via_calls(&via_calls);
                let saved = rec.finish()?;
                if json {
                    let v =
                        serde_json::json!({ "participant": client.participant(), "sent": sent.sent, "saved": saved });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("sent {} AV1 packets; saved {} stream(s) in {}", sent.sent, saved.len(), dir.display());
                    for s in &saved {
                        println!(
                            "  ssrc {:08x}: {} frames ({} key) -> {}",
                            s.ssrc,
                            s.frames,
                            s.keyframes,
                            s.path.display()
                        );
                    }
                }
                return Ok(());
            }
            let rx = client.start_receiving(false);
            let plan = MediaPlan {
                video_fps: fps,
                video_packets_per_frame: packets_per_frame,
                duration: Duration::from_secs(seconds),
                audio: claims.role != Role::Subscriber,
                audio_level: Some(audio_level),
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
            leave_via_calls(&via_calls);
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

/// Leaves through the calls service too, when the join went through it.
fn leave_via_calls(via_calls: &Option<(String, String, String)>) {
    if let Some((c, s, id)) = via_calls {
        // The router may have reported the leave already (409/404: nothing left to do).
        match ControlClient::new().leave_call(c, s, id) {
            Ok(()) | Err(ControlError::Status { status: 404 | 409, .. }) => {}
            Err(e) => eprintln!("leaving through the calls service failed: {e}"),
        }
    }
}
