//! The churn: `calls` call slots run side by side, each round after round:
//! one of its users logs in anew, its owner starts a call at the calls
//! service, its participants join one after another (the calls service's
//! join, then the router's over UDP with the reference client), send modest
//! media for a few seconds and receive each other's (every packet verified),
//! leave one after another (half with the router's leave message and the
//! calls service's leave, half with the calls service's leave alone, which
//! has calls remove them from the router), and the owner ends the call.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use corecast_client::{Client, ControlClient, ControlError, JoinGrant, MediaPlan};
use corecast_proto::session::Quality;
use corecast_proto::token;
use rand::Rng as _;
use serde::Serialize;

/// The users' password.
const PASSWORD: &str = "soak-password-1";

/// What each call slot does.
#[derive(Debug, Clone)]
pub struct ChurnPlan {
    /// Calls side by side.
    pub calls: usize,
    /// Participants per call.
    pub participants: usize,
    /// Video frames per second per publisher (one packet a frame), beside 50 audio packets/s.
    pub video_fps: u32,
    /// Video packet size, bytes.
    pub video_packet_size: usize,
    /// How long a participant stays, at least and at most (drawn per join).
    pub stay: (Duration, Duration),
    /// Between two participants' joins (and leaves) in a call.
    pub stagger: Duration,
    /// No round starts after this.
    pub until: Instant,
}

/// What the churn did (every field a count).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Rounds (calls) started.
    pub calls_started: u64,
    /// Calls ended by their owner.
    pub calls_ended: u64,
    /// Logins (beside the pool's first).
    pub logins: u64,
    /// Joins the calls service granted.
    pub http_joins: u64,
    /// Joins the router admitted.
    pub native_joins: u64,
    /// Leave messages sent to the router.
    pub native_leaves: u64,
    /// Leaves at the calls service.
    pub http_leaves: u64,
    /// ... of them answered "not in the call": the router's report of the
    /// participant's leave got there first (not an error).
    pub http_leaves_gone: u64,
    /// Media packets sent.
    pub sent: u64,
    /// Distinct verified packets received.
    pub received: u64,
    /// Packets that failed verification.
    pub corrupt: u64,
    /// Failed operations (see `errors` in the report).
    pub errors: u64,
}

/// The churn's shared state.
#[derive(Debug, Default)]
pub struct Churn {
    tally: Mutex<Tally>,
    errors: Mutex<Vec<String>>,
}

/// How many failures are kept word for word.
const KEEP_ERRORS: usize = 20;

impl Churn {
    fn add(&self, f: impl FnOnce(&mut Tally)) {
        if let Ok(mut t) = self.tally.lock() {
            f(&mut t);
        }
    }

