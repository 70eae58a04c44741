//! The router's counters in the Prometheus text format (`GET /metrics`).
//!
//! Every series has a `worker` label (the worker's index); drops also have a
//! `reason` (the core's [`DropReason`](corecast_core::DropReason), as in
//! `GET /v1/stats`). Counters are the workers' own (plain integers read on
//! request, so a scrape costs each worker one stats reply); gauges are
//! counted when asked. `# HELP` and `# TYPE` come from `prometheus-client`.

use std::fmt;

use corecast_core::RouterStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::{Registry, Unit};

use crate::worker::WorkerStats;

/// The `Content-Type` of [`render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Count = fn(&WorkerStats) -> u64;

/// Counters: name (without `_total`), help, value.
const COUNTERS: &[(&str, &str, Count)] = &[
    ("corecast_rx_datagrams", "Datagrams received", |w| w.router.rx_datagrams),
    ("corecast_rx_bytes", "Bytes received", |w| w.router.rx_bytes),
    ("corecast_tx_datagrams", "Datagrams the core emitted", |w| w.router.tx_datagrams),
    ("corecast_tx_bytes", "Bytes of the datagrams the core emitted", |w| w.router.tx_bytes),
    ("corecast_batches", "Loop iterations that received something", |w| w.batches),
    ("corecast_forwarded_rtp", "RTP packets forwarded, one per receiver", |w| w.router.forwarded_rtp),
    ("corecast_forwarded_rtcp", "RTCP compounds forwarded, one per receiver", |w| w.router.forwarded_rtcp),
    ("corecast_reports_sent", "RTCP compounds of the router's own reports sent", |w| w.router.reports_sent),
    ("corecast_session_messages", "Session messages handled", |w| w.router.session_messages),
    ("corecast_joins", "Participants admitted", |w| w.router.joins),
    ("corecast_joins_refused", "Joins refused", |w| w.router.joins_refused),
    ("corecast_joins_redirected", "Joins redirected to another worker", |w| w.router.joins_redirected),
    ("corecast_leaves", "Participants removed for any reason", |w| w.router.leaves),
    ("corecast_timeouts", "Participants removed for silence", |w| w.router.timeouts),
    ("corecast_address_checks", "Checks sent to a new address of a native participant", |w| w.router.address_checks),
    ("corecast_address_moves", "Native participants moved to a new address", |w| w.router.address_moves),
    ("corecast_keyframe_requests", "Keyframe requests (PLI/FIR) forwarded to producers", |w| {
        w.router.keyframe_requests
    }),
    ("corecast_nacks", "NACKs forwarded to producers", |w| w.router.nacks),
    ("corecast_sd_audio_withheld", "Audio packets not sent to SD receivers (not loudest)", |w| {
        w.router.sd_audio_withheld
    }),
    ("corecast_sd_audio_mixed", "Audio packets not sent to SD WebRTC legs (they hear the mix)", |w| {
        w.router.sd_audio_mixed
    }),
    ("corecast_frame_rate_dropped", "Video packets above a receiver's frame-rate cap (not a drop)", |w| {
        w.router.frame_rate_dropped
    }),
    ("corecast_last_n_withheld", "Video packets not sent to Last-N receivers", |w| w.router.last_n_withheld),
    ("corecast_layer_switches", "Simulcast layer switches", |w| w.router.layer_switches),
    ("corecast_keyframes_for_loss", "Keyframe requests for losses NACKs did not recover", |w| {
        w.router.keyframes_for_loss
    }),
    ("corecast_layers_skipped", "Packets of simulcast layers a receiver does not get", |w| w.router.layers_skipped),
    ("corecast_red_sent", "Opus packets sent as RED", |w| w.router.red_sent),
    ("corecast_twcc_feedback", "Transport-wide feedback messages fed to the estimate", |w| w.router.twcc_feedback),
    ("corecast_probes_sent", "Padding probes sent to WebRTC receivers", |w| w.router.probes_sent),
    ("corecast_nack_left_behind", "NACKs for a layer the receiver moved off", |w| w.router.nack_left_behind),
    ("corecast_paced", "Packets that waited in a leg's pacing queue", |w| w.router.paced),
    ("corecast_pacer_overdue", "Queued packets sent before the pace allowed", |w| w.router.pacer_overdue),
    ("corecast_pacer_withdrawn", "Queued packets withdrawn at a move down", |w| w.router.pacer_withdrawn),
    ("corecast_overload_shed", "HD receivers moved to SD by the overload protection", |w| w.router.overload_shed),
    ("corecast_overload_layers_lowered", "Receivers held at their sources' lowest layers", |w| {
        w.router.overload_layers_lowered
    }),
    ("corecast_overload_restored", "Receivers brought back to HD", |w| w.router.overload_restored),
    ("corecast_duplicates_dropped", "Video packets that arrived again (not forwarded again)", |w| {
        w.router.duplicates_dropped
    }),
    ("corecast_retransmitted", "Packets resent from the retransmission buffer", |w| w.router.retransmitted),
    ("corecast_rtx_received", "RTX packets from WebRTC publishers", |w| w.router.rtx_received),
    ("corecast_nack_answered", "NACKed sequence numbers the buffer held", |w| w.router.nack_answered),
    ("corecast_nack_missed", "NACKed sequence numbers the buffer did not hold", |w| w.router.nack_missed),
    ("corecast_nacks_upstream", "NACKs the router sent to publishers itself", |w| w.router.nacks_upstream),
    ("corecast_retransmit_refused", "Retransmissions refused (budget spent)", |w| w.router.retransmit_refused),
    ("corecast_nack_throttled", "NACKed sequence numbers not passed on (throttled)", |w| w.router.nack_throttled),
    ("corecast_replies_withheld", "Replies withheld (longer than the datagram they answer)", |w| {
        w.router.replies_withheld
    }),
    ("corecast_ice_checks", "ICE checks answered", |w| w.router.ice_checks),
    ("corecast_dtls_connected", "DTLS handshakes completed", |w| w.router.dtls_connected),
    ("corecast_dtls_failed", "WebRTC legs closed for a failed DTLS handshake", |w| w.router.dtls_failed),
    ("corecast_webrtc_not_sent", "Packets not sent to a WebRTC leg (not connected, no m-line)", |w| {
        w.router.webrtc_not_ready
    }),
    ("corecast_srtp_seal_failed", "Packets the router could not seal for a WebRTC leg", |w| w.router.srtp_seal_failed),
    ("corecast_pipe_media", "Media packets handed to pipe transports", |w| w.router.pipe_media),
    ("corecast_pipe_control", "Control messages on pipe transports", |w| w.router.pipe_control),
    ("corecast_piped_out", "Pipe messages handed to other workers", |w| w.piped_out),
    ("corecast_piped_in", "Pipe messages taken from other workers", |w| w.piped_in),
    ("corecast_pipe_drops", "Pipe media dropped: a ring to another worker was full", |w| w.pipe_drops),
    ("corecast_cascade_media_out", "Media packets sent over links to other routers (one per link)", |w| {
        w.router.cascade_media_out
    }),
    ("corecast_cascade_media_in", "Media packets received over links from other routers", |w| {
        w.router.cascade_media_in
    }),
    ("corecast_cascade_control_out", "Control messages sent over links to other routers", |w| {
        w.router.cascade_control_out
    }),
    ("corecast_cascade_control_in", "Control messages received over links from other routers", |w| {
        w.router.cascade_control_in
    }),
    ("corecast_recv_calls", "Receive system calls (or completions) that returned data", |w| w.io.recv_calls),
    ("corecast_send_calls", "Send system calls (or submissions)", |w| w.io.send_calls),
    ("corecast_gso_sends", "Sends that carried several datagrams as one GSO buffer", |w| w.io.gso_sends),
    ("corecast_gso_fallbacks", "GSO sends refused by the kernel and sent plainly", |w| w.io.gso_fallbacks),
    ("corecast_send_errors", "Datagrams that could not be sent", |w| w.io.send_errors),
    ("corecast_recv_drops", "Datagrams dropped on receive (buffer exhaustion, truncation)", |w| w.io.recv_drops),
    ("corecast_recv_ring_exhausted", "Times the io_uring buffer ring ran out", |w| w.io.recv_ring_exhausted),
    ("corecast_xdp_recv_datagrams", "Datagrams received through AF_XDP (xdp backend)", |w| w.io.xdp_recv_datagrams),
    ("corecast_xdp_sent_datagrams", "Datagrams sent through AF_XDP (xdp backend)", |w| w.io.xdp_sent_datagrams),
];

