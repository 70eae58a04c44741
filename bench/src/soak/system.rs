//! The system under soak, started as `make run` starts it
//! (`tuning/scripts/run-local.sh`): the control plane (`corecast-control`:
//! auth and calls) and the router (`corecast-router`, linked to calls) as
//! child processes on loopback, with PostgreSQL, Redis and Tarantool from
//! `control/scripts/servers.sh` (or given by URL, or the embedded stores).
//! Everything it starts it stops, on success, on error and on drop.

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

/// Where the control plane keeps users, sessions and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stores {
    /// PostgreSQL, Redis and Tarantool: the URLs in `CORECAST_TEST_PG`,
    /// `CORECAST_TEST_REDIS` and `CORECAST_TEST_TARANTOOL` when all three are
    /// set, else started (and stopped) with `control/scripts/servers.sh`.
    Real,
    /// The embedded stores (`make run`'s: redb users, in-memory sessions and calls).
    Embedded,
}

/// How to start the system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Directory of `corecast-control` and `corecast-router`.
    pub bin_dir: PathBuf,
    /// Scratch directory: data, logs, the stores' files.
    pub dir: PathBuf,
    /// Which stores.
    pub stores: Stores,
    /// `control/scripts/servers.sh`.
    pub servers_script: PathBuf,
}

/// The stores' URLs (all `None`: embedded).
#[derive(Debug, Clone, Default)]
struct StoreUrls {
    postgres: Option<String>,
    redis: Option<String>,
    tarantool: Option<String>,
}

/// Throwaway PostgreSQL, Redis and Tarantool; stopped on drop.
#[derive(Debug)]
struct StoreServers {
    script: PathBuf,
    dir: PathBuf,
}

impl StoreServers {
    fn start(script: &Path, dir: &Path) -> anyhow::Result<(StoreServers, StoreUrls)> {
        let s = StoreServers { script: script.to_path_buf(), dir: dir.to_path_buf() };
        let status = Command::new("bash")
            .arg(script)
            .arg("start")
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        anyhow::ensure!(status.success(), "{} start failed ({status})", script.display());
        let env = fs::read_to_string(dir.join("env")).context("reading the stores' env file")?;
        let get = |k: &str| env.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=').map(str::to_string));
        let urls = StoreUrls {
            postgres: get("CORECAST_TEST_PG"),
            redis: get("CORECAST_TEST_REDIS"),
            tarantool: get("CORECAST_TEST_TARANTOOL"),
        };
        Ok((s, urls))
    }
}

impl Drop for StoreServers {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(&self.script).arg("stop").arg(&self.dir).stdout(Stdio::null()).status();
    }
}

