//! WHIP (RFC 9725) and WHEP on the calls service: `POST` the offer as
//! `application/sdp` with the session token as a bearer token; the service
//! answers `201 Created` with the SDP answer, the session's `Location` and
//! the participant it allocated (`X-Participant-Id`).

use std::time::Duration;

/// What the calls service answered.
#[derive(Debug, Clone)]
pub struct WhipAnswer {
    /// The SDP answer.
    pub sdp: String,
    /// The session resource (`Location`), for `DELETE` when done.
    pub location: Option<String>,
    /// The participant the leg is (`X-Participant-Id`).
    pub participant_id: Option<u64>,
}

/// Publish (`/whip`) or receive one participant (`/whep?participant=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// WHIP.
    Whip,
    /// WHEP, one participant's audio and video.
    Whep(u64),
}

/// The endpoint's URL under the calls service's base URL.
pub fn url(calls: &str, call_id: &str, e: Endpoint) -> String {
    let base = calls.trim_end_matches('/');
    match e {
        Endpoint::Whip => format!("{base}/v1/calls/{call_id}/whip"),
        Endpoint::Whep(p) => format!("{base}/v1/calls/{call_id}/whep?participant={p}"),
    }
}

/// `POST`s `offer` to `url`.
pub fn post_offer(url: &str, session: &str, offer: &str) -> anyhow::Result<WhipAnswer> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let r = http
        .post(url)
        .bearer_auth(session)
        .header(reqwest::header::CONTENT_TYPE, "application/sdp")
        .body(offer.to_string())
        .send()?;
    let status = r.status();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let location = header("location");
    let participant_id = header("x-participant-id").and_then(|v| v.trim().parse().ok());
    let body = r.text()?;
    if status.as_u16() != 201 {
        anyhow::bail!("{url}: {status}: {body}");
    }
    Ok(WhipAnswer { sdp: body, location, participant_id })
}

/// `DELETE`s the session resource (ends the leg); errors are ignored.
pub fn delete_session(calls: &str, location: &str, session: &str) {
    let url = if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{}{location}", calls.trim_end_matches('/'))
    };
    if let Ok(http) = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build() {
        let _ = http.delete(url).bearer_auth(session).send();
    }
}
