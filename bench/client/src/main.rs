//! `corecast-client`: join a call and send/verify synthetic media, or mint a
//! development token.
#![deny(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser as _;
use corecast_client::av1::Av1Source;
use corecast_client::{follow, Client, ControlClient, ControlError, FollowConfig, FollowProgress, MediaPlan, Via};
use corecast_proto::join_key::{JoinKey, JoinSecret};
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};

mod cli;
use cli::{Args, Cmd, WebRtcArgs};

/// Writes `text` (whole lines; a final newline is added if missing) to stdout
/// in one write. Clients run side by side (as in `make run`) share one
/// terminal: written piecemeal, their lines would interleave mid-line.
fn say(text: impl Into<String>) -> std::io::Result<()> {
    let mut s = text.into();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    std::io::stdout().lock().write_all(s.as_bytes())
}

/// [`say`] on stderr (errors writing it are ignored).
fn note(text: impl Into<String>) {
    let mut s = text.into();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note(format!("Error: {e:?}"));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
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
            // Never begins with `-`: the first character encodes the version byte (1), so it is `A`.
            say(token::sign_text(&key, &claims))?;
        }
        Cmd::Register { auth, login, password, email, name } => {
            let email = email.unwrap_or_else(|| format!("{login}@example.com"));
            let name = name.unwrap_or_else(|| login.clone());
            say(ControlClient::new().register(&auth, &login, &email, &name, &password)?.to_string())?;
        }
        Cmd::Login { auth, login, password, register } => {
            let c = ControlClient::new();
            if register {
                match c.register(&auth, &login, &format!("{login}@example.com"), &login, &password) {
                    Ok(_) | Err(ControlError::Status { status: 409, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            say(c.login(&auth, &login, &password)?)?;
        }
        Cmd::Start { calls, session } => {
            say(ControlClient::new().start_call(&calls, &session)?)?;
        }
        Cmd::End { calls, session, call } => {
            ControlClient::new().end_call(&calls, &session, &call)?;
        }
        Cmd::Join {
            router,
            token: text,
            join_key,
            router_secret,
            calls,
            session,
            call,
            role,
            seconds,
            fps,
            packets_per_frame,
            audio_level,
            sd,
            last_n,
            max_height,
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
            let plan = MediaPlan {
                video_fps: fps,
                video_packets_per_frame: packets_per_frame,
                duration: Duration::from_secs(seconds),
                audio: true,
                audio_level: Some(audio_level),
                ..Default::default()
            };
            // (Last-N, requested-size and AV1 runs keep to the router they joined.)
            let media_only = !(av1 || ivf.is_some() || save_ivf.is_some()) && last_n.is_none() && max_height.is_none();
            if let (Some((c, s, id)), None, true) = (&via_calls, router, media_only) {
                // Through calls: follow the call to another router if this one goes silent.
                let via = Via { calls: c.clone(), session: s.clone(), call: id.clone() };
                let quality = if sd { Quality::Sd } else { Quality::Hd };
                let cfg = FollowConfig { plan, quality, role: role.clone(), ..Default::default() };
                let rep = follow(&ControlClient::new(), &via, &cfg, &FollowProgress::default())?;
                say(if json { serde_json::to_string_pretty(&rep.json())? } else { rep.text() })?;
                return Ok(());
            }
            let (router, text, key) = match (&via_calls, router, text) {
                (_, Some(r), Some(t)) => (r, t, None),
                (Some((c, s, id)), _, _) => {
                    let g = ControlClient::new().join_call(c, s, id, role.as_deref())?;
                    note(format!(
                        "participant {}: the calls service granted a join on router {}",
                        g.participant_id, g.router
                    ));
                    (g.router, g.token, Some(g.key))
                }
                _ => anyhow::bail!("join needs --router and --token, or --calls, --session and --call"),
            };
            let raw = token::decode_text(&text).context("token is not base64url")?;
            let key = match (key, join_key, router_secret) {
                (Some(k), _, _) => k,
                (None, Some(k), _) => JoinKey::from_text(&k).context("--join-key")?,
                (None, None, Some(s)) => JoinSecret::new(s.as_bytes()).key_for(&raw),
                (None, None, None) => {
                    note("no --join-key: deriving it from the public development router secret");
                    JoinSecret::dev().key_for(&raw)
                }
            };
            let claims = token::peek(&raw).context("token is malformed")?;
            let quality = if sd { Quality::Sd } else { Quality::Hd };
            // A subscriber's join declares no SSRCs (the router refuses one that does) and it sends nothing.
            let client = Client::join(router, &raw, &key, claims.participant_id.0, quality)?;
            let who = format!("participant {}", client.participant());
            note(format!(
                "{who}: joined {} as {} via {}",
                claims.call_id,
                if client.sends() { "publisher" } else { "subscriber (receive only)" },
                client.router()
            ));
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
                let sent = match (&mut source, client.sends()) {
                    (Some(src), true) => client.send_av1(src, fps.max(1), Duration::from_secs(seconds), &key),
                    _ => {
                        std::thread::sleep(Duration::from_secs(seconds));
                        Default::default()
                    }
                };
                std::thread::sleep(Duration::from_millis(300));
                let _ = client.leave();
                leave_via_calls(&via_calls, &who);
                let saved = rec.finish()?;
                if json {
                    let v =
                        serde_json::json!({ "participant": client.participant(), "sent": sent.sent, "saved": saved });
                    say(serde_json::to_string_pretty(&v)?)?;
                } else {
                    let mut out = format!(
                        "{who}: sent {} AV1 packets; saved {} stream(s) in {}\n",
                        sent.sent,
                        saved.len(),
                        dir.display()
                    );
                    for s in &saved {
                        out += &format!(
                            "{who}:   ssrc {:08x}: {} frames ({} key) -> {}\n",
                            s.ssrc,
                            s.frames,
                            s.keyframes,
                            s.path.display()
                        );
                    }
                    say(out)?;
                }
                return Ok(());
            }
            let rx = client.start_receiving(false);
            if let Some(n) = last_n {
                client.set_last_n(n)?;
            }
            if let Some(h) = max_height {
                client.set_max_height(h)?;
            }
            let sent = if client.sends() {
                client.send_media(&plan, false)
            } else {
                std::thread::sleep(plan.duration);
                Default::default()
            };
            std::thread::sleep(Duration::from_millis(300));
            let _ = client.leave();
            leave_via_calls(&via_calls, &who);
            let rep = rx.finish();
            if json {
                let v = serde_json::json!({ "participant": client.participant(), "sent": sent.sent, "report": rep });
                say(serde_json::to_string_pretty(&v)?)?;
            } else {
                let mut out = format!(
                    "{who}: sent {}  received {} (unique {}, dup {}, reordered {}, corrupt {})  latency p50 {} us p99 {} us\n",
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
                    out += &format!("{who}:   from participant {sender}: {n} packets\n");
                }
                if let Some(first) = rep.speakers.first() {
                    let list: Vec<String> = rep.speakers.iter().map(|s| format!("{s:08x}")).collect();
                    out += &format!(
                        "{who}:   speakers (video SSRCs, {} updates): {}; dominant {first:08x}\n",
                        rep.speaker_updates,
                        list.join(" ")
                    );
                }
                say(out)?;
            }
        }
        Cmd::Whip { leg, fps, packets_per_frame, packet_size } => {
            run_webrtc(leg, Some((fps, packets_per_frame, packet_size)), None)?;
        }
        Cmd::Whep { leg, participant } => run_webrtc(leg, None, Some(participant))?,
    }
    Ok(())
}

/// `whip` / `whep`: offer, answer over HTTP, connect, media, report.
fn run_webrtc(leg: WebRtcArgs, publish: Option<(u32, u16, usize)>, watch: Option<u64>) -> anyhow::Result<()> {
    use corecast_client::webrtc::{http, run, PeerConfig, UdpPeer, WebRtcPeer};
    let ssrcs = (rand::random::<u32>() | 1, rand::random::<u32>() | 2);
    let mut peer = WebRtcPeer::new(PeerConfig {
        publish: publish.map(|_| ssrcs),
        cname: "corecast-client".into(),
        srtp_profiles: leg.srtp_profile.clone(),
    })?;
    let endpoint = watch.map_or(http::Endpoint::Whip, http::Endpoint::Whep);
    let url = http::url(&leg.calls, &leg.call, endpoint);
    let answer = http::post_offer(&url, &leg.session, &peer.offer())?;
    note(format!(
        "{url}: 201, participant {}, session {}",
        answer.participant_id.map_or("?".into(), |p| p.to_string()),
        answer.location.as_deref().unwrap_or("?")
    ));
    peer.accept_answer(&answer.sdp, std::time::Instant::now())?;
    let socket = std::net::UdpSocket::bind(if peer.remote_addr().is_some_and(|a| a.is_ipv6()) {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })?;
    let mut udp = UdpPeer::new(socket, peer);
    udp.connect(Duration::from_secs(10))?;
    let profile = udp.peer.profile().map(|p| format!("{p:?}")).unwrap_or_default();
    note(format!("connected to {} ({profile})", udp.peer.remote_addr().map_or("?".into(), |a| a.to_string())));
    let duration = Duration::from_secs(leg.seconds);
    let report = match publish {
        Some((fps, packets_per_frame, video_payload)) => {
            let plan = run::SendPlan { duration, fps, packets_per_frame, video_payload, ssrcs };
            let r = run::publish(&mut udp, &plan)?;
            serde_json::json!({ "participant": answer.participant_id, "profile": profile, "sent": r })
        }
        None => {
            serde_json::json!({ "participant": answer.participant_id, "received": run::receive(&mut udp, duration)? })
        }
    };
    if let Some(loc) = &answer.location {
        http::delete_session(&leg.calls, loc, &leg.session);
    }
    if leg.json {
        say(serde_json::to_string_pretty(&report)?)?;
    } else {
        say(report.to_string())?;
    }
    Ok(())
}

/// Leaves through the calls service too, when the join went through it.
fn leave_via_calls(via_calls: &Option<(String, String, String)>, who: &str) {
    if let Some((c, s, id)) = via_calls {
        // The router may have reported the leave already (409/404: nothing left to do).
        match ControlClient::new().leave_call(c, s, id) {
            Ok(()) | Err(ControlError::Status { status: 404 | 409, .. }) => {}
            Err(e) => note(format!("{who}: leaving through the calls service failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// A base64url token that begins with `-` (as 1 session token in 64 did).
    const HYPHEN: &str = "-Iq0Xv3kQ2mZ7yLwP1cR8sT4uV6aB9dE0fG5hJ_kLmN";
    const CALL: &str = "9b2f1a3e-0000-4000-8000-000000000001";

    fn parse(argv: &[&str]) -> Args {
        let mut full = vec!["corecast-client"];
        full.extend_from_slice(argv);
        Args::try_parse_from(full).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn tokens_and_secrets_may_begin_with_a_hyphen() {
        for argv in [["start", "--session", HYPHEN].as_slice(), &["start", &format!("--session={HYPHEN}")]] {
            let Cmd::Start { session, .. } = parse(argv).cmd else { panic!("{argv:?}") };
            assert_eq!(session, HYPHEN);
        }
        let Cmd::End { session, call, .. } = parse(&["end", "--session", HYPHEN, "--call", CALL]).cmd else { panic!() };
        assert_eq!((session.as_str(), call.as_str()), (HYPHEN, CALL));
        let Cmd::Join { session, call, role, .. } =
            parse(&["join", "--calls", "http://x", "--session", HYPHEN, "--call", CALL, "--role", "subscriber"]).cmd
        else {
            panic!()
        };
        assert_eq!(
            (session.as_deref(), call.as_deref(), role.as_deref()),
            (Some(HYPHEN), Some(CALL), Some("subscriber"))
        );
        let join_token = format!("-{}", &"A".repeat(130));
        for argv in [
            ["join", "--router", "127.0.0.1:40000", "--token", &join_token].as_slice(),
            &["join", "--token", &join_token, "--router", "127.0.0.1:40000"],
            &["join", &format!("--token={join_token}"), "--router=127.0.0.1:40000"],
        ] {
            let Cmd::Join { token, router, .. } = parse(argv).cmd else { panic!("{argv:?}") };
            assert_eq!(token.as_deref(), Some(join_token.as_str()));
            assert_eq!(router, Some("127.0.0.1:40000".parse().unwrap()));
        }
        for sub in ["login", "register"] {
            let args = parse(&[sub, "--login", "me", "--password", "-a-long-password"]);
            let password = match args.cmd {
                Cmd::Login { password, .. } | Cmd::Register { password, .. } => password,
                _ => panic!(),
            };
            assert_eq!(password, "-a-long-password");
        }
        let Cmd::Token { key_hex, .. } =
            parse(&["token", "--call", CALL, "--participant", "1", "--key-hex", "-00"]).cmd
        else {
            panic!()
        };
        assert_eq!(key_hex.as_deref(), Some("-00"));
    }

    #[test]
    fn minted_join_tokens_never_begin_with_a_hyphen() {
        for i in 0..200u64 {
            let claims = Claims {
                call_id: CallId(rand::random()),
                participant_id: ParticipantId(rand::random()),
                role: [Role::Publisher, Role::Subscriber, Role::Mixer][i as usize % 3],
                expires_at_ms: rand::random(),
            };
            let key = token::SigningKey::from_bytes(&rand::random());
            let t = token::sign_text(&key, &claims);
            assert!(t.starts_with('A'), "{t}");
        }
    }
}
