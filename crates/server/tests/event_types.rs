//! `/event_types`: the built-in catalog, types created by senders and by hand.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

const DASHLANE: [&str; 10] = [
    "dashlane_user_received_vault_phishing_alert",
    "dashlane_user_dismissed_vault_phishing_alert",
    "dashlane_user_entered_password_risky_site",
    "dashlane_user_typed_compromised_password",
    "dashlane_user_typed_weak_password",
    "dashlane_user_dismissed_ai_phishing_alert",
    "dashlane_user_accepted_ai_phishing_alert",
    "dashlane_user_entered_credential_phishing_website_ai",
    "dashlane_user_received_credential_risk_alert",
    "dashlane_user_changed_at_risk_password",
];

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_account_starts_with_the_dashlane_catalog() {
    let app = TestApp::spawn().await;
    let (other_id, other) = app.other_account("newcomer").await;
    let mut expected: Vec<String> = DASHLANE.iter().map(|n| n.to_string()).collect();
    expected.sort();

    for (token, account) in [(&app.admin, app.account), (&other, other_id)] {
        let list = app.get(token, "/event_types").await.expect(200);
        assert_eq!(names(&list), expected);
        assert_eq!(list["meta"]["count"], 10);
        for t in list["data"].as_array().unwrap() {
            assert_eq!(t["account_id"], account.0);
            assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
            assert!(t["id"].is_i64());
        }
    }
}

#[tokio::test]
async fn an_unknown_type_name_in_an_event_creates_the_type() {
    let app = TestApp::spawn().await;
    let none = app
        .get(&app.admin, "/event_types?name=usb_drive_plugged")
        .await
        .expect(200);
    assert_eq!(none, json!({"data": [], "meta": {"count": 0}}));

    let id = app
        .submit_one(&event("a@acme.example", "usb_drive_plugged"))
        .await;
    let found = app
        .get(&app.admin, "/event_types?name=usb_drive_plugged")
        .await
        .expect(200);
    assert_eq!(found["meta"]["count"], 1);
    let created = &found["data"][0];
    assert_eq!(created["name"], "usb_drive_plugged");
    assert_eq!(created["account_id"], app.account.0);
    assert!(created["description"].is_null());
    assert_eq!(app.event(&id).await["event_type"]["id"], created["id"]);

    // A second event of that name reuses the type.
    app.submit_one(&event("b@acme.example", "usb_drive_plugged"))
        .await;
    let list = app.get(&app.admin, "/event_types").await.expect(200);
    assert_eq!(list["meta"]["count"], 11);
}

#[tokio::test]
async fn an_event_type_is_created_read_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let created = app
        .post_json(
            &app.admin,
            "/event_types",
            &json!({"name":" usb_drive ","description":"A USB drive was plugged in."}),
        )
        .await
        .expect(201)["data"]
        .clone();
    assert_eq!(created["name"], "usb_drive", "the name is trimmed");
    assert_eq!(created["description"], "A USB drive was plugged in.");
    assert_eq!(created["account_id"], app.account.0);
    let id = created["id"].as_i64().unwrap();
    let path = format!("/event_types/{id}");

    let read = app.get(&app.admin, &path).await.expect(200);
    assert_eq!(read["data"], created);

    // An absent description is kept; a new name is taken.
    let renamed = app
        .put_json(&app.admin, &path, &json!({"name":"usb_storage"}))
        .await
        .expect(200)["data"]
        .clone();
    assert_eq!(renamed["name"], "usb_storage");
    assert_eq!(renamed["description"], "A USB drive was plugged in.");
    // An explicit null clears it.
    let cleared = app
        .put_json(&app.admin, &path, &json!({"description":null}))
        .await
        .expect(200)["data"]
        .clone();
    assert_eq!(cleared["name"], "usb_storage");
    assert!(cleared["description"].is_null());

    let deleted = app.delete(&app.admin, &path).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.get(&app.admin, &path)
        .await
        .expect_error(404, "not_found");
    let list = app
        .get(&app.admin, "/event_types?name=usb_storage")
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 0);
}

