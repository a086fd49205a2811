//! Aliases and the unmatched-identity inbox: identities that sent events but match
//! nobody are listed with their counts, and mapping one to a person (as an alias)
//! carries its events into their smart groups and their training in one step.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

const PHISHED: &str = "phish_clicked";
const TYPED: &str = "password_typed_on_phishing_site";

async fn user(app: &TestApp, email: &str) -> i64 {
    app.create_user(&json!({ "email": email })).await["id"]
        .as_i64()
        .unwrap()
}

async fn unmatched(app: &TestApp) -> Vec<Value> {
    app.get(&app.admin, "/api/unmatched").await.expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_unmatched_identity_mapped_later_carries_its_events_into_a_group_and_training() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = app
        .post_json(
            &app.admin,
            "/api/groups",
            &json!({"name": "Clicked twice", "criteria":
                {"event": {"type": PHISHED, "count": {"at_least": 2}}}}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let content = app
        .get(&app.admin, "/api/content?per_page=1")
        .await
        .expect(200);
    let module = content["data"][0]["id"].as_i64().unwrap();
    let campaign = app
        .post_json(
            &app.admin,
            "/api/campaigns",
            &json!({"name": "Phishing coaching", "content": [module], "groups": [group],
                    "relative_duration": "P7D"}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();

    // Events from a device name and a Windows account that match nobody; one of Ana's.
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event("ACME\\ana", PHISHED)).await;
    app.submit_one(&event("acme\\ana ", PHISHED)).await;
    app.submit_one(&event("ACME\\ana", TYPED)).await;
    app.submit_one(&event("laptop-17", PHISHED)).await;
    let inbox = unmatched(&app).await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let windows = inbox
        .iter()
        .find(|u| {
            u["identity"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("acme\\ana")
        })
        .expect("the Windows account, its spellings as one");
    assert_eq!(windows["events"], 3);
    assert_eq!(
        windows["event_types"],
        json!([{"name": TYPED, "count": 1}, {"name": PHISHED, "count": 2}])
    );
    assert!(windows["first_seen"].as_str().unwrap() <= windows["last_seen"].as_str().unwrap());
    let members = format!("/api/groups/{group}/members");
    assert_eq!(
        app.get(&app.admin, &members).await.expect(200)["data"],
        json!([])
    );

    // Mapped: its events are Ana's, she joins the group and is enrolled, in one step.
    let added = app
        .post_json(
            &app.admin,
            &format!("/api/users/{ana}/aliases"),
            &json!({"alias": " ACME\\Ana "}),
        )
        .await
        .expect(201);
    assert_eq!(added["data"]["alias"], "ACME\\Ana");
    assert_eq!(added["data"]["events_attributed"], 3);
    assert_eq!(added["data"]["user"]["aliases"], json!(["ACME\\Ana"]));
    assert_eq!(
        app.get(&app.admin, &members).await.expect(200)["data"][0]["user_id"],
        ana
    );
    let enrolled = app
        .get(
            &app.admin,
            &format!("/api/enrollments?campaign_id={campaign}"),
        )
        .await
        .expect(200);
    assert_eq!(enrolled["data"][0]["user_id"], ana);
    assert_eq!(enrolled["data"][0]["cause"]["kind"], "group_joined");
    let inbox = unmatched(&app).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["identity"], "laptop-17");
    let timeline = app
        .get(&app.admin, &format!("/api/users/{ana}/timeline"))
        .await
        .expect(200);
    assert_eq!(timeline["meta"]["count"], 4);

    // A new event under the alias is hers at once.
    app.submit_one(&event("acme\\ANA", TYPED)).await;
    assert_eq!(unmatched(&app).await.len(), 1);
}

#[tokio::test]
async fn aliases_are_listed_added_once_and_removed_and_refused_where_they_must_be() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let path = format!("/api/users/{ana}/aliases");
    app.post_json(&app.admin, &path, &json!({"alias": "ana-laptop"}))
        .await
        .expect(201);
    // The same name again (any case) is hers already.
    let again = app
        .post_json(&app.admin, &path, &json!({"alias": "ANA-LAPTOP"}))
        .await
        .expect(201);
    assert_eq!(again["data"]["events_attributed"], 0);
    assert_eq!(
        app.get(&app.admin, &path).await.expect(200)["data"],
        json!(["ana-laptop"])
    );
    // Another person's alias or email.
    let bobs = format!("/api/users/{bob}/aliases");
    for taken in ["Ana-Laptop", "ana@acme.example"] {
        let refused = app
            .post_json(&app.admin, &bobs, &json!({"alias": taken}))
            .await;
        refused.expect_error(409, "conflict");
    }
    // Bad input says what to fix.
    for body in [json!({"alias": "  "}), json!({"alias": "x".repeat(321)})] {
        let refused = app.post_json(&app.admin, &path, &body).await;
        refused.expect(422);
    }
    app.post_json(&app.admin, &path, &json!({"name": "x"}))
        .await
        .expect(422);
    // Removed (any case); then gone.
    let removed = app
        .delete(&app.admin, &format!("{path}/ANA-laptop"))
        .await
        .expect(200);
    assert_eq!(removed["data"]["aliases"], json!([]));
    app.delete(&app.admin, &format!("{path}/ana-laptop"))
        .await
        .expect_error(404, "not_found");
    // Nobody's name can be removed from someone else.
    app.delete(&app.admin, &format!("{bobs}/ana@acme.example"))
        .await
        .expect_error(404, "not_found");

    // Scopes and accounts.
    let reader = app.token("reader", "user:read").await;
    app.get(&reader, &path).await.expect(200);
    app.post_json(&reader, &path, &json!({"alias": "x"}))
        .await
        .expect_error(403, "forbidden");
    app.get(&reader, "/api/unmatched")
        .await
        .expect_error(403, "forbidden");
    let (_, other) = app.other_account("other").await;
    app.get(&other, &path).await.expect_error(404, "not_found");
    app.post_json(&other, &path, &json!({"alias": "x"}))
        .await
        .expect_error(404, "not_found");
    app.submit_one(&event("stranger", PHISHED)).await;
    assert_eq!(
        app.get(&other, "/api/unmatched").await.expect(200)["meta"]["count"],
        0
    );
    assert_eq!(
        app.get(&app.admin, "/api/unmatched").await.expect(200)["meta"]["count"],
        1
    );
}
