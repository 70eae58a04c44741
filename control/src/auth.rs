//! The auth service: register, login, logout, me.
//!
//! Users live in a [`UserStore`], sessions (256-bit random bearer tokens with a sliding TTL)
//! in a [`SessionStore`]. Passwords are hashed with argon2id on a bounded blocking pool and
//! never stored or logged. Failed logins are throttled per login and per client address.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::Argon2;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::config::AuthConfig;
use crate::error::{ApiError, ApiJson};
use crate::health;
use crate::metrics::ServiceMetrics;
use crate::stores::counted::Counted;
use crate::stores::{FailureStore, NewUser, SessionStore, StoreError, UserStore};
use crate::util;

/// Shared state of the auth service.
#[derive(Debug)]
pub struct AuthState {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    hasher: PasswordPool,
    throttle: Throttle,
    /// The throttle's store too, for the readiness probe.
    failures: Arc<dyn FailureStore>,
    cfg: AuthConfig,
    session_ttl: Duration,
    metrics: Arc<ServiceMetrics>,
}

impl AuthState {
    /// Builds the state from its stores and configuration; the stores' failures are counted
    /// in the service's metrics.
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        failures: Arc<dyn FailureStore>,
        cfg: AuthConfig,
        session_ttl: Duration,
    ) -> Arc<Self> {
        let workers = if cfg.hash_workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            cfg.hash_workers
        };
        let metrics = ServiceMetrics::new("auth");
        let users: Arc<dyn UserStore> = Counted::new(users, "users", &metrics);
        let sessions: Arc<dyn SessionStore> = Counted::new(sessions, "sessions", &metrics);
        let failures: Arc<dyn FailureStore> = Counted::new(failures, "failures", &metrics);
        Arc::new(AuthState {
            users,
            sessions,
            hasher: PasswordPool::new(workers, Duration::from_millis(cfg.hash_wait_ms)),
            failures: failures.clone(),
            throttle: Throttle::new(
                failures,
                cfg.max_failures_per_login,
                cfg.max_failures_per_ip,
                Duration::from_secs(cfg.throttle_window_secs),
            ),
            cfg,
            session_ttl,
            metrics,
        })
    }

    /// The service's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Arc<ServiceMetrics> {
        &self.metrics
    }
}

/// The auth service's routes (see `control/openapi.json`), with `/healthz`, `/readyz` and
/// `/metrics`; every request is counted ([`crate::metrics`]).
pub fn router(state: Arc<AuthState>) -> Router {
    let limit = state.cfg.max_body_bytes;
    let metrics = state.metrics.clone();
    let ready = state.clone();
    let app = Router::new()
        .route("/v1/health", get(health))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(move || readyz(ready.clone())))
        .merge(user_routes(state))
        .fallback(crate::error::fallback)
        .layer(DefaultBodyLimit::max(limit));
    crate::metrics::instrument(app, &metrics)
}

/// Ready when the user, session and failed-login stores answer.
async fn readyz(st: Arc<AuthState>) -> axum::response::Response {
    let (users, sessions, failures) = tokio::join!(
        health::probe("users", st.users.by_id(0)),
        health::probe("sessions", st.sessions.touch(health::PROBE_TOKEN, Duration::from_secs(1))),
        health::probe("failures", st.failures.count(health::PROBE_TOKEN)),
    );
    health::readiness(&[users, sessions, failures])
}

/// Register, login, logout and me without a fallback or health route, to be mounted next to
/// another service's routes: `corecast-control` serves them on the calls listener too, so
/// that the web app (served by calls) reaches auth on its own origin.
pub fn user_routes(state: Arc<AuthState>) -> Router {
    let limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/v1/register", post(register))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/me", get(me))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Password hashing on a bounded blocking pool.

/// Runs argon2id with at most `workers` hashes at once; a request waiting longer than `wait`
/// for a slot gets 503 instead of queueing without bound.
#[derive(Debug)]
pub struct PasswordPool {
    slots: Arc<Semaphore>,
    wait: Duration,
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default().hash_password(util::session_token().as_bytes()).map(|h| h.to_string()).unwrap_or_default()
    })
}

