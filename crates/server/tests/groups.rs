//! Smart groups through the API: join on the event that makes criteria hold, leave at the
//! exact instant the window closes, history, why, versions and backfill.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

const COMPROMISED: &str = "dashlane_user_typed_compromised_password";

fn twice_in_3_months() -> Value {
    json!({"event": {"type": COMPROMISED, "count": {"at_least": 2}, "within": "P3M"}})
}

async fn smart_group(app: &TestApp, name: &str, criteria: Value) -> Value {
    app.post_json(
        &app.admin,
        "/api/groups",
        &json!({"name": name, "criteria": criteria}),
    )
    .await
    .expect(201)
}

async fn member_ids(app: &TestApp, group: i64) -> Vec<i64> {
    let body = app
        .get(&app.admin, &format!("/api/groups/{group}/members"))
        .await
        .expect(200);
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn joins_on_the_second_event_and_leaves_when_the_first_leaves_the_window() {
    let app = TestApp::spawn().await;
    let ana = app.create_user(&json!({"email": "ana@acme.example"})).await;
    let ana_id = ana["id"].as_i64().unwrap();
    let created = smart_group(&app, "Compromised twice", twice_in_3_months()).await;
    assert_eq!(created["data"]["group_type"], "smart_group");
    assert_eq!(created["backfill"]["joined"], 0);
    let group = created["data"]["id"].as_i64().unwrap();

    let first = app
        .submit_one(&event("ana@acme.example", COMPROMISED))
        .await;
    assert!(member_ids(&app, group).await.is_empty());
    app.clock.advance(chrono::Duration::days(10));
    app.submit_one(&event("ana@acme.example", COMPROMISED))
        .await;
    assert_eq!(member_ids(&app, group).await, [ana_id]);

    let why = app
        .get(
            &app.admin,
            &format!("/api/groups/{group}/members/{ana_id}/why"),
        )
        .await
        .expect(200);
    assert_eq!(why["data"]["member"], true);
    assert_eq!(why["data"]["criteria_hold"], true);
    let evidence = &why["data"]["evidence"][0];
    assert_eq!(evidence["kind"], "events");
    assert_eq!(evidence["count"], 2);
    assert!(
        evidence["events"]
            .as_array()
            .unwrap()
            .contains(&json!(first))
    );

    // The first event occurred 2026-11-01T12:00Z; it leaves the 3-month window at
    // 2027-02-01T12:00Z exactly.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2027-02-01T11:59:59.999Z")
            .unwrap()
            .to_utc(),
    );
    app.store.run_due_groups().await.unwrap();
    assert_eq!(member_ids(&app, group).await, [ana_id]);
    app.clock.advance(chrono::Duration::milliseconds(1));
    app.store.run_due_groups().await.unwrap();
    assert!(member_ids(&app, group).await.is_empty());

    let history = app
        .get(&app.admin, &format!("/api/groups/{group}/history"))
        .await
        .expect(200);
    let changes = history["data"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["change"], "left");
    assert_eq!(changes[0]["at"], "2027-02-01T12:00:00.000Z");
    assert_eq!(changes[1]["change"], "joined");
    assert_eq!(changes[1]["version"], 1);
}
