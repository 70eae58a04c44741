//! One contract suite per store trait, run unchanged against the embedded backend and (when
//! `CORECAST_TEST_*` is set by `control/scripts/test-with-servers.sh`) the real one.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use corecast_control::stores::embedded::RedbUserStore;
use corecast_control::stores::memory::{MemoryCallStore, MemoryFailureStore, MemorySessionStore};
use corecast_control::stores::pg::PgUserStore;
use corecast_control::stores::redis::RedisSessionStore;
use corecast_control::stores::tarantool::TarantoolCallStore;
use corecast_control::stores::*;
use corecast_control::tarantool::{Tarantool, TarantoolUrl};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Contracts.

async fn user_store_contract(s: &dyn UserStore) {
    let login = format!("c{}", uniq());
    let email = format!("{login}@example.org");
    let new = |login: &str, email: &str| NewUser {
        login: login.into(),
        email: email.into(),
        name: "Ñame with ünicode".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    };
    let id = s.create(new(&login, &email)).await.unwrap();
    assert!(id > 0);
    let u = s.by_login(&login).await.unwrap().expect("by login");
    assert_eq!((u.id, u.email.as_str(), u.name.as_str()), (id, email.as_str(), "Ñame with ünicode"));
    assert_eq!(s.by_id(id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.create(new(&login, "other@example.org")).await, Err(StoreError::Conflict("login")));
    let other = format!("d{}", uniq());
    assert_eq!(s.create(new(&other, &email)).await, Err(StoreError::Conflict("email")));
    assert_eq!(s.by_login(&other).await.unwrap(), None, "nothing half-written after a conflict");
    let id2 = s.create(new(&other, &format!("{other}@example.org"))).await.unwrap();
    assert!(id2 > id, "serial ids");
    assert_eq!(s.by_login("nobody-at-all").await.unwrap(), None);
    assert_eq!(s.by_id(i32::MAX).await.unwrap(), None);
    assert_eq!(s.by_id(-1).await.unwrap(), None);
    // Exactly the data-model limits fit.
    let long = format!("l{}{}", uniq(), "x".repeat(9));
    assert_eq!(long.chars().count(), 20);
    let long_email = format!("{}@ex.org", &format!("{}{}", uniq(), "e".repeat(13)));
    assert_eq!(long_email.chars().count(), 30);
    s.create(new(&long, &long_email)).await.unwrap();
}

async fn session_store_contract(s: &dyn SessionStore) {
    let t = corecast_control::util::session_token();
    let ttl = Duration::from_secs(60);
    assert_eq!(s.touch(&t, ttl).await.unwrap(), None);
    s.put(&t, 42, ttl).await.unwrap();
    assert_eq!(s.touch(&t, ttl).await.unwrap(), Some(42));
    s.delete(&t).await.unwrap();
    assert_eq!(s.touch(&t, ttl).await.unwrap(), None);
    s.delete(&t).await.unwrap();
    // Expiry and sliding renewal (1 s TTL).
    let short = Duration::from_secs(1);
    let a = corecast_control::util::session_token();
    let b = corecast_control::util::session_token();
    s.put(&a, 1, short).await.unwrap();
    s.put(&b, 2, short).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(s.touch(&a, short).await.unwrap(), Some(1), "renewed on use");
    }
    assert_eq!(s.touch(&b, short).await.unwrap(), None, "unused session expired");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.touch(&a, short).await.unwrap(), None);
}

async fn failure_store_contract(s: &dyn FailureStore) {
    let k = format!("login:{}", uniq());
    assert_eq!(s.count(&k).await.unwrap(), None);
    s.bump(&k, Duration::from_secs(1)).await.unwrap();
    s.bump(&k, Duration::from_secs(60)).await.unwrap();
    let (n, left) = s.count(&k).await.unwrap().unwrap();
    assert_eq!(n, 2);
    assert!(left <= Duration::from_secs(1), "the window is not extended by later failures");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(s.count(&k).await.unwrap(), None, "window over");
    s.bump(&k, Duration::from_secs(60)).await.unwrap();
    assert_eq!(s.count(&k).await.unwrap().unwrap().0, 1, "new window");
    s.clear(&k).await.unwrap();
    assert_eq!(s.count(&k).await.unwrap(), None);
}

