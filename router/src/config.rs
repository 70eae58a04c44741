//! Router configuration: a TOML file, then environment variables and
//! command-line flags on top (flags and variables win).
//!
//! ```toml
//! listen = "0.0.0.0:40000"      # worker i listens on port 40000 + i
//! advertise_ip = "203.0.113.7"  # address clients are redirected to
//! workers = 2                   # one per core
//! cpus = [0, 1]                 # pin worker i to cpus[i]
//! backend = "auto"              # auto | basic | mmsg | uring | xdp (xdp: listen on a NIC's IPv4 address, root)
//! public_key_hex = "..."        # Ed25519 key of the calls service (64 hex digits, its GET /v1/keys)
//! silence_timeout_ms = 15000
//! max_participants_per_call = 100  # over every worker the call spreads to
//! max_receivers_per_worker = 44     # a call spreads to other workers beyond this (default: the
//!                                   # largest full mesh one core carries, see corecast_core::config)
//! audio_level_ext_id = 1        # RFC 8285 id of the RFC 6464 audio level (0: ignore levels)
//! sd_audio_streams = 3          # SD receivers hear the 3 loudest speakers (0: all)
//! retransmission = true         # false: NACKs go to publishers (the buffer is on by default)
//! plain_native_media = false    # true: native legs may send plain RTP (benchmarks only)
//! admin_listen = "127.0.0.1:40100"
//! calls_url = "http://127.0.0.1:8082" # register and report to the calls service
//! router_id = "r1"
//! region = "eu-west"                 # calls instances of this region place calls here (default: none)
//! reserve = false                    # true: a reserve router, given calls only at peaks
//! router_secret = "..."              # shared with the calls service
//! router_secret_file = "/var/lib/corecast/router-secret"  # or read from this file (calls writes it)
//! heartbeat_ms = 500                # calls moves the calls of a router silent for 1.5 s
//! insecure_dev_keys = false          # true: the PUBLIC dev key and secret, loopback only
//! ```
//!
//! The router needs the calls service's public key (`public_key_hex`) and the router secret
//! ([`Secrets::resolve`]): the calls service and the routers derive each native join's key from it
//! (`corecast_proto::join_key`), and the admin API and the link to calls present it. The public development key
//! and secret are used only with `insecure_dev_keys` (`--insecure-dev-keys`), and then every
//! address the router listens on must be a loopback address ([`Secrets::check_listen`]).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use corecast_proto::token::{self, VerifyingKey, DEV_ROUTER_SECRET};
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
    /// Admit native legs that send plain RTP (default false: SRTP only).
    pub plain_native_media: Option<bool>,
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
    /// The region the router serves (calls instances of this region place calls on it).
    pub region: Option<String>,
    /// A reserve router (calls places calls on it only while the regular pool is loaded).
    pub reserve: Option<bool>,
    /// Secret shared with the calls service.
    pub router_secret: Option<String>,
    /// A file holding the secret shared with the calls service (e.g. its `router-secret`).
    pub router_secret_file: Option<PathBuf>,
    /// Use the public development key and secret when none is configured (loopback only).
    pub insecure_dev_keys: Option<bool>,
    /// Registration / heartbeat interval (default 500 ms).
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

/// The flag that selects the development key and secret, for error messages.
const DEV_FLAG: &str = "--insecure-dev-keys (insecure_dev_keys = true, CORECAST_ROUTER_INSECURE_DEV_KEYS=true)";

/// What the router verifies join tokens with and what it and the calls service present to each
/// other.
#[derive(Clone)]
pub struct Secrets {
    /// The calls service's verifying key.
    pub public_key: VerifyingKey,
    /// The router secret (`None`: no admin API and no link, so none is needed).
    pub router_secret: Option<String>,
    /// Whether the key or the secret is the public development value.
    pub dev: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("public_key", &self.public_key).field("dev", &self.dev).finish_non_exhaustive()
    }
}

impl Secrets {
    /// Chooses the key and the secret: the configured ones (`router_secret` before
    /// `router_secret_file`); else, with `insecure_dev_keys`, the development ones; else an
    /// error (the key always; the secret when `needs_secret`: an admin API or a calls link).
    /// The development values configured explicitly need `insecure_dev_keys` too.
    pub fn resolve(
        public_key_hex: Option<&str>,
        router_secret: Option<String>,
        router_secret_file: Option<&Path>,
        insecure_dev_keys: bool,
        needs_secret: bool,
    ) -> anyhow::Result<Secrets> {
        let dev_key = token::dev_signing_key().verifying_key();
        let public_key = match public_key_hex {
            Some(h) => token::verifying_key_from_hex(h)
                .map_err(|e| anyhow::anyhow!("public key must be 64 hex digits: {e}"))?,
            None if insecure_dev_keys => dev_key,
            None => bail!(
                "no public key: set --public-key-hex / public_key_hex / CORECAST_ROUTER_PUBLIC_KEY to the calls \
                 service's key (its GET /v1/keys), or use {DEV_FLAG} for local development"
            ),
        };
        let router_secret = match (router_secret, router_secret_file) {
            (Some(s), _) => Some(s),
            (None, Some(p)) => Some(read_secret_file(p)?),
            (None, None) if insecure_dev_keys => Some(DEV_ROUTER_SECRET.to_owned()),
            (None, None) if needs_secret => bail!(
                "no router secret: set --router-secret / --router-secret-file (the calls service's \
                 data_dir/router-secret), or use {DEV_FLAG} for local development"
            ),
            (None, None) => None,
        };
        if router_secret.as_deref() == Some("") {
            bail!("the router secret is empty");
        }
        let dev_public = public_key == dev_key;
        let dev_secret = router_secret.as_deref() == Some(DEV_ROUTER_SECRET);
        if (dev_public || dev_secret) && !insecure_dev_keys {
            let what = if dev_public { "the public key" } else { "the router secret" };
            bail!("{what} is the public development value; it is accepted only with {DEV_FLAG}");
        }
        if dev_public || dev_secret {
            tracing::warn!(
                "!!! {DEV_FLAG}: accepting tokens signed with the PUBLIC development key / using the public \
                 development router secret; loopback addresses only !!!"
            );
        }
        Ok(Secrets { public_key, router_secret, dev: dev_public || dev_secret })
    }

