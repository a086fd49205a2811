//! `/api/tokens` and how tokens are honoured: scopes, expiry, revocation, last use.

mod common;

use chrono::Duration;
use common::{TestApp, event, start_time};
use serde_json::{Value, json};

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no token `{name}` in {list}"))
}

/// True when `value` holds a key named `key` anywhere.
fn has_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k == key || has_key(v, key)),
        Value::Array(items) => items.iter().any(|v| has_key(v, key)),
        _ => false,
    }
}

#[tokio::test]
async fn an_admin_creates_lists_and_revokes_tokens() {
    let app = TestApp::spawn().await;
    let created = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name":"dashlane","scopes":["events:write"],"expires":"2027-01-01"}),
        )
        .await
        .expect(201);
    let secret = created["data"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("cl_"), "{secret}");
    assert!(secret.len() > 20);
    let token = &created["data"]["token"];
    assert_eq!(token["name"], "dashlane");
    assert_eq!(token["scopes"], json!(["events:write"]));
    assert_eq!(token["expires_at"], "2027-01-01T00:00:00.000Z");
    assert_eq!(token["created_at"], "2026-11-01T12:00:00.000Z");
    assert!(token["revoked_at"].is_null());
    assert!(!has_key(token, "secret"));

    // The new secret works at once, for what its scopes allow.
    app.post_events(&secret, &event("a@acme.example", "t"))
        .await
        .expect(201);
    app.get(&secret, "/events")
        .await
        .expect_error(403, "forbidden");

    let list = app.get(&app.admin, "/api/tokens").await.expect(200);
    assert!(!has_key(&list, "secret"), "no secret in the list: {list}");
    assert!(!list.to_string().contains(&secret));
    assert_eq!(find(&list, "dashlane")["id"], token["id"]);
    find(&list, "admin");

    app.clock.advance(Duration::minutes(5));
    let revoked = app
        .delete(&app.admin, "/api/tokens/dashlane")
        .await
        .expect(200);
    assert_eq!(revoked["data"]["revoked_at"], "2026-11-01T12:05:00.000Z");
    app.post_events(&secret, &event("a@acme.example", "t"))
        .await
        .expect_error(401, "unauthorized");
    let list = app.get(&app.admin, "/api/tokens").await.expect(200);
    assert_eq!(
        find(&list, "dashlane")["revoked_at"],
        "2026-11-01T12:05:00.000Z"
    );
    app.delete(&app.admin, "/api/tokens/dashlane")
        .await
        .expect_error(404, "not_found");

    // A revoked name may be reused.
    app.post_json(
        &app.admin,
        "/api/tokens",
        &json!({"name":"dashlane","scopes":["events:write"]}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn bad_token_requests_are_refused() {
    let app = TestApp::spawn().await;
    app.post_json(
        &app.admin,
        "/api/tokens",
        &json!({"name":"x","scopes":["events:write","root"]}),
    )
    .await
    .expect_error(422, "invalid");
    app.post_json(&app.admin, "/api/tokens", &json!({"name":"x","scopes":[]}))
        .await
        .expect_error(422, "invalid");
    let bad_date = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name":"x","scopes":["admin"],"expires":"next year"}),
        )
        .await;
    bad_date.expect_error(422, "invalid");
    assert_eq!(bad_date.detail_fields(), ["expires"]);
    let past = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name":"x","scopes":["admin"],"expires":"2026-01-01"}),
        )
        .await;
    past.expect_error(422, "invalid");
    assert_eq!(past.detail_fields(), ["expires"]);
    let taken = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name":"admin","scopes":["admin"]}),
        )
        .await;
    taken.expect_error(409, "conflict");
    assert_eq!(taken.detail_fields(), ["name"]);
    app.post_json(&app.admin, "/api/tokens", &json!({"scopes":["admin"]}))
        .await
        .expect_error(422, "invalid");

    let list = app.get(&app.admin, "/api/tokens").await.expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn tokens_are_for_admins_only() {
    let app = TestApp::spawn().await;
    let user_reader = app
        .token("people", "user:read,events:read,events:write")
        .await;
    app.get(&user_reader, "/api/tokens")
        .await
        .expect_error(403, "forbidden");
    app.post_json(
        &user_reader,
        "/api/tokens",
        &json!({"name":"mine","scopes":["admin"]}),
    )
    .await
    .expect_error(403, "forbidden");
    app.delete(&user_reader, "/api/tokens/admin")
        .await
        .expect_error(403, "forbidden");
    // The admin token still works: nothing was revoked.
    app.get(&app.admin, "/api/tokens").await.expect(200);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn().await;
    let secret = app
        .token_in(
            app.account,
            "short-lived",
            "events:write",
            Some(start_time() + Duration::hours(1)),
        )
        .await;
    app.post_events(&secret, &event("a@acme.example", "t"))
        .await
        .expect(201);

    app.clock.advance(Duration::hours(1));
    let body = app
        .post_events(&secret, &event("a@acme.example", "t"))
        .await
        .expect_error(401, "unauthorized");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_unknown_and_malformed_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let body = event("a@acme.example", "t");
    let missing = app
        .send(
            app.request(reqwest::Method::POST, "/events", None)
                .json(&body),
        )
        .await;
    missing.expect_error(401, "unauthorized");
    app.post_events("cl_0000", &body)
        .await
        .expect_error(401, "unauthorized");
    let basic = app
        .send(
            app.request(reqwest::Method::GET, "/events", None)
                .header("authorization", format!("Basic {}", app.admin)),
        )
        .await;
    basic.expect_error(401, "unauthorized");
    let empty = app
        .send(
            app.request(reqwest::Method::GET, "/events", None)
                .header("authorization", "Bearer "),
        )
        .await;
    empty.expect_error(401, "unauthorized");
    // The scheme is case-insensitive, as senders write it either way.
    let lower = app
        .send(
            app.request(reqwest::Method::GET, "/events", None)
                .header("authorization", format!("bearer {}", app.admin)),
        )
        .await;
    lower.expect(200);

    for path in [
        "/events",
        "/statuses",
        "/event_types",
        "/api/users",
        "/api/tokens",
    ] {
        let answer = app
            .send(app.request(reqwest::Method::GET, path, None))
            .await;
        answer.expect_error(401, "unauthorized");
    }
    let stored = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(stored["meta"]["count"], 0);
}

