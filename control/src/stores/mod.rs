//! Storage traits and their backends.
//!
//! | store | real backend | embedded backend |
//! |---|---|---|
//! | [`UserStore`] | [`pg::PgUserStore`] (PostgreSQL) | [`embedded::RedbUserStore`] (redb file) |
//! | [`SessionStore`] | [`redis::RedisSessionStore`] | [`memory::MemorySessionStore`] |
//! | [`FailureStore`] | [`redis::RedisSessionStore`] | [`memory::MemoryFailureStore`] |
//! | [`CallStore`] | [`tarantool::TarantoolCallStore`] | [`memory::MemoryCallStore`] |
//! | [`RouterStore`] | [`tarantool_routers::TarantoolRouterStore`] | [`memory_routers::MemoryRouterStore`] |
//!
//! The router registry (registrations, heartbeats, load figures, placement counts, the
//! draining flag) lives in the [`RouterStore`], not in a calls process: any number of calls
//! instances over one Tarantool see the same routers and place calls consistently.
//!
//! Backends map "server down / too slow" to [`StoreError::Unavailable`] (HTTP 503) and never
//! leave half-written state: every multi-step change is one transaction or one stored procedure.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod counted;
pub mod embedded;
pub mod memory;
pub mod memory_routers;
pub mod pg;
pub mod redis;
pub mod remote;
pub mod tarantool;
pub mod tarantool_routers;

/// Errors common to all stores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing server is unreachable or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique field (`login`, `email`) is taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// Anything else (a bug or corrupt data).
    #[error("store error: {0}")]
    Internal(String),
}

/// Default deadline for one store operation.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs a store future with [`OP_TIMEOUT`], mapping a timeout to [`StoreError::Unavailable`].
pub async fn with_timeout<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable(format!("{what}: timed out"))),
    }
}

/// A user as stored (with the password's PHC hash, never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Serial id.
    pub id: i32,
    /// Unique login (≤ 20 chars).
    pub login: String,
    /// Unique email, lower-cased (≤ 30 chars).
    pub email: String,
    /// Display name (≤ 30 chars).
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Unique login.
    pub login: String,
    /// Unique email (already lower-cased).
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// Users (PostgreSQL or embedded).
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Creates a user; [`StoreError::Conflict`] names the duplicate field.
    async fn create(&self, user: NewUser) -> Result<i32, StoreError>;
    /// Looks a user up by login.
    async fn by_login(&self, login: &str) -> Result<Option<User>, StoreError>;
    /// Looks a user up by id.
    async fn by_id(&self, id: i32) -> Result<Option<User>, StoreError>;
}

/// Sessions: opaque bearer token → user id, with a TTL renewed on use.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores a new session.
    async fn put(&self, token: &str, user_id: i32, ttl: Duration) -> Result<(), StoreError>;
    /// Returns the session's user and renews its TTL (sliding expiry).
    async fn touch(&self, token: &str, ttl: Duration) -> Result<Option<i32>, StoreError>;
    /// Deletes a session (idempotent).
    async fn delete(&self, token: &str) -> Result<(), StoreError>;
}

/// Failed-login counters in fixed windows (shared by all auth instances when in Redis).
#[async_trait]
pub trait FailureStore: Send + Sync + std::fmt::Debug {
    /// Adds one failure to `key`, starting a window of `window` if none is running.
    async fn bump(&self, key: &str, window: Duration) -> Result<(), StoreError>;
    /// The failures counted in `key`'s running window and the time left in it.
    async fn count(&self, key: &str) -> Result<Option<(u32, Duration)>, StoreError>;
    /// Clears `key`.
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

/// Where a call's media goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterRef {
    /// Router id (`default` for the statically configured one).
    pub id: String,
    /// Media address `host:port` given to clients.
    pub address: String,
    /// Admin base URL used by calls (`http://host:port`).
    pub admin: String,
}

/// One participant of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Participant id (random, non-zero, < 2^53 so it survives JSON and Lua numbers).
    pub participant_id: u64,
    /// The user who joined.
    pub user_id: i32,
    /// `publisher`, `screen` (a screen share's publisher leg), `subscriber` or `mixer`.
    pub role: String,
    /// When the participant joined, Unix milliseconds.
    #[serde(default)]
    pub joined_at: u64,
    /// The participant says its microphone is muted (a publisher's own state, shown to the others).
    #[serde(default)]
    pub audio_muted: bool,
    /// The participant says its camera is off.
    #[serde(default)]
    pub video_muted: bool,
    /// The router holding the participant's media when it is not the call's home (a native
    /// participant or a WHIP/WHEP leg placed on a leaf, see [`crate::cascade`]); `None`: the
    /// call's router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
}

impl Participant {
    /// A participant who has just joined (nothing muted).
    pub fn new(participant_id: u64, user_id: i32, role: &str, joined_at: u64) -> Self {
        Participant {
            participant_id,
            user_id,
            role: role.to_owned(),
            joined_at,
            audio_muted: false,
            video_muted: false,
            router: None,
        }
    }

