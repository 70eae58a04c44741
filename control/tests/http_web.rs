//! The web app on the calls listener, the auth routes next to it, and the muted-state
//! endpoint (`PATCH /v1/calls/{id}/participants/{participant}`), on the embedded backends.

mod common;

use common::*;
use serde_json::json;

async fn get_text(s: &Svc, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = s.http.get(format!("{}{path}", s.calls)).send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

#[tokio::test]
async fn the_app_is_served_by_calls_and_api_paths_stay_json() {
    let s = start(|_| {}).await;
    for page in ["/", "/login", "/register", "/c/67e55044-10b1-426f-9247-bb680e5fe0c8"] {
        let (status, h, body) = get_text(&s, page).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{page}");
        assert!(body.contains(r#"<script type="module" src="/app/main.js">"#), "{page}: {body}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    for (name, ctype, _) in corecast_control::web::ASSETS.iter().filter(|(n, _, _)| *n != "index.html") {
        let (status, h, body) = get_text(&s, &format!("/app/{name}")).await;
        assert_eq!((status, h["content-type"].to_str().unwrap()), (200, *ctype), "{name}");
        assert!(!body.is_empty(), "{name}");
    }
    for missing in ["/app/nope.js", "/app/index.html", "/app/../Cargo.toml", "/c/", "/index.html"] {
        let (status, _, _) = get_text(&s, missing).await;
        assert_eq!(status, 404, "{missing}");
    }
    let r = s.get(format!("{}/v1/nope", s.calls), None).await;
    assert_eq!((r.status, r.body["error"]["message"].as_str()), (404, Some("no such route")), "API 404s stay JSON");
    s.shutdown().await;
}

#[tokio::test]
async fn auth_answers_on_the_calls_origin_with_the_same_sessions() {
    let s = start(|_| {}).await;
    let login = format!("w{}", uniq());
    let body = json!({"login": login, "email": format!("{login}@example.org"), "name": "Web User", "password": "correct horse"});
    let r = s.post(format!("{}/v1/register", s.calls), None, body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s
        .post(
            format!("{}/v1/register", s.calls),
            None,
            json!({"login": login, "email": "x@example.org", "name": "n", "password": "correct horse"}),
        )
        .await;
    assert_eq!((r.status, r.code(), r.field()), (409, "already_exists", "login"), "duplicate, with its field");
    let r = s
        .post(
            format!("{}/v1/register", s.calls),
            None,
            json!({"login": "a b", "email": "y@example.org", "name": "n", "password": "correct horse"}),
        )
        .await;
    assert_eq!((r.status, r.field()), (422, "login"), "validation names the field");
    let r = s.post(format!("{}/v1/login", s.calls), None, json!({"login": login, "password": "wrong password"})).await;
    assert_eq!(r.status, 401);
    let r = s.post(format!("{}/v1/login", s.calls), None, json!({"login": login, "password": "correct horse"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["session"].as_str().unwrap().to_owned();
    // The session works on both listeners: one store.
    for base in [&s.calls, &s.auth] {
        let r = s.get(format!("{base}/v1/me"), Some(&token)).await;
        assert_eq!((r.status, r.body["name"].as_str()), (200, Some("Web User")), "{base}");
    }
    let call = s.start_call(&token).await;
    assert_eq!(s.get(format!("{}/v1/calls/{call}", s.calls), Some(&token)).await.status, 200);
    let r = s.post(format!("{}/v1/logout", s.calls), Some(&token), json!({})).await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get(format!("{}/v1/me", s.auth), Some(&token)).await.status, 401, "logged out everywhere");
    // The calls listener's health is the calls service's (the auth routes add no second one).
    assert_eq!(s.get(format!("{}/v1/health", s.calls), None).await.status, 200);
    s.shutdown().await;
}

async fn patch(s: &Svc, call: &str, pid: &str, token: Option<&str>, body: &str) -> Resp {
    let mut rb = s
        .http
        .patch(format!("{}/v1/calls/{call}/participants/{pid}", s.calls))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    send(rb).await
}

#[tokio::test]
async fn a_publisher_sets_its_own_muted_state_and_the_call_shows_it() {
    let s = start(|c| c.calls.max_participants = 3).await;
    let (_, a) = s.user().await;
    let (_, b) = s.user().await;
    let (_, c) = s.user().await;
    let call = s.start_call(&a).await;
    let pa = s.join(&call, &a).await.body["participant_id"].as_u64().unwrap().to_string();
    let pb = s.join(&call, &b).await.body["participant_id"].as_u64().unwrap().to_string();
    let r = s.post(format!("{}/v1/calls/{call}/join", s.calls), Some(&c), json!({"role": "subscriber"})).await;
    let pc = r.body["participant_id"].as_u64().unwrap().to_string();

    let r = patch(&s, &call, &pa, Some(&a), r#"{"audio_muted": true}"#).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!((r.body["audio_muted"].as_bool(), r.body["video_muted"].as_bool()), (Some(true), Some(false)));
    assert_eq!(r.body["name"], json!("Test User"));
    let r = patch(&s, &call, &pa, Some(&a), r#"{"video_muted": true}"#).await;
    assert_eq!(
        (r.status, r.body["audio_muted"].as_bool(), r.body["video_muted"].as_bool()),
        (200, Some(true), Some(true))
    );
    let view = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&b)).await;
    let by_id = |pid: &str| {
        view.body["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["participant_id"].as_u64().map(|v| v.to_string()).as_deref() == Some(pid))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (by_id(&pa)["audio_muted"].as_bool(), by_id(&pa)["video_muted"].as_bool()),
        (Some(true), Some(true)),
        "others see it"
    );
    assert_eq!((by_id(&pb)["audio_muted"].as_bool(), by_id(&pb)["video_muted"].as_bool()), (Some(false), Some(false)));

    // The refusals.
    let cases: [(&str, Option<&str>, &str, u16, &str); 10] = [
        (&pa, Some(&b), r#"{"audio_muted": false}"#, 403, "forbidden"),
        (&pc, Some(&c), r#"{"audio_muted": true}"#, 409, "not_publisher"),
        ("12345", Some(&a), r#"{"audio_muted": true}"#, 404, "not_found"),
        ("not-a-number", Some(&a), r#"{"audio_muted": true}"#, 404, "not_found"),
        (&pa, Some(&a), r#"{}"#, 422, "invalid_field"),
        (&pa, Some(&a), r#"{"audio_muted": "yes"}"#, 422, "invalid_body"),
        (&pa, Some(&a), r#"{"audio_muted": true, "bogus": 1}"#, 422, "invalid_body"),
        (&pa, Some(&a), r#"{"audio_muted": tru"#, 400, "malformed_json"),
        (&pa, Some(&a), r#"{"audio_muted": null}"#, 422, "invalid_field"),
        (&pa, None, r#"{"audio_muted": true}"#, 401, "unauthorized"),
    ];
    for (pid, token, body, status, code) in cases {
        let r = patch(&s, &call, pid, token, body).await;
        assert_eq!((r.status, r.code()), (status, code), "{pid} {body}: {:?}", r.body);
    }
    let r = patch(&s, "67e55044-10b1-426f-9247-bb680e5fe0c8", &pa, Some(&a), r#"{"audio_muted": true}"#).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "no such call");
    // Nothing the refusals tried changed anything.
    let view = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&a)).await;
    let muted: Vec<(bool, bool)> = view.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["audio_muted"].as_bool().unwrap(), p["video_muted"].as_bool().unwrap()))
        .collect();
    assert_eq!(muted, vec![(true, true), (false, false), (false, false)]);
    assert_eq!(s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&a)).await.status, 204);
    let r = patch(&s, &call, &pa, Some(&a), r#"{"audio_muted": false}"#).await;
    assert_eq!(r.status, 404, "an ended call");
    s.shutdown().await;
}

#[tokio::test]
async fn web_dir_serves_the_listed_files_from_disk() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<p>from disk</p>").unwrap();
    std::fs::create_dir(web.path().join("app")).unwrap();
    std::fs::write(web.path().join("app/main.js"), "// from disk").unwrap();
    std::fs::write(web.path().join("app/extra.js"), "// not listed").unwrap();
    let dir = web.path().to_owned();
    let s = start(move |c| c.calls.web_dir = Some(dir)).await;
    assert_eq!(get_text(&s, "/c/67e55044-10b1-426f-9247-bb680e5fe0c8").await.2, "<p>from disk</p>");
    assert_eq!(get_text(&s, "/app/main.js").await.2, "// from disk");
    assert_eq!(get_text(&s, "/app/extra.js").await.0, 404, "only the app's own files");
    assert_eq!(get_text(&s, "/app/api.js").await.0, 404, "a listed file missing on disk");
    s.shutdown().await;
}
