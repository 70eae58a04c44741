//! Router configuration: a TOML file, then environment variables and
//! command-line flags on top (flags and variables win).
//!
//! ```toml
//! listen = "0.0.0.0:40000"      # worker i listens on port 40000 + i
//! advertise_ip = "203.0.113.7"  # address clients are redirected to
//! workers = 2                   # one per core
//! cpus = [0, 1]                 # pin worker i to cpus[i]
//! backend = "auto"              # auto | basic | mmsg | uring
//! public_key_hex = "..."        # Ed25519 key of the calls service (64 hex digits)
//! silence_timeout_ms = 15000
//! max_participants_per_call = 100  # over every worker the call spreads to
//! max_receivers_per_worker = 44     # a call spreads to other workers beyond this (default: the
//!                                   # largest full mesh one core carries, see corecast_core::config)
//! audio_level_ext_id = 1        # RFC 8285 id of the RFC 6464 audio level (0: ignore levels)
//! sd_audio_streams = 3          # SD receivers hear the 3 loudest speakers (0: all)
//! retransmission = true         # false: NACKs go to publishers (the buffer is on by default)
//! admin_listen = "127.0.0.1:40100"
//! calls_url = "http://127.0.0.1:8082" # register and report to the calls service
//! router_id = "r1"
//! router_secret = "..."              # shared with the calls service
//! heartbeat_ms = 5000
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The file's contents; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Worker 0's address.
    pub listen: Option<SocketAddr>,
    /// Address to advertise when `listen` is a wildcard.
    pub advertise_ip: Option<IpAddr>,
    /// Number of workers.
    pub workers: Option<usize>,
    /// CPUs to pin workers to.
    pub cpus: Option<Vec<usize>>,
    /// Socket backend.
    pub backend: Option<String>,
    /// Verifying key of the calls service, hex.
    pub public_key_hex: Option<String>,
    /// Silence timeout.
    pub silence_timeout_ms: Option<u64>,
    /// Per-call participant cap.
    pub max_participants_per_call: Option<usize>,
    /// Participants of one call on its owning worker before it spreads.
    pub max_receivers_per_worker: Option<usize>,
    /// The retransmission buffer and the router's own NACKs (default true).
    pub retransmission: Option<bool>,
    /// RFC 8285 id of the RFC 6464 audio level extension (0: ignore levels).
    pub audio_level_ext_id: Option<u8>,
    /// How many of the loudest speakers SD receivers hear (0: all).
    pub sd_audio_streams: Option<usize>,
    /// Admin HTTP address.
    pub admin_listen: Option<SocketAddr>,
    /// Base URL of the calls service (enables registration and event reports).
    pub calls_url: Option<String>,
    /// This router's id at the calls service.
    pub router_id: Option<String>,
    /// Secret shared with the calls service.
    pub router_secret: Option<String>,
    /// Registration / heartbeat interval.
    pub heartbeat_ms: Option<u64>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
    }

    /// The silence timeout as a duration.
    pub fn silence_timeout(&self) -> Option<Duration> {
        self.silence_timeout_ms.map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_file_and_rejects_unknown_keys() {
        let c: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:40000\"\nworkers = 2\ncpus = [0, 1]\nbackend = \"mmsg\"\nsilence_timeout_ms = 5000\n\
             audio_level_ext_id = 3\nsd_audio_streams = 2\nmax_receivers_per_worker = 20\nretransmission = false\n",
        )
        .unwrap();
        assert_eq!(c.workers, Some(2));
        assert_eq!(c.silence_timeout(), Some(Duration::from_secs(5)));
        assert_eq!((c.audio_level_ext_id, c.sd_audio_streams), (Some(3), Some(2)));
        assert_eq!(c.max_receivers_per_worker, Some(20));
        assert_eq!(c.retransmission, Some(false));
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }
}
