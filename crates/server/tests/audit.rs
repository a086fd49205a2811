//! The audit log: every change an administrator or a token made — who, what, when, the
//! resource before and after — with secrets left out, filters, and one account's log
//! closed to another's.

mod common;

use common::TestApp;
use common::console::{Visitor, admin_with_password, csrf_of};
use serde_json::{Value, json};

async fn log(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    app.get(token, &format!("/api/audit{query}"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn changes_by_tokens_are_recorded_with_before_and_after() {
    let app = TestApp::spawn().await;
    let group = app
        .post_json(&app.admin, "/api/groups", &json!({"name": "Sales"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/groups/{group}");
    app.patch(&app.admin, &path, &json!({"name": "Sales EMEA"}))
        .await
        .expect(200);
    // Refused changes change nothing, and are not recorded.
    app.patch(&app.admin, &path, &json!({"name": ""})).await;
    // Reads are not changes.
    app.get(&app.admin, &path).await.expect(200);
    let created = app
        .post_json(
            &app.admin,
            "/api/tokens",
            &json!({"name": "ci", "scopes": ["events:write"]}),
        )
        .await
        .expect(201);
    let secret = created["data"]["secret"].as_str().unwrap().to_owned();

    let entries = log(&app, &app.admin, "").await;
    assert_eq!(entries.len(), 3, "{entries:#?}");
    let (token, rename, create) = (&entries[0], &entries[1], &entries[2]);
    assert_eq!(create["method"], "POST");
    assert_eq!(create["path"], "/api/groups");
    assert_eq!(create["status"], 201);
    assert_eq!(
        create["actor"],
        json!({"kind": "token", "id": create["actor"]["id"], "name": "admin"})
    );
    assert!(create["before"].is_null());
    assert_eq!(create["after"]["data"]["name"], "Sales");

    assert_eq!(rename["method"], "PATCH");
    assert_eq!(rename["path"], path);
    assert_eq!(rename["before"]["data"]["name"], "Sales");
    assert_eq!(rename["after"]["data"]["name"], "Sales EMEA");

    assert_eq!(token["path"], "/api/tokens");
    assert_eq!(token["after"]["data"]["secret"], "[secret]");
    assert!(
        !app.get(&app.admin, "/api/audit")
            .await
            .text
            .contains(&secret)
    );

    // Filters: by who, by path, by day.
    assert_eq!(log(&app, &app.admin, "?path=/api/groups").await.len(), 2);
    assert_eq!(log(&app, &app.admin, "?actor=admin").await.len(), 3);
    assert_eq!(log(&app, &app.admin, "?actor=ci").await.len(), 0);
    assert_eq!(
        log(&app, &app.admin, "?from=2026-11-01&to=2026-11-01")
            .await
            .len(),
        3
    );
    assert_eq!(log(&app, &app.admin, "?from=2026-11-02").await.len(), 0);
    assert_eq!(
        app.get(&app.admin, "/api/audit?from=yesterday")
            .await
            .expect_error(400, "bad_request")["message"],
        "`from` must be a day written YYYY-MM-DD"
    );
    let page = app
        .get(&app.admin, "/api/audit?per_page=1&page=2")
        .await
        .expect(200);
    assert_eq!(page["data"][0]["method"], "PATCH");
    assert_eq!(page["meta"]["count"], 3, "{page}");

    // Another account's log is its own.
    let (_, other) = app.other_account("globex").await;
    assert!(log(&app, &other, "").await.is_empty());
    let limited = app.token("reader", "user:read").await;
    app.get(&limited, "/api/audit")
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn console_changes_are_recorded_with_the_administrator() {
    let app = TestApp::spawn().await;
    let person = app.create_user(&json!({"email": "kim@acme.example"})).await["id"]
        .as_i64()
        .unwrap();
    app.submit(&json!({"target_user": "<b>KIOSK</b>", "event_type": "odd"}))
        .await;
    admin_with_password(
        &app,
        app.account,
        "ada@acme.example",
        "a long enough password",
    )
    .await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in("default", "ada@acme.example", "a long enough password")
        .await;
    let inbox = visitor.get("/console/unmatched").await;
    let token = csrf_of(&inbox.text);
    let mapped = visitor
        .post(
            "/console/unmatched",
            &[
                ("csrf", &token),
                ("identity", "<b>KIOSK</b>"),
                ("email", "kim@acme.example"),
            ],
        )
        .await;
    assert_eq!(mapped.status, 303);

    let entries = log(&app, &app.admin, "?actor=ada@acme.example").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let entry = &entries[0];
    assert_eq!(entry["actor"]["kind"], "admin");
    assert_eq!(entry["path"], format!("/api/users/{person}/aliases"));
    assert_eq!(entry["before"], json!({"aliases": []}));
    assert_eq!(entry["after"]["aliases"], json!(["<b>KIOSK</b>"]));
    assert_eq!(entry["after"]["events_attributed"], 1);

    // The console's page shows it, escaped, and filters it.
    let page = visitor.get("/console/audit?actor=ada%40acme.example").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains(&format!("/api/users/{person}/aliases")));
    assert!(
        page.text.contains("&lt;b&gt;KIOSK&lt;/b&gt;"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<b>KIOSK"));
    let none = visitor.get("/console/audit?actor=nobody").await;
    assert!(none.text.contains("No change matches."));
    let bad = visitor.get("/console/audit?from=nonsense").await;
    assert_eq!(bad.status, 400);
}
