//! Passwords never reach the logs, even at TRACE level for every crate.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn passwords_are_never_logged() {
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    tracing::subscriber::set_global_default(sub).unwrap();

    let s = start(|_| {}).await;
    let secret = "Sw0rdfish-7c1e9a";
    let login = format!("u{}", uniq());
    let body = json!({"login": login, "email": format!("{login}@example.org"), "name": "N", "password": secret});
    assert_eq!(s.post(format!("{}/v1/register", s.auth), None, body.clone()).await.status, 201);
    assert_eq!(s.post(format!("{}/v1/register", s.auth), None, body).await.status, 409);
    assert_eq!(s.login(&login, secret).await.status, 200);
    assert_eq!(s.login(&login, "Wr0ng-password-42").await.status, 401);
    let bad = json!({"login": "x y", "email": "a@b.co", "name": "N", "password": secret});
    assert_eq!(s.post(format!("{}/v1/register", s.auth), None, bad).await.status, 422);
    s.shutdown().await;

    let logs = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(logs.contains("registered user"), "logging was captured");
    assert!(!logs.contains(secret), "password leaked into logs");
    assert!(!logs.contains("Wr0ng-password-42"), "password leaked into logs");
}