#[tokio::test]
async fn a_token_without_events_write_may_not_post() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", "events:read,user:read").await;
    let body = app
        .post_events(&reader, &event("a@acme.example", "t"))
        .await
        .expect_error(403, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("events:write"),
        "names the scope: {body}"
    );
}

#[tokio::test]
async fn last_use_is_recorded() {
    let app = TestApp::spawn().await;
    let created = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name":"sender","scopes":["events:write"]}),
        )
        .await
        .expect(201);
    let secret = created["data"]["secret"].as_str().unwrap();
    assert!(created["data"]["token"]["last_used_at"].is_null());

    app.clock.advance(Duration::minutes(3));
    app.post_events(secret, &event("a@acme.example", "t"))
        .await
        .expect(201);

    // Recorded off the request path.
    let last_used =
        sender_entry(&app, |e| !e["last_used_at"].is_null()).await["last_used_at"].clone();
    assert_eq!(last_used, "2026-11-01T12:03:00.000Z");
}

/// `/api/tokens` until `ready` accepts the sender's entry (last use and activity are
/// written off the request path, activity at most once a second: about 5 s at most).
async fn sender_entry(app: &TestApp, ready: impl Fn(&Value) -> bool) -> Value {
    let mut entry = Value::Null;
    for _ in 0..250 {
        let list = app.get(&app.admin, "/api/tokens").await.expect(200);
        entry = find(&list, "sender").clone();
        if ready(&entry) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    entry
}

#[tokio::test]
async fn a_senders_token_shows_its_last_event_and_its_last_error() {
    let app = TestApp::spawn().await;
    let created = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name":"sender","scopes":["events:write"]}),
        )
        .await
        .expect(201);
    let secret = created["data"]["secret"].as_str().unwrap();
    // Pending: no event yet, no error.
    let token = &created["data"]["token"];
    assert!(token["last_event_at"].is_null() && token["last_error"].is_null());

    app.clock.advance(Duration::minutes(2));
    app.post_events(secret, &event("a@acme.example", "t"))
        .await
        .expect(201);
    let entry = sender_entry(&app, |t| !t["last_event_at"].is_null()).await;
    assert_eq!(entry["last_event_at"], "2026-11-01T12:02:00.000Z");
    assert!(entry["last_error"].is_null(), "{entry}");

    // A bulk request with a refused item: stored events and the error, both.
    app.clock.advance(Duration::minutes(1));
    let bulk = json!([event("a@acme.example", "t"), {"event_type": "t"}]);
    app.post_events(secret, &bulk).await.expect(201);
    let entry = sender_entry(&app, |t| !t["last_error"].is_null()).await;
    assert_eq!(entry["last_event_at"], "2026-11-01T12:03:00.000Z");
    assert_eq!(entry["last_error_at"], "2026-11-01T12:03:00.000Z");
    let error = entry["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("1 of 2 events refused, e.g. item 1: ") && error.contains("target_user"),
        "{error}"
    );

    // A refused request: the error changes, the last event stays.
    app.clock.advance(Duration::minutes(1));
    app.post_events_raw(secret, b"{not json".to_vec())
        .await
        .expect_error(400, "bad_request");
    let entry = sender_entry(&app, |t| t["last_error_at"] == "2026-11-01T12:04:00.000Z").await;
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{entry}"
    );
    assert_eq!(entry["last_event_at"], "2026-11-01T12:03:00.000Z");
}

#[tokio::test]
async fn a_key_of_the_wrong_kind_shows_why_it_was_refused() {
    let app = TestApp::spawn().await;
    let secret = app.token("sender", "enrollments:read").await;
    app.post_events(&secret, &event("a@acme.example", "t"))
        .await
        .expect_error(403, "forbidden");
    let entry = sender_entry(&app, |t| !t["last_error"].is_null()).await;
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("lacks the `events:write` scope"),
        "{entry}"
    );
    assert!(entry["last_event_at"].is_null(), "{entry}");
}
