//! Storage traits and their backends.
//!
//! | store | real backend | embedded backend |
//! |---|---|---|
//! | [`UserStore`] | [`pg::PgUserStore`] (PostgreSQL) | [`embedded::RedbUserStore`] (redb file) |
//! | [`SessionStore`] | [`redis::RedisSessionStore`] | [`memory::MemorySessionStore`] |
//! | [`FailureStore`] | [`redis::RedisSessionStore`] | [`memory::MemoryFailureStore`] |
//! | [`CallStore`] | [`tarantool::TarantoolCallStore`] | [`memory::MemoryCallStore`] |
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
pub mod pg;
pub mod redis;
pub mod remote;
pub mod tarantool;

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
        }
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
}