#[tokio::test]
async fn a_taken_name_is_a_conflict() {
    let app = TestApp::spawn().await;
    let body = app
        .post_json(
            &app.admin,
            "/event_types",
            &json!({"name":"dashlane_user_typed_weak_password"}),
        )
        .await
        .expect_error(409, "conflict");
    assert_eq!(body["details"][0]["field"], "name");

    let other = app
        .post_json(&app.admin, "/event_types", &json!({"name":"other"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    app.put_json(
        &app.admin,
        &format!("/event_types/{other}"),
        &json!({"name":"dashlane_user_typed_weak_password"}),
    )
    .await
    .expect_error(409, "conflict");
    let kept = app
        .get(&app.admin, &format!("/event_types/{other}"))
        .await
        .expect(200);
    assert_eq!(kept["data"]["name"], "other");
}

#[tokio::test]
async fn a_type_in_use_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let event_id = app.submit_one(&event("a@acme.example", "in_use")).await;
    let type_id = app.event(&event_id).await["event_type"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/event_types/{type_id}");

    let refused = app
        .delete(&app.admin, &path)
        .await
        .expect_error(409, "conflict");
    assert!(
        refused["message"].as_str().unwrap().contains("events"),
        "{refused}"
    );
    app.get(&app.admin, &path).await.expect(200);

    // Once its events are gone, it can go.
    assert_eq!(
        app.delete(&app.admin, &format!("/events/{event_id}"))
            .await
            .status,
        204
    );
    assert_eq!(app.delete(&app.admin, &path).await.status, 204);
}

#[tokio::test]
async fn bad_names_and_descriptions_are_refused() {
    let app = TestApp::spawn().await;
    let long_description = "d".repeat(256);
    for body in [
        json!({"name":""}),
        json!({"name":"   "}),
        json!({}),
        json!({"name":"x".repeat(101)}),
        json!({"name":"bell\u{7}"}),
    ] {
        let answer = app.post_json(&app.admin, "/event_types", &body).await;
        answer.expect_error(422, "invalid");
        assert_eq!(answer.detail_fields(), ["name"], "for {body}");
    }
    let answer = app
        .post_json(
            &app.admin,
            "/event_types",
            &json!({"name":"ok","description":long_description}),
        )
        .await;
    answer.expect_error(422, "invalid");
    assert_eq!(answer.detail_fields(), ["description"]);

    let builtin = app
        .get(
            &app.admin,
            "/event_types?name=dashlane_user_typed_weak_password",
        )
        .await
        .expect(200)["data"][0]["id"]
        .as_i64()
        .unwrap();
    app.put_json(
        &app.admin,
        &format!("/event_types/{builtin}"),
        &json!({"name":""}),
    )
    .await
    .expect_error(422, "invalid");

    // A name of the wrong JSON type is a bad field too, in the envelope.
    app.post_json(&app.admin, "/event_types", &json!({"name": 5}))
        .await
        .expect_error(422, "invalid");
    // An event cannot create a type of a name POST /event_types refuses.
    let by_event = app
        .post_events(
            &app.admin,
            &json!({"target_user":"a@acme.example","event_type":"bell\u{7}"}),
        )
        .await;
    by_event.expect_error(422, "invalid");
    assert_eq!(by_event.detail_fields(), ["event_type"]);
    let list = app.get(&app.admin, "/event_types").await.expect(200);
    assert_eq!(list["meta"]["count"], 10, "nothing was created");
}

#[tokio::test]
async fn writing_types_needs_events_write() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", "events:read").await;
    app.get(&reader, "/event_types").await.expect(200);
    app.post_json(&reader, "/event_types", &json!({"name":"x"}))
        .await
        .expect_error(403, "forbidden");
    let id = app.get(&reader, "/event_types").await.expect(200)["data"][0]["id"]
        .as_i64()
        .unwrap();
    app.put_json(&reader, &format!("/event_types/{id}"), &json!({"name":"x"}))
        .await
        .expect_error(403, "forbidden");
    app.delete(&reader, &format!("/event_types/{id}"))
        .await
        .expect_error(403, "forbidden");
    app.get(&reader, "/event_types/not-a-number")
        .await
        .expect_error(404, "not_found");
}
