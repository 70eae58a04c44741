//! The control-plane side of a client: register, log in, start, join, leave
//! and end calls over the auth and calls services' HTTP APIs.

use corecast_proto::join_key::JoinKey;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

/// A failed control-plane request.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Transport trouble.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The service answered with an error.
    #[error("{status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The JSON error body.
        body: String,
    },
    /// The answer lacks a field.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// What `POST /v1/calls/{id}/join` grants.
#[derive(Debug, Clone)]
pub struct JoinGrant {
    /// Participant id.
    pub participant_id: u64,
    /// Router address to join.
    pub router: SocketAddr,
    /// The join token (base64url).
    pub token: String,
    /// The token's join key: signs the native join and every session message.
    pub key: JoinKey,
    /// Token expiry, Unix ms.
    pub expires_at: u64,
}

/// A blocking client of the auth and calls services.
#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::blocking::Client,
}

impl Default for ControlClient {
    fn default() -> Self {
        Self::new()
    }
}

fn check(r: reqwest::blocking::Response) -> Result<Value, ControlError> {
    let status = r.status();
    let text = r.text()?;
    if !status.is_success() {
        return Err(ControlError::Status { status: status.as_u16(), body: text });
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|_| ControlError::Unexpected(text))
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, ControlError> {
    v.get(name).ok_or_else(|| ControlError::Unexpected(format!("no `{name}` in {v}")))
}

/// A join grant from a `join` or `rejoin` answer.
fn grant_of(v: &Value) -> Result<JoinGrant, ControlError> {
    let router = field(v, "router")?
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ControlError::Unexpected(v.to_string()))?;
    Ok(JoinGrant {
        participant_id: field(v, "participant_id")?.as_u64().unwrap_or_default(),
        router,
        token: field(v, "token")?.as_str().unwrap_or_default().to_string(),
        key: JoinKey::from_text(field(v, "join_key")?.as_str().unwrap_or_default())
            .map_err(|e| ControlError::Unexpected(format!("join_key: {e}")))?,
        expires_at: v.get("expires_at").and_then(|x| x.as_u64()).unwrap_or_default(),
    })
}

impl ControlClient {
    /// A client with a 10-second timeout per request.
    pub fn new() -> ControlClient {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new());
        ControlClient { http }
    }

    /// `POST /v1/register`; returns the user id.
    pub fn register(
        &self,
        auth: &str,
        login: &str,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<u64, ControlError> {
        let v = check(
            self.http
                .post(format!("{auth}/v1/register"))
                .json(&json!({ "login": login, "email": email, "name": name, "password": password }))
                .send()?,
        )?;
        field(&v, "id")?.as_u64().ok_or_else(|| ControlError::Unexpected(v.to_string()))
    }

    /// `POST /v1/login`; returns the session token.
    pub fn login(&self, auth: &str, login: &str, password: &str) -> Result<String, ControlError> {
        let v = check(
            self.http.post(format!("{auth}/v1/login")).json(&json!({ "login": login, "password": password })).send()?,
        )?;
        Ok(field(&v, "session")?.as_str().unwrap_or_default().to_string())
    }

    /// `POST /v1/calls`; returns the call id.
    pub fn start_call(&self, calls: &str, session: &str) -> Result<String, ControlError> {
        let v = check(self.http.post(format!("{calls}/v1/calls")).bearer_auth(session).send()?)?;
        Ok(field(&v, "call_id")?.as_str().unwrap_or_default().to_string())
    }

    /// `POST /v1/calls/{id}/join` (with an optional role: publisher, subscriber).
    pub fn join_call(
        &self,
        calls: &str,
        session: &str,
        call_id: &str,
        role: Option<&str>,
    ) -> Result<JoinGrant, ControlError> {
        let mut rq = self.http.post(format!("{calls}/v1/calls/{call_id}/join")).bearer_auth(session);
        if let Some(r) = role {
            rq = rq.json(&json!({ "role": r }));
        }
        grant_of(&check(rq.send()?)?)
    }

    /// `POST /v1/calls/{id}/rejoin`: a new grant for the same participant on the router the
    /// call is on now (its router stopped answering, or said the call ended).
    pub fn rejoin_call(
        &self,
        calls: &str,
        session: &str,
        call_id: &str,
        participant_id: u64,
    ) -> Result<JoinGrant, ControlError> {
        let rq = self
            .http
            .post(format!("{calls}/v1/calls/{call_id}/rejoin"))
            .bearer_auth(session)
            .timeout(Duration::from_secs(3))
            .json(&json!({ "participant_id": participant_id }));
        grant_of(&check(rq.send()?)?)
    }

    /// `POST /v1/calls/{id}/leave`.
    pub fn leave_call(&self, calls: &str, session: &str, call_id: &str) -> Result<(), ControlError> {
        check(self.http.post(format!("{calls}/v1/calls/{call_id}/leave")).bearer_auth(session).send()?).map(|_| ())
    }

    /// `DELETE /v1/calls/{id}` (owner only).
    pub fn end_call(&self, calls: &str, session: &str, call_id: &str) -> Result<(), ControlError> {
        check(self.http.delete(format!("{calls}/v1/calls/{call_id}")).bearer_auth(session).send()?).map(|_| ())
    }

    /// `GET /v1/calls/{id}`: the call as JSON.
    pub fn get_call(&self, calls: &str, session: &str, call_id: &str) -> Result<Value, ControlError> {
        check(self.http.get(format!("{calls}/v1/calls/{call_id}")).bearer_auth(session).send()?)
    }
}