    /// Refuses any of `addrs` that is not a loopback address while a development value is in
    /// use (a wildcard address such as 0.0.0.0 is refused too).
    pub fn check_listen(&self, addrs: &[SocketAddr]) -> anyhow::Result<()> {
        if !self.dev {
            return Ok(());
        }
        if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "refusing to listen on {a}: the public development key/secret are in use ({DEV_FLAG}), which \
                 allows loopback addresses only; configure the calls service's key and secret, or listen on \
                 127.0.0.1 / [::1] (--listen, --admin-listen)"
            );
        }
        Ok(())
    }
}

/// Reads a secret file (one line; trailing whitespace ignored). Refuses a file group or others
/// can access, as the calls service does for the files it writes.
fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!("{} has mode {mode:o}: group and others must have no access (chmod 600 it)", path.display());
        }
    }
    let s = text.trim_end();
    if s.is_empty() || s.contains(char::is_whitespace) {
        bail!("{} must hold the secret on one line", path.display());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_need_configuration_or_the_dev_flag_and_dev_means_loopback() {
        let key = hex::encode(token::generate_signing_key().verifying_key().to_bytes());
        let dev = hex::encode(token::dev_signing_key().verifying_key().to_bytes());
        let addrs = |v: &[&str]| v.iter().map(|a| a.parse().unwrap()).collect::<Vec<SocketAddr>>();
        // Nothing configured: refused, naming the options.
        let e = Secrets::resolve(None, None, None, false, false).unwrap_err().to_string();
        assert!(e.contains("public_key_hex") && e.contains("--insecure-dev-keys"), "{e}");
        let e = Secrets::resolve(Some(&key), None, None, false, true).unwrap_err().to_string();
        assert!(e.contains("--router-secret"), "{e}");
        // A real key and no admin API nor link: no secret needed, any address.
        let s = Secrets::resolve(Some(&key), None, None, false, false).unwrap();
        assert!(!s.dev && s.router_secret.is_none());
        s.check_listen(&addrs(&["0.0.0.0:40000"])).unwrap();
        // The flag: the development values, loopback only.
        let s = Secrets::resolve(None, None, None, true, true).unwrap();
        assert!(s.dev);
        assert_eq!(s.router_secret.as_deref(), Some(DEV_ROUTER_SECRET));
        s.check_listen(&addrs(&["127.0.0.1:40000", "[::1]:40100"])).unwrap();
        for bad in [["0.0.0.0:40000", "127.0.0.1:40100"], ["127.0.0.1:40000", "192.0.2.7:40100"]] {
            let e = s.check_listen(&addrs(&bad)).unwrap_err().to_string();
            assert!(e.contains("refusing to listen") && e.contains("--insecure-dev-keys"), "{e}");
        }
        // The development values given explicitly need the flag.
        assert!(Secrets::resolve(Some(&dev), Some("x".into()), None, false, true).is_err());
        assert!(Secrets::resolve(Some(&key), Some(DEV_ROUTER_SECRET.into()), None, false, true).is_err());
        // The secret from a file (owner-only).
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("router-secret");
        std::fs::write(&p, "abc123\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Secrets::resolve(Some(&key), None, Some(&p), false, true).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let s = Secrets::resolve(Some(&key), None, Some(&p), false, true).unwrap();
        assert_eq!(s.router_secret.as_deref(), Some("abc123"));
        assert!(!s.dev);
    }

    #[test]
    fn parses_full_file_and_rejects_unknown_keys() {
        let c: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:40000\"\nworkers = 2\ncpus = [0, 1]\nbackend = \"mmsg\"\nsilence_timeout_ms = 5000\n\
             audio_level_ext_id = 3\nsd_audio_streams = 2\nmax_receivers_per_worker = 20\nretransmission = false\n\
             region = \"eu-west\"\nreserve = true\n",
        )
        .unwrap();
        assert_eq!((c.region.as_deref(), c.reserve), (Some("eu-west"), Some(true)));
        assert_eq!(c.workers, Some(2));
        assert_eq!(c.silence_timeout(), Some(Duration::from_secs(5)));
        assert_eq!((c.audio_level_ext_id, c.sd_audio_streams), (Some(3), Some(2)));
        assert_eq!(c.max_receivers_per_worker, Some(20));
        assert_eq!(c.retransmission, Some(false));
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }
}
