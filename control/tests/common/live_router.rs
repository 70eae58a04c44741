//! A real router in the test's process: one worker on a loopback port, its admin API (router
//! secret `test-router-secret`), and its link registering and heart-beating through a calls
//! URL (a calls instance, or a balancer in front of several).

use std::sync::Arc;
use std::time::Duration;

use corecast_core::RouterConfig;
use corecast_proto::join_key::JoinSecret;
use corecast_proto::token;
use corecast_router::server::{RouterServer, ServerConfig};
use corecast_router::{admin, link};

const SECRET: &str = "test-router-secret";

/// A router started by [`start`].
pub struct LiveRouter {
    /// The id it registers with.
    pub id: String,
    pub server: Arc<RouterServer>,
    /// Its admin API's URL.
    pub admin: String,
    /// Its link to calls (abort it to make the router fall silent).
    pub link: tokio::task::JoinHandle<()>,
}

impl LiveRouter {
    /// Its media address.
    pub fn address(&self) -> String {
        self.server.addresses()[0].to_string()
    }

    /// The participants it holds in `call`, if it holds the call.
    pub async fn holds(&self, call: &str) -> Option<Vec<u64>> {
        let s = self.server.clone();
        let snap = tokio::task::spawn_blocking(move || s.snapshot()).await.unwrap();
        snap.into_iter()
            .find(|c| c.call.to_string() == call)
            .map(|c| c.participants.iter().map(|p| p.participant.0).collect())
    }
}

/// Starts a router of `region` whose link reaches calls at `calls_url` every `heartbeat`;
/// its id is `prefix` and a unique suffix.
pub async fn start(calls_url: &str, region: &str, prefix: &str, heartbeat: Duration) -> LiveRouter {
    start_with(calls_url, region, prefix, heartbeat, RouterConfig::default()).await
}

/// [`start`] with the core configured as `core` (its join secret set to the test's).
pub async fn start_with(
    calls_url: &str,
    region: &str,
    prefix: &str,
    heartbeat: Duration,
    core: RouterConfig,
) -> LiveRouter {
    let server = Arc::new(
        RouterServer::start(ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise_ip: None,
            workers: 1,
            cpus: vec![],
            backend: "auto".into(),
            core: RouterConfig { join_secret: Some(JoinSecret::new(SECRET.as_bytes())), ..core },
            public_key: token::dev_signing_key().verifying_key(),
            io: Default::default(),
        })
        .expect("router starts"),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", l.local_addr().unwrap());
    let app = admin::routes(admin::AdminState { server: server.clone(), secret: Some(SECRET.into()) });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events = server.events().clone();
    std::thread::spawn(move || {
        while let Ok(e) = events.recv() {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    let id = format!("{prefix}-{}", super::uniq());
    let cfg = link::LinkConfig {
        calls_url: calls_url.to_string(),
        router_id: id.clone(),
        region: region.to_owned(),
        reserve: false,
        secret: Some(SECRET.into()),
        admin_url: admin_url.clone(),
        heartbeat,
    };
    let link = tokio::spawn(link::run(cfg, server.clone(), rx));
    LiveRouter { id, server, admin: admin_url, link }
}
