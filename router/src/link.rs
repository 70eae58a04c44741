//! The router's link to the calls service.
//!
//! - Every `heartbeat` the router registers itself: `POST {calls}/v1/routers`
//!   with `{id, address, workers, cores, load, admin, region, reserve}`. The answer lists the
//!   calls (and their participants) the calls service believes live on this
//!   router; the router drops anything else, so a router that restarted, or
//!   missed an end-of-call, converges on what the calls service holds. A listed
//!   call this router had ended (it moved away and back) admits its tokens again.
//! - Fencing after a partition: an answer with `"fenced": true` says the calls
//!   service had this router as not live (declared dead after its heartbeats
//!   stopped reaching it, or new): its calls were moved, so the router ends
//!   every call it holds that is not listed, its shares of calls homed on other
//!   routers too, and the participants, told the call ended, re-join through
//!   calls on the call's router now.
//! - Participants that leave or time out are reported in batches:
//!   `POST {calls}/v1/routers/{id}/events` with
//!   `{"events":[{"type":"left"|"timeout"|"removed","call_id","participant_id"}]}`,
//!   retried until the calls service takes them, so Tarantool keeps no ghosts.
//!
//! Both carry `Authorization: Bearer <router secret>`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use corecast_core::{Command, Event, LeaveReason};
use corecast_proto::token::{CallId, ParticipantId, Role};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::server::{RouterServer, ServerEvent};

/// Where and how to reach the calls service.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Base URL of the calls service, e.g. `http://127.0.0.1:8082`.
    pub calls_url: String,
    /// This router's id.
    pub router_id: String,
    /// The region it serves (empty: none); calls instances place calls on routers of theirs.
    pub region: String,
    /// A reserve router: calls places calls on it only while the regular pool is loaded.
    pub reserve: bool,
    /// Shared secret.
    pub secret: Option<String>,
    /// URL of this router's admin API, sent at registration.
    pub admin_url: String,
    /// Registration / heartbeat interval.
    pub heartbeat: Duration,
}

/// Most undelivered events kept while the calls service is unreachable.
const MAX_PENDING: usize = 100_000;

/// Runs the link until the event channel closes.
pub async fn run(cfg: LinkConfig, server: Arc<RouterServer>, mut events: UnboundedReceiver<ServerEvent>) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; link to calls disabled");
            return;
        }
    };
    let mut pending: VecDeque<serde_json::Value> = VecDeque::new();
    let mut tick = tokio::time::interval(cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                register(&cfg, &http, &server).await;
                flush(&cfg, &http, &mut pending).await;
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                if let Some(v) = event_json(&ev.event) {
                    if pending.len() >= MAX_PENDING {
                        pending.pop_front();
                        tracing::warn!("calls service unreachable: oldest router event dropped");
                    }
                    pending.push_back(v);
                }
                // Batch what else is already waiting, then send.
                while let Ok(ev) = events.try_recv() {
                    if let Some(v) = event_json(&ev.event) {
                        pending.push_back(v);
                    }
                }
                flush(&cfg, &http, &mut pending).await;
            }
        }
    }
}

fn event_json(e: &Event) -> Option<serde_json::Value> {
    match e {
        Event::ParticipantLeft { call, participant, reason } => {
            let ty = match reason {
                LeaveReason::Left => "left",
                LeaveReason::Timeout => "timeout",
                LeaveReason::Removed => "removed",
                // The calls service ended the call itself.
                LeaveReason::CallEnded => return None,
            };
            Some(json!({ "type": ty, "call_id": call.to_string(), "participant_id": participant.0 }))
        }
        // The call's loudest speaker changed (held with hysteresis): calls tells browsers.
        Event::DominantSpeaker { call, participant } => {
            Some(json!({ "type": "dominant_speaker", "call_id": call.to_string(), "participant_id": participant.0 }))
        }
        _ => None,
    }
}

fn auth(rb: reqwest::RequestBuilder, secret: &Option<String>) -> reqwest::RequestBuilder {
    match secret {
        Some(s) => rb.bearer_auth(s),
        None => rb,
    }
}

async fn flush(cfg: &LinkConfig, http: &reqwest::Client, pending: &mut VecDeque<serde_json::Value>) {
    while !pending.is_empty() {
        let n = pending.len().min(500);
        let batch: Vec<_> = pending.iter().take(n).cloned().collect();
        let url = format!("{}/v1/routers/{}/events", cfg.calls_url.trim_end_matches('/'), cfg.router_id);
        match auth(http.post(&url), &cfg.secret).json(&json!({ "events": batch })).send().await {
            Ok(r) if r.status().is_success() => {
                pending.drain(..n);
            }
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 401 | 403 | 408 | 429) => {
                // The calls service will never accept this batch as it is:
                // drop it rather than block every later event behind it.
                tracing::error!(status = %r.status(), events = n, "calls service rejected router events; dropping them");
                pending.drain(..n);
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "calls service refused router events; will retry");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "calls service unreachable; will retry router events");
                return;
            }
        }
    }
}

