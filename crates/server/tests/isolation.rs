//! Accounts are isolated: a token of one account never reads, changes or learns of
//! another account's data.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

struct Seeded {
    app: TestApp,
    /// An admin token of account B.
    other: String,
    event_id: String,
    status_id: String,
    type_id: i64,
    user_id: i64,
}

/// Account A (the default) with a person, an event of a new type, and its status.
async fn seeded() -> Seeded {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_account("b").await;
    let user_id = app
        .create_user(&json!({"email":"ana@acme.example","department":"Finance"}))
        .await["id"]
        .as_i64()
        .unwrap();
    let status = app
        .submit(
            &json!({"target_user":"ana@acme.example","event_type":"a_only",
            "external_id":"a-1","source":"A-source"}),
        )
        .await;
    let status_id = status["id"].as_str().unwrap().to_owned();
    let event_id = status["details"]["events"][0].as_str().unwrap().to_owned();
    let type_id = app.event(&event_id).await["event_type"]["id"]
        .as_i64()
        .unwrap();
    Seeded {
        app,
        other,
        event_id,
        status_id,
        type_id,
        user_id,
    }
}

#[tokio::test]
async fn another_account_cannot_read_by_id() {
    let s = seeded().await;
    let (app, other) = (&s.app, s.other.as_str());
    for path in [
        format!("/events/{}", s.event_id),
        format!("/statuses/{}", s.status_id),
        format!("/event_types/{}", s.type_id),
        format!("/api/users/{}", s.user_id),
        format!("/api/users/{}/timeline", s.user_id),
    ] {
        let answer = app.get(other, &path).await;
        assert_eq!(answer.status, 404, "{path} answered {}", answer.text);
        answer.expect_error(404, "not_found");
        // Account A still sees it.
        app.get(&app.admin, &path).await.expect(200);
    }
}

#[tokio::test]
async fn another_account_cannot_change_or_delete() {
    let s = seeded().await;
    let (app, other) = (&s.app, s.other.as_str());
    app.delete(other, &format!("/events/{}", s.event_id))
        .await
        .expect_error(404, "not_found");
    app.put_json(
        other,
        &format!("/event_types/{}", s.type_id),
        &json!({"name":"stolen"}),
    )
    .await
    .expect_error(404, "not_found");
    // The type is in use in account A; B must not learn even that.
    app.delete(other, &format!("/event_types/{}", s.type_id))
        .await
        .expect_error(404, "not_found");
    app.patch(
        other,
        &format!("/api/users/{}", s.user_id),
        &json!({"first_name":"Mallory"}),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(other, &format!("/api/users/{}", s.user_id))
        .await
        .expect_error(404, "not_found");
    let sender = app.token("a-sender", "events:read").await;
    app.delete(other, "/api/tokens/a-sender")
        .await
        .expect_error(404, "not_found");

    // Everything of A is as it was.
    let event = app.event(&s.event_id).await;
    assert_eq!(event["event_type"]["name"], "a_only");
    let user = app
        .get(&app.admin, &format!("/api/users/{}", s.user_id))
        .await
        .expect(200);
    assert!(user["data"]["first_name"].is_null());
    assert_eq!(user["data"]["status"], "active");
    app.get(&sender, "/events").await.expect(200);
}

fn count(body: &Value) -> usize {
    body["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn lists_never_show_another_accounts_data() {
    let s = seeded().await;
    let (app, other) = (&s.app, s.other.as_str());

    for query in [
        "",
        "?target_user=ana@acme.example",
        "?external_id=a-1",
        "?source=A-source",
        "?event_type=a_only",
    ] {
        let listed = app.get(other, &format!("/events{query}")).await.expect(200);
        assert_eq!(count(&listed), 0, "/events{query}: {listed}");
        assert_eq!(listed["meta"]["count"], 0);
    }
    assert_eq!(count(&app.get(other, "/statuses").await.expect(200)), 0);
    assert_eq!(count(&app.get(other, "/api/users").await.expect(200)), 0);
    assert_eq!(
        count(&app.get(other, "/api/users?q=ana").await.expect(200)),
        0
    );
    let types = app.get(other, "/event_types?name=a_only").await.expect(200);
    assert_eq!(count(&types), 0);
    let tokens = app.get(other, "/api/tokens").await.expect(200);
    let names: Vec<_> = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("admin")], "only B's own token");
}

#[tokio::test]
async fn a_person_of_another_account_does_not_claim_events() {
    let s = seeded().await;
    let (app, other) = (&s.app, s.other.as_str());
    // B adds a person with A's email, and sends an event for them.
    let theirs = app
        .post_json(other, "/api/users", &json!({"email":"ana@acme.example"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(theirs, s.user_id);
    let answer = app
        .post_events(other, &event("ana@acme.example", "a_only"))
        .await
        .expect(201);
    let status = app
        .get(
            other,
            &format!("/statuses/{}", answer["data"]["id"].as_str().unwrap()),
        )
        .await
        .expect(200);
    let their_event = status["data"]["details"]["events"][0].as_str().unwrap();
    let event = app
        .get(other, &format!("/events/{their_event}"))
        .await
        .expect(200);
    assert_eq!(event["data"]["user"]["id"], theirs);
    assert_ne!(event["data"]["event_type"]["id"], s.type_id, "B's own type");

    // A's event still belongs to A's person, and A's timeline holds only A's event.
    assert_eq!(app.event(&s.event_id).await["user"]["id"], s.user_id);
    let timeline = app
        .get(&app.admin, &format!("/api/users/{}/timeline", s.user_id))
        .await
        .expect(200);
    assert_eq!(timeline["meta"]["count"], 1);
    assert_eq!(timeline["data"][0]["id"], s.event_id.as_str());
}
