//! A participant that follows its call across routers (#16 items 3 and 4).
//!
//! It joins through the calls service, sends and receives like [`Client`], and watches its
//! router: when nothing has come from it for [`FollowConfig::silence`] (media, RTCP or a
//! session message; counted only once something has come on this leg), or the router says the
//! call ended, it asks calls again (`POST /v1/calls/{id}/rejoin`, the same participant) and
//! joins the router it is given: the call's new router after a failover or a drain deadline.
//! While calls still names the silent router (it has not yet declared it dead), it asks again
//! every 200 ms, for at most [`FollowConfig::same_router_patience`], then joins it anyway (the
//! silence was the network's). A 404 (no such participant: it was dropped after a long
//! absence, e.g. its router was cut off from calls for longer than calls' failover grace and
//! kept serving it) makes it join the call anew, as a new participant; a 404 there (the call
//! ended) or a 403 ends the run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corecast_proto::session::Quality;
use corecast_proto::token;

use crate::client::{Client, ClientError, MediaPlan, ReceiveHandle};
use crate::control::{ControlClient, ControlError, JoinGrant};
use crate::report::{Latency, RecvReport};

/// Where the participant joins: the calls service, a session and a call.
#[derive(Debug, Clone)]
pub struct Via {
    /// Calls service base URL.
    pub calls: String,
    /// Session token.
    pub session: String,
    /// Call id.
    pub call: String,
}

/// How it follows.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// What to send (a subscriber sends nothing) and for how long in all.
    pub plan: MediaPlan,
    /// HD or SD.
    pub quality: Quality,
    /// `publisher` (default) or `subscriber`.
    pub role: Option<String>,
    /// Silence from the router that counts as the router being gone.
    pub silence: Duration,
    /// How long to keep asking while calls still names the silent router.
    pub same_router_patience: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            plan: MediaPlan::default(),
            quality: Quality::Hd,
            role: None,
            silence: Duration::from_secs(1),
            same_router_patience: Duration::from_secs(5),
        }
    }
}

