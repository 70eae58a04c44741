//! Router counters: plain integers, one set per worker (no atomics).

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not RTP, RTCP or a session message, or failed to parse.
    Malformed,
    /// From an address no valid join admitted.
    Unadmitted,
    /// A join whose token is malformed, forged, expired or revoked.
    BadToken,
    /// A session message not signed with its participant's join key.
    BadIntegrity,
    /// RTP with an SSRC the sender does not own.
    SsrcNotOwned,
    /// RTP from a subscriber.
    NotPublisher,
    /// A keyframe request within the throttle interval of the previous one.
    KeyframeThrottled,
    /// RTCP with nothing to route (unknown SSRCs, APP, unknown types).
    RtcpUnroutable,
    /// An ICE check naming a ufrag no leg has, or failing its integrity check.
    IceRefused,
    /// SRTP/SRTCP that fails authentication (tampered, wrong keys, garbage).
    SrtpAuth,
    /// SRTP/SRTCP replayed (seen before, or older than the replay window).
    SrtpReplay,
    /// Media on a WebRTC leg before its DTLS handshake keyed SRTP.
    NotReady,
    /// A pipe datagram (cascading) from an address no open link of its call names.
    PipeUnadmitted,
    /// A pipe datagram from a linked router's address that fails
    /// authentication (tampered, another or unknown key, truncated).
    PipeAuthFailed,
    /// A pipe datagram replayed (its counter seen, or older than the window).
    PipeReplayed,
}