async fn register(cfg: &LinkConfig, http: &reqwest::Client, server: &Arc<RouterServer>) {
    let s = server.clone();
    let (participants, workers) = tokio::task::spawn_blocking(move || {
        let st = s.stats();
        (st.iter().map(|w| w.participants).sum::<usize>(), st.len())
    })
    .await
    .unwrap_or((0, 1));
    let body = json!({
        "id": cfg.router_id,
        "address": server.addresses()[0].to_string(),
        "workers": server.addresses().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "cores": workers,
        "load": participants as f64 / (workers.max(1) as f64 * 10_000.0),
        "participants": participants,
        "admin": cfg.admin_url,
        "region": cfg.region,
        "reserve": cfg.reserve,
    });
    let url = format!("{}/v1/routers", cfg.calls_url.trim_end_matches('/'));
    let resp = match auth(http.post(&url), &cfg.secret).json(&body).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return tracing::warn!(status = %r.status(), "router registration refused"),
        Err(e) => return tracing::debug!(error = %e, "calls service unreachable for registration"),
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else { return };
    let fenced = v.get("fenced").and_then(|f| f.as_bool()).unwrap_or(false);
    if let Some(list) = v.get("calls").and_then(|c| c.as_array()) {
        let s = server.clone();
        let list = list.clone();
        let _ = tokio::task::spawn_blocking(move || resync(&s, &list, fenced)).await;
    }
}

/// Drops every call and participant the calls service does not know (but
/// not the calls' mixers, which it does not list), and lets the listed calls
/// it does not hold be joined (again). `fenced`: calls had this router as not
/// live, so shares of calls homed elsewhere that calls does not list end too.
pub fn resync(server: &RouterServer, known: &[serde_json::Value], fenced: bool) {
    let mut want: HashMap<CallId, HashSet<u64>> = HashMap::new();
    for c in known {
        let Some(id) = c.get("call_id").and_then(|v| v.as_str()).and_then(|s| CallId::parse(s).ok()) else {
            continue;
        };
        let ps = c
            .get("participants")
            .and_then(|p| p.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        want.insert(id, ps);
    }
    let calls = server.snapshot();
    // A call placed here that this router does not hold may be one it ended (fenced, or
    // drained) and that came back: its new tokens admit again.
    let held: HashSet<CallId> = calls.iter().map(|c| c.call).collect();
    for id in want.keys().filter(|id| !held.contains(id)) {
        server.command(Command::ReopenCall(*id));
    }
    let stale = calls.iter().filter(|c| !want.contains_key(&c.call)).count();
    if fenced && stale > 0 {
        tracing::warn!(calls = stale, "fenced: calls had this router as dead; ending the calls moved away");
    }
    // A leaf's share of a call whose home is another router (cascading): the
    // calls service lists the call for its home only; the share ends with the
    // home's (its link closes) or with its last participant.
    let leaf: HashSet<CallId> =
        calls.iter().filter(|c| c.links.iter().any(|(_, uplink)| *uplink)).map(|c| c.call).collect();
    for call in calls {
        if !fenced && leaf.contains(&call.call) && !want.contains_key(&call.call) {
            continue;
        }
        match want.get(&call.call) {
            None => {
                tracing::info!(call = %call.call, "re-sync: call unknown to the calls service, ending it");
                server.end_call(call.call);
            }
            Some(ps) => {
                for p in call.participants {
                    // Mixers (the codec pool) are infrastructure: calls issues their
                    // tokens but never lists them among the participants.
                    if p.role != Role::Mixer && !ps.contains(&p.participant.0) {
                        tracing::info!(call = %call.call, participant = p.participant.0, "re-sync: removing");
                        server.command(Command::RemoveParticipant(call.call, ParticipantId(p.participant.0)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_and_the_dominant_speaker_reach_calls_and_nothing_else() {
        let call = CallId([7; 16]);
        let ev = |e: Event| event_json(&e).map(|v| (v["type"].clone(), v["participant_id"].clone()));
        let left = Event::ParticipantLeft { call, participant: ParticipantId(3), reason: LeaveReason::Timeout };
        assert_eq!(ev(left), Some((json!("timeout"), json!(3))));
        let ended = Event::ParticipantLeft { call, participant: ParticipantId(3), reason: LeaveReason::CallEnded };
        assert_eq!(ev(ended), None, "calls ended the call itself");
        let d = event_json(&Event::DominantSpeaker { call, participant: ParticipantId(5) }).unwrap();
        assert_eq!(d, json!({"type": "dominant_speaker", "call_id": call.to_string(), "participant_id": 5}));
        assert_eq!(ev(Event::ActiveSpeakers { call, ssrcs: vec![] }), None);
    }
}
