//! The calls service's secrets: the join-token signing key and the router secret.
//!
//! Which ones a service uses, in order:
//! 1. the configured ones (`calls.signing_key_hex`, `router.secret`, or their environment
//!    variables);
//! 2. with `insecure_dev_keys = true` (`--insecure-dev-keys`, `CORECAST_INSECURE_DEV_KEYS=1`),
//!    the public development key and secret ([`corecast_proto::token::dev_signing_key`],
//!    [`DEV_ROUTER_SECRET`]);
//! 3. otherwise the files [`SIGNING_KEY_FILE`] and [`ROUTER_SECRET_FILE`] in
//!    `stores.data_dir`: generated on first start (32 random bytes as hex, mode 0600, written
//!    to a temporary file and linked into place, so a crash or a second process never leaves a
//!    partial file) and read on every later start. A file that does not hold 64 hex digits, or
//!    that group or others may read, is an error, never silently replaced.
//!
//! The development key lets anyone mint a join token for any call, and the development secret
//! lets anyone register a router or mint mixer tokens: a service using either (whether chosen by
//! the flag or configured by value) listens on loopback addresses only ([`Keys::check_listen`]),
//! and configuring them by value without the flag is an error.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use corecast_proto::token::{self, SigningKey};
use rand::RngCore as _;

pub use corecast_proto::token::DEV_ROUTER_SECRET;

use crate::config::Config;

/// The join-token signing key's file in `stores.data_dir` (its Ed25519 seed, 64 hex digits).
pub const SIGNING_KEY_FILE: &str = "join-token-signing.key";
/// The router secret's file in `stores.data_dir` (64 hex digits); routers and the codec pool
/// present its contents as a bearer token.
pub const ROUTER_SECRET_FILE: &str = "router-secret";

/// The name of the flag that selects the development key and secret, for error messages.
const DEV_FLAG: &str = "insecure_dev_keys = true (--insecure-dev-keys, CORECAST_INSECURE_DEV_KEYS=1)";

/// The calls service's secrets, resolved from a [`Config`].
#[derive(Clone)]
pub struct Keys {
    /// Signs join tokens.
    pub signing_key: SigningKey,
    /// What routers and the codec pool present.
    pub router_secret: String,
    /// Whether either is the public development value (then only loopback listeners).
    pub dev: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("dev", &self.dev).finish_non_exhaustive()
    }
}

impl Keys {
    /// Resolves the keys as the module docs say, generating the files when needed.
    pub fn resolve(cfg: &Config) -> anyhow::Result<Keys> {
        let dev_key = token::dev_signing_key();
        let dir = &cfg.stores.data_dir;
        let signing_key = match &cfg.calls.signing_key_hex {
            Some(h) => token::signing_key_from_hex(h)
                .map_err(|e| anyhow::anyhow!("calls.signing_key_hex must be 64 hex digits: {e}"))?,
            None if cfg.insecure_dev_keys => dev_key.clone(),
            None => {
                let hex = load_or_create(dir, SIGNING_KEY_FILE)?;
                token::signing_key_from_hex(&hex).map_err(|e| anyhow::anyhow!("{SIGNING_KEY_FILE}: {e}"))?
            }
        };
        let router_secret = match &cfg.router.secret {
            Some(s) if s.is_empty() => bail!("router.secret is empty"),
            Some(s) => s.clone(),
            None if cfg.insecure_dev_keys => DEV_ROUTER_SECRET.to_owned(),
            None => load_or_create(dir, ROUTER_SECRET_FILE)?,
        };
        let dev_signing = signing_key.to_bytes() == dev_key.to_bytes();
        let dev_secret = router_secret == DEV_ROUTER_SECRET;
        if (dev_signing || dev_secret) && !cfg.insecure_dev_keys {
            let what = if dev_signing { "calls.signing_key_hex" } else { "router.secret" };
            bail!("{what} is the public development value; it is accepted only with {DEV_FLAG}");
        }
        if dev_signing {
            tracing::warn!(
                "!!! insecure_dev_keys: signing join tokens with the PUBLIC development key; anyone can mint \
                 join tokens; loopback listeners only !!!"
            );
        }
        if dev_secret {
            tracing::warn!("insecure_dev_keys: using the public development router secret; loopback listeners only");
        }
        Ok(Keys { signing_key, router_secret, dev: dev_signing || dev_secret })
    }

    /// Refuses a listener on a non-loopback address while a development key or secret is in use.
    pub fn check_listen(&self, addr: SocketAddr) -> anyhow::Result<()> {
        if self.dev && !addr.ip().is_loopback() {
            bail!(
                "refusing to listen on {addr}: the public development keys are in use ({DEV_FLAG}), which \
                 allows loopback addresses only; drop the flag (keys are then generated into stores.data_dir) \
                 or listen on 127.0.0.1 / [::1]"
            );
        }
        Ok(())
    }
}