fn router(id: &str) -> RouterRef {
    RouterRef { id: id.into(), address: "127.0.0.1:40000".into(), admin: "http://127.0.0.1:40100".into() }
}

fn part(pid: u64, uid: i32) -> Participant {
    Participant::new(pid, uid, "publisher", 1_700_000_000_000 + pid % 1000)
}

async fn call_store_contract(s: &dyn CallStore) {
    let rid = format!("r-{}", uniq());
    let id = Uuid::new_v4();
    s.start(id, 1, 1234, &router(&rid)).await.unwrap();
    let c = s.get(id).await.unwrap().expect("call");
    assert_eq!((c.id, c.owner, c.created_at, c.router.clone(), c.participants.len()), (id, 1, 1234, router(&rid), 0));
    let big = (1u64 << 53) - 1;
    s.join(id, &part(big, 1), 3).await.unwrap();
    s.join(id, &part(11, 2), 3).await.unwrap();
    let c = s.join(id, &part(12, 3), 3).await.unwrap();
    assert_eq!(c.participants.iter().map(|p| p.participant_id).collect::<Vec<_>>(), vec![big, 11, 12]);
    call_store_mute_contract(s, id).await;
    // The dominant speaker: none at first, then who the router names, if in the call;
    // joins and mutes keep it.
    assert_eq!(s.get(id).await.unwrap().unwrap().dominant_speaker, None);
    assert_eq!(s.set_dominant_speaker(id, 11).await, Ok(true));
    assert_eq!(s.set_dominant_speaker(id, 99).await, Ok(false), "not a participant");
    assert_eq!(s.set_dominant_speaker(Uuid::new_v4(), 11).await, Ok(false), "no such call");
    assert_eq!(s.get(id).await.unwrap().unwrap().dominant_speaker, Some(11));
    assert_eq!(s.set_dominant_speaker(id, big).await, Ok(true));
    call_store_mute_contract(s, id).await;
    assert_eq!(s.get(id).await.unwrap().unwrap().dominant_speaker, Some(big));
    assert_eq!(s.join(id, &part(13, 4), 3).await, Err(CallError::Full(3)));
    assert_eq!(s.join(id, &part(14, 2), 5).await, Err(CallError::AlreadyJoined));
    // WebRTC legs: the same user again (one WHEP leg per person watched): the cap
    // counts people, so a user already in a full call gets more legs; a new user does not.
    let c = s.join_leg(id, &part(15, 2), 3).await.unwrap();
    assert_eq!(c.participants.iter().filter(|p| p.user_id == 2).count(), 2);
    assert_eq!(s.join_leg(id, &part(18, 2), 3).await.map(|c| c.participants.len()), Ok(5));
    assert_eq!(s.drop_participant(id, 18).await, Ok(true));
    assert_eq!(s.join_leg(id, &part(16, 9), 3).await, Err(CallError::Full(3)));
    assert_eq!(s.join(id, &part(16, 9), 3).await, Err(CallError::Full(3)));
    assert_eq!(s.drop_participant(id, 15).await, Ok(true));
    assert_eq!(s.join_leg(Uuid::new_v4(), &part(17, 2), 5).await, Err(CallError::NotFound));
    assert_eq!(s.leave(id, 9).await, Err(CallError::NotJoined));
    assert_eq!(s.leave(id, 2).await, Ok(11));
    assert_eq!(s.drop_participant(id, 12).await, Ok(true));
    assert_eq!(s.drop_participant(id, 12).await, Ok(false), "idempotent");
    assert_eq!(s.drop_participant(Uuid::new_v4(), 12).await, Ok(false));
    let c = s.get(id).await.unwrap().unwrap();
    assert_eq!(c.participants, vec![part(big, 1)]);
    let other = Uuid::new_v4();
    s.start(other, 2, 1, &router(&rid)).await.unwrap();
    let mut on_router: Vec<Uuid> = s.by_router(&rid).await.unwrap().into_iter().map(|c| c.id).collect();
    on_router.sort();
    let mut want = vec![id, other];
    want.sort();
    assert_eq!(on_router, want);
    assert_eq!(s.by_router("no-such-router").await.unwrap(), vec![]);
    assert_eq!(s.end(id, 2).await, Err(CallError::NotOwner));
    let ended = s.end(id, 1).await.unwrap();
    assert_eq!(ended.participants, vec![part(big, 1)]);
    assert_eq!(s.get(id).await.unwrap(), None, "ending removes the call");
    assert_eq!(s.end(id, 1).await, Err(CallError::NotFound));
    assert_eq!(s.join(id, &part(20, 5), 3).await, Err(CallError::NotFound));
    assert_eq!(s.leave(id, 1).await, Err(CallError::NotFound));
    s.end(other, 2).await.unwrap();
    assert_eq!(s.by_router(&rid).await.unwrap(), vec![]);
}

