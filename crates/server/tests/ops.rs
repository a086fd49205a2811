//! Operator endpoints, request ids, and the generated API documentation.

mod common;

use common::{TestApp, event};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.send(app.request(Method::GET, "/healthz", None)).await;
    assert_eq!(health.expect(200), json!({"status":"ok"}));
    let ready = app.send(app.request(Method::GET, "/readyz", None)).await;
    assert_eq!(ready.expect(200), json!({"status":"ok"}));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_events_ingested() {
    let app = TestApp::spawn().await;
    app.submit(&json!([
        event("a@acme.example", "t"),
        event("b@acme.example", "t"),
        {"target_user": "c@acme.example"}
    ]))
    .await;
    app.get(&app.admin, "/events/00000000-0000-0000-0000-000000000000")
        .await
        .expect(404);

    let metrics = app.send(app.request(Method::GET, "/metrics", None)).await;
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    let line = |needle: &[&str]| {
        text.lines()
            .find(|l| {
                l.starts_with("coachloop_http_requests_total{")
                    && needle.iter().all(|n| l.contains(n))
            })
            .unwrap_or_else(|| panic!("no request line with {needle:?} in\n{text}"))
            .to_owned()
    };
    let posted = line(&[r#"method="POST""#, r#"route="/events""#, r#"status="201""#]);
    assert!(posted.ends_with(" 1"), "{posted}");
    // Requests are counted under the route template, not the concrete path.
    let missing = line(&[r#"route="/events/{id}""#, r#"status="404""#]);
    assert!(missing.ends_with(" 1"), "{missing}");
    assert!(!text.contains("00000000-0000"), "no concrete ids as labels");

    let ingested = text
        .lines()
        .find(|l| l.starts_with("coachloop_events_ingested_total"))
        .unwrap_or_else(|| panic!("no events_ingested in\n{text}"));
    assert_eq!(ingested, "coachloop_events_ingested_total 2");
    assert!(text.contains("coachloop_http_request_duration_seconds"));
}

/// `/metrics` tells what the smart-group engine holds: the people it cached for a smart
/// group's backfill and the event facts it keeps of them.
#[tokio::test]
async fn metrics_show_the_engine_cache() {
    let app = TestApp::spawn().await;
    for email in ["a@acme.example", "b@acme.example"] {
        app.create_user(&json!({ "email": email })).await;
    }
    app.submit(&json!([
        event("a@acme.example", "t"),
        event("b@acme.example", "t")
    ]))
    .await;
    let criteria = json!({"event": {"type": "t", "count": {"at_least": 1}, "within": "P1D"}});
    app.post_json(
        &app.admin,
        "/api/groups",
        &json!({"name": "Recent t", "criteria": criteria}),
    )
    .await
    .expect(201);
    let metrics = app.send(app.request(Method::GET, "/metrics", None)).await;
    let gauge = |name: &str| {
        (metrics.text.lines())
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{}", metrics.text))
            .to_owned()
    };
    assert_eq!(
        gauge("coachloop_engine_cached_people"),
        "coachloop_engine_cached_people 2"
    );
    assert_eq!(
        gauge("coachloop_engine_cached_facts"),
        "coachloop_engine_cached_facts 2"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", "events:read").await;
    let answers = [
        app.send(app.request(Method::GET, "/healthz", None)).await,
        app.get(&app.admin, "/events").await,
        app.post_events(&app.admin, &event("a@acme.example", "t"))
            .await,
        app.send(app.request(Method::GET, "/events", None)).await,
        app.post_events(&reader, &event("a@acme.example", "t"))
            .await,
        app.post_events_raw(&app.admin, b"nope".to_vec()).await,
        app.post_events(&app.admin, &json!({})).await,
        app.get(&app.admin, "/events/nothing").await,
        app.get(&app.admin, "/events?per_page=0").await,
        app.send(app.request(Method::GET, "/openapi.json", None))
            .await,
    ];
    let expected = [200, 200, 201, 401, 403, 400, 422, 404, 400, 200];
    let mut ids = Vec::new();
    for (answer, status) in answers.iter().zip(expected) {
        assert_eq!(answer.status, status, "{}", answer.text);
        let id = answer
            .request_id()
            .unwrap_or_else(|| panic!("no X-Request-Id on a {status}"));
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected.len(), "each request has its own id");
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_echoed() {
    let app = TestApp::spawn().await;
    let ok = app
        .send(
            app.request(Method::GET, "/events", Some(&app.admin))
                .header("x-request-id", "sender-trace-123"),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.request_id(), Some("sender-trace-123"));

    let refused = app
        .send(
            app.request(Method::POST, "/events", None)
                .header("x-request-id", "sender-trace-456")
                .json(&event("a@acme.example", "t")),
        )
        .await;
    refused.expect_error(401, "unauthorized");
    assert_eq!(refused.request_id(), Some("sender-trace-456"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_surface() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(app.request(Method::GET, "/openapi.json", None))
        .await;
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc = answer.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/events",
        "/events/{id}",
        "/event_types",
        "/event_types/{id}",
        "/statuses",
        "/statuses/{id}",
        "/api/users",
        "/api/users/{id}",
        "/api/users/{id}/timeline",
        "/api/tokens",
        "/api/tokens/{name}",
    ] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys());
    }
    assert!(paths["/events"]["post"].is_object());
    assert!(paths["/events"]["get"].is_object());
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "the bearer scheme is described"
    );
}

#[tokio::test]
async fn the_docs_page_is_html_describing_the_endpoints() {
    let app = TestApp::spawn().await;
    let answer = app.send(app.request(Method::GET, "/docs", None)).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = &answer.text;
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<code>POST /events</code>"), "{html}");
    assert!(html.contains("/api/users"));
    assert!(html.contains("/openapi.json"));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_envelope() {
    let app = TestApp::spawn().await;
    let missing = app
        .send(app.request(Method::GET, "/no/such/thing", None))
        .await;
    missing.expect_error(404, "not_found");
    assert!(missing.request_id().is_some());
    let wrong_method = app
        .send(app.request(Method::PATCH, "/events", Some(&app.admin)))
        .await;
    wrong_method.expect_error(405, "method_not_allowed");
}