/// The 64-hex-digit secret in `dir/name`: read if the file exists, else generated (32 random
/// bytes) and written with mode 0600. Creates `dir` (mode 0700) if missing.
pub fn load_or_create(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    match read_secret(&path) {
        Ok(Some(s)) => return Ok(s),
        Ok(None) => {}
        Err(e) => return Err(e),
    }
    create_dir(dir)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = write_private(&tmp, format!("{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))
        // A link never replaces an existing file: if another process created `path` meanwhile,
        // its secret wins and is read below.
        .and_then(|()| match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        });
    let _ = std::fs::remove_file(&tmp);
    if written? {
        tracing::info!(path = %path.display(), "generated a new secret");
        Ok(secret)
    } else {
        read_secret(&path)?.with_context(|| format!("{} vanished while being created", path.display()))
    }
}

/// Reads a secret file: `None` if it does not exist; an error if it is not 64 hex digits (plus
/// an optional newline) or if group or others have any access to it.
fn read_secret(path: &Path) -> anyhow::Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!("{} has mode {mode:o}: group and others must have no access (chmod 600 it)", path.display());
        }
    }
    let s = text.strip_suffix('\n').unwrap_or(&text);
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{} is malformed: it must hold 64 hex digits (delete it to generate a new one; \
             routers then need the new secret or key)",
            path.display()
        );
    }
    Ok(Some(s.to_owned()))
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).with_context(|| format!("creating {}", dir.display()))
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> Config {
        let mut c = Config::default();
        c.stores.data_dir = dir.join("data");
        c
    }

    #[test]
    fn generated_once_private_and_reused() {
        let t = tempfile::tempdir().unwrap();
        let a = Keys::resolve(&cfg(t.path())).unwrap();
        assert!(!a.dev);
        #[cfg(unix)]
        for f in [SIGNING_KEY_FILE, ROUTER_SECRET_FILE] {
            use std::os::unix::fs::PermissionsExt as _;
            let m = std::fs::metadata(t.path().join("data").join(f)).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o600, "{f}");
        }
        let b = Keys::resolve(&cfg(t.path())).unwrap();
        assert_eq!(a.signing_key.to_bytes(), b.signing_key.to_bytes());
        assert_eq!(a.router_secret, b.router_secret);
        assert_ne!(a.signing_key.to_bytes(), token::dev_signing_key().to_bytes());
        assert_ne!(a.router_secret, DEV_ROUTER_SECRET);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(t.path().join("data")).unwrap().count(), 2);
    }

    #[test]
    fn malformed_or_readable_file_is_an_error_and_kept() {
        let t = tempfile::tempdir().unwrap();
        let c = cfg(t.path());
        Keys::resolve(&c).unwrap();
        let p = c.stores.data_dir.join(ROUTER_SECRET_FILE);
        std::fs::write(&p, "not hex\n").unwrap();
        let e = Keys::resolve(&c).unwrap_err().to_string();
        assert!(e.contains("malformed") && e.contains(ROUTER_SECRET_FILE), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "not hex\n", "not replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Keys::resolve(&c).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn dev_keys_only_with_the_flag_and_on_loopback() {
        let t = tempfile::tempdir().unwrap();
        let mut c = cfg(t.path());
        c.insecure_dev_keys = true;
        let k = Keys::resolve(&c).unwrap();
        assert!(k.dev);
        assert_eq!(k.signing_key.to_bytes(), token::dev_signing_key().to_bytes());
        assert_eq!(k.router_secret, DEV_ROUTER_SECRET);
        assert!(!c.stores.data_dir.exists(), "nothing generated");
        k.check_listen("127.0.0.1:8082".parse().unwrap()).unwrap();
        k.check_listen("[::1]:8082".parse().unwrap()).unwrap();
        for a in ["0.0.0.0:8082", "[::]:8082", "192.0.2.1:8082"] {
            let e = k.check_listen(a.parse().unwrap()).unwrap_err().to_string();
            assert!(e.contains("--insecure-dev-keys"), "{e}");
        }
        // The development values configured by value need the flag too.
        let mut c = cfg(t.path());
        c.router.secret = Some(DEV_ROUTER_SECRET.into());
        assert!(Keys::resolve(&c).unwrap_err().to_string().contains("insecure_dev_keys"));
        let mut c = cfg(t.path());
        c.calls.signing_key_hex = Some(hex::encode(token::dev_signing_key().to_bytes()));
        assert!(Keys::resolve(&c).unwrap_err().to_string().contains("insecure_dev_keys"));
        // Explicit non-development values: no files, any address.
        let t = tempfile::tempdir().unwrap();
        let mut c = cfg(t.path());
        c.calls.signing_key_hex = Some("11".repeat(32));
        c.router.secret = Some("s3cret".into());
        let k = Keys::resolve(&c).unwrap();
        assert!(!k.dev);
        k.check_listen("0.0.0.0:8082".parse().unwrap()).unwrap();
        assert!(!c.stores.data_dir.exists());
    }
}