/// Muted flags on a call whose participant 11 is user 2's publisher: only that user, only a
/// publisher; an absent flag stays; the result is stored; the call ends up as it was.
async fn call_store_mute_contract(s: &dyn CallStore, id: Uuid) {
    let audio = |v| MuteChange { audio_muted: Some(v), video_muted: None };
    let p = s.set_muted(id, 11, 2, audio(true)).await.unwrap();
    assert_eq!((p.participant_id, p.user_id, p.audio_muted, p.video_muted), (11, 2, true, false));
    let p = s.set_muted(id, 11, 2, MuteChange { audio_muted: None, video_muted: Some(true) }).await.unwrap();
    assert_eq!((p.audio_muted, p.video_muted), (true, true), "an absent flag stays as it was");
    let stored = s.get(id).await.unwrap().unwrap();
    let q = stored.participants.iter().find(|q| q.participant_id == 11).unwrap();
    assert_eq!(
        (q.audio_muted, q.video_muted, q.role.as_str(), q.joined_at),
        (true, true, "publisher", part(11, 2).joined_at)
    );
    assert!(stored.participants.iter().filter(|q| q.participant_id != 11).all(|q| !q.audio_muted && !q.video_muted));
    assert_eq!(s.set_muted(id, 11, 3, audio(false)).await, Err(CallError::NotYours));
    assert_eq!(s.set_muted(id, 99, 2, audio(false)).await, Err(CallError::NoParticipant));
    assert_eq!(s.set_muted(Uuid::new_v4(), 11, 2, audio(false)).await, Err(CallError::NotFound));
    let mut sub = part(18, 4);
    sub.role = "subscriber".into();
    s.join_leg(id, &sub, 5).await.unwrap();
    assert_eq!(s.set_muted(id, 18, 4, audio(true)).await, Err(CallError::NotPublisher));
    assert_eq!(s.drop_participant(id, 18).await, Ok(true));
    let p = s.set_muted(id, 11, 2, MuteChange { audio_muted: Some(false), video_muted: Some(false) }).await.unwrap();
    assert_eq!(p, part(11, 2), "both flags cleared");
}