/// Live figures, readable while [`follow`] runs (tests watch them).
#[derive(Debug, Default)]
pub struct FollowProgress {
    /// The participant id (0 until the first join; a new one if it joined anew).
    pub participant: AtomicU64,
    /// Verified packets received in all.
    pub received: AtomicU64,
    /// Verified packets received on the current router.
    pub leg_received: AtomicU64,
    /// Re-joins so far.
    pub rejoins: AtomicU32,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct FollowReport {
    /// The participant id (the last one, if it joined anew).
    pub participant: u64,
    /// Packets sent on every router.
    pub sent: u64,
    /// What it received on every router.
    pub recv: RecvReport,
    /// Re-joins (a new router, or the same one after the patience).
    pub rejoins: u32,
    /// Per re-join, milliseconds from noticing the router gone to being admitted again.
    pub rejoin_ms: Vec<u64>,
    /// The routers it was on, in order.
    pub routers: Vec<SocketAddr>,
    /// The run ended early: the call ended or the participant was dropped.
    pub ended: bool,
}

impl FollowReport {
    /// The report as JSON (`corecast-client join --json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "participant": self.participant, "sent": self.sent, "report": self.recv,
            "rejoins": self.rejoins, "rejoin_ms": self.rejoin_ms, "ended": self.ended,
            "routers": self.routers.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        })
    }

    /// The report as lines of text.
    pub fn text(&self) -> String {
        let (who, r) = (format!("participant {}", self.participant), &self.recv);
        let mut out = format!(
            "{who}: sent {}  received {} (unique {}, dup {}, reordered {}, corrupt {})  latency p50 {} us p99 {} us\n",
            self.sent, r.received, r.unique, r.duplicates, r.reordered, r.corrupt, r.latency.p50_us, r.latency.p99_us
        );
        let routers: Vec<String> = self.routers.iter().map(|r| r.to_string()).collect();
        out +=
            &format!("{who}:   re-joins {} {:?} ms; routers {}\n", self.rejoins, self.rejoin_ms, routers.join(" -> "));
        for (sender, n) in &r.per_sender {
            out += &format!("{who}:   from participant {sender}: {n} packets\n");
        }
        out
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The first join through calls failed.
    #[error("join through calls: {0}")]
    Control(#[from] ControlError),
    /// The first join on the router failed.
    #[error("join on the router: {0}")]
    Router(#[from] ClientError),
    /// The grant's token is malformed.
    #[error("the calls service's token is malformed")]
    Token,
}

fn join_router(g: &JoinGrant, quality: Quality) -> Result<Client, FollowError> {
    let raw = token::decode_text(&g.token).map_err(|_| FollowError::Token)?;
    Ok(Client::join(g.router, &raw, &g.key, g.participant_id, quality)?)
}

/// Adds one leg's report to the run's.
fn merge(all: &mut RecvReport, leg: RecvReport) {
    all.datagrams += leg.datagrams;
    all.received += leg.received;
    all.unique += leg.unique;
    all.duplicates += leg.duplicates;
    all.reordered += leg.reordered;
    all.corrupt += leg.corrupt;
    all.rtcp += leg.rtcp;
    all.session += leg.session;
    all.call_ended = leg.call_ended;
    if !leg.speakers.is_empty() {
        all.speakers = leg.speakers;
    }
    all.speaker_updates += leg.speaker_updates;
    for (k, v) in leg.per_sender {
        *all.per_sender.entry(k).or_default() += v;
    }
    all.samples.extend(leg.samples);
    let mut s = all.samples.clone();
    all.latency = Latency::from_samples(&mut s);
}

/// Whether the leg's router is gone: silent for `silence` after having sent something, or it
/// said the call ended.
fn gone(rx: &ReceiveHandle, silence: Duration) -> bool {
    rx.call_ended() || rx.silent_for().is_some_and(|d| d >= silence)
}

/// Joins `via`'s call and takes part until the plan's duration is over, following the call to
/// another router when its router goes silent or ends the call; leaves at the end.
pub fn follow(
    ctl: &ControlClient,
    via: &Via,
    cfg: &FollowConfig,
    progress: &FollowProgress,
) -> Result<FollowReport, FollowError> {
    let end = Instant::now() + cfg.plan.duration;
    let mut grant = ctl.join_call(&via.calls, &via.session, &via.call, cfg.role.as_deref())?;
    let mut client = join_router(&grant, cfg.quality)?;
    let mut rep = FollowReport { participant: grant.participant_id, ..Default::default() };
    progress.participant.store(grant.participant_id, Ordering::Relaxed);
    loop {
        rep.routers.push(client.router());
        let rx = client.start_receiving(false);
        let base = rep.recv.received;
        let go_on = || {
            let n = rx.received();
            progress.leg_received.store(n, Ordering::Relaxed);
            progress.received.store(base + n, Ordering::Relaxed);
            Instant::now() < end && !gone(&rx, cfg.silence)
        };
        let plan = MediaPlan { duration: end.saturating_duration_since(Instant::now()), ..cfg.plan.clone() };
        if client.sends() {
            rep.sent += client.send_media_while(&plan, false, &go_on).sent;
        } else {
            while go_on() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        merge(&mut rep.recv, rx.finish());
        if Instant::now() >= end {
            break;
        }
        // The router is gone (or ended the call): ask calls where the call is now.
        let noticed = Instant::now();
        let silent = client.router();
        let mut pid = grant.participant_id;
        let next = loop {
            if Instant::now() >= end {
                break None;
            }
            match ctl.rejoin_call(&via.calls, &via.session, &via.call, pid) {
                Ok(g) if g.router != silent || noticed.elapsed() >= cfg.same_router_patience => {
                    match join_router(&g, cfg.quality) {
                        Ok(c) => break Some((g, c)),
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                Err(ControlError::Status { status: 404, .. }) => {
                    // Dropped from the call (or the call ended): join it anew.
                    match ctl.join_call(&via.calls, &via.session, &via.call, cfg.role.as_deref()) {
                        Ok(g) => {
                            pid = g.participant_id;
                            rep.participant = pid;
                            progress.participant.store(pid, Ordering::Relaxed);
                            match join_router(&g, cfg.quality) {
                                Ok(c) => break Some((g, c)),
                                Err(_) => std::thread::sleep(Duration::from_millis(200)),
                            }
                        }
                        Err(ControlError::Status { status: 403 | 404, .. }) => {
                            rep.ended = true;
                            break None;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
                Err(ControlError::Status { status: 403, .. }) => {
                    rep.ended = true;
                    break None;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        match next {
            Some((g, c)) => {
                rep.rejoins += 1;
                rep.rejoin_ms.push(noticed.elapsed().as_millis() as u64);
                progress.rejoins.fetch_add(1, Ordering::Relaxed);
                progress.leg_received.store(0, Ordering::Relaxed);
                grant = g;
                // Its streams go on where they stopped, not from new numbers.
                c.continue_sequences(&client);
                client = c;
            }
            None => return Ok(rep),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = client.leave();
    // The router may have reported the leave already (409/404): best effort.
    let _ = ctl.leave_call(&via.calls, &via.session, &via.call);
    Ok(rep)
}
