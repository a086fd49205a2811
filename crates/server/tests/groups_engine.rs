//! Smart-group membership semantics through the API: time frames and their exact edges,
//! events out of order and in the future, counts, descriptions, type prefixes, user
//! attributes, other groups, deleted events and archived people; backfill and versions;
//! "why"; and previews over the last 90 days.

mod common;

use chrono::{DateTime, Utc};
use common::{TestApp, event, start_time};
use serde_json::{Value, json};

const PHISHED: &str = "phish_clicked";

fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Moves the clock to `at` and runs every due schedule entry, as the executor would.
async fn run_at(app: &TestApp, at: &str) {
    app.clock.set(ts(at));
    app.store.run_due_groups().await.unwrap();
}

/// Creates a smart group; returns its id and the whole answer (with `backfill`).
async fn smart_with(app: &TestApp, name: &str, criteria: Value) -> (i64, Value) {
    let body = app
        .post_json(
            &app.admin,
            "/api/groups",
            &json!({"name": name, "criteria": criteria}),
        )
        .await
        .expect(201);
    assert_eq!(body["data"]["group_type"], "smart_group");
    (body["data"]["id"].as_i64().unwrap(), body)
}

async fn smart(app: &TestApp, name: &str, criteria: Value) -> i64 {
    smart_with(app, name, criteria).await.0
}

async fn manual(app: &TestApp, name: &str) -> i64 {
    app.post_json(&app.admin, "/api/groups", &json!({ "name": name }))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap()
}

async fn person(app: &TestApp, body: Value) -> i64 {
    app.create_user(&body).await["id"].as_i64().unwrap()
}

async fn user(app: &TestApp, email: &str) -> i64 {
    person(app, json!({ "email": email })).await
}