/// Counters of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Datagrams emitted as transmits.
    pub tx_datagrams: u64,
    /// Bytes of the datagrams emitted as transmits.
    pub tx_bytes: u64,
    /// RTP packets forwarded (one per receiver).
    pub forwarded_rtp: u64,
    /// Media packets (RTP and RTCP) handed to pipe transports (one per pipe).
    pub pipe_media: u64,
    /// Control messages on pipe transports (opens, seats, producers, leaves).
    pub pipe_control: u64,
    /// Media packets sent over links to other routers (one per link).
    pub cascade_media_out: u64,
    /// Media packets received over links from other routers.
    pub cascade_media_in: u64,
    /// Control messages sent over links to other routers.
    pub cascade_control_out: u64,
    /// Control messages received over links from other routers.
    pub cascade_control_in: u64,
    /// RTCP compounds forwarded (one per receiver).
    pub forwarded_rtcp: u64,
    /// RTCP compounds of the router's own reports (RRs to publishers, SRs to
    /// receivers) sent, one per leg and report interval (or more, for a leg
    /// that gets more than 32 streams).
    pub reports_sent: u64,
    /// Session messages handled.
    pub session_messages: u64,
    /// Participants admitted.
    pub joins: u64,
    /// Joins refused.
    pub joins_refused: u64,
    /// Joins redirected to another worker.
    pub joins_redirected: u64,
    /// Checks sent to a new address of an admitted native participant.
    pub address_checks: u64,
    /// Native participants moved to a new address after a passed check.
    pub address_moves: u64,
    /// Participants removed for any reason.
    pub leaves: u64,
    /// Participants removed for silence.
    pub timeouts: u64,
    /// Keyframe requests (PLI/FIR) forwarded to producers.
    pub keyframe_requests: u64,
    /// NACKs forwarded to producers (receivers' NACKs with what the router
    /// could not answer itself).
    pub nacks: u64,
    /// Audio packets not sent to an SD receiver because their speaker is not
    /// among the call's loudest (one per receiver; not a drop).
    pub sd_audio_withheld: u64,
    /// Audio packets not sent to an SD WebRTC leg (a composite view) because
    /// it hears the call's mixer's mix of them instead (one per receiver; not a drop).
    pub sd_audio_mixed: u64,
    /// Video packets not sent to a receiver with a frame-rate cap
    /// (`max_fps`): their frame is in a temporal layer above what the cap
    /// allows (one per receiver; not a drop: its sequence numbers close over them).
    pub frame_rate_dropped: u64,
    /// Video packets not sent to a Last-N receiver because their publisher
    /// is not among its `n` most active speakers (one per receiver; not a drop).
    pub last_n_withheld: u64,
    /// Simulcast: times a receiver moved to another layer of a source (at
    /// one of that layer's keyframes).
    pub layer_switches: u64,
    /// Packets a publisher's uplink lost that the router's NACKs could not
    /// recover (given up), each a keyframe request to the publisher
    /// (throttled: see `keyframe_requests` for those that went).
    pub keyframes_for_loss: u64,
    /// Simulcast: packets of layers a receiver does not get (one per
    /// receiver; not a drop: it gets another layer of the same source).
    pub layers_skipped: u64,
    /// Opus packets sent as RED (RFC 2198, with the previous packet as
    /// redundancy) to WebRTC legs whose link loses packets (one per receiver).
    pub red_sent: u64,
    /// Transport-wide feedback messages from WebRTC receivers fed to their
    /// bandwidth estimate (`bwe`).
    pub twcc_feedback: u64,
    /// Padding-only RTX packets sent to WebRTC receivers as bandwidth probes.
    pub probes_sent: u64,
    /// NACKed packets of a simulcast layer the receiver had moved off (not
    /// repaired: its decoder starts again at the new layer's keyframe).
    pub nack_left_behind: u64,
    /// Packets to paced WebRTC receivers that waited in their leg's queue
    /// (`webrtc::pacing`) instead of leaving at once.
    pub paced: u64,
    /// Queued packets sent before the pace allowed: after the longest wait
    /// (250 ms) or to make room in a full queue.
    pub pacer_overdue: u64,
    /// Queued packets of a simulcast layer the receiver stopped getting to
    /// move down, withdrawn before they were sent.
    pub pacer_withdrawn: u64,
    /// HD receivers the overload protection moved to SD (`overload`).
    pub overload_shed: u64,
    /// Receivers the overload protection held at their simulcast sources'
    /// lowest layers (its first step, before SD).
    pub overload_layers_lowered: u64,
    /// ... and brought back to HD when the load fell.
    pub overload_restored: u64,
    /// Video packets that arrived again (same sequence number, still in the
    /// retransmission buffer) and were not forwarded again (not a drop).
    pub duplicates_dropped: u64,
    /// Packets the router resent to a receiver from its retransmission
    /// buffer (one per receiver and packet).
    pub retransmitted: u64,
    /// RTX packets (RFC 4588) from WebRTC publishers: repairs forwarded as
    /// the packets they repair, and padding-only probes (dropped here).
    pub rtx_received: u64,
    /// Sequence numbers receivers NACKed that the retransmission buffer held.
    pub nack_answered: u64,
    /// Sequence numbers receivers NACKed that the buffer did not hold (asked
    /// of the publisher unless the router already asks for them itself).
    pub nack_missed: u64,
    /// NACK messages the router sent to publishers for the gaps it saw itself
    /// (each try counts).
    pub nacks_upstream: u64,
    /// Retransmissions not sent: the receiver's retransmission budget was spent.
    pub retransmit_refused: u64,
    /// Sequence numbers a receiver NACKed that were not passed on to the
    /// publisher: its retransmission budget was spent, or the same number
    /// went on less than 100 ms before (a NACK flood costs the publisher nothing).
    pub nack_throttled: u64,
    /// Session replies not sent because they would have been longer than the
    /// datagram they answer (a spoofed source must not be sent more than it
    /// sent: no amplification).
    pub replies_withheld: u64,
    /// Dropped: malformed.
    pub dropped_malformed: u64,
    /// Dropped: unadmitted source.
    pub dropped_unadmitted: u64,
    /// Dropped: bad token.
    pub dropped_bad_token: u64,
    /// Dropped: a session message not signed with the sender's join key.
    pub dropped_bad_integrity: u64,
    /// Dropped: SSRC not owned by the sender.
    pub dropped_ssrc_not_owned: u64,
    /// Dropped: RTP from a subscriber.
    pub dropped_not_publisher: u64,
    /// Dropped: keyframe request throttled.
    pub dropped_keyframe_throttled: u64,
    /// Dropped: RTCP with nothing to route.
    pub dropped_rtcp_unroutable: u64,
    /// Dropped: ICE checks with an unknown ufrag or bad integrity.
    pub dropped_ice_refused: u64,
    /// Dropped: SRTP/SRTCP failing authentication.
    pub dropped_srtp_auth: u64,
    /// Dropped: SRTP/SRTCP replays.
    pub dropped_srtp_replay: u64,
    /// Dropped: media on a WebRTC leg not keyed yet.
    pub dropped_not_ready: u64,
    /// Dropped: [`DropReason::PipeUnadmitted`].
    pub dropped_pipe_unadmitted: u64,
    /// Dropped: [`DropReason::PipeAuthFailed`].
    pub dropped_pipe_auth_failed: u64,
    /// Dropped: [`DropReason::PipeReplayed`].
    pub dropped_pipe_replayed: u64,
    /// ICE checks answered (WebRTC legs).
    pub ice_checks: u64,
    /// DTLS handshakes completed (WebRTC legs keyed).
    pub dtls_connected: u64,
    /// WebRTC legs closed because their DTLS handshake failed.
    pub dtls_failed: u64,
    /// Packets the router could not seal for a WebRTC leg (an SRTP index
    /// reused or far behind: a duplicate from a native sender).
    pub srtp_seal_failed: u64,
    /// Forwarded packets not sent to a WebRTC leg: not connected yet, or
    /// no m-line for the stream's kind and codec.
    pub webrtc_not_ready: u64,
}