    /// The same participant, held on router `id` (not the call's home).
    pub fn held_on(mut self, id: Option<String>) -> Self {
        self.router = id;
        self
    }
}

/// A change of a participant's muted flags; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteChange {
    /// New microphone state.
    pub audio_muted: Option<bool>,
    /// New camera state.
    pub video_muted: Option<bool>,
}

/// An active call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Call id.
    pub id: Uuid,
    /// Owner's user id.
    pub owner: i32,
    /// Creation time, Unix milliseconds.
    pub created_at: u64,
    /// The router hosting the call.
    pub router: RouterRef,
    /// Current participants.
    pub participants: Vec<Participant>,
    /// The participant its router last named the dominant speaker (the loudest, held with
    /// hysteresis); `None` until one is heard. It may have left since.
    #[serde(default)]
    pub dominant_speaker: Option<u64>,
}

/// Why a call operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No such call.
    #[error("call not found")]
    NotFound,
    /// Only the owner may end the call.
    #[error("only the owner may end the call")]
    NotOwner,
    /// The participant cap is reached.
    #[error("call is full ({0} participants)")]
    Full(u32),
    /// The user is already in the call.
    #[error("already joined")]
    AlreadyJoined,
    /// The user is not in the call.
    #[error("not joined")]
    NotJoined,
    /// No such participant in the call.
    #[error("no such participant")]
    NoParticipant,
    /// The participant belongs to another user.
    #[error("another user's participant")]
    NotYours,
    /// The participant publishes nothing (a subscriber or mixer): nothing to mute.
    #[error("not a publisher")]
    NotPublisher,
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Active calls (Tarantool or memory). Each method is atomic.
#[async_trait]
pub trait CallStore: Send + Sync + std::fmt::Debug {
    /// Creates a call owned by `owner` on `router`.
    async fn start(&self, id: Uuid, owner: i32, created_at: u64, router: &RouterRef) -> Result<(), CallError>;
    /// Adds a participant unless the user is already in, or the call has `cap` people
    /// (distinct users: a user's WebRTC legs count once).
    async fn join(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError>;
    /// Adds a WebRTC leg's participant (WHIP/WHEP): as [`CallStore::join`], but the user may
    /// already have participants in the call (one leg per published or received stream), and
    /// then the leg is admitted whatever the cap (the user is already counted).
    async fn join_leg(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError>;
    /// Removes the user's participant; returns its participant id.
    async fn leave(&self, id: Uuid, user_id: i32) -> Result<u64, CallError>;
    /// Removes a participant by id (router events); `Ok(false)` when already gone.
    async fn drop_participant(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError>;
    /// Records the call's dominant speaker (router events); `Ok(false)` when the call or
    /// the participant is gone (nothing changes then).
    async fn set_dominant_speaker(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError>;
    /// Sets a publisher's muted flags, if `user_id` is the user who joined as it; returns the
    /// participant as stored afterwards.
    async fn set_muted(
        &self,
        id: Uuid,
        participant_id: u64,
        user_id: i32,
        change: MuteChange,
    ) -> Result<Participant, CallError>;
    /// Ends (removes) the call if `user_id` owns it; returns the removed call.
    async fn end(&self, id: Uuid, user_id: i32) -> Result<Call, CallError>;
    /// Reads a call.
    async fn get(&self, id: Uuid) -> Result<Option<Call>, CallError>;
    /// Lists the calls placed on a router.
    async fn by_router(&self, router_id: &str) -> Result<Vec<Call>, CallError>;
    /// The participants held on router `router_id` while their call's home is another (native
    /// participants and WebRTC legs placed on a leaf: [`Participant::router`]), as (call, participant id). Not indexed:
    /// a scan of every call, for the failover sweep when a router is found dead.
    async fn held_on(&self, router_id: &str) -> Result<Vec<(Uuid, u64)>, CallError>;
    /// Records the router holding participant `participant_id` ([`Participant::router`]:
    /// `None`, the call's home). A native participant placed on a leaf, or re-joined through
    /// `/rejoin` elsewhere. `Ok(false)` when the call or the participant is gone.
    async fn set_router(&self, id: Uuid, participant_id: u64, router: Option<&str>) -> Result<bool, CallError>;
}

/// What a router reports when it registers or heart-beats (`POST /v1/routers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterRegistration {
    /// Router id, stable across restarts.
    pub id: String,
    /// Media address `host:port` for clients.
    pub address: String,
    /// Cores used for media.
    pub cores: u32,
    /// Load, 0.0 (idle) to 1.0 (full).
    pub load: f64,
    /// Admin base URL (`http://host:port`).
    pub admin: String,
    /// Every worker's media address, in worker order (a router with several
    /// workers places each call on one of them, see `corecast_proto::placement`).
    #[serde(default)]
    pub workers: Vec<String>,
    /// The region the router serves (empty: none). A calls instance places new calls only
    /// on routers of its own region (`calls.region`).
    #[serde(default)]
    pub region: String,
    /// A reserve router: it takes calls only while its region's reserves are in use (see
    /// [`Placement::reserve_on`]).
    #[serde(default)]
    pub reserve: bool,
}

/// A router as the registry holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterStatus {
    /// What the router last reported.
    #[serde(flatten)]
    pub reg: RouterRegistration,
    /// Calls placed on it since its last heartbeat (a load estimate until it reports).
    pub placed: u32,
    /// An operator marked it draining: it takes no new calls (its calls go on).
    pub draining: bool,
    /// With draining: when its calls are to be moved to other routers (Unix milliseconds by
    /// the store's clock; absent: no deadline). Kept with the router in the shared store, so
    /// every calls instance enforces it, whichever took the drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_deadline: Option<u64>,
    /// The drain deadline has passed (by the store's clock): every calls instance's sweeper
    /// moves the router's calls ([`crate::failover`]).
    #[serde(default)]
    pub drain_due: bool,
    /// Milliseconds since its last heartbeat, by the store's clock.
    pub last_seen_ms_ago: u64,
    /// Heard from within the registry's time-to-live.
    pub live: bool,
}

/// Where a new call goes and who it is: the input of [`RouterStore::place_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    /// Call id.
    pub id: Uuid,
    /// Owner's user id.
    pub owner: i32,
    /// Creation time, Unix milliseconds.
    pub created_at: u64,
}

/// How to place a call: among the live routers of `region`, else on `fallback`.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Only routers registered with this region are candidates.
    pub region: String,
    /// A router not heard from for this long is not live (not chosen).
    pub ttl: Duration,
    /// The router used when no registered router is live (the configured default).
    pub fallback: RouterRef,
    /// The region's reserve routers come into use when the regular pool's load (the score of
    /// its least-loaded live router: what the next call would get; no live regular router
    /// counts as full) passes this...
    pub reserve_on: f64,
    /// ...and go out of use (they take no new calls; theirs go on) when it falls below this.
    pub reserve_off: f64,
}