async fn members(app: &TestApp, group: i64) -> Vec<Value> {
    app.get(&app.admin, &format!("/api/groups/{group}/members"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn member_ids(app: &TestApp, group: i64) -> Vec<i64> {
    members(app, group)
        .await
        .iter()
        .map(|m| m["user_id"].as_i64().unwrap())
        .collect()
}

/// A group's changes, newest first; of one person when `user` is given.
async fn history(app: &TestApp, group: i64, user: Option<i64>) -> Vec<Value> {
    let query = user.map(|u| format!("?user_id={u}")).unwrap_or_default();
    app.get(&app.admin, &format!("/api/groups/{group}/history{query}"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// (user, change, at, version) of each change, newest first.
async fn changes(app: &TestApp, group: i64) -> Vec<(i64, String, String, i64)> {
    history(app, group, None)
        .await
        .iter()
        .map(|c| {
            (
                c["user_id"].as_i64().unwrap(),
                c["change"].as_str().unwrap().to_owned(),
                c["at"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn change(user: i64, kind: &str, at: &str, version: i64) -> (i64, String, String, i64) {
    (user, kind.to_owned(), at.to_owned(), version)
}

async fn why(app: &TestApp, group: i64, user: i64) -> Value {
    app.get(
        &app.admin,
        &format!("/api/groups/{group}/members/{user}/why"),
    )
    .await
    .expect(200)["data"]
        .clone()
}

fn event_at(target: &str, event_type: &str, occurred: &str) -> Value {
    let mut body = event(target, event_type);
    body["occurred_date"] = json!(occurred);
    body
}

fn described(target: &str, event_type: &str, description: &str) -> Value {
    let mut body = event(target, event_type);
    body["description"] = json!(description);
    body
}

// ---- time frames ------------------------------------------------------------------------

#[tokio::test]
async fn an_event_exactly_the_frame_old_no_longer_counts() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = smart(
        &app,
        "Clicked this month",
        json!({"event": {"type": PHISHED, "count": {"at_least": 1}, "within": "P30D"}}),
    )
    .await;
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, group).await, [ana]);

    run_at(&app, "2026-12-01T11:59:59.999Z").await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    assert_eq!(why(&app, group, ana).await["criteria_hold"], true);

    run_at(&app, "2026-12-01T12:00:00.000Z").await;
    assert!(member_ids(&app, group).await.is_empty());
    assert_eq!(
        changes(&app, group).await,
        [
            change(ana, "left", "2026-12-01T12:00:00.000Z", 1),
            change(ana, "joined", "2026-11-01T12:00:00.000Z", 1),
        ]
    );
    let left = &history(&app, group, Some(ana)).await[0];
    assert_eq!(left["reason"], json!([{"kind": "criteria_no_longer_hold"}]));
    let explained = why(&app, group, ana).await;
    assert_eq!(explained["member"], false);
    assert_eq!(explained["criteria_hold"], false);
    assert!(explained["joined_at"].is_null());
    assert_eq!(explained["history"].as_array().unwrap().len(), 2);

    // Nothing further is due: running later changes nothing.
    run_at(&app, "2027-06-01T00:00:00.000Z").await;
    assert_eq!(history(&app, group, None).await.len(), 2);
}

#[tokio::test]
async fn a_late_event_already_out_of_the_frame_never_joins() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let cy = user(&app, "cy@acme.example").await;
    let group = smart(
        &app,
        "Clicked this month",
        json!({"event": {"type": PHISHED, "within": "P30D"}}),
    )
    .await;
    // Two months ago; and exactly 30 days ago to the millisecond (out: the frame is
    // (now − 30 days, now]); and one millisecond later (in).
    app.submit_one(&event_at("ana@acme.example", PHISHED, "2026-09-01"))
        .await;
    app.submit_one(&event_at(
        "bob@acme.example",
        PHISHED,
        "2026-10-02T12:00:00.000Z",
    ))
    .await;
    app.submit_one(&event_at(
        "cy@acme.example",
        PHISHED,
        "2026-10-02T12:00:00.001Z",
    ))
    .await;
    assert_eq!(member_ids(&app, group).await, [cy]);
    for outside in [ana, bob] {
        let explained = why(&app, group, outside).await;
        assert_eq!(explained["criteria_hold"], false);
        assert_eq!(explained["evidence"], json!([]));
        assert!(history(&app, group, Some(outside)).await.is_empty());
    }
    // cy leaves one millisecond later; ana and bob never join.
    run_at(&app, "2026-11-01T12:00:00.001Z").await;
    assert!(member_ids(&app, group).await.is_empty());
    run_at(&app, "2027-01-01T00:00:00.000Z").await;
    assert_eq!(
        changes(&app, group).await,
        [
            change(cy, "left", "2026-11-01T12:00:00.001Z", 1),
            change(cy, "joined", "2026-11-01T12:00:00.000Z", 1),
        ]
    );
}

#[tokio::test]
async fn a_late_event_inside_the_frame_joins_at_once_and_leaves_on_time() {
    let app = TestApp::spawn().await;
    let dee = user(&app, "dee@acme.example").await;
    let group = smart(
        &app,
        "Clicked this month",
        json!({"event": {"type": PHISHED, "within": "P30D"}}),
    )
    .await;
    let id = app
        .submit_one(&event_at(
            "dee@acme.example",
            PHISHED,
            "2026-10-20T12:00:00Z",
        ))
        .await;
    let rows = members(&app, group).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user_id"], dee);
    // Joined when the event arrived, not when it occurred.
    assert_eq!(rows[0]["joined_at"], "2026-11-01T12:00:00.000Z");
    assert_eq!(rows[0]["version"], 1);
    let joined = &history(&app, group, Some(dee)).await[0];
    assert_eq!(joined["change"], "joined");
    assert_eq!(joined["reason"][0]["kind"], "events");
    assert_eq!(joined["reason"][0]["events"], json!([id]));

    run_at(&app, "2026-11-19T11:59:59.999Z").await;
    assert_eq!(member_ids(&app, group).await, [dee]);
    run_at(&app, "2026-11-19T12:00:00.000Z").await;
    assert!(member_ids(&app, group).await.is_empty());
    assert_eq!(
        changes(&app, group).await[0],
        change(dee, "left", "2026-11-19T12:00:00.000Z", 1)
    );
}

#[tokio::test]
async fn a_future_dated_event_joins_when_its_instant_comes() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    let id = app
        .submit_one(&event_at(
            "ana@acme.example",
            PHISHED,
            "2026-11-02T12:00:00Z",
        ))
        .await;
    assert!(member_ids(&app, group).await.is_empty());
    assert_eq!(why(&app, group, ana).await["criteria_hold"], false);
    // A group created now, after the event was stored, waits for it as well.
    let (later, created) = smart_with(
        &app,
        "Clicked this week",
        json!({"event": {"type": PHISHED, "within": "P7D"}}),
    )
    .await;
    assert_eq!(created["backfill"]["joined"], 0);

    run_at(&app, "2026-11-02T11:59:59.999Z").await;
    assert!(member_ids(&app, group).await.is_empty());
    assert!(member_ids(&app, later).await.is_empty());

    run_at(&app, "2026-11-02T12:00:00.000Z").await;
    for g in [group, later] {
        let rows = members(&app, g).await;
        assert_eq!(rows.len(), 1, "group {g}: {rows:?}");
        assert_eq!(rows[0]["user_id"], ana);
        assert_eq!(rows[0]["joined_at"], "2026-11-02T12:00:00.000Z");
        assert_eq!(
            changes(&app, g).await,
            [change(ana, "joined", "2026-11-02T12:00:00.000Z", 1)]
        );
    }
    let explained = why(&app, group, ana).await;
    assert_eq!(explained["criteria_hold"], true);
    assert_eq!(explained["evidence"][0]["events"], json!([id]));

    // The week-long frame lets go of it a week after it occurred.
    run_at(&app, "2026-11-09T12:00:00.000Z").await;
    assert!(member_ids(&app, later).await.is_empty());
    assert_eq!(member_ids(&app, group).await, [ana]);
}

#[tokio::test]
async fn a_smart_group_naming_another_follows_it_in_time() {
    let app = TestApp::spawn().await;
    let ana = person(
        &app,
        json!({"email": "ana@acme.example", "department": "Sales"}),
    )
    .await;
    let bob = person(
        &app,
        json!({"email": "bob@acme.example", "department": "Legal"}),
    )
    .await;
    let week = smart(
        &app,
        "Clicked this week",
        json!({"event": {"type": PHISHED, "within": "P7D"}}),
    )
    .await;
    let sales = smart(
        &app,
        "Sales who clicked this week",
        json!({"all": [
            {"group": {"member_of": week}},
            {"user": {"attribute": "department", "equals": "sales"}}
        ]}),
    )
    .await;
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, week).await, [ana, bob]);
    assert_eq!(member_ids(&app, sales).await, [ana]);
    let joined = &history(&app, sales, Some(ana)).await[0];
    assert_eq!(
        joined["reason"][0],
        json!({"kind": "member", "path": "$.all[0].group", "group": week})
    );

    run_at(&app, "2026-11-08T12:00:00.000Z").await;
    assert!(member_ids(&app, week).await.is_empty());
    assert!(member_ids(&app, sales).await.is_empty());
    assert_eq!(
        changes(&app, sales).await[0],
        change(ana, "left", "2026-11-08T12:00:00.000Z", 1)
    );
}

// ---- counts, descriptions, types ----------------------------------------------------------

#[tokio::test]
async fn at_most_holds_for_few_events_and_returns_as_they_age() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let (group, created) = smart_with(
        &app,
        "Rarely trained",
        json!({"event": {"type": "training_completed", "count": {"at_most": 1}, "within": "P30D"}}),
    )
    .await;
    // No events at all is "at most one".
    assert_eq!(created["backfill"]["evaluated"], 2);
    assert_eq!(created["backfill"]["joined"], 2);
    assert_eq!(member_ids(&app, group).await, [ana, bob]);
    let cy = user(&app, "cy@acme.example").await;
    assert_eq!(member_ids(&app, group).await, [ana, bob, cy]);

    app.submit_one(&event("ana@acme.example", "training_completed"))
        .await;
    assert_eq!(member_ids(&app, group).await, [ana, bob, cy]);
    app.clock.set(ts("2026-11-02T12:00:00Z"));
    app.submit_one(&event("ana@acme.example", "training_completed"))
        .await;
    // Other types do not count.
    app.submit_one(&event("bob@acme.example", "training_started"))
        .await;
    app.submit_one(&event("bob@acme.example", "training_started"))
        .await;
    assert_eq!(member_ids(&app, group).await, [bob, cy]);
    assert_eq!(
        changes(&app, group).await[0],
        change(ana, "left", "2026-11-02T12:00:00.000Z", 1)
    );

    // The first of ana's two leaves the frame on 2026-12-01T12:00Z: one left, she is back.
    run_at(&app, "2026-12-01T11:59:59.999Z").await;
    assert_eq!(member_ids(&app, group).await, [bob, cy]);
    run_at(&app, "2026-12-01T12:00:00.000Z").await;
    assert_eq!(member_ids(&app, group).await, [ana, bob, cy]);
    assert_eq!(
        changes(&app, group).await[0],
        change(ana, "joined", "2026-12-01T12:00:00.000Z", 1)
    );
}

#[tokio::test]
async fn descriptions_filter_by_contains_equals_and_regex() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let cy = user(&app, "cy@acme.example").await;
    let dee = user(&app, "dee@acme.example").await;
    let invoice = smart(
        &app,
        "Invoice lures",
        json!({"event": {"type": PHISHED, "description": {"contains": "invoice"}}}),
    )
    .await;
    let ceo = smart(
        &app,
        "CEO fraud",
        json!({"event": {"type": PHISHED, "description": {"regex": "^CEO-[0-9]+$"}}}),
    )
    .await;
    let wire = smart(
        &app,
        "Wire transfer",
        json!({"event": {"type": PHISHED, "description": {"equals": "wire transfer"}}}),
    )
    .await;

    app.submit_one(&described(
        "ana@acme.example",
        PHISHED,
        "Fake INVOICE attached",
    ))
    .await;
    app.submit_one(&described("bob@acme.example", PHISHED, "Payroll update"))
        .await;
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    app.submit_one(&described("cy@acme.example", PHISHED, "CEO-42"))
        .await;
    app.submit_one(&described("dee@acme.example", PHISHED, "CEO-42 urgent"))
        .await;
    app.submit_one(&described("dee@acme.example", PHISHED, "Wire Transfer"))
        .await;
    // The right description on another type does not count.
    app.submit_one(&described("bob@acme.example", "phish_reported", "invoice"))
        .await;

    assert_eq!(member_ids(&app, invoice).await, [ana]);
    assert_eq!(member_ids(&app, ceo).await, [cy]);
    assert_eq!(member_ids(&app, wire).await, [dee]);
    for (group, outsider) in [(invoice, bob), (ceo, dee), (wire, cy)] {
        assert_eq!(why(&app, group, outsider).await["criteria_hold"], false);
    }
}

#[tokio::test]
async fn a_type_prefix_counts_every_type_that_starts_with_it() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let cy = user(&app, "cy@acme.example").await;
    let group = smart(
        &app,
        "Password trouble",
        json!({"event": {"type": "dashlane_*", "count": {"at_least": 2}}}),
    )
    .await;
    let weak = app
        .submit_one(&event(
            "ana@acme.example",
            "dashlane_user_typed_weak_password",
        ))
        .await;
    assert!(member_ids(&app, group).await.is_empty());
    app.clock.advance(chrono::Duration::hours(1));
    // A type never seen before the group was created.
    let compromised = app
        .submit_one(&event(
            "ana@acme.example",
            "dashlane_user_typed_compromised_password",
        ))
        .await;
    app.submit_one(&event("bob@acme.example", "dashlane_x"))
        .await;
    app.submit_one(&event("bob@acme.example", "lastpass_weak_password"))
        .await;
    app.submit_one(&event("cy@acme.example", "dashlane")).await;
    app.submit_one(&event("cy@acme.example", "dashlanex_weak"))
        .await;
    app.submit_one(&event("cy@acme.example", "x_dashlane_weak"))
        .await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    for outsider in [bob, cy] {
        assert_eq!(why(&app, group, outsider).await["criteria_hold"], false);
    }

    let explained = why(&app, group, ana).await;
    let evidence = &explained["evidence"][0];
    assert_eq!(evidence["kind"], "events");
    assert_eq!(evidence["event_type"], "dashlane_*");
    assert_eq!(evidence["count"], 2);
    assert_eq!(evidence["events"], json!([compromised, weak]));
}

// ---- user attributes ----------------------------------------------------------------------

#[tokio::test]
async fn department_changes_move_people_in_and_out_at_once() {
    let app = TestApp::spawn().await;
    let ana = person(
        &app,
        json!({"email": "ana@acme.example", "department": "Sales"}),
    )
    .await;
    let bob = person(
        &app,
        json!({"email": "bob@acme.example", "department": "security"}),
    )
    .await;
    let cy = user(&app, "cy@acme.example").await;
    let group = smart(
        &app,
        "Clicked, not IT or Security",
        json!({"all": [
            {"event": {"type": PHISHED}},
            {"not": {"user": {"attribute": "department", "in": ["Security", "IT"]}}}
        ]}),
    )
    .await;
    for email in ["ana@acme.example", "bob@acme.example", "cy@acme.example"] {
        app.submit_one(&event(email, PHISHED)).await;
    }
    // No department is "not in" the list.
    assert_eq!(member_ids(&app, group).await, [ana, cy]);

    app.clock.advance(chrono::Duration::minutes(1));
    app.patch(
        &app.admin,
        &format!("/api/users/{bob}"),
        &json!({"department": "Sales"}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, group).await, [ana, bob, cy]);
    app.patch(
        &app.admin,
        &format!("/api/users/{ana}"),
        &json!({"department": "it"}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, group).await, [bob, cy]);
    // Changing something the criteria do not read changes nothing.
    app.patch(
        &app.admin,
        &format!("/api/users/{cy}"),
        &json!({"job_title": "Analyst"}),
    )
    .await
    .expect(200);
    app.patch(
        &app.admin,
        &format!("/api/users/{ana}"),
        &json!({"department": null}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, group).await, [ana, bob, cy]);

    let recent: Vec<(i64, String, String, i64)> = changes(&app, group).await;
    assert_eq!(
        recent[..3],
        [
            change(ana, "joined", "2026-11-01T12:01:00.000Z", 1),
            change(ana, "left", "2026-11-01T12:01:00.000Z", 1),
            change(bob, "joined", "2026-11-01T12:01:00.000Z", 1),
        ]
    );
    assert_eq!(recent.len(), 5);
    let explained = why(&app, group, bob).await;
    assert_eq!(
        explained["evidence"][1],
        json!({"kind": "not", "path": "$.all[1].not"})
    );
}

#[tokio::test]
async fn new_hires_are_members_for_their_first_30_days() {
    let app = TestApp::spawn().await;
    let group = smart(
        &app,
        "New hires",
        json!({"user": {"attribute": "employee_start_date", "within_last": "P30D"}}),
    )
    .await;
    let ana = person(
        &app,
        json!({"email": "ana@acme.example", "employee_start_date": "2026-11-01"}),
    )
    .await;
    let bob = person(
        &app,
        json!({"email": "bob@acme.example", "employee_start_date": "2026-11-05"}),
    )
    .await;
    let cy = person(
        &app,
        json!({"email": "cy@acme.example", "employee_start_date": "2026-09-01"}),
    )
    .await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    assert_eq!(why(&app, group, cy).await["criteria_hold"], false);
    let explained = why(&app, group, ana).await;
    assert_eq!(
        explained["evidence"],
        json!([{"kind": "attribute", "path": "$.user",
                "attribute": "employee_start_date", "value": "2026-11-01"}])
    );

    // bob starts on 2026-11-05 (the day begins at midnight UTC).
    run_at(&app, "2026-11-04T23:59:59.999Z").await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    run_at(&app, "2026-11-05T00:00:00.000Z").await;
    assert_eq!(member_ids(&app, group).await, [ana, bob]);

    run_at(&app, "2026-11-30T23:59:59.999Z").await;
    assert_eq!(member_ids(&app, group).await, [ana, bob]);
    run_at(&app, "2026-12-01T00:00:00.000Z").await;
    assert_eq!(member_ids(&app, group).await, [bob]);
    run_at(&app, "2026-12-05T00:00:00.000Z").await;
    assert!(member_ids(&app, group).await.is_empty());
    assert_eq!(
        changes(&app, group).await,
        [
            change(bob, "left", "2026-12-05T00:00:00.000Z", 1),
            change(ana, "left", "2026-12-01T00:00:00.000Z", 1),
            change(bob, "joined", "2026-11-05T00:00:00.000Z", 1),
            change(ana, "joined", "2026-11-01T12:00:00.000Z", 1),
        ]
    );

    // A start date moved forward brings a person back at once.
    app.patch(
        &app.admin,
        &format!("/api/users/{ana}"),
        &json!({"employee_start_date": "2026-11-20"}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, group).await, [ana]);
}

// ---- other groups, deleted events, archived people ----------------------------------------

#[tokio::test]
async fn membership_of_a_manual_group_moves_people_at_once() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let vips = manual(&app, "VIPs").await;
    let group = smart(
        &app,
        "VIPs who clicked",
        json!({"all": [{"group": {"member_of": vips}}, {"event": {"type": PHISHED}}]}),
    )
    .await;
    let members_path = format!("/api/groups/{vips}/members");
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    assert!(member_ids(&app, group).await.is_empty());

    app.clock.advance(chrono::Duration::minutes(1));
    app.post_json(&app.admin, &members_path, &json!({"user_id": ana}))
        .await
        .expect(201);
    assert_eq!(member_ids(&app, group).await, [ana]);
    let explained = why(&app, group, ana).await;
    assert_eq!(
        explained["evidence"][0],
        json!({"kind": "member", "path": "$.all[0].group", "group": vips})
    );

    app.clock.advance(chrono::Duration::minutes(1));
    app.delete(&app.admin, &format!("{members_path}/{ana}"))
        .await
        .expect(204);
    assert!(member_ids(&app, group).await.is_empty());
    assert_eq!(
        changes(&app, group).await,
        [
            change(ana, "left", "2026-11-01T12:02:00.000Z", 1),
            change(ana, "joined", "2026-11-01T12:01:00.000Z", 1),
        ]
    );

    // In the group first, then the event.
    app.post_json(&app.admin, &members_path, &json!({"user_id": bob}))
        .await
        .expect(201);
    assert!(member_ids(&app, group).await.is_empty());
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, group).await, [bob]);
    // Adding ana back brings her back.
    app.post_json(&app.admin, &members_path, &json!({"user_id": ana}))
        .await
        .expect(201);
    assert_eq!(member_ids(&app, group).await, [ana, bob]);
}