/// Gauges: name, help, value.
const GAUGES: &[(&str, &str, Count)] = &[
    ("corecast_calls", "Live calls (shares of calls) on the worker", |w| w.calls as u64),
    ("corecast_participants", "Admitted participants on the worker", |w| w.participants as u64),
    ("corecast_pipe_links", "Pipe transports to other workers' shares of calls", |w| w.pipe_links as u64),
    ("corecast_cascade_links", "Links to other routers' shares of calls (cascading)", |w| w.cascade_links as u64),
    ("corecast_retransmit_buffers", "Retransmission buffers held", |w| w.buffers.retransmit_buffers),
    ("corecast_retransmit_buffer_bytes", "Bytes the retransmission buffers hold", |w| w.buffers.retransmit_bytes),
];

type DropCount = fn(&RouterStats) -> u64;

/// Drop reasons (as in `GET /v1/stats`'s `dropped`) and their counters.
const DROPS: &[(&str, DropCount)] = &[
    ("malformed", |r| r.dropped_malformed),
    ("unadmitted", |r| r.dropped_unadmitted),
    ("bad_token", |r| r.dropped_bad_token),
    ("bad_integrity", |r| r.dropped_bad_integrity),
    ("ssrc_not_owned", |r| r.dropped_ssrc_not_owned),
    ("not_publisher", |r| r.dropped_not_publisher),
    ("keyframe_throttled", |r| r.dropped_keyframe_throttled),
    ("rtcp_unroutable", |r| r.dropped_rtcp_unroutable),
    ("ice_refused", |r| r.dropped_ice_refused),
    ("srtp_auth", |r| r.dropped_srtp_auth),
    ("srtp_replay", |r| r.dropped_srtp_replay),
    ("not_ready", |r| r.dropped_not_ready),
    ("pipe_unadmitted", |r| r.dropped_pipe_unadmitted),
    ("pipe_auth_failed", |r| r.dropped_pipe_auth_failed),
    ("pipe_replayed", |r| r.dropped_pipe_replayed),
];

