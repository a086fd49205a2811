//! Bad input to `POST /events` (and the JSON endpoints): each answered with a 4xx in the
//! `{"message","code","details"}` envelope, never a 500, and the server keeps answering.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

#[tokio::test]
async fn a_body_that_is_not_json_is_a_bad_request() {
    let app = TestApp::spawn().await;
    for body in [
        &b"target_user=ana"[..],
        b"{\"target_user\":",
        b"",
        b"{} {}",
        b"\"just a string\"",
        b"42",
        b"null",
        b"true",
    ] {
        let answer = app.post_events_raw(&app.admin, body.to_vec()).await;
        assert_eq!(
            answer.status,
            400,
            "{:?} answered {}",
            String::from_utf8_lossy(body),
            answer.text
        );
        answer.expect_error(400, "bad_request");
    }
    let statuses = app.get(&app.admin, "/statuses").await.expect(200);
    assert_eq!(statuses["meta"]["count"], 0, "nothing was recorded");
}

#[tokio::test]
async fn non_utf8_bytes_are_a_bad_request() {
    let app = TestApp::spawn().await;
    let mut body = br#"{"target_user":"ana@acme.example","event_type":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#""}"#);
    app.post_events_raw(&app.admin, body)
        .await
        .expect_error(400, "bad_request");
    let listed = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(listed["meta"]["count"], 0);
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_the_server_lives_on() {
    let app = TestApp::spawn().await;
    let depth = 10_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    app.post_events_raw(&app.admin, nested.clone().into_bytes())
        .await
        .expect_error(400, "bad_request");
    let in_an_event = format!(
        r#"{{"target_user":"a@acme.example","event_type":"t","metadata":{{"x":{}}}}}"#,
        nested
    );
    app.post_events_raw(&app.admin, in_an_event.into_bytes())
        .await
        .expect_error(400, "bad_request");
    let nested_objects = format!("{}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let answer = app
        .send(
            app.request(reqwest::Method::POST, "/api/users", Some(&app.admin))
                .header("content-type", "application/json")
                .body(nested_objects),
        )
        .await;
    answer.expect_error(400, "bad_request");

    app.send(app.request(reqwest::Method::GET, "/healthz", None))
        .await
        .expect(200);
    app.post_events(&app.admin, &event("a@acme.example", "t"))
        .await
        .expect(201);
}

#[tokio::test]
async fn a_single_invalid_event_names_each_bad_field() {
    let app = TestApp::spawn().await;
    let answer = app
        .post_events(
            &app.admin,
            &json!({
                "event_type": 5,
                "external_id": "x".repeat(65),
                "description": "d".repeat(256),
                "occurred_date": "yesterday",
                "risk_level": 11,
                "risk_decay_mode": 2,
                "risk_expire_date": "2026-13-01",
                "metadata": [1]
            }),
        )
        .await;
    let body = answer.expect_error(422, "invalid");
    assert_eq!(
        answer.detail_fields(),
        [
            "description",
            "event_type",
            "external_id",
            "metadata",
            "occurred_date",
            "risk_decay_mode",
            "risk_expire_date",
            "risk_level",
            "target_user"
        ]
    );
    for detail in body["details"].as_array().unwrap() {
        assert!(
            detail["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{detail}"
        );
    }
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("target_user") && message.contains("risk_level"));

    let expiry = app
        .post_events(
            &app.admin,
            &json!({"target_user":"a@acme.example","event_type":"t",
                "occurred_date":"2026-10-30","risk_expire_date":"2026-10-29"}),
        )
        .await;
    expiry.expect_error(422, "invalid");
    assert_eq!(expiry.detail_fields(), ["risk_expire_date"]);

    let blank = app
        .post_events(&app.admin, &json!({"target_user":"  ","event_type":"t"}))
        .await;
    blank.expect_error(422, "invalid");
    assert_eq!(blank.detail_fields(), ["target_user"]);

    let statuses = app.get(&app.admin, "/statuses").await.expect(200);
    assert_eq!(
        statuses["meta"]["count"], 0,
        "a refused event leaves no status"
    );
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_too_large() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(1024 * 1024);
    let body = json!({"target_user":"a@acme.example","event_type":"t","padding":padding});
    let answer = app.post_events(&app.admin, &body).await;
    answer.expect_error(413, "payload_too_large");

    let user = json!({"email":"a@acme.example","comment":"c".repeat(1024 * 1024)});
    app.post_json(&app.admin, "/api/users", &user)
        .await
        .expect_error(413, "payload_too_large");

    let listed = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(listed["meta"]["count"], 0);
}

#[tokio::test]
async fn a_json_endpoint_refuses_a_body_that_is_not_json() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(
            app.request(reqwest::Method::POST, "/api/users", Some(&app.admin))
                .header("content-type", "application/json")
                .body("{\"email\":"),
        )
        .await;
    answer.expect_error(400, "bad_request");
    let untyped = app
        .send(
            app.request(reqwest::Method::POST, "/event_types", Some(&app.admin))
                .body(r#"{"name":"x"}"#),
        )
        .await;
    // A body without a JSON content type: 415, in the envelope.
    untyped.expect_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn a_token_without_the_scope_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", "user:read,events:read").await;
    for path in ["/api/users", "/api/tokens", "/event_types"] {
        let answer = app
            .send(
                app.request(reqwest::Method::POST, path, Some(&reader))
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await;
        answer.expect_error(403, "forbidden");
    }
}

#[tokio::test]
async fn typed_bodies_read_whole_decimals_as_integers_and_name_what_is_wrong() {
    let app = TestApp::spawn().await;
    let ana = app.create_user(&json!({"email": "ana@acme.example"})).await["id"]
        .as_i64()
        .expect("an id");
    let group = app
        .post_json(&app.admin, "/api/groups", &json!({"name": "VIPs"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .expect("an id");
    let members = format!("/api/groups/{group}/members");
    // JSON Schema (and so a generated client) counts 2.0 as an integer.
    app.post_json(&app.admin, &members, &json!({"user_id": ana as f64}))
        .await
        .expect(201);
    let half = app
        .post_json(&app.admin, &members, &json!({"user_id": 1.5}))
        .await;
    half.expect_error(422, "invalid");
    assert_eq!(half.detail_fields(), ["user_id"]);
    // serde would fill a struct from an array's items; a body is an object.
    let array = app
        .put_json(&app.admin, "/event_types/1", &json!([null, null]))
        .await;
    array.expect_error(422, "invalid");
    assert_eq!(array.detail_fields(), [""]);
    // A missing field is named, not reported at the body's root.
    let missing = app
        .post_json(&app.admin, "/api/tokens", &json!({"scopes": ["admin"]}))
        .await;
    missing.expect_error(422, "invalid");
    assert_eq!(missing.detail_fields(), ["name"]);
    // A scope is one name, not a comma-separated list in one item.
    let listed = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name": "two", "scopes": ["events:write,admin"]}),
        )
        .await;
    listed.expect_error(422, "invalid");
    assert_eq!(listed.detail_fields(), ["scopes"]);
    // `group_type` is a string when given.
    let typed = app
        .post_json(
            &app.admin,
            "/api/groups",
            &json!({"name": "Odd", "group_type": {}}),
        )
        .await;
    typed.expect_error(422, "invalid");
    assert_eq!(typed.detail_fields(), ["group_type"]);
}

#[tokio::test]
async fn query_integers_may_be_whole_decimals_and_ids_at_the_edges_are_not_found() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email": "ana@acme.example"})).await;
    let page = app
        .get(&app.admin, "/api/users?page=1.0&per_page=10.00")
        .await
        .expect(200);
    assert_eq!(page["meta"]["limit_value"], 10);
    app.get(&app.admin, "/api/users?page=1.5")
        .await
        .expect_error(400, "bad_request");
    let rows = app
        .get(&app.admin, "/v1/users?per_page=1.0")
        .await
        .expect(200);
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    for path in [
        "/v1/training/campaigns/-9223372036854775808",
        "/v1/training/enrollments/-9223372036854775808",
        "/v1/training/enrollment/-9223372036854775808",
    ] {
        app.get(&app.admin, path)
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn a_blank_manager_email_clears_it() {
    let app = TestApp::spawn().await;
    let ana = app
        .create_user(&json!({"email": "ana@acme.example", "manager_email": "bo@acme.example"}))
        .await;
    assert_eq!(ana["manager_email"], "bo@acme.example");
    let cleared = app
        .patch(
            &app.admin,
            &format!("/api/users/{}", ana["id"]),
            &json!({"manager_email": "  "}),
        )
        .await
        .expect(200);
    assert_eq!(cleared["data"]["manager_email"], Value::Null);
}