#[tokio::test]
async fn a_deleted_event_stops_counting_at_once() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = smart(
        &app,
        "Clicked twice",
        json!({"event": {"type": PHISHED, "count": {"at_least": 2}, "within": "P90D"}}),
    )
    .await;
    let first = app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.clock.advance(chrono::Duration::hours(1));
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, group).await, [ana]);

    app.clock.advance(chrono::Duration::hours(1));
    app.delete(&app.admin, &format!("/events/{first}"))
        .await
        .expect(204);
    assert!(member_ids(&app, group).await.is_empty());
    assert_eq!(
        changes(&app, group).await[0],
        change(ana, "left", "2026-11-01T14:00:00.000Z", 1)
    );
    assert_eq!(why(&app, group, ana).await["criteria_hold"], false);

    // A third event makes two again.
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    let evidence = &why(&app, group, ana).await["evidence"][0];
    assert_eq!(evidence["count"], 2);
    assert!(
        !evidence["events"]
            .as_array()
            .unwrap()
            .contains(&json!(first))
    );
}

#[tokio::test]
async fn an_archived_person_leaves_smart_groups_and_comes_back_when_restored() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let clicked = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    let (everyone, created) = smart_with(
        &app,
        "Everyone at acme",
        json!({"user": {"attribute": "email", "contains": "@acme.example"}}),
    )
    .await;
    assert_eq!(created["backfill"]["joined"], 2);
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, clicked).await, [ana, bob]);

    app.clock.advance(chrono::Duration::minutes(1));
    let archived = app
        .delete(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(archived["data"]["status"], "archived");
    assert_eq!(member_ids(&app, clicked).await, [bob]);
    assert_eq!(member_ids(&app, everyone).await, [bob]);
    for group in [clicked, everyone] {
        let left = &history(&app, group, Some(ana)).await[0];
        assert_eq!(left["change"], "left");
        assert_eq!(left["at"], "2026-11-01T12:01:00.000Z");
        assert_eq!(left["reason"], json!([{"kind": "archived"}]));
        let explained = why(&app, group, ana).await;
        assert_eq!(explained["member"], false);
        assert_eq!(explained["criteria_hold"], false);
    }
    // A group created now leaves archived people out.
    let (_, later) = smart_with(&app, "Clicked (new)", json!({"event": {"type": PHISHED}})).await;
    assert_eq!(later["backfill"]["joined"], 1);

    app.patch(
        &app.admin,
        &format!("/api/users/{ana}"),
        &json!({"status": "active"}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, clicked).await, [ana, bob]);
    assert_eq!(member_ids(&app, everyone).await, [ana, bob]);
}

