//! Secure defaults (issue #15 item 5): with no key configured, a start generates the join-token
//! signing key and the router secret into `stores.data_dir` (mode 0600) and a restart reuses
//! them; the public development key and secret need `insecure_dev_keys` and then refuse a
//! non-loopback listener. Needs no external server.

mod common;

use std::path::Path;

use common::{send, test_config};
use corecast_control::config::Config;
use corecast_control::keys::{DEV_ROUTER_SECRET, ROUTER_SECRET_FILE, SIGNING_KEY_FILE};
use corecast_control::run;
use serde_json::json;

/// Starts both services, returns (`/v1/keys`'s public key, status of a router registration with
/// `secret`), stops them.
async fn start_and_probe(cfg: &Config, secret: &str) -> (String, u16) {
    let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = run::start_both(cfg, a, c).await.expect("services start");
    let calls = format!("http://{}", running.calls_addr);
    let http = reqwest::Client::new();
    let keys = send(http.get(format!("{calls}/v1/keys"))).await;
    let reg = json!({"id": "r1", "address": "127.0.0.1:41000", "cores": 1, "load": 0.0, "admin": "http://127.0.0.1:9"});
    let r = send(http.post(format!("{calls}/v1/routers")).bearer_auth(secret).json(&reg)).await;
    drop(http); // its idle connections would hold the services' state (the user database)
    running.shutdown().await;
    (keys.body["public_key_hex"].as_str().expect("public key").to_owned(), r.status)
}

fn secure_config(dir: &Path) -> Config {
    let mut cfg = test_config(dir);
    cfg.insecure_dev_keys = false;
    cfg.router.secret = None;
    cfg.calls.signing_key_hex = None;
    cfg
}

#[tokio::test]
async fn a_default_start_generates_private_keys_and_a_restart_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = secure_config(dir.path());
    let (key1, dev_status) = start_and_probe(&cfg, DEV_ROUTER_SECRET).await;
    assert_eq!(dev_status, 401, "the development secret is not accepted by default");
    let dev_pub = hex::encode(corecast_proto::token::dev_signing_key().verifying_key().to_bytes());
    assert_ne!(key1, dev_pub, "not the development key");

    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap().trim_end().to_owned();
    #[cfg(unix)]
    for f in [SIGNING_KEY_FILE, ROUTER_SECRET_FILE] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} is owner-only");
    }
    let seed = read(SIGNING_KEY_FILE);
    let secret = read(ROUTER_SECRET_FILE);
    assert_eq!(secret.len(), 64);
    let from_file = corecast_proto::token::signing_key_from_hex(&seed).unwrap();
    assert_eq!(hex::encode(from_file.verifying_key().to_bytes()), key1, "tokens are signed with the file's key");

    // A restart: the same key and secret, the files untouched.
    let (key2, status) = start_and_probe(&cfg, &secret).await;
    assert_eq!(key2, key1);
    assert_eq!(status, 200, "the generated secret registers a router");
    assert_eq!((read(SIGNING_KEY_FILE), read(ROUTER_SECRET_FILE)), (seed, secret));
}

#[tokio::test]
async fn development_keys_refuse_a_non_loopback_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = secure_config(dir.path());
    cfg.insecure_dev_keys = true;
    for (auth, calls) in [("127.0.0.1:0", "0.0.0.0:0"), ("0.0.0.0:0", "127.0.0.1:0")] {
        let a = tokio::net::TcpListener::bind(auth).await.unwrap();
        let c = tokio::net::TcpListener::bind(calls).await.unwrap();
        let e = run::start_both(&cfg, a, c).await.expect_err("refused").to_string();
        assert!(e.contains("refusing to listen") && e.contains("--insecure-dev-keys"), "{e}");
    }
    // On loopback it starts, with the development key.
    let (key, status) = start_and_probe(&cfg, DEV_ROUTER_SECRET).await;
    assert_eq!(key, hex::encode(corecast_proto::token::dev_signing_key().verifying_key().to_bytes()));
    assert_eq!(status, 200);
    assert!(!dir.path().join(SIGNING_KEY_FILE).exists(), "nothing generated");
    // Without the flag the same addresses are fine (keys generated).
    let dir = tempfile::tempdir().unwrap();
    let cfg = secure_config(dir.path());
    let a = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let c = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    run::start_both(&cfg, a, c).await.expect("starts").shutdown().await;
}