/// The router registry (Tarantool or memory), shared by every calls instance over the same
/// store. Liveness is judged by the store's own clock, so calls instances on machines whose
/// clocks differ agree on it.
#[async_trait]
pub trait RouterStore: Send + Sync + std::fmt::Debug {
    /// Records a registration or heartbeat (its load figures, addresses, region); resets the
    /// router's placement count and keeps its draining flag. Returns true when the router
    /// was not live (new, restarted, or expired after `ttl`): exactly one of several calls
    /// instances receiving heartbeats sees true for one comeback.
    async fn heartbeat(&self, reg: &RouterRegistration, ttl: Duration) -> Result<bool, StoreError>;
    /// Places a new call on the least-loaded live, not draining router of the placement's
    /// region (load per core plus 0.01 per call placed since its last heartbeat, per core;
    /// ties by id), counts the placement and stores the call in the call store, all in one
    /// atomic step; without such a router the call goes to the fallback. Returns the chosen
    /// router's status (`None`: the fallback). Reserve routers are candidates only while the
    /// region's reserves are in use, a state kept in the store and updated here with the
    /// hysteresis of [`Placement::reserve_on`] / [`Placement::reserve_off`].
    async fn place_call(&self, call: &NewCall, placement: &Placement) -> Result<Option<RouterStatus>, CallError>;
    /// Whether `region`'s reserve routers are in use (as the last placement left it).
    async fn reserves_in_use(&self, region: &str) -> Result<bool, StoreError>;
    /// One router, live or not.
    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<RouterStatus>, StoreError>;
    /// Every router the registry holds, live or not, by id.
    async fn list(&self, ttl: Duration) -> Result<Vec<RouterStatus>, StoreError>;
    /// Sets a router's draining flag and its drain deadline, `deadline` from now by the store's
    /// clock (`None`, and always when undrained: no deadline); the deadline outlives
    /// heartbeats like the flag. `Ok(None)` when no such router is registered.
    async fn set_draining(
        &self,
        id: &str,
        draining: bool,
        deadline: Option<Duration>,
        ttl: Duration,
    ) -> Result<Option<RouterStatus>, StoreError>;
    /// Moves call `id` off router `from` (dead, or drained past its deadline) onto the
    /// least-loaded live, not draining router of `region` other than `from` (regular routers
    /// before reserves), counting the placement, in one atomic step, and only while the call is
    /// still on `from`: of several calls instances trying at once, one moves it and the others
    /// get [`Moved::Already`]. [`CallError::NotFound`] when the call is gone.
    async fn move_call(&self, id: Uuid, from: &str, region: &str, ttl: Duration) -> Result<Moved, CallError>;
}

/// What [`RouterStore::move_call`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// This caller moved the call onto this router.
    Moved(RouterRef),
    /// The call was no longer on the router to move it off (moved by someone else): it is here.
    Already(RouterRef),
    /// No live router can take it; it stays where it is.
    Nowhere,
}