impl PasswordPool {
    /// A pool with `workers` concurrent hashes.
    pub fn new(workers: usize, wait: Duration) -> Self {
        PasswordPool { slots: Arc::new(Semaphore::new(workers.max(1))), wait }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::unavailable("server busy; retry later"))?
            .map_err(|_| ApiError::internal())?;
        tokio::task::spawn_blocking(move || {
            let r = f();
            drop(permit);
            r
        })
        .await
        .map_err(|_| ApiError::internal())
    }

    /// Hashes a password to an argon2id PHC string (m=19456 KiB, t=2, p=1).
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())).await?.map_err(
            |e| {
                tracing::error!(error = %e, "argon2 hash failed");
                ApiError::internal()
            },
        )
    }

    /// Verifies a password; with `None` it verifies against a dummy hash so that unknown and
    /// known logins take the same time, and returns false.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, ApiError> {
        self.run(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
            let ok = match argon2::password_hash::phc::PasswordHash::new(&phc) {
                Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
                Err(_) => false,
            };
            known && ok
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Throttling of failed logins.

/// Counts failed logins per login and per client address in fixed windows, in a
/// [`FailureStore`] (Redis when configured, so all auth instances share the counters).
#[derive(Debug)]
pub struct Throttle {
    store: Arc<dyn FailureStore>,
    max_login: u32,
    max_ip: u32,
    window: Duration,
}

fn login_key(login: &str) -> String {
    format!("login:{}", login.to_lowercase())
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

impl Throttle {
    /// Limits per window.
    pub fn new(store: Arc<dyn FailureStore>, max_login: u32, max_ip: u32, window: Duration) -> Self {
        Throttle { store, max_login, max_ip, window }
    }

    async fn retry_after(&self, key: &str, max: u32) -> Result<Option<u64>, StoreError> {
        Ok(self.store.count(key).await?.filter(|(n, _)| *n >= max).map(|(_, left)| left.as_secs() + 1))
    }

    /// Seconds to wait if either counter is exhausted.
    pub async fn check(&self, login: &str, ip: IpAddr) -> Result<Option<u64>, StoreError> {
        let a = self.retry_after(&login_key(login), self.max_login).await?;
        let b = self.retry_after(&ip_key(ip), self.max_ip).await?;
        Ok(a.max(b))
    }

    /// Records a failure.
    pub async fn failed(&self, login: &str, ip: IpAddr) -> Result<(), StoreError> {
        self.store.bump(&login_key(login), self.window).await?;
        self.store.bump(&ip_key(ip), self.window).await
    }

    /// Clears the login's counter after a success.
    pub async fn succeeded(&self, login: &str) -> Result<(), StoreError> {
        self.store.clear(&login_key(login)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Maximum login length (data model: `varchar(20)`).
pub const LOGIN_MAX: usize = 20;
/// Maximum email length (data model: `varchar(30)`).
pub const EMAIL_MAX: usize = 30;
/// Maximum name length (data model: `varchar(30)`).
pub const NAME_MAX: usize = 30;
/// Password length bounds (characters).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

fn required<'a>(field: &'static str, v: &'a Option<String>) -> Result<&'a str, ApiError> {
    v.as_deref().ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))
}

/// Checks a login: 1..=20 characters of `A-Z a-z 0-9 _ . -`.
pub fn validate_login(login: &str) -> Result<(), ApiError> {
    let n = login.chars().count();
    if n == 0 || n > LOGIN_MAX {
        return Err(ApiError::invalid("login", format!("login must be 1 to {LOGIN_MAX} characters")));
    }
    if !login.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(ApiError::invalid("login", "login may contain only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

/// Checks an email's shape (`local@domain.tld`, ≤ 30 characters, no spaces).
pub fn validate_email(email: &str) -> Result<(), ApiError> {
    if email.chars().count() > EMAIL_MAX {
        return Err(ApiError::invalid("email", format!("email must be at most {EMAIL_MAX} characters")));
    }
    let bad = || ApiError::invalid("email", "email must look like name@example.org");
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let labels_ok = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    if local.is_empty()
        || !labels_ok
        || domain.contains('@')
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    Ok(())
}

/// Checks a display name: 1..=30 characters, not blank, no control characters.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > NAME_MAX || name.trim().is_empty() {
        return Err(ApiError::invalid("name", format!("name must be 1 to {NAME_MAX} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "name must not contain control characters"));
    }
    Ok(())
}

/// Checks a password's length (8..=128 characters).
pub fn validate_password(pw: &str) -> Result<(), ApiError> {
    if !PASSWORD_LEN.contains(&pw.chars().count()) {
        return Err(ApiError::invalid(
            "password",
            format!("password must be {} to {} characters", PASSWORD_LEN.start(), PASSWORD_LEN.end()),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Handlers.

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("login", &self.login)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("login", &self.login).field("password", &"<redacted>").finish()
    }
}

/// `POST /v1/register` body.
#[derive(Deserialize)]
pub struct RegisterRequest {
    /// Login.
    pub login: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Password (redacted in `Debug`; never logged).
    pub password: Option<String>,
}

/// `POST /v1/login` body.
#[derive(Deserialize)]
pub struct LoginRequest {
    /// Login.
    pub login: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// `POST /v1/login` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token.
    pub session: String,
    /// Expiry if unused, Unix milliseconds (each use renews it).
    pub expires_at: u64,
}

/// `GET /v1/me` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct MeResponse {
    /// User id.
    pub id: i32,
    /// Login.
    pub login: String,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
}

async fn register(
    State(st): State<Arc<AuthState>>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let login = required("login", &req.login)?;
    validate_login(login)?;
    let email = required("email", &req.email)?;
    validate_email(email)?;
    let name = required("name", &req.name)?;
    validate_name(name)?;
    let password = required("password", &req.password)?;
    validate_password(password)?;
    let password_hash = st.hasher.hash(password.to_owned()).await?;
    let id = st
        .users
        .create(NewUser { login: login.to_owned(), email: email.to_lowercase(), name: name.to_owned(), password_hash })
        .await?;
    tracing::info!(user_id = id, "registered user");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

async fn login(
    State(st): State<Arc<AuthState>>,
    headers: HeaderMap,
    ext: Extensions,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let login = required("login", &req.login)?;
    let password = required("password", &req.password)?;
    if login.is_empty() || login.chars().count() > LOGIN_MAX {
        return Err(ApiError::invalid("login", format!("login must be 1 to {LOGIN_MAX} characters")));
    }
    if password.chars().count() > *PASSWORD_LEN.end() {
        return Err(ApiError::invalid("password", "password is too long"));
    }
    let ip = util::client_ip(st.cfg.trust_forwarded_for, &headers, &ext);
    if let Some(secs) = st.throttle.check(login, ip).await? {
        return Err(ApiError::throttled(secs));
    }
    let user = st.users.by_login(login).await?;
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let ok = st.hasher.verify(password.to_owned(), phc).await?;
    let Some(user) = user.filter(|_| ok) else {
        st.throttle.failed(login, ip).await?;
        return Err(ApiError::unauthorized("invalid login or password"));
    };
    st.throttle.succeeded(login).await?;
    let token = util::session_token();
    st.sessions.put(&token, user.id, st.session_ttl).await?;
    let expires_at = util::now_ms() + st.session_ttl.as_millis() as u64;
    tracing::info!(user_id = user.id, "login");
    Ok(Json(LoginResponse { session: token, expires_at }))
}

/// Resolves the request's bearer session to a user id (renewing it), or 401.
pub async fn session_user(
    sessions: &dyn SessionStore,
    headers: &HeaderMap,
    ttl: Duration,
) -> Result<(i32, String), ApiError> {
    let token = util::bearer(headers).ok_or_else(|| ApiError::unauthorized("missing bearer session token"))?;
    if !util::is_token_shaped(token) {
        return Err(ApiError::unauthorized("invalid or expired session"));
    }
    match sessions.touch(token, ttl).await {
        Ok(Some(uid)) => Ok((uid, token.to_owned())),
        Ok(None) => Err(ApiError::unauthorized("invalid or expired session")),
        Err(e) => Err(e.into()),
    }
}

async fn logout(State(st): State<Arc<AuthState>>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let (_, token) = session_user(st.sessions.as_ref(), &headers, st.session_ttl).await?;
    st.sessions.delete(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(st): State<Arc<AuthState>>, headers: HeaderMap) -> Result<Json<MeResponse>, ApiError> {
    let (uid, _) = session_user(st.sessions.as_ref(), &headers, st.session_ttl).await?;
    match st.users.by_id(uid).await? {
        Some(u) => Ok(Json(MeResponse { id: u.id, login: u.login, email: u.email, name: u.name })),
        None => Err(ApiError::unauthorized("invalid or expired session")),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rules() {
        assert!(validate_login("alice").is_ok());
        assert!(validate_login("").is_err());
        assert!(validate_login(&"a".repeat(21)).is_err());
        assert!(validate_login("a b").is_err());
        assert!(validate_email("a@b.co").is_ok());
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a@b.", "a b@c.de", "a@b@c.de"] {
            assert_eq!(validate_email(bad).unwrap_err().field, Some("email"), "{bad}");
        }
        assert!(validate_email(&format!("{}@b.co", "a".repeat(26))).is_err());
        assert!(validate_name("Alice Liddell").is_ok());
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"n".repeat(31)).is_err());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"p".repeat(128)).is_ok());
        assert!(validate_password(&"p".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn hash_pool_is_bounded_and_hashes_verify() {
        let pool = Arc::new(PasswordPool::new(1, Duration::from_millis(0)));
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| std::thread::sleep(Duration::from_millis(500))).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let e = pool.hash("password1".into()).await.unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE, "no free slot, no queueing");
        busy.await.unwrap().unwrap();
        let phc = pool.hash("password1".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("password1"));
        assert!(pool.verify("password1".into(), Some(phc.clone())).await.unwrap());
        assert!(!pool.verify("password2".into(), Some(phc)).await.unwrap());
        assert!(!pool.verify("password1".into(), None).await.unwrap());
        assert!(!pool.verify("password1".into(), Some("not a phc".into())).await.unwrap());
    }

    #[tokio::test]
    async fn throttle_counts_and_resets() {
        let store = Arc::new(crate::stores::memory::MemoryFailureStore::new());
        let t = Throttle::new(store, 2, 3, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(t.check("bob", ip).await.unwrap(), None);
        t.failed("bob", ip).await.unwrap();
        t.failed("BOB", ip).await.unwrap();
        assert!(t.check("bob", ip).await.unwrap().unwrap() >= 59);
        t.succeeded("bob").await.unwrap();
        assert_eq!(t.check("bob", ip).await.unwrap(), None);
        t.failed("carol", ip).await.unwrap();
        assert!(t.check("dave", ip).await.unwrap().is_some(), "address limit reached");
    }
}
