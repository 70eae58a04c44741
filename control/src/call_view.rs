//! `GET /v1/calls/{id}`: what the owner and every participant see of a call, so that a
//! client knows whom it can subscribe to (WHEP `?participant=`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::stores::{Call, Participant, UserStore};

/// One participant as the call's members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    /// Participant id (what WHEP `?participant=` names).
    pub participant_id: u64,
    /// The user who joined.
    pub user_id: i32,
    /// The user's display name; `null` when this calls service has no user store (a
    /// separate calls process on the embedded user database) or the user is gone.
    pub name: Option<String>,
    /// `publisher` (camera and microphone), `screen` (a screen share) or `subscriber`.
    pub role: String,
    /// What the participant sends: `["audio", "video"]` for a publisher, `["video"]` for a
    /// screen share, `[]` otherwise.
    pub publishes: Vec<String>,
    /// When the participant joined, Unix milliseconds.
    pub joined_at: u64,
    /// The participant's microphone is muted (set by its user, `PATCH …/participants/{id}`).
    pub audio_muted: bool,
    /// The participant's camera is off.
    pub video_muted: bool,
}

impl ParticipantView {
    /// The view of a stored participant with its user's name.
    pub fn of(p: Participant, name: Option<String>) -> Self {
        let publishes = match p.role.as_str() {
            "publisher" => vec!["audio".to_owned(), "video".to_owned()],
            "screen" => vec!["video".to_owned()],
            _ => vec![],
        };
        ParticipantView {
            participant_id: p.participant_id,
            user_id: p.user_id,
            name,
            role: p.role,
            publishes,
            joined_at: p.joined_at,
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
        }
    }
}

/// Public view of a call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallView {
    /// Call id.
    pub call_id: Uuid,
    /// Owner's user id.
    pub owner: i32,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Media address of the router.
    pub router: String,
    /// Participants, in join order.
    pub participants: Vec<ParticipantView>,
    /// The participant the router last named the call's dominant speaker (the loudest by
    /// the RFC 6464 audio levels publishers send, held with hysteresis), while it is in the
    /// call; `null` until someone is heard.
    pub dominant_speaker: Option<u64>,
}

/// Builds the view of `call`, its participants' names looked up in `users` (a failed
/// lookup leaves the name `null` rather than failing the request).
pub async fn call_view(call: Call, router: String, users: Option<&dyn UserStore>) -> CallView {
    let mut names: std::collections::HashMap<i32, Option<String>> = std::collections::HashMap::new();
    let mut participants = Vec::with_capacity(call.participants.len());
    for p in call.participants {
        let name = match (names.get(&p.user_id), users) {
            (Some(n), _) => n.clone(),
            (None, Some(u)) => {
                let n = match u.by_id(p.user_id).await {
                    Ok(found) => found.map(|u| u.name),
                    Err(e) => {
                        tracing::warn!(user_id = p.user_id, error = %e, "participant name lookup failed");
                        None
                    }
                };
                names.insert(p.user_id, n.clone());
                n
            }
            (None, None) => None,
        };
        participants.push(ParticipantView::of(p, name));
    }
    let dominant_speaker = call.dominant_speaker.filter(|d| participants.iter().any(|p| p.participant_id == *d));
    CallView {
        call_id: call.id,
        owner: call.owner,
        created_at: call.created_at,
        router,
        participants,
        dominant_speaker,
    }
}
