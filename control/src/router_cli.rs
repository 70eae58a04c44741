//! `corecast-calls routers …`: an operator's commands over the shared router registry
//! (`GET /v1/routers`, `PATCH /v1/routers/{id}`), against any calls instance (behind nginx,
//! the load-balanced address: every instance answers from the same store).
//!
//! ```text
//! corecast-calls --config corecast.toml routers list
//! corecast-calls --config corecast.toml routers drain r1      # takes no new calls
//! corecast-calls --config corecast.toml routers drain r1 --deadline-secs 600   # then moves its calls
//! corecast-calls --config corecast.toml routers undrain r1
//! ```
//!
//! The router secret is `--router-secret`, `--router-secret-file`, else the config's
//! `router.secret`, else `stores.data_dir/router-secret` (read, never generated), else the public
//! development secret with `insecure_dev_keys`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::config::Config;
use crate::router_admin::RouterList;
use crate::stores::RouterStatus;

/// `routers` arguments.
#[derive(Debug, clap::Args)]
pub struct RoutersArgs {
    /// Base URL of a calls instance (default: `http://` + `calls.listen`).
    #[arg(long, env = "CORECAST_CALLS_URL")]
    pub calls_url: Option<String>,
    /// The router secret.
    #[arg(long, env = "CORECAST_ROUTER_SECRET", hide_env_values = true, allow_hyphen_values = true)]
    pub router_secret: Option<String>,
    /// A file holding the router secret.
    #[arg(long, env = "CORECAST_ROUTER_SECRET_FILE")]
    pub router_secret_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: RoutersCommand,
}

/// `routers` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RoutersCommand {
    /// Every registered router: live or not, draining, load, calls placed since its heartbeat.
    List,
    /// Stop placing new calls on a router (its calls go on); kept until `undrain`.
    Drain {
        /// Router id.
        id: String,
        /// Seconds after which, if the router is still draining, its calls are moved to
        /// other routers (their participants re-join there); without it they run to their end.
        #[arg(long)]
        deadline_secs: Option<u64>,
    },
    /// Place new calls on a drained router again.
    Undrain {
        /// Router id.
        id: String,
    },
}

fn secret(args: &RoutersArgs, cfg: &Config) -> anyhow::Result<String> {
    if let Some(s) = &args.router_secret {
        return Ok(s.clone());
    }
    if let Some(p) = &args.router_secret_file {
        let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        return Ok(s.trim().to_owned());
    }
    if let Some(s) = &cfg.router.secret {
        return Ok(s.clone());
    }
    let path = cfg.stores.data_dir.join(crate::keys::ROUTER_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(_) if cfg.insecure_dev_keys => Ok(crate::config::DEV_ROUTER_SECRET.to_owned()),
        Err(e) => Err(e).with_context(|| {
            format!("no router secret: give --router-secret(-file), router.secret, or {}", path.display())
        }),
    }
}

/// One line per router, for `routers list`.
pub fn format_list(list: &RouterList) -> String {
    let reserves = if list.reserves_in_use { "in use" } else { "not in use" };
    let mut out = format!("region {:?}: {} router(s), reserves {reserves}\n", list.region, list.routers.len());
    out.push_str("id\tregion\tstate\tload\tplaced\tcores\taddress\tadmin\tlast_seen_ms_ago\n");
    for r in &list.routers {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

fn line(r: &RouterStatus) -> String {
    let mut state = String::from(if r.live { "live" } else { "silent" });
    if r.draining {
        state.push_str(",draining");
    }
    if r.drain_due {
        state.push_str(",deadline-passed");
    } else if let Some(d) = r.drain_deadline {
        // By this machine's clock (the store's may differ by a little).
        let secs = d.saturating_sub(crate::util::now_ms()).div_ceil(1000);
        state.push_str(&format!(",deadline-in-{secs}s"));
    }
    if r.reg.reserve {
        state.push_str(",reserve");
    }
    format!(
        "{}\t{}\t{state}\t{:.3}\t{}\t{}\t{}\t{}\t{}",
        r.reg.id, r.reg.region, r.reg.load, r.placed, r.reg.cores, r.reg.address, r.reg.admin, r.last_seen_ms_ago
    )
}

/// Runs a `routers` command; returns what to print.
pub async fn run(args: RoutersArgs, cfg: &Config) -> anyhow::Result<String> {
    let secret = secret(&args, cfg)?;
    let base = args.calls_url.clone().unwrap_or_else(|| format!("http://{}", cfg.calls.listen));
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build()?;
    let (rb, what) = match &args.command {
        RoutersCommand::List => (http.get(format!("{base}/v1/routers")), None),
        RoutersCommand::Drain { id, .. } | RoutersCommand::Undrain { id } => {
            let (draining, deadline) = match args.command {
                RoutersCommand::Drain { deadline_secs, .. } => (true, deadline_secs),
                _ => (false, None),
            };
            let id: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
            let mut body = serde_json::json!({ "draining": draining });
            if let Some(d) = deadline {
                body["deadline_secs"] = d.into();
            }
            (http.patch(format!("{base}/v1/routers/{id}")).json(&body), Some(draining))
        }
    };
    let r = rb.bearer_auth(secret).send().await.with_context(|| format!("calls service at {base}"))?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(match what {
        None => format_list(&serde_json::from_str(&text).context("the calls service's answer")?),
        Some(draining) => {
            let s: RouterStatus = serde_json::from_str(&text).context("the calls service's answer")?;
            let verb = if draining { "draining: takes no new calls" } else { "takes new calls again" };
            format!("{} {verb}\n{}\n", s.reg.id, line(&s))
        }
    })
}