impl RouterStats {
    pub(crate) fn count_drop(&mut self, r: DropReason) {
        let c = match r {
            DropReason::Malformed => &mut self.dropped_malformed,
            DropReason::Unadmitted => &mut self.dropped_unadmitted,
            DropReason::BadToken => &mut self.dropped_bad_token,
            DropReason::BadIntegrity => &mut self.dropped_bad_integrity,
            DropReason::SsrcNotOwned => &mut self.dropped_ssrc_not_owned,
            DropReason::NotPublisher => &mut self.dropped_not_publisher,
            DropReason::KeyframeThrottled => &mut self.dropped_keyframe_throttled,
            DropReason::RtcpUnroutable => &mut self.dropped_rtcp_unroutable,
            DropReason::IceRefused => &mut self.dropped_ice_refused,
            DropReason::SrtpAuth => &mut self.dropped_srtp_auth,
            DropReason::SrtpReplay => &mut self.dropped_srtp_replay,
            DropReason::NotReady => &mut self.dropped_not_ready,
            DropReason::PipeUnadmitted => &mut self.dropped_pipe_unadmitted,
            DropReason::PipeAuthFailed => &mut self.dropped_pipe_auth_failed,
            DropReason::PipeReplayed => &mut self.dropped_pipe_replayed,
        };
        *c += 1;
    }

    /// All drops together.
    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_unadmitted
            + self.dropped_bad_token
            + self.dropped_bad_integrity
            + self.dropped_ssrc_not_owned
            + self.dropped_not_publisher
            + self.dropped_keyframe_throttled
            + self.dropped_rtcp_unroutable
            + self.dropped_ice_refused
            + self.dropped_srtp_auth
            + self.dropped_srtp_replay
            + self.dropped_not_ready
            + self.dropped_pipe_unadmitted
            + self.dropped_pipe_auth_failed
            + self.dropped_pipe_replayed
    }

    /// Adds another worker's counters to these.
    pub fn add(&mut self, o: &RouterStats) {
        macro_rules! sum { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        sum!(
            rx_datagrams,
            rx_bytes,
            tx_datagrams,
            tx_bytes,
            forwarded_rtp,
            pipe_media,
            pipe_control,
            cascade_media_out,
            cascade_media_in,
            cascade_control_out,
            cascade_control_in,
            forwarded_rtcp,
            reports_sent,
            session_messages,
            joins,
            joins_refused,
            joins_redirected,
            address_checks,
            address_moves,
            leaves,
            timeouts,
            keyframe_requests,
            nacks,
            sd_audio_withheld,
            sd_audio_mixed,
            frame_rate_dropped,
            last_n_withheld,
            layer_switches,
            keyframes_for_loss,
            layers_skipped,
            overload_shed,
            overload_layers_lowered,
            red_sent,
            twcc_feedback,
            probes_sent,
            nack_left_behind,
            paced,
            pacer_overdue,
            pacer_withdrawn,
            overload_restored,
            duplicates_dropped,
            retransmitted,
            nack_answered,
            nack_missed,
            nacks_upstream,
            retransmit_refused,
            nack_throttled,
            replies_withheld,
            rtx_received,
            dropped_malformed,
            dropped_unadmitted,
            dropped_bad_token,
            dropped_bad_integrity,
            dropped_ssrc_not_owned,
            dropped_not_publisher,
            dropped_keyframe_throttled,
            dropped_rtcp_unroutable,
            dropped_ice_refused,
            dropped_srtp_auth,
            dropped_srtp_replay,
            dropped_not_ready,
            dropped_pipe_unadmitted,
            dropped_pipe_auth_failed,
            dropped_pipe_replayed,
            ice_checks,
            dtls_connected,
            dtls_failed,
            webrtc_not_ready,
            srtp_seal_failed
        );
    }
}

/// What a worker's buffers hold right now (a gauge, counted on demand: see
/// `Router::buffer_stats`), so that a soak can tell a leak from a working set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Video producers with a retransmission buffer.
    pub retransmit_buffers: u64,
    /// Heap bytes those buffers hold (slots and packet copies, by capacity).
    pub retransmit_bytes: u64,
}
