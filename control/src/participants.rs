//! `PATCH /v1/calls/{id}/participants/{participant}`: a publisher's own muted state.
//!
//! A browser mutes its microphone or camera locally (the track sends silence or black); this
//! endpoint records the fact in the call store so that the others see it in
//! `GET /v1/calls/{id}` (`audio_muted`, `video_muted`). Only the user who joined as the
//! participant may change it, and only a publisher has anything to mute. The change is one
//! atomic store operation (`corecast_mute` in Tarantool).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;

use crate::call_view::ParticipantView;
use crate::calls::{parse_call_id, user, CallsState};
use crate::error::{ApiError, ApiJson};
use crate::stores::MuteChange;

/// `PATCH /v1/calls/{id}/participants/{participant}` with `{"audio_muted": bool,
/// "video_muted": bool}` (either or both) → `200` and the participant as stored.
pub async fn set_muted(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path((id, participant)): Path<(String, String)>,
    ApiJson(change): ApiJson<MuteChange>,
) -> Result<Json<ParticipantView>, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let pid: u64 = participant.parse().map_err(|_| ApiError::not_found("no such participant in this call"))?;
    if change.audio_muted.is_none() && change.video_muted.is_none() {
        return Err(ApiError::invalid("audio_muted", "give audio_muted, video_muted or both (true or false)"));
    }
    let p = st.calls.set_muted(id, pid, uid, change).await?;
    tracing::info!(call_id = %id, participant_id = pid, audio_muted = p.audio_muted, video_muted = p.video_muted, "muted state");
    let name = match st.users() {
        Some(u) => u.by_id(uid).await.ok().flatten().map(|u| u.name),
        None => None,
    };
    Ok(Json(ParticipantView::of(p, name)))
}