type LinkCount = fn(&corecast_core::LinkStats) -> u64;

/// Counters per link to another router (labels `worker` and `peer`, its address).
const LINKS: &[(&str, &str, LinkCount)] = &[
    ("corecast_link_media_out", "Media packets sent to another router", |l| l.media_out),
    ("corecast_link_media_in", "Media packets received from another router", |l| l.media_in),
    ("corecast_link_rtcp_out", "RTCP compounds (of the media) sent to another router", |l| l.rtcp_out),
    ("corecast_link_rtcp_in", "RTCP compounds (of the media) received from another router", |l| l.rtcp_in),
    ("corecast_link_control_out", "Control messages sent to another router", |l| l.control_out),
    ("corecast_link_control_in", "Control messages received from another router", |l| l.control_in),
    ("corecast_link_bytes_out", "Bytes sent to another router", |l| l.bytes_out),
    ("corecast_link_bytes_in", "Bytes received from another router", |l| l.bytes_in),
];

/// One scrape's worth of worker counters.
#[derive(Debug)]
struct Workers(Vec<WorkerStats>);

impl Workers {
    /// One metric with a `worker` label per worker.
    fn per_worker<M: EncodeMetric + TypedMetric>(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: impl Fn(&WorkerStats) -> M,
    ) -> fmt::Result {
        let mut m = enc.encode_descriptor(name, help, unit, M::TYPE)?;
        for (i, w) in self.0.iter().enumerate() {
            value(w).encode(m.encode_family(&[("worker", i)])?)?;
        }
        Ok(())
    }
}