    fn fail(&self, what: String) {
        self.add(|t| t.errors += 1);
        if let Ok(mut e) = self.errors.lock() {
            if e.len() < KEEP_ERRORS {
                e.push(what);
            }
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The first failures, word for word.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// Where the system is.
#[derive(Debug, Clone)]
pub struct Urls {
    /// Auth service.
    pub auth: String,
    /// Calls service.
    pub calls: String,
}

/// Registers (or reuses, on a store that has them) `n` users; returns their logins.
pub fn register_pool(ctl: &ControlClient, auth: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let run: u32 = rand::random();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let login = format!("soak{run:08x}u{i}");
        match ctl.register(auth, &login, &format!("{login}@example.com"), &login, PASSWORD) {
            Ok(_) | Err(ControlError::Status { status: 409, .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("registering {login}")),
        }
        v.push(login);
    }
    Ok(v)
}

/// Logs `login` in; returns a session token.
pub fn login(ctl: &ControlClient, auth: &str, login: &str) -> Result<String, ControlError> {
    ctl.login(auth, login, PASSWORD)
}

/// Waits (at most `limit`) until calls places new calls on `router`: the
/// router has registered with calls. The probe calls are ended.
pub fn wait_for_placement(
    ctl: &ControlClient,
    calls: &str,
    session: &str,
    router: SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    let end = Instant::now() + limit;
    loop {
        let call = ctl.start_call(calls, session)?;
        let placed = ctl.get_call(calls, session, &call)?;
        ctl.end_call(calls, session, &call)?;
        if placed.get("router").and_then(|r| r.as_str()) == Some(&router.to_string()) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < end, "calls did not place a call on the router within {limit:?}: {placed}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Joins the router with what the calls service granted (the one call site
/// of the native join: see `corecast-client join`).
fn join_native(grant: &JoinGrant) -> anyhow::Result<Client> {
    let raw = token::decode_text(&grant.token).context("token is not base64url")?;
    Ok(Client::join(grant.router, &raw, &grant.key, grant.participant_id, Quality::Hd)?)
}

/// Runs the churn until `plan.until` (or `stop`); the call slots' users are
/// `pool` in slices of `plan.participants`.
pub fn run(plan: &ChurnPlan, urls: &Urls, pool: &[String], churn: &Churn, stop: &AtomicBool) {
    std::thread::scope(|s| {
        for (slot, users) in pool.chunks(plan.participants).take(plan.calls).enumerate() {
            s.spawn(move || {
                // The slots start spread over one stagger each, not all at once.
                std::thread::sleep(plan.stagger * slot as u32);
                call_slot(plan, urls, users, churn, stop);
            });
        }
    });
}

/// One call slot: rounds of start, joins, media, leaves, end.
fn call_slot(plan: &ChurnPlan, urls: &Urls, users: &[String], churn: &Churn, stop: &AtomicBool) {
    let ctl = ControlClient::new();
    let mut sessions = Vec::with_capacity(users.len());
    for u in users {
        match login(&ctl, &urls.auth, u) {
            Ok(s) => sessions.push(s),
            Err(e) => return churn.fail(format!("login of {u}: {e}")),
        }
    }
    let mut round = 0usize;
    while Instant::now() + plan.stay.0 < plan.until && !stop.load(Ordering::Relaxed) {
        // A fresh session for one user a round, in turn.
        let k = round % users.len();
        match login(&ctl, &urls.auth, &users[k]) {
            Ok(s) => {
                sessions[k] = s;
                churn.add(|t| t.logins += 1);
            }
            Err(e) => churn.fail(format!("login of {}: {e}", users[k])),
        }
        round += 1;
        let call = match ctl.start_call(&urls.calls, &sessions[0]) {
            Ok(c) => c,
            Err(e) => {
                churn.fail(format!("start of a call: {e}"));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        churn.add(|t| t.calls_started += 1);
        std::thread::scope(|s| {
            for (i, session) in sessions.iter().enumerate() {
                let call = call.as_str();
                s.spawn(move || {
                    std::thread::sleep(plan.stagger * i as u32);
                    participant(plan, urls, session, call, i, churn);
                });
            }
        });
        match ctl.end_call(&urls.calls, &sessions[0], &call) {
            Ok(()) => churn.add(|t| t.calls_ended += 1),
            Err(e) => churn.fail(format!("end of call {call}: {e}")),
        }
        std::thread::sleep(Duration::from_millis(rand::thread_rng().gen_range(100..400)));
    }
}

/// One participant's stay in `call`: join, media, leave.
fn participant(plan: &ChurnPlan, urls: &Urls, session: &str, call: &str, i: usize, churn: &Churn) {
    let ctl = ControlClient::new();
    let grant = match ctl.join_call(&urls.calls, session, call, None) {
        Ok(g) => g,
        Err(e) => return churn.fail(format!("join of call {call} at calls: {e}")),
    };
    churn.add(|t| t.http_joins += 1);
    let client = match join_native(&grant) {
        Ok(c) => c,
        Err(e) => {
            churn.fail(format!("join of call {call} at the router: {e:#}"));
            let _ = ctl.leave_call(&urls.calls, session, call);
            return;
        }
    };
    churn.add(|t| t.native_joins += 1);
    let receiver = client.start_receiving(false);
    let (lo, hi) = plan.stay;
    let stay = if hi > lo { rand::thread_rng().gen_range(lo..hi) } else { lo };
    let media = MediaPlan {
        audio: true,
        video_fps: plan.video_fps,
        video_packets_per_frame: 1,
        video_packet_size: plan.video_packet_size,
        duration: stay.min(plan.until.saturating_duration_since(Instant::now()) + plan.stay.0),
        ..Default::default()
    };
    let sent = client.send_media(&media, false);
    // What is in flight arrives within a few ms on loopback.
    std::thread::sleep(Duration::from_millis(100));
    if i.is_multiple_of(2) {
        match client.leave() {
            Ok(()) => churn.add(|t| t.native_leaves += 1),
            Err(e) => churn.fail(format!("leave message to the router: {e}")),
        }
    }
    match ctl.leave_call(&urls.calls, session, call) {
        Ok(()) => churn.add(|t| t.http_leaves += 1),
        Err(ControlError::Status { status: 404 | 409 | 410, .. }) => churn.add(|t| {
            t.http_leaves += 1;
            t.http_leaves_gone += 1;
        }),
        Err(e) => churn.fail(format!("leave of call {call} at calls: {e}")),
    }
    let got = receiver.finish();
    churn.add(|t| {
        t.sent += sent.sent;
        t.received += got.unique;
        t.corrupt += got.corrupt;
    });
}
