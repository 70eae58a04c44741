//! Serving an app over HTTP/1.1 with deadlines on what a client sends.
//!
//! `axum::serve` sets no timer, so hyper's header read timeout is off and a request body may
//! take forever: a client that trickles its headers or its body holds a connection (and, for
//! a body, a handler) as long as it likes. [`serve`] runs the same app on hyper's HTTP/1
//! server with a timer: the request head must be complete `http.header_read_timeout_ms` after
//! the connection opened or its previous response went out (else the connection is closed,
//! nothing answered), and the body `http.body_read_timeout_ms` after its head (else the
//! handler reading it fails with 400 and the connection is closed).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service as _;

use crate::config::HttpConfig;

/// Serves an app on a listener (with client addresses, for `ConnectInfo`) until `shutdown`
/// turns true, then waits for the open connections to finish. See the module docs for the
/// deadlines.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    http: HttpConfig,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
    let body_timeout = Duration::from_millis(http.body_read_timeout_ms);
    let graceful = GracefulShutdown::new();
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: try again.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(|body| TimedBody::new(body, body_timeout));
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            let mut app = app.clone();
            async move { app.call(req).await }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A request body that fails once its deadline passes before it has all arrived.
struct TimedBody {
    inner: Incoming,
    /// Armed at the first poll that has to wait (a body that is all there never waits).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    started: tokio::time::Instant,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> TimedBody {
        TimedBody { inner, deadline: None, timeout, started: tokio::time::Instant::now() }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let (started, timeout) = (this.started, this.timeout);
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(format!("request body not received within {timeout:?}").into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