impl Collector for Workers {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        enc.encode_descriptor("corecast_workers", "Workers that answered this scrape", None, ConstGauge::<u64>::TYPE)
            .and_then(|m| ConstGauge::new(self.0.len() as u64).encode(m))?;
        for &(name, help, value) in GAUGES {
            self.per_worker(&mut enc, name, help, None, |w| ConstGauge::new(value(w)))?;
        }
        for &(name, help, value) in COUNTERS {
            self.per_worker(&mut enc, name, help, None, |w| ConstCounter::new(value(w)))?;
        }
        let mut m =
            enc.encode_descriptor("corecast_dropped", "Datagrams dropped, by reason", None, ConstCounter::<u64>::TYPE)?;
        for (i, w) in self.0.iter().enumerate() {
            for &(reason, value) in DROPS {
                let labels = [("worker", i.to_string()), ("reason", reason.to_owned())];
                ConstCounter::new(value(&w.router)).encode(m.encode_family(&labels)?)?;
            }
        }
        for &(name, help, value) in LINKS {
            let mut m = enc.encode_descriptor(name, help, None, ConstCounter::<u64>::TYPE)?;
            for (i, w) in self.0.iter().enumerate() {
                for (peer, l) in &w.links {
                    let labels = [("worker", i.to_string()), ("peer", peer.to_string())];
                    ConstCounter::new(value(l)).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        self.per_worker(
            &mut enc,
            "corecast_worker_busy",
            "Time the worker spent on work rather than waiting for packets (summed each second)",
            Some(&Unit::Seconds),
            |w| ConstCounter::new(w.busy.as_secs_f64()),
        )?;
        self.per_worker(
            &mut enc,
            "corecast_worker_load_ratio",
            "The worker's busy share over the last second (what the overload protection sees)",
            None,
            |w| ConstGauge::new(f64::from(w.load_permille) / 1000.0),
        )?;
        Ok(())
    }
}

/// The workers' counters in the Prometheus text format (version 0.0.4).
pub fn render(workers: Vec<WorkerStats>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Workers(workers)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_series_is_described_and_labelled_by_worker() {
        let mut a = WorkerStats::default();
        a.router.rx_datagrams = 7;
        a.router.rx_bytes = 700;
        a.router.dropped_malformed = 2;
        a.participants = 3;
        a.busy = Duration::from_millis(1500);
        a.load_permille = 250;
        let peer = std::net::SocketAddr::from(([10, 0, 0, 2], 5000));
        a.links = vec![(peer, corecast_core::LinkStats { media_out: 5, ..Default::default() })];
        let text = render(vec![a, WorkerStats::default()]);
        assert!(text.contains("# HELP corecast_rx_datagrams_total Datagrams received\n"), "{text}");
        assert!(text.contains("# TYPE corecast_rx_datagrams_total counter\n"), "{text}");
        assert!(text.contains("corecast_rx_datagrams_total{worker=\"0\"} 7\n"), "{text}");
        assert!(text.contains("corecast_rx_datagrams_total{worker=\"1\"} 0\n"), "{text}");
        assert!(text.contains("corecast_rx_bytes_total{worker=\"0\"} 700\n"), "{text}");
        assert!(text.contains("# TYPE corecast_participants gauge\n"), "{text}");
        assert!(text.contains("corecast_participants{worker=\"0\"} 3\n"), "{text}");
        assert!(text.contains("corecast_dropped_total{worker=\"0\",reason=\"malformed\"} 2\n"), "{text}");
        assert!(text.contains("corecast_worker_busy_seconds_total{worker=\"0\"} 1.5\n"), "{text}");
        assert!(text.contains("corecast_worker_load_ratio{worker=\"0\"} 0.25\n"), "{text}");
        assert!(text.contains("corecast_workers 2\n"), "{text}");
        assert!(text.contains("corecast_link_media_out_total{worker=\"0\",peer=\"10.0.0.2:5000\"} 5\n"), "{text}");
        // Every sample line belongs to a family announced with HELP and TYPE.
        let typed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(typed.contains(&name), "{name} has no TYPE line");
        }
        assert_eq!(typed.len(), text.lines().filter(|l| l.starts_with("# HELP ")).count());
    }
}
