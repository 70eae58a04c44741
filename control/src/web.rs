//! The web app (`web/` in the repository), served by the calls service.
//!
//! Its files are compiled into the binary (`include_str!`), so a deployment is one binary;
//! `calls.web_dir` names a directory to read the same files from instead (development: edit
//! and reload, no rebuild). Only the files listed in [`ASSETS`] are served, whatever the
//! directory holds. The app's pages (`/`, `/login`, `/register`, `/c/{call id}`) are all
//! `index.html`; the app routes on the client. API paths (`/v1/…`) are never answered here,
//! so an unknown API path still gets the JSON 404.
//!
//! The app talks to auth and calls on its own origin: `corecast-control` mounts the auth
//! routes on the calls listener ([`crate::run::start_both`]); behind nginx the same paths
//! are routed to each service (`tuning/nginx/corecast.conf`).

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::CallsConfig;

/// Every file of the app: URL path, content type, embedded contents.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../web/index.html")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../web/app/app.css")),
    ("main.js", JS, include_str!("../../web/app/main.js")),
    ("api.js", JS, include_str!("../../web/app/api.js")),
    ("ui.js", JS, include_str!("../../web/app/ui.js")),
    ("account.js", JS, include_str!("../../web/app/account.js")),
    ("home.js", JS, include_str!("../../web/app/home.js")),
    ("call.js", JS, include_str!("../../web/app/call.js")),
    ("grid.js", JS, include_str!("../../web/app/grid.js")),
    ("webrtc.js", JS, include_str!("../../web/app/webrtc.js")),
    ("stats.js", JS, include_str!("../../web/app/stats.js")),
    ("quality.js", JS, include_str!("../../web/app/quality.js")),
    ("layers.js", JS, include_str!("../../web/app/layers.js")),
    ("screen.js", JS, include_str!("../../web/app/screen.js")),
    ("recovery.js", JS, include_str!("../../web/app/recovery.js")),
    ("lastn.js", JS, include_str!("../../web/app/lastn.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// What the pages may load and connect to: only this origin (media comes over WebRTC,
/// which CSP does not govern).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// The app's routes (merged into [`crate::calls::router`]).
pub fn routes<S: Clone + Send + Sync + 'static>(cfg: &CallsConfig) -> Router<S> {
    let dir = cfg.web_dir.clone();
    Router::new()
        .route("/", get(page))
        .route("/login", get(page))
        .route("/register", get(page))
        .route("/c/{id}", get(page))
        .route("/app/{file}", get(asset))
        .with_state(dir)
}

async fn page(State(dir): State<Option<PathBuf>>) -> Response {
    serve(dir.as_deref(), "index.html").await
}

async fn asset(State(dir): State<Option<PathBuf>>, Path(file): Path<String>) -> Response {
    if file == "index.html" {
        return not_found();
    }
    serve(dir.as_deref(), &file).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found").into_response()
}

/// One listed file, embedded or from `dir` (`index.html` at its top, the rest under `app/`).
async fn serve(dir: Option<&std::path::Path>, name: &str) -> Response {
    let Some((_, ctype, embedded)) = ASSETS.iter().find(|(n, _, _)| *n == name) else { return not_found() };
    let body = match dir {
        None => embedded.to_string(),
        Some(d) => {
            let path = if name == "index.html" { d.join(name) } else { d.join("app").join(name) };
            match tokio::fs::read_to_string(&path).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "web app file unreadable");
                    return not_found();
                }
            }
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Small files, revalidated on every load: a new binary's app is used at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if name == "index.html" {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self)"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_app_imports_is_served() {
        // `import … from './x.js'` in any listed file must name a listed file.
        for (name, _, text) in ASSETS {
            for line in text.lines().filter(|l| l.trim_start().starts_with("import ")) {
                let Some(from) = line.split("from '").nth(1) else { continue };
                let target = from.split('\'').next().unwrap_or("").trim_start_matches("./");
                assert!(ASSETS.iter().any(|(n, _, _)| *n == target), "{name} imports {target}, which is not served");
            }
        }
    }
}