#[tokio::test]
async fn an_archived_smart_group_stands_still_until_restored() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let group = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.delete(&app.admin, &format!("/api/groups/{group}"))
        .await
        .expect(200);
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    // Members stay for the record; nobody new joins.
    assert_eq!(member_ids(&app, group).await, [ana]);
    // Criteria of an archived group cannot change.
    app.patch(
        &app.admin,
        &format!("/api/groups/{group}"),
        &json!({"criteria": {"event": {"type": "other"}}}),
    )
    .await
    .expect_error(409, "conflict");

    let restored = app
        .post_json(
            &app.admin,
            &format!("/api/groups/{group}/restore"),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(restored["data"]["status"], "active");
    assert_eq!(restored["backfill"]["joined"], 1);
    assert_eq!(restored["backfill"]["left"], 0);
    assert_eq!(member_ids(&app, group).await, [ana, bob]);
}

// ---- backfill and versions -----------------------------------------------------------------

#[tokio::test]
async fn backfill_counts_existing_history_and_a_stricter_version_lets_people_go() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let cy = user(&app, "cy@acme.example").await;
    for _ in 0..3 {
        app.submit_one(&event("ana@acme.example", PHISHED)).await;
        app.clock.advance(chrono::Duration::hours(1));
    }
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    app.submit_one(&event("cy@acme.example", "phish_reported"))
        .await;
    app.clock.advance(chrono::Duration::hours(1));

    let v1 = json!({"event": {"type": PHISHED}});
    let (group, created) = smart_with(&app, "Clicked", v1.clone()).await;
    let backfill = &created["backfill"];
    assert_eq!(backfill["evaluated"], 3);
    assert_eq!(backfill["joined"], 2);
    assert_eq!(backfill["left"], 0);
    assert!(backfill["took_ms"].is_i64());
    assert_eq!(created["data"]["version"], 1);
    assert_eq!(created["data"]["criteria"], v1);
    assert_eq!(created["data"]["member_count"], 2);
    let rows = members(&app, group).await;
    assert_eq!(
        rows.iter()
            .map(|m| m["user_id"].clone())
            .collect::<Vec<_>>(),
        [json!(ana), json!(bob)]
    );
    for row in &rows {
        assert_eq!(row["version"], 1);
        assert_eq!(row["joined_at"], "2026-11-01T16:00:00.000Z");
    }

    app.clock.advance(chrono::Duration::hours(1));
    let v2 = json!({"event": {"type": PHISHED, "count": {"at_least": 2}}});
    let patched = app
        .patch(
            &app.admin,
            &format!("/api/groups/{group}"),
            &json!({"criteria": v2}),
        )
        .await
        .expect(200);
    assert_eq!(patched["backfill"]["left"], 1);
    assert_eq!(patched["backfill"]["joined"], 0);
    assert_eq!(patched["backfill"]["evaluated"], 3);
    assert_eq!(patched["data"]["version"], 2);
    assert_eq!(patched["data"]["criteria"], v2);
    assert_eq!(patched["data"]["member_count"], 1);
    let rows = members(&app, group).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user_id"], ana);
    // Ana joined under version 1 and still is a member from then.
    assert_eq!(rows[0]["version"], 1);
    assert_eq!(why(&app, group, ana).await["joined_version"], 1);

    let versions = app
        .get(&app.admin, &format!("/api/groups/{group}/versions"))
        .await
        .expect(200);
    assert_eq!(
        versions["data"],
        json!([
            {"version": 1, "criteria": v1, "created_at": "2026-11-01T16:00:00.000Z"},
            {"version": 2, "criteria": v2, "created_at": "2026-11-01T17:00:00.000Z"}
        ])
    );
    let mut all = changes(&app, group).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0], change(bob, "left", "2026-11-01T17:00:00.000Z", 2));
    // The two joins of the backfill, in either order.
    all.remove(0);
    all.sort();
    assert_eq!(
        all,
        [
            change(ana, "joined", "2026-11-01T16:00:00.000Z", 1),
            change(bob, "joined", "2026-11-01T16:00:00.000Z", 1),
        ]
    );
    let bobs = history(&app, group, Some(bob)).await;
    assert_eq!(
        bobs[0]["reason"],
        json!([{"kind": "criteria_no_longer_hold"}])
    );
    assert_eq!(bobs[1]["reason"][0]["count"], 1);
    assert!(
        why(&app, group, cy).await["history"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A looser version brings bob back, under version 3.
    let patched = app
        .patch(
            &app.admin,
            &format!("/api/groups/{group}"),
            &json!({"criteria": {"event": {"type": "phish_*"}}}),
        )
        .await
        .expect(200);
    assert_eq!(patched["backfill"]["joined"], 2);
    assert_eq!(patched["backfill"]["left"], 0);
    let rows = members(&app, group).await;
    let versions: Vec<(i64, i64)> = rows
        .iter()
        .map(|m| {
            (
                m["user_id"].as_i64().unwrap(),
                m["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(ana, 1), (bob, 3), (cy, 3)]);
    // A change of name or description alone evaluates nothing.
    let renamed = app
        .patch(
            &app.admin,
            &format!("/api/groups/{group}"),
            &json!({"name": "Phish activity"}),
        )
        .await
        .expect(200);
    assert!(renamed.get("backfill").is_none(), "{renamed}");
    assert_eq!(renamed["data"]["version"], 3);
}

// ---- why --------------------------------------------------------------------------------

#[tokio::test]
async fn why_names_the_counted_events_and_the_attribute() {
    let app = TestApp::spawn().await;
    let ana = person(
        &app,
        json!({"email": "ana@acme.example", "department": "Sales"}),
    )
    .await;
    let bob = person(
        &app,
        json!({"email": "bob@acme.example", "department": "Sales"}),
    )
    .await;
    let group = smart(
        &app,
        "Sales who clicked twice",
        json!({"all": [
            {"event": {"type": PHISHED, "count": {"at_least": 2}, "within": "P90D"}},
            {"user": {"attribute": "department", "equals": "sales"}}
        ]}),
    )
    .await;
    let first = app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    app.clock.advance(chrono::Duration::hours(1));
    let second = app.submit_one(&event("ana@acme.example", PHISHED)).await;
    // Not counted: another type.
    app.submit_one(&event("ana@acme.example", "phish_reported"))
        .await;

    let explained = why(&app, group, ana).await;
    assert_eq!(explained["group_id"], group);
    assert_eq!(explained["user_id"], ana);
    assert_eq!(explained["member"], true);
    assert_eq!(explained["joined_at"], "2026-11-01T13:00:00.000Z");
    assert_eq!(explained["joined_version"], 1);
    assert_eq!(explained["criteria_hold"], true);
    assert_eq!(
        explained["evidence"],
        json!([
            {"kind": "events", "path": "$.all[0].event", "event_type": PHISHED,
             "count": 2, "events": [second, first]},
            {"kind": "attribute", "path": "$.all[1].user", "attribute": "department",
             "value": "Sales"}
        ])
    );
    let past = explained["history"].as_array().unwrap();
    assert_eq!(past.len(), 1);
    assert_eq!(past[0]["change"], "joined");
    assert_eq!(past[0]["version"], 1);
    // The join recorded the same evidence.
    assert_eq!(past[0]["reason"], explained["evidence"]);

    let outsider = why(&app, group, bob).await;
    assert_eq!(outsider["member"], false);
    assert_eq!(outsider["criteria_hold"], false);
    assert_eq!(outsider["evidence"], json!([]));
    assert!(outsider["joined_at"].is_null());
    assert!(outsider["joined_version"].is_null());
    assert_eq!(outsider["history"], json!([]));

    app.get(
        &app.admin,
        &format!("/api/groups/{group}/members/999999/why"),
    )
    .await
    .expect_error(404, "not_found");
    app.get(&app.admin, &format!("/api/groups/999999/members/{ana}/why"))
        .await
        .expect_error(404, "not_found");
}

// ---- preview ----------------------------------------------------------------------------

/// ana: clicks on 2026-07-01, 2026-09-01 and 2026-10-10; bob: one click on 2026-10-15;
/// cy: clicks on 2026-10-20 and 2026-10-25; dee: two reports (another type).
async fn seed_clicks(app: &TestApp) -> (i64, i64, i64, i64) {
    let ana = user(app, "ana@acme.example").await;
    let bob = user(app, "bob@acme.example").await;
    let cy = user(app, "cy@acme.example").await;
    let dee = user(app, "dee@acme.example").await;
    for (email, event_type, date) in [
        ("ana@acme.example", PHISHED, "2026-07-01"),
        ("ana@acme.example", PHISHED, "2026-09-01"),
        ("ana@acme.example", PHISHED, "2026-10-10"),
        ("bob@acme.example", PHISHED, "2026-10-15"),
        ("cy@acme.example", PHISHED, "2026-10-25"),
        ("cy@acme.example", PHISHED, "2026-10-20"),
        ("dee@acme.example", "phish_reported", "2026-10-30"),
        ("dee@acme.example", "phish_reported", "2026-10-31"),
    ] {
        app.submit_one(&event_at(email, event_type, date)).await;
    }
    (ana, bob, cy, dee)
}

#[tokio::test]
async fn preview_counts_who_matched_on_each_of_the_last_90_days() {
    let app = TestApp::spawn().await;
    let (ana, _bob, cy, _dee) = seed_clicks(&app).await;
    let previewed = app
        .post_json(
            &app.admin,
            "/api/groups/preview",
            &json!({"criteria": {"event": {"type": PHISHED, "count": {"at_least": 2}, "within": "P90D"}}}),
        )
        .await
        .expect(200);
    let data = &previewed["data"];
    assert_eq!(data["matching"], 2);
    assert_eq!(
        data["people"],
        json!([{"id": ana, "email": "ana@acme.example"}, {"id": cy, "email": "cy@acme.example"}])
    );
    assert!(data["took_ms"].is_i64());

    let daily = data["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 90);
    let today = start_time().date_naive();
    for (i, day) in daily.iter().enumerate() {
        let expected = today - chrono::Duration::days(89 - i as i64);
        assert_eq!(day["date"], expected.to_string(), "entry {i}");
    }
    assert_eq!(daily[0]["date"], "2026-08-04");
    assert_eq!(daily[89]["date"], "2026-11-01");
    let count = |date: &str| -> i64 {
        daily
            .iter()
            .find(|d| d["date"] == date)
            .unwrap_or_else(|| panic!("{date} in the series"))["count"]
            .as_i64()
            .unwrap()
    };
    // ana: July 1 and Sept 1 from Sept 1; July 1 leaves the frame on Sept 29 at midnight
    // (90 days after); Sept 1 and Oct 10 from Oct 10. cy: from Oct 25 (the day before,
    // one click only).
    for (date, expected) in [
        ("2026-08-04", 0),
        ("2026-08-31", 0),
        ("2026-09-01", 1),
        ("2026-09-28", 1),
        ("2026-09-29", 0),
        ("2026-10-09", 0),
        ("2026-10-10", 1),
        ("2026-10-24", 1),
        ("2026-10-25", 2),
        ("2026-10-31", 2),
        ("2026-11-01", 2),
    ] {
        assert_eq!(count(date), expected, "on {date}");
    }
    let total: i64 = daily.iter().map(|d| d["count"].as_i64().unwrap()).sum();
    // Sept 1..28 (28 days), Oct 10..24 (15), Oct 25..Nov 1 (8 days × 2).
    assert_eq!(total, 28 + 15 + 8 * 2);
}

#[tokio::test]
async fn preview_saves_nothing_and_refuses_bad_criteria() {
    let app = TestApp::spawn().await;
    let (ana, bob, cy, _dee) = seed_clicks(&app).await;
    let criteria = json!({"event": {"type": PHISHED, "within": "P30D"}});
    let previewed = app
        .post_json(
            &app.admin,
            "/api/groups/preview",
            &json!({ "criteria": criteria }),
        )
        .await
        .expect(200);
    assert_eq!(previewed["data"]["matching"], 3);
    let ids: Vec<i64> = previewed["data"]["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [ana, bob, cy]);

    let groups = app.get(&app.admin, "/api/groups").await.expect(200);
    assert_eq!(groups["meta"]["count"], 0);
    // A group created with the same criteria afterwards matches the same people, and
    // its backfill is the first evaluation: the preview left no trace.
    let (group, created) = smart_with(&app, "Clicked this month", criteria).await;
    assert_eq!(created["backfill"]["joined"], 3);
    assert_eq!(member_ids(&app, group).await, [ana, bob, cy]);
    assert_eq!(history(&app, group, None).await.len(), 3);

    for (body, field) in [
        (
            json!({"criteria": {"event": {"type": PHISHED, "within": "soon"}}}),
            "criteria.event.within",
        ),
        (
            json!({"criteria": {"all": [{"event": {"type": PHISHED}}, {"user": {"attribute": "shoe_size", "equals": "9"}}]}}),
            "criteria.all[1].user.attribute",
        ),
        (json!({"criteria": []}), "criteria"),
    ] {
        let answer = app
            .post_json(&app.admin, "/api/groups/preview", &body)
            .await;
        answer.expect_error(422, "invalid");
        assert_eq!(answer.detail_fields(), [field], "{body}");
    }
    app.post_json(&app.admin, "/api/groups/preview", &json!({}))
        .await
        .expect_error(422, "invalid");
    let groups = app.get(&app.admin, "/api/groups").await.expect(200);
    assert_eq!(groups["meta"]["count"], 1);
}

// ---- more ways facts arrive -----------------------------------------------------------------

#[tokio::test]
async fn a_fixed_range_counts_events_that_occurred_inside_it() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let cy = user(&app, "cy@acme.example").await;
    let dee = user(&app, "dee@acme.example").await;
    let group = smart(
        &app,
        "Clicked in the November campaign",
        json!({"event": {"type": PHISHED, "within": {"from": "2026-11-01", "to": "2026-11-10"}}}),
    )
    .await;
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event_at(
        "bob@acme.example",
        PHISHED,
        "2026-10-31T23:59:59.999Z",
    ))
    .await;
    // The last millisecond of the range (a plain date as `to` is the whole day), and the
    // first one after it; both in the future.
    app.submit_one(&event_at(
        "cy@acme.example",
        PHISHED,
        "2026-11-10T23:59:59.999Z",
    ))
    .await;
    app.submit_one(&event_at(
        "dee@acme.example",
        PHISHED,
        "2026-11-11T00:00:00Z",
    ))
    .await;
    assert_eq!(member_ids(&app, group).await, [ana]);

    run_at(&app, "2026-11-10T23:59:59.998Z").await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    run_at(&app, "2026-11-10T23:59:59.999Z").await;
    assert_eq!(member_ids(&app, group).await, [ana, cy]);
    // A fixed range never lets go.
    run_at(&app, "2027-11-11T00:00:00Z").await;
    assert_eq!(member_ids(&app, group).await, [ana, cy]);
    for outsider in [bob, dee] {
        assert!(history(&app, group, Some(outsider)).await.is_empty());
    }
}

#[tokio::test]
async fn a_bulk_request_counts_each_event_and_a_repeated_external_id_once() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let group = smart(
        &app,
        "Clicked three times",
        json!({"event": {"type": PHISHED, "count": {"at_least": 3}}}),
    )
    .await;
    let with_id = |target: &str, external: &str| {
        let mut body = event(target, PHISHED);
        body["external_id"] = json!(external);
        body
    };
    // The same external_id twice, across requests and within one.
    let first = app.submit_one(&with_id("ana@acme.example", "dl-1")).await;
    assert_eq!(
        app.submit_one(&with_id("ana@acme.example", "dl-1")).await,
        first
    );
    let status = app
        .submit(&json!([
            with_id("ana@acme.example", "dl-2"),
            with_id("ana@acme.example", "dl-2"),
            with_id("ana@acme.example", "dl-1"),
            event("bob@acme.example", PHISHED),
            event("bob@acme.example", PHISHED),
            event("bob@acme.example", PHISHED),
        ]))
        .await;
    assert_eq!(status["details"]["events"].as_array().unwrap().len(), 6);
    // bob's three in one request make him a member; ana has two distinct events.
    assert_eq!(member_ids(&app, group).await, [bob]);
    assert_eq!(why(&app, group, ana).await["criteria_hold"], false);
    app.submit_one(&with_id("ana@acme.example", "dl-3")).await;
    assert_eq!(member_ids(&app, group).await, [ana, bob]);
    assert_eq!(
        why(&app, group, ana).await["evidence"][0]["count"],
        3,
        "each external_id counted once"
    );
}

#[tokio::test]
async fn events_sent_before_the_person_existed_count_once_they_do() {
    let app = TestApp::spawn().await;
    let once = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    let twice = smart(
        &app,
        "Clicked twice",
        json!({"event": {"type": PHISHED, "count": {"at_least": 2}}}),
    )
    .await;
    let early = app.submit_one(&event("zed@acme.example", PHISHED)).await;
    let by_alias = app.submit_one(&event("ACME\\zed", PHISHED)).await;
    assert!(member_ids(&app, once).await.is_empty());

    let zed = user(&app, "zed@acme.example").await;
    assert_eq!(member_ids(&app, once).await, [zed]);
    assert!(member_ids(&app, twice).await.is_empty());
    assert_eq!(
        why(&app, once, zed).await["evidence"][0]["events"],
        json!([early])
    );

    app.patch(
        &app.admin,
        &format!("/api/users/{zed}"),
        &json!({"aliases": ["acme\\zed"]}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, twice).await, [zed]);
    let counted = &why(&app, twice, zed).await["evidence"][0]["events"];
    let mut counted: Vec<String> = counted
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    counted.sort();
    let mut expected = vec![early, by_alias];
    expected.sort();
    assert_eq!(counted, expected);
}

#[tokio::test]
async fn a_stricter_version_of_a_named_group_is_followed_by_the_naming_group() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let clicked = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    let naming = smart(
        &app,
        "Clicked, in training",
        json!({"all": [{"group": {"member_of": clicked}}]}),
    )
    .await;
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    app.submit_one(&event("bob@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, naming).await, [ana, bob]);

    app.clock.advance(chrono::Duration::minutes(1));
    let patched = app
        .patch(
            &app.admin,
            &format!("/api/groups/{clicked}"),
            &json!({"criteria": {"event": {"type": PHISHED, "count": {"at_least": 2}}}}),
        )
        .await
        .expect(200);
    assert_eq!(patched["backfill"]["left"], 1);
    assert_eq!(member_ids(&app, clicked).await, [ana]);
    assert_eq!(member_ids(&app, naming).await, [ana]);
    assert_eq!(
        changes(&app, naming).await[0],
        change(bob, "left", "2026-11-01T12:01:00.000Z", 1)
    );
    // And back when the named group's criteria loosen again.
    app.patch(
        &app.admin,
        &format!("/api/groups/{clicked}"),
        &json!({"criteria": {"event": {"type": PHISHED}}}),
    )
    .await
    .expect(200);
    assert_eq!(member_ids(&app, naming).await, [ana, bob]);
}

#[tokio::test]
async fn an_event_type_named_by_criteria_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let created = app
        .post_json(
            &app.admin,
            "/event_types",
            &json!({"name": "custom_lure_opened"}),
        )
        .await
        .expect(201);
    let type_id = created["data"]["id"].as_i64().unwrap();
    smart(
        &app,
        "Opened a lure",
        json!({"event": {"type": "custom_lure_opened"}}),
    )
    .await;
    let deleted = app
        .delete(&app.admin, &format!("/event_types/{type_id}"))
        .await;
    deleted.expect_error(409, "conflict");
    app.get(&app.admin, &format!("/event_types/{type_id}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn renaming_a_type_named_by_criteria_keeps_membership_equal_to_the_criteria() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = smart(
        &app,
        "Opened a lure",
        json!({"event": {"type": "lure_opened"}}),
    )
    .await;
    let id = app
        .submit_one(&event("ana@acme.example", "lure_opened"))
        .await;
    let type_id = app.event(&id).await["event_type"]["id"].as_i64().unwrap();
    assert_eq!(member_ids(&app, group).await, [ana]);

    let renamed = app
        .put_json(
            &app.admin,
            &format!("/event_types/{type_id}"),
            &json!({"name": "lure_link_opened"}),
        )
        .await;
    // Either the rename is refused, or membership follows the criteria at once.
    if renamed.status.is_success() {
        let explained = why(&app, group, ana).await;
        assert_eq!(
            explained["member"], explained["criteria_hold"],
            "membership and criteria disagree: {explained}"
        );
    } else {
        renamed.expect_error(409, "conflict");
    }
}