/// A WebRTC leg held on a leaf router (cascading): the record keeps the router through a
/// mute; `held_on` lists it for that router only, not the home's own participants.
async fn call_store_leaf_contract(s: &dyn CallStore) {
    let (home, leaf) = (format!("h-{}", uniq()), format!("l-{}", uniq()));
    let id = Uuid::new_v4();
    s.start(id, 1, 1, &router(&home)).await.unwrap();
    s.join(id, &part(31, 1), 5).await.unwrap();
    let c = s.join_leg(id, &part(32, 2).held_on(Some(leaf.clone())), 5).await.unwrap();
    assert_eq!(c.participants.iter().map(|p| p.router.clone()).collect::<Vec<_>>(), vec![None, Some(leaf.clone())]);
    let muted = s.set_muted(id, 32, 2, MuteChange { audio_muted: Some(true), video_muted: None }).await.unwrap();
    assert_eq!((muted.audio_muted, muted.router.as_deref()), (true, Some(leaf.as_str())), "a mute keeps the router");
    let stored = s.get(id).await.unwrap().unwrap();
    assert_eq!(stored.participants[1].router.as_deref(), Some(leaf.as_str()));
    assert_eq!(s.held_on(&leaf).await.unwrap(), vec![(id, 32)]);
    assert_eq!(s.held_on(&home).await.unwrap(), vec![], "the home's own participants are the home's calls");
    assert_eq!(s.drop_participant(id, 32).await, Ok(true));
    assert_eq!(s.held_on(&leaf).await.unwrap(), vec![]);
    // A native participant placed on a leaf, re-joined on another, then on the home.
    assert_eq!(s.set_router(id, 31, Some(&leaf)).await, Ok(true));
    assert_eq!(s.held_on(&leaf).await.unwrap(), vec![(id, 31)]);
    let other = format!("o-{}", uniq());
    assert_eq!(s.set_router(id, 31, Some(&other)).await, Ok(true));
    assert_eq!(s.held_on(&leaf).await.unwrap(), vec![]);
    assert_eq!(s.held_on(&other).await.unwrap(), vec![(id, 31)]);
    assert_eq!(s.set_router(id, 31, None).await, Ok(true));
    let stored = s.get(id).await.unwrap().unwrap();
    assert_eq!(stored.participants[0], part(31, 1), "back on the home: no router, nothing else changed");
    assert_eq!(s.set_router(id, 99, Some(&leaf)).await, Ok(false), "no such participant");
    assert_eq!(s.set_router(Uuid::new_v4(), 31, Some(&leaf)).await, Ok(false), "no such call");
    s.end(id, 1).await.unwrap();
}

/// Concurrent joins never exceed the cap (atomicity).
async fn call_store_cap_is_atomic(s: Arc<dyn CallStore>) {
    let id = Uuid::new_v4();
    s.start(id, 1, 1, &router("atomic")).await.unwrap();
    let mut tasks = Vec::new();
    for uid in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.join(id, &part(100 + uid as u64, uid), 5).await.is_ok() }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 5);
    assert_eq!(s.get(id).await.unwrap().unwrap().participants.len(), 5);
    s.end(id, 1).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Embedded backends.

#[tokio::test]
async fn embedded_user_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbUserStore::open(&dir.path().join("users.redb")).unwrap();
    user_store_contract(&s).await;
}

#[tokio::test]
async fn memory_session_store() {
    session_store_contract(&MemorySessionStore::new()).await;
}

#[tokio::test]
async fn memory_failure_store() {
    failure_store_contract(&MemoryFailureStore::new()).await;
}

#[tokio::test]
async fn memory_call_store() {
    call_store_contract(&MemoryCallStore::new()).await;
    call_store_leaf_contract(&MemoryCallStore::new()).await;
    call_store_cap_is_atomic(Arc::new(MemoryCallStore::new())).await;
}

// ---------------------------------------------------------------------------------------------
// Real backends.

#[tokio::test]
async fn postgres_user_store() {
    let Some(url) = real_servers().pg else { return skip("postgres_user_store", "CORECAST_TEST_PG") };
    let s = PgUserStore::connect(&url, 4).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 1, "migrations applied at start-up");
    let again = PgUserStore::connect(&url, 4).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 1, "migrations are idempotent");
    user_store_contract(&s).await;
}

#[tokio::test]
async fn redis_session_store() {
    let Some(url) = real_servers().redis else { return skip("redis_session_store", "CORECAST_TEST_REDIS") };
    session_store_contract(&RedisSessionStore::connect(&url).unwrap()).await;
}

#[tokio::test]
async fn redis_failure_store() {
    let Some(url) = real_servers().redis else { return skip("redis_failure_store", "CORECAST_TEST_REDIS") };
    failure_store_contract(&RedisSessionStore::connect(&url).unwrap()).await;
}

#[tokio::test]
async fn tarantool_call_store() {
    let Some(url) = real_servers().tarantool else { return skip("tarantool_call_store", "CORECAST_TEST_TARANTOOL") };
    let tt = Tarantool::new(&TarantoolUrl::parse(&url).unwrap());
    tt.wait_ready(Duration::from_secs(10)).await.unwrap();
    call_store_contract(&TarantoolCallStore::new(tt.clone())).await;
    call_store_leaf_contract(&TarantoolCallStore::new(tt.clone())).await;
    call_store_cap_is_atomic(Arc::new(TarantoolCallStore::new(tt))).await;
}