/// One service process.
#[derive(Debug)]
pub struct Service {
    /// `control` or `router`.
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    fn spawn(name: &'static str, dir: &Path, cmd: &mut Command) -> anyhow::Result<Service> {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(dir.join(format!("{name}.out")))?;
        let err = fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Service { name, child, log })
    }

    /// The process id (for `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGINT (both services stop cleanly on it), then at most `grace` for it
    /// to exit, then SIGKILL. Returns how it stopped.
    fn stop(&mut self, grace: Duration) -> Stopped {
        if let Some(status) = self.exited() {
            return Stopped { service: self.name.into(), before_stop: true, clean: false, status: status.to_string() };
        }
        let _ = crate::sys::interrupt(self.child.id());
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Some(status) = self.exited() {
                return Stopped {
                    service: self.name.into(),
                    before_stop: false,
                    clean: status.success(),
                    status: status.to_string(),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        Stopped {
            service: self.name.into(),
            before_stop: false,
            clean: false,
            status: format!("killed after {grace:?}: {status}"),
        }
    }

    /// Lines of its log that tell of a panic.
    fn panics(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Only a service `System::stop` has not stopped (an error path).
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a service stopped.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    /// `control` or `router`.
    pub service: String,
    /// It had exited before it was asked to stop.
    pub before_stop: bool,
    /// It stopped on SIGINT with exit code 0.
    pub clean: bool,
    /// The exit status as text.
    pub status: String,
}

/// What stopping the system found.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    /// One per service.
    pub services: Vec<Stopped>,
    /// Log lines telling of a panic, prefixed with the service.
    pub panics: Vec<String>,
}

/// The running system.
#[derive(Debug)]
pub struct System {
    /// Auth service URL.
    pub auth: String,
    /// Calls service URL.
    pub calls: String,
    /// Router admin API URL.
    pub admin: String,
    /// Router UDP address.
    pub router_addr: SocketAddr,
    /// The router secret (the admin API's bearer).
    pub secret: String,
    /// Which stores, said in words.
    pub stores: String,
    /// The router (dropped first: it reports to the control plane).
    pub router: Service,
    /// The control plane.
    pub control: Service,
    /// Dropped last, once the services are gone.
    servers: Option<StoreServers>,
}

fn free_tcp() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A GET that must answer 2xx (`bearer`: the router secret).
pub fn get(http: &reqwest::blocking::Client, url: &str, bearer: Option<&str>) -> anyhow::Result<String> {
    let mut rq = http.get(url);
    if let Some(b) = bearer {
        rq = rq.bearer_auth(b);
    }
    let r = rq.send()?;
    anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
    Ok(r.text()?)
}

/// Polls `f` every 100 ms for at most `limit`; fails with `what`, or when a service exited.
fn wait_until(
    limit: Duration,
    what: &str,
    services: &mut [&mut Service],
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return Ok(());
        }
        for s in services.iter_mut() {
            if let Some(status) = s.exited() {
                anyhow::bail!("{} exited while waiting for {what} ({status}); see {}", s.name, s.log.display());
            }
        }
        anyhow::ensure!(Instant::now() < end, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl System {
    /// Starts the stores (if asked), the control plane, then the router with
    /// calls' public key and the router secret calls generated; returns once
    /// the router's admin API answers (the router registers with calls on its
    /// first heartbeat: see [`super::churn::wait_for_placement`]).
    pub fn start(o: &SystemOptions) -> anyhow::Result<System> {
        fs::create_dir_all(&o.dir)?;
        let (servers, urls, stores) = match o.stores {
            Stores::Embedded => {
                (None, StoreUrls::default(), "embedded (redb users, in-memory sessions and calls)".into())
            }
            Stores::Real => {
                let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
                match (env("CORECAST_TEST_PG"), env("CORECAST_TEST_REDIS"), env("CORECAST_TEST_TARANTOOL")) {
                    (Some(p), Some(r), Some(t)) => (
                        None,
                        StoreUrls { postgres: Some(p), redis: Some(r), tarantool: Some(t) },
                        "PostgreSQL, Redis, Tarantool (CORECAST_TEST_*)".into(),
                    ),
                    _ => {
                        let (s, u) = StoreServers::start(&o.servers_script, &o.dir.join("stores"))?;
                        (Some(s), u, "PostgreSQL 15, Redis 7, Tarantool 2.6 (servers.sh, loopback)".into())
                    }
                }
            }
        };
        let data = o.dir.join("data");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&data)?;
        let (auth_port, calls_port, admin_port, router_port) = (free_tcp()?, free_tcp()?, free_tcp()?, free_udp()?);
        let router_addr: SocketAddr = format!("127.0.0.1:{router_port}").parse()?;
        let admin = format!("http://127.0.0.1:{admin_port}");
        let mut toml = format!("[stores]\ndata_dir = {:?}\n", data.display().to_string());
        for (k, v) in [("postgres_url", &urls.postgres), ("redis_url", &urls.redis), ("tarantool_url", &urls.tarantool)]
        {
            if let Some(v) = v {
                toml.push_str(&format!("{k} = {v:?}\n"));
            }
        }
        toml.push_str(&format!(
            "[router]\naddress = \"{router_addr}\"\nadmin = \"{admin}\"\nheartbeat_interval_secs = 1\n"
        ));
        let config = o.dir.join("control.toml");
        fs::write(&config, toml)?;
        let mut control = Service::spawn(
            "control",
            &o.dir,
            Command::new(o.bin_dir.join("corecast-control"))
                // As its service unit runs it: argon2id's 19 MiB buffers go back to the
                // kernel when freed (tuning/systemd/corecast-auth.service).
                .env("MALLOC_MMAP_THRESHOLD_", "262144")
                .arg("--config")
                .arg(&config)
                .args(["--auth-listen", &format!("127.0.0.1:{auth_port}")])
                .args(["--calls-listen", &format!("127.0.0.1:{calls_port}")]),
        )?;
        let auth = format!("http://127.0.0.1:{auth_port}");
        let calls = format!("http://127.0.0.1:{calls_port}");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let mut keys = String::new();
        wait_until(Duration::from_secs(60), "calls' /v1/keys", &mut [&mut control], || {
            get(&http, &format!("{calls}/v1/keys"), None).map(|k| keys = k).is_ok()
        })?;
        let public_key = serde_json::from_str::<serde_json::Value>(&keys)?["public_key_hex"]
            .as_str()
            .context("no public_key_hex in /v1/keys")?
            .to_string();
        let secret_file = data.join("router-secret");
        let secret = fs::read_to_string(&secret_file).context("reading the router secret")?.trim().to_string();
        let mut router = Service::spawn(
            "router",
            &o.dir,
            Command::new(o.bin_dir.join("corecast-router"))
                .args(["--listen", &router_addr.to_string()])
                .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
                .args(["--calls-url", &calls, "--router-id", "soak", "--public-key-hex", &public_key])
                .arg("--router-secret-file")
                .arg(&secret_file)
                .args(["--heartbeat-ms", "1000", "--stats-interval", "0"]),
        )?;
        wait_until(Duration::from_secs(30), "the router's /healthz", &mut [&mut control, &mut router], || {
            get(&http, &format!("{admin}/healthz"), None).is_ok()
        })?;
        Ok(System { auth, calls, admin, router_addr, secret, stores, control, router, servers })
    }

    /// Services that have exited (name, status): none while all is well.
    pub fn exited(&mut self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for s in [&mut self.control, &mut self.router] {
            if let Some(st) = s.exited() {
                v.push((s.name.to_string(), st.to_string()));
            }
        }
        v
    }

    /// Stops the router, then the control plane (SIGINT, 15 s each), then
    /// the stores; reads the logs for panics.
    pub fn stop(mut self) -> StopReport {
        let grace = Duration::from_secs(15);
        let services = vec![self.router.stop(grace), self.control.stop(grace)];
        let mut panics = Vec::new();
        for s in [&self.router, &self.control] {
            panics.extend(s.panics().into_iter().map(|l| format!("{}: {l}", s.name)));
        }
        drop(self.servers.take());
        StopReport { services, panics }
    }
}
