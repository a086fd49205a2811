//! `/api/groups` as an API: create, list, read, rename, archive and restore; members of
//! manual groups; criteria validation with the path of the bad node; scopes; and the
//! isolation of accounts.

mod common;

use common::{TestApp, event};
use reqwest::Method;
use serde_json::{Value, json};

const PHISHED: &str = "phish_clicked";

/// `POST /api/groups` with the admin token.
async fn create(app: &TestApp, body: &Value) -> common::TestResponse {
    app.post_json(&app.admin, "/api/groups", body).await
}

/// Creates a manual group and returns its id.
async fn manual(app: &TestApp, name: &str) -> i64 {
    let body = create(app, &json!({"name": name})).await.expect(201);
    assert_eq!(body["data"]["group_type"], "console_group");
    body["data"]["id"].as_i64().unwrap()
}

/// Creates a smart group and returns its id.
async fn smart(app: &TestApp, name: &str, criteria: Value) -> i64 {
    let body = create(app, &json!({"name": name, "criteria": criteria}))
        .await
        .expect(201);
    assert_eq!(body["data"]["group_type"], "smart_group");
    body["data"]["id"].as_i64().unwrap()
}

async fn user(app: &TestApp, email: &str) -> i64 {
    app.create_user(&json!({ "email": email })).await["id"]
        .as_i64()
        .unwrap()
}

async fn member_ids_as(app: &TestApp, token: &str, group: i64) -> Vec<i64> {
    app.get(token, &format!("/api/groups/{group}/members"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_i64().unwrap())
        .collect()
}

async fn member_ids(app: &TestApp, group: i64) -> Vec<i64> {
    member_ids_as(app, &app.admin, group).await
}

/// The names of the groups a list answers, in order.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let body = app
        .get(&app.admin, &format!("/api/groups{query}"))
        .await
        .expect(200);
    let names: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(body["meta"]["count"], names.len(), "meta of {body}");
    names
}

/// Submits an event with `token` (of any account) and returns the stored event's id.
async fn submit_as(app: &TestApp, token: &str, body: &Value) -> String {
    let answer = app.post_events(token, body).await.expect(201);
    let request = answer["data"]["id"].as_str().unwrap();
    let status = app
        .get(token, &format!("/statuses/{request}"))
        .await
        .expect(200);
    status["data"]["details"]["events"][0]
        .as_str()
        .unwrap_or_else(|| panic!("an event stored: {status}"))
        .to_owned()
}

// ---- CRUD -----------------------------------------------------------------------------

#[tokio::test]
async fn a_manual_group_is_created_read_renamed_archived_and_restored() {
    let app = TestApp::spawn().await;
    let created = create(
        &app,
        &json!({"name": "  Finance team ", "description": "Everyone who approves payments"}),
    )
    .await
    .expect(201);
    assert!(
        created.get("backfill").is_none(),
        "no backfill for a manual group: {created}"
    );
    let group = &created["data"];
    let id = group["id"].as_i64().unwrap();
    assert_eq!(group["name"], "Finance team");
    assert_eq!(group["description"], "Everyone who approves payments");
    assert_eq!(group["group_type"], "console_group");
    assert_eq!(group["status"], "active");
    assert_eq!(group["member_count"], 0);
    assert_eq!(group["version"], 0);
    assert!(group["criteria"].is_null());
    assert!(group["archived_at"].is_null());
    assert!(group["provisioning_guid"].is_null());
    assert_eq!(group["created_at"], "2026-11-01T12:00:00.000Z");
    assert_eq!(group["updated_at"], "2026-11-01T12:00:00.000Z");

    let read = app
        .get(&app.admin, &format!("/api/groups/{id}"))
        .await
        .expect(200);
    assert_eq!(&read["data"], group);
    assert_eq!(listed(&app, "").await, ["Finance team"]);

    app.clock.advance(chrono::Duration::minutes(5));
    let renamed = app
        .patch(
            &app.admin,
            &format!("/api/groups/{id}"),
            &json!({"name": "Payments"}),
        )
        .await
        .expect(200);
    assert!(renamed.get("backfill").is_none(), "{renamed}");
    assert_eq!(renamed["data"]["name"], "Payments");
    assert_eq!(
        renamed["data"]["description"],
        "Everyone who approves payments"
    );
    assert_eq!(renamed["data"]["updated_at"], "2026-11-01T12:05:00.000Z");
    assert_eq!(renamed["data"]["created_at"], "2026-11-01T12:00:00.000Z");
    let cleared = app
        .patch(
            &app.admin,
            &format!("/api/groups/{id}"),
            &json!({"description": null}),
        )
        .await
        .expect(200);
    assert!(cleared["data"]["description"].is_null());
    assert_eq!(cleared["data"]["name"], "Payments");

    app.clock.advance(chrono::Duration::minutes(5));
    let archived = app
        .delete(&app.admin, &format!("/api/groups/{id}"))
        .await
        .expect(200);
    assert_eq!(archived["data"]["status"], "archived");
    assert_eq!(archived["data"]["archived_at"], "2026-11-01T12:10:00.000Z");
    // Still readable, and listed under `archived` only.
    app.get(&app.admin, &format!("/api/groups/{id}"))
        .await
        .expect(200);
    assert!(listed(&app, "?status=active").await.is_empty());
    assert_eq!(listed(&app, "?status=archived").await, ["Payments"]);
    assert_eq!(listed(&app, "").await, ["Payments"]);

    let restored = app
        .post_json(&app.admin, &format!("/api/groups/{id}/restore"), &json!({}))
        .await
        .expect(200);
    assert_eq!(restored["data"]["status"], "active");
    assert!(restored["data"]["archived_at"].is_null());
    assert!(restored.get("backfill").is_none(), "{restored}");
    assert_eq!(listed(&app, "?status=active").await, ["Payments"]);

    app.get(&app.admin, "/api/groups/999999")
        .await
        .expect_error(404, "not_found");
    app.patch(&app.admin, "/api/groups/999999", &json!({"name": "x"}))
        .await
        .expect_error(404, "not_found");
    app.delete(&app.admin, "/api/groups/999999")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn lists_filter_by_status_and_type_and_refuse_bad_filters() {
    let app = TestApp::spawn().await;
    manual(&app, "Manual A").await;
    let gone = manual(&app, "Manual B").await;
    smart(&app, "Smart C", json!({"event": {"type": PHISHED}})).await;
    app.delete(&app.admin, &format!("/api/groups/{gone}"))
        .await
        .expect(200);

    assert_eq!(listed(&app, "").await, ["Manual A", "Manual B", "Smart C"]);
    assert_eq!(
        listed(&app, "?group_type=console_group").await,
        ["Manual A", "Manual B"]
    );
    assert_eq!(listed(&app, "?group_type=smart_group").await, ["Smart C"]);
    assert!(
        listed(&app, "?group_type=adi_managed_group")
            .await
            .is_empty()
    );
    assert_eq!(
        listed(&app, "?status=active&group_type=console_group").await,
        ["Manual A"]
    );
    assert_eq!(listed(&app, "?status=archived").await, ["Manual B"]);
    let second_page = app
        .get(&app.admin, "/api/groups?per_page=2&page=2")
        .await
        .expect(200);
    assert_eq!(second_page["meta"]["count"], 3);
    assert_eq!(second_page["data"].as_array().unwrap().len(), 1);
    assert_eq!(second_page["data"][0]["name"], "Smart C");

    for query in [
        "?status=deleted",
        "?group_type=smart",
        "?group_type=manual",
        "?page=0",
        "?per_page=abc",
    ] {
        let answer = app.get(&app.admin, &format!("/api/groups{query}")).await;
        assert_eq!(answer.status, 400, "{query} answered {}", answer.text);
        answer.expect_error(400, "bad_request");
    }
}

#[tokio::test]
async fn an_active_name_is_taken_and_an_archived_name_is_free() {
    let app = TestApp::spawn().await;
    let first = manual(&app, "Sales").await;
    let taken = create(&app, &json!({"name": "Sales"})).await;
    taken.expect_error(409, "conflict");
    assert_eq!(taken.detail_fields(), ["name"]);
    // Names are trimmed before they are compared.
    create(&app, &json!({"name": "  Sales\t"}))
        .await
        .expect_error(409, "conflict");
    // A smart group cannot take it either, and an edit cannot.
    create(
        &app,
        &json!({"name": "Sales", "criteria": {"event": {"type": PHISHED}}}),
    )
    .await
    .expect_error(409, "conflict");
    let other = manual(&app, "Marketing").await;
    let renamed = app
        .patch(
            &app.admin,
            &format!("/api/groups/{other}"),
            &json!({"name": "Sales"}),
        )
        .await;
    renamed.expect_error(409, "conflict");
    assert_eq!(renamed.detail_fields(), ["name"]);
    // Renaming a group to its own name is no conflict.
    app.patch(
        &app.admin,
        &format!("/api/groups/{first}"),
        &json!({"name": "Sales"}),
    )
    .await
    .expect(200);

    app.delete(&app.admin, &format!("/api/groups/{first}"))
        .await
        .expect(200);
    let second = manual(&app, "Sales").await;
    assert_ne!(first, second);
    // The archived one cannot come back while the new one holds the name.
    let restore = app
        .post_json(
            &app.admin,
            &format!("/api/groups/{first}/restore"),
            &json!({}),
        )
        .await;
    restore.expect_error(409, "conflict");
    assert_eq!(restore.detail_fields(), ["name"]);
    let still = app
        .get(&app.admin, &format!("/api/groups/{first}"))
        .await
        .expect(200);
    assert_eq!(still["data"]["status"], "archived");
    // Renamed while archived, it can.
    app.patch(
        &app.admin,
        &format!("/api/groups/{first}"),
        &json!({"name": "Sales (old)"}),
    )
    .await
    .expect(200);
    app.post_json(
        &app.admin,
        &format!("/api/groups/{first}/restore"),
        &json!({}),
    )
    .await
    .expect(200);
    // Listed by id.
    assert_eq!(
        listed(&app, "?status=active").await,
        ["Sales (old)", "Marketing", "Sales"]
    );
}

#[tokio::test]
async fn create_and_update_refuse_bad_bodies() {
    let app = TestApp::spawn().await;
    let criteria = json!({"event": {"type": PHISHED}});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "A", "colour": "red"}), "colour"),
        (json!({"description": "no name"}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"name": "A", "description": 3}), "description"),
        (
            json!({"name": "A", "group_type": "smart_group"}),
            "criteria",
        ),
        (
            json!({"name": "A", "group_type": "smart_group", "criteria": null}),
            "criteria",
        ),
        (
            json!({"name": "A", "group_type": "adi_managed_group"}),
            "group_type",
        ),
        (
            json!({"name": "A", "group_type": "adi_managed_group", "criteria": criteria}),
            "group_type",
        ),
        (
            json!({"name": "A", "group_type": "console_group", "criteria": criteria}),
            "group_type",
        ),
        (json!({"name": "A", "group_type": "team"}), "group_type"),
        (json!(["A"]), ""),
    ];
    for (body, field) in cases {
        let answer = create(&app, &body).await;
        assert_eq!(answer.status, 422, "{body} answered {}", answer.text);
        answer.expect_error(422, "invalid");
        assert_eq!(answer.detail_fields(), [field], "{body}");
    }
    // What agrees is fine.
    let typed = create(
        &app,
        &json!({"name": "Typed", "group_type": "smart_group", "criteria": criteria}),
    )
    .await
    .expect(201);
    assert_eq!(typed["data"]["group_type"], "smart_group");
    let plain = manual(&app, "Plain").await;
    create(
        &app,
        &json!({"name": "Typed manual", "group_type": "console_group"}),
    )
    .await
    .expect(201);

    for (body, field) in [
        (json!({"group_type": "smart_group"}), "group_type"),
        (json!({"name": ""}), "name"),
        (json!({"criteria": criteria}), "criteria"),
    ] {
        let answer = app
            .patch(&app.admin, &format!("/api/groups/{plain}"), &body)
            .await;
        assert_eq!(answer.status, 422, "{body} answered {}", answer.text);
        answer.expect_error(422, "invalid");
        assert_eq!(answer.detail_fields(), [field], "{body}");
    }
    let read = app
        .get(&app.admin, &format!("/api/groups/{plain}"))
        .await
        .expect(200);
    assert_eq!(read["data"]["group_type"], "console_group");
    assert!(read["data"]["criteria"].is_null());
    assert_eq!(listed(&app, "").await, ["Typed", "Plain", "Typed manual"]);
}

// ---- members of manual groups -----------------------------------------------------------

#[tokio::test]
async fn people_are_added_to_and_removed_from_a_manual_group() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let bob = user(&app, "bob@acme.example").await;
    let group = manual(&app, "VIPs").await;
    let path = format!("/api/groups/{group}/members");

    let added = app
        .post_json(&app.admin, &path, &json!({"user_id": ana}))
        .await;
    added.expect(201);
    let again = app
        .post_json(&app.admin, &path, &json!({"user_id": ana}))
        .await;
    assert_eq!(again.status, 204, "{}", again.text);
    assert!(again.text.is_empty());
    app.clock.advance(chrono::Duration::minutes(1));
    app.post_json(&app.admin, &path, &json!({"user_id": bob}))
        .await
        .expect(201);

    let members = app.get(&app.admin, &path).await.expect(200);
    assert_eq!(members["meta"]["count"], 2);
    let rows = members["data"].as_array().unwrap();
    assert_eq!(rows[0]["user_id"], ana);
    assert_eq!(rows[0]["email"], "ana@acme.example");
    assert_eq!(rows[0]["version"], 0);
    assert_eq!(rows[0]["joined_at"], "2026-11-01T12:00:00.000Z");
    assert_eq!(rows[1]["user_id"], bob);
    assert_eq!(rows[1]["joined_at"], "2026-11-01T12:01:00.000Z");
    let read = app
        .get(&app.admin, &format!("/api/groups/{group}"))
        .await
        .expect(200);
    assert_eq!(read["data"]["member_count"], 2);

    app.clock.advance(chrono::Duration::minutes(1));
    app.delete(&app.admin, &format!("{path}/{ana}"))
        .await
        .expect(204);
    // Removing someone who is not a member changes nothing and is fine.
    app.delete(&app.admin, &format!("{path}/{ana}"))
        .await
        .expect(204);
    assert_eq!(member_ids(&app, group).await, [bob]);

    // Unknown people, and bad bodies.
    // The path names the group; a person the body names who does not exist is a bad field.
    app.post_json(&app.admin, &path, &json!({"user_id": 999_999}))
        .await
        .expect_error(422, "invalid");
    app.delete(&app.admin, &format!("{path}/999999"))
        .await
        .expect_error(404, "not_found");
    app.post_json(&app.admin, &path, &json!({}))
        .await
        .expect_error(422, "invalid");
    app.post_json(&app.admin, &path, &json!({"user_id": "ana"}))
        .await
        .expect_error(422, "invalid");
    app.post_json(
        &app.admin,
        "/api/groups/999999/members",
        &json!({"user_id": ana}),
    )
    .await
    .expect_error(404, "not_found");

    // History: newest first, by hand (version 0), with what happened.
    let history = app
        .get(&app.admin, &format!("/api/groups/{group}/history"))
        .await
        .expect(200);
    assert_eq!(history["meta"]["count"], 3);
    let changes = history["data"].as_array().unwrap();
    let summary: Vec<(i64, &str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["user_id"].as_i64().unwrap(),
                c["change"].as_str().unwrap(),
                c["at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (ana, "left", "2026-11-01T12:02:00.000Z"),
            (bob, "joined", "2026-11-01T12:01:00.000Z"),
            (ana, "joined", "2026-11-01T12:00:00.000Z"),
        ]
    );
    for change in changes {
        assert_eq!(change["version"], 0);
        assert_eq!(change["group_id"], group);
    }
    assert_eq!(changes[0]["reason"], json!([{"kind": "removed_by_admin"}]));
    assert_eq!(changes[1]["reason"], json!([{"kind": "added_by_admin"}]));
    assert_eq!(changes[2]["reason"], json!([{"kind": "added_by_admin"}]));

    let anas = app
        .get(
            &app.admin,
            &format!("/api/groups/{group}/history?user_id={ana}"),
        )
        .await
        .expect(200);
    assert_eq!(anas["meta"]["count"], 2);
    assert!(
        anas["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["user_id"] == ana)
    );

    // "Why" of a manual group: membership and history, no criteria.
    let why = app
        .get(&app.admin, &format!("{path}/{bob}/why"))
        .await
        .expect(200);
    assert_eq!(why["data"]["member"], true);
    assert_eq!(why["data"]["joined_at"], "2026-11-01T12:01:00.000Z");
    assert_eq!(why["data"]["joined_version"], 0);
    assert!(why["data"]["criteria_hold"].is_null());
    assert_eq!(why["data"]["evidence"], json!([]));
    assert_eq!(why["data"]["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn smart_and_archived_groups_take_no_members_by_hand() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    let added = app
        .post_json(
            &app.admin,
            &format!("/api/groups/{group}/members"),
            &json!({"user_id": ana}),
        )
        .await;
    added.expect_error(409, "conflict");
    assert_eq!(added.detail_fields(), ["group_type"]);
    // A member by criteria cannot be taken out by hand either.
    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, group).await, [ana]);
    app.delete(&app.admin, &format!("/api/groups/{group}/members/{ana}"))
        .await
        .expect_error(409, "conflict");
    assert_eq!(member_ids(&app, group).await, [ana]);

    let archived = manual(&app, "Old team").await;
    app.delete(&app.admin, &format!("/api/groups/{archived}"))
        .await
        .expect(200);
    app.post_json(
        &app.admin,
        &format!("/api/groups/{archived}/members"),
        &json!({"user_id": ana}),
    )
    .await
    .expect_error(409, "conflict");
    assert!(member_ids(&app, archived).await.is_empty());
}

// ---- criteria validation --------------------------------------------------------------

/// Bad criteria, each with the one field the 422 must name.
fn bad_criteria() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"all": [{"event": {"type": "x"}}, {"event": {"type": "y", "count": {"at_least": -1}}}]}),
            "criteria.all[1].event.count.at_least",
        ),
        (
            json!({"all": [{"event": {"type": "x", "count": {"at_most": 1.5}}}]}),
            "criteria.all[0].event.count.at_most",
        ),
        (
            json!({"event": {"type": "x", "count": {"at_least": 1, "at_most": 3}}}),
            "criteria.event.count",
        ),
        (
            json!({"event": {"type": "x", "count": {"exactly": 1}}}),
            "criteria.event.count.exactly",
        ),
        (json!({"any": []}), "criteria.any"),
        (json!({"all": {"event": {"type": "x"}}}), "criteria.all"),
        (json!({"nope": 1}), "criteria.nope"),
        (json!("phish_clicked"), "criteria"),
        (
            json!({"event": {"type": "x"}, "user": {"attribute": "department", "equals": "IT"}}),
            "criteria",
        ),
        (json!({"event": {}}), "criteria.event.type"),
        (json!({"event": {"type": "  "}}), "criteria.event.type"),
        (json!({"event": {"type": "a*b"}}), "criteria.event.type"),
        (json!({"event": {"type": "*"}}), "criteria.event.type"),
        (
            json!({"event": {"type": "x", "colour": "red"}}),
            "criteria.event.colour",
        ),
        (
            json!({"event": {"type": "x", "within": "3 months"}}),
            "criteria.event.within",
        ),
        (
            json!({"event": {"type": "x", "within": 30}}),
            "criteria.event.within",
        ),
        (
            json!({"event": {"type": "x", "within": {"from": "2026-10-10", "to": "2026-10-01"}}}),
            "criteria.event.within",
        ),
        (
            json!({"event": {"type": "x", "within": {"from": "2026-10-10"}}}),
            "criteria.event.within.to",
        ),
        (
            json!({"event": {"type": "x", "within": {"from": "last week", "to": "2026-10-01"}}}),
            "criteria.event.within.from",
        ),
        (
            json!({"event": {"type": "x", "description": {"regex": "("}}}),
            "criteria.event.description.regex",
        ),
        (
            json!({"event": {"type": "x", "description": {"contains": "a", "equals": "b"}}}),
            "criteria.event.description",
        ),
        (
            json!({"not": {"user": {"attribute": "shoe_size", "equals": "9"}}}),
            "criteria.not.user.attribute",
        ),
        (
            json!({"user": {"attribute": "department", "within_last": "P30D"}}),
            "criteria.user.within_last",
        ),
        (
            json!({"user": {"attribute": "employee_start_date", "before": "01/02/2026"}}),
            "criteria.user.before",
        ),
        (
            json!({"user": {"attribute": "department", "in": []}}),
            "criteria.user.in",
        ),
        (
            json!({"user": {"attribute": "department", "in": ["IT", 3]}}),
            "criteria.user.in[1]",
        ),
        (
            json!({"user": {"attribute": "department", "equals": "IT", "contains": "T"}}),
            "criteria.user",
        ),
        (
            json!({"group": {"member_of": 0}}),
            "criteria.group.member_of",
        ),
        (
            json!({"any": [{"event": {"type": "x"}}, {"not": {"group": {"member_of": "VIPs"}}}]}),
            "criteria.any[1].not.group.member_of",
        ),
    ]
}

#[tokio::test]
async fn bad_criteria_are_refused_naming_the_exact_field() {
    let app = TestApp::spawn().await;
    let good = smart(&app, "Good", json!({"event": {"type": PHISHED}})).await;
    for (criteria, field) in bad_criteria() {
        let answer = create(&app, &json!({"name": "Bad", "criteria": criteria})).await;
        assert_eq!(answer.status, 422, "{criteria} answered {}", answer.text);
        answer.expect_error(422, "invalid");
        assert_eq!(answer.detail_fields(), [field], "create with {criteria}");

        let patched = app
            .patch(
                &app.admin,
                &format!("/api/groups/{good}"),
                &json!({ "criteria": criteria }),
            )
            .await;
        patched.expect_error(422, "invalid");
        assert_eq!(patched.detail_fields(), [field], "patch with {criteria}");

        let previewed = app
            .post_json(
                &app.admin,
                "/api/groups/preview",
                &json!({ "criteria": criteria }),
            )
            .await;
        previewed.expect_error(422, "invalid");
        assert_eq!(previewed.detail_fields(), [field], "preview of {criteria}");
    }
    // Nothing was created or changed.
    assert_eq!(listed(&app, "").await, ["Good"]);
    let versions = app
        .get(&app.admin, &format!("/api/groups/{good}/versions"))
        .await
        .expect(200);
    assert_eq!(versions["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn criteria_may_name_only_other_active_groups_of_the_account() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_account("globex").await;
    let theirs = app
        .post_json(&other, "/api/groups", &json!({"name": "Theirs"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let archived = manual(&app, "Archived").await;
    app.delete(&app.admin, &format!("/api/groups/{archived}"))
        .await
        .expect(200);
    for named in [999_999, theirs, archived] {
        let answer = create(
            &app,
            &json!({"name": "Naming", "criteria": {"all": [
                {"event": {"type": PHISHED}},
                {"group": {"member_of": named}}
            ]}}),
        )
        .await;
        assert_eq!(answer.status, 422, "naming {named}: {}", answer.text);
        answer.expect_error(422, "invalid");
        assert_eq!(answer.detail_fields(), ["criteria"]);
    }

    let group = smart(&app, "Self", json!({"event": {"type": PHISHED}})).await;
    let itself = app
        .patch(
            &app.admin,
            &format!("/api/groups/{group}"),
            &json!({"criteria": {"not": {"group": {"member_of": group}}}}),
        )
        .await;
    itself.expect_error(422, "invalid");
    assert_eq!(itself.detail_fields(), ["criteria"]);
    let read = app
        .get(&app.admin, &format!("/api/groups/{group}"))
        .await
        .expect(200);
    assert_eq!(read["data"]["version"], 1);
    assert_eq!(
        read["data"]["criteria"],
        json!({"event": {"type": PHISHED}})
    );
    assert_eq!(listed(&app, "?status=active").await, ["Self"]);
}

#[tokio::test]
async fn a_cycle_of_smart_groups_is_refused() {
    let app = TestApp::spawn().await;
    let a = smart(&app, "A", json!({"event": {"type": PHISHED}})).await;
    let b = smart(&app, "B", json!({"group": {"member_of": a}})).await;
    let cycle = app
        .patch(
            &app.admin,
            &format!("/api/groups/{a}"),
            &json!({"criteria": {"any": [
                {"event": {"type": PHISHED}},
                {"group": {"member_of": b}}
            ]}}),
        )
        .await;
    cycle.expect_error(422, "invalid");
    assert_eq!(cycle.detail_fields(), ["criteria"]);

    // Through a third group too.
    let c = smart(
        &app,
        "C",
        json!({"all": [{"group": {"member_of": b}}, {"event": {"type": "other"}}]}),
    )
    .await;
    let longer = app
        .patch(
            &app.admin,
            &format!("/api/groups/{a}"),
            &json!({"criteria": {"not": {"group": {"member_of": c}}}}),
        )
        .await;
    longer.expect_error(422, "invalid");
    assert_eq!(longer.detail_fields(), ["criteria"]);

    let versions = app
        .get(&app.admin, &format!("/api/groups/{a}/versions"))
        .await
        .expect(200);
    assert_eq!(versions["data"].as_array().unwrap().len(), 1);
    // Naming without a cycle is fine: C may name A directly as well.
    app.patch(
        &app.admin,
        &format!("/api/groups/{c}"),
        &json!({"criteria": {"all": [{"group": {"member_of": b}}, {"group": {"member_of": a}}]}}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn a_group_named_by_a_smart_group_cannot_be_archived() {
    let app = TestApp::spawn().await;
    let vips = manual(&app, "VIPs").await;
    let base = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    let naming = smart(
        &app,
        "VIPs who clicked",
        json!({"all": [
            {"group": {"member_of": base}},
            {"not": {"not": {"group": {"member_of": vips}}}}
        ]}),
    )
    .await;
    for named in [vips, base] {
        let answer = app
            .delete(&app.admin, &format!("/api/groups/{named}"))
            .await;
        answer.expect_error(409, "conflict");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains(&naming.to_string()),
            "the message names the smart group: {}",
            answer.text
        );
        let read = app
            .get(&app.admin, &format!("/api/groups/{named}"))
            .await
            .expect(200);
        assert_eq!(read["data"]["status"], "active");
    }
    // Once the naming group no longer names it, it can go.
    app.patch(
        &app.admin,
        &format!("/api/groups/{naming}"),
        &json!({"criteria": {"group": {"member_of": base}}}),
    )
    .await
    .expect(200);
    app.delete(&app.admin, &format!("/api/groups/{vips}"))
        .await
        .expect(200);
    // And once the naming group is archived, what it names can go too.
    app.delete(&app.admin, &format!("/api/groups/{naming}"))
        .await
        .expect(200);
    app.delete(&app.admin, &format!("/api/groups/{base}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_smart_group_cannot_be_restored_naming_an_archived_group() {
    let app = TestApp::spawn().await;
    let vips = manual(&app, "VIPs").await;
    let naming = smart(
        &app,
        "VIPs who clicked",
        json!({"all": [{"group": {"member_of": vips}}, {"event": {"type": PHISHED}}]}),
    )
    .await;
    app.delete(&app.admin, &format!("/api/groups/{naming}"))
        .await
        .expect(200);
    app.delete(&app.admin, &format!("/api/groups/{vips}"))
        .await
        .expect(200);
    // Creating or editing criteria that name an archived group is refused with 422; a
    // restore must not bring such criteria back into force.
    let restored = app
        .post_json(
            &app.admin,
            &format!("/api/groups/{naming}/restore"),
            &json!({}),
        )
        .await;
    assert!(
        restored.status == 409 || restored.status == 422,
        "restore answered {}: {}",
        restored.status,
        restored.text
    );
    let read = app
        .get(&app.admin, &format!("/api/groups/{naming}"))
        .await
        .expect(200);
    assert_eq!(read["data"]["status"], "archived");
}

// ---- scopes ---------------------------------------------------------------------------

#[tokio::test]
async fn group_read_reads_and_previews_but_only_admin_writes() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = manual(&app, "VIPs").await;
    let smart_group = smart(&app, "Clicked", json!({"event": {"type": PHISHED}})).await;
    app.post_json(
        &app.admin,
        &format!("/api/groups/{group}/members"),
        &json!({"user_id": ana}),
    )
    .await
    .expect(201);
    let reader = app.token("reader", "group:read").await;
    let writer = app.token("sender", "events:write").await;
    let users = app.token("people", "user:read,events:read").await;

    let reads = [
        "/api/groups".to_owned(),
        format!("/api/groups/{group}"),
        format!("/api/groups/{group}/members"),
        format!("/api/groups/{group}/members/{ana}/why"),
        format!("/api/groups/{group}/history"),
        format!("/api/groups/{smart_group}/versions"),
    ];
    for path in &reads {
        app.get(&reader, path).await.expect(200);
        for token in [&writer, &users] {
            let answer = app.get(token, path).await;
            assert_eq!(answer.status, 403, "{path}: {}", answer.text);
            answer.expect_error(403, "forbidden");
        }
        let anonymous = app.send(app.request(Method::GET, path, None)).await;
        anonymous.expect_error(401, "unauthorized");
        app.get("not-a-token", path)
            .await
            .expect_error(401, "unauthorized");
    }
    assert_eq!(member_ids_as(&app, &reader, group).await, [ana]);

    let preview = json!({"criteria": {"event": {"type": PHISHED}}});
    let previewed = app
        .post_json(&reader, "/api/groups/preview", &preview)
        .await
        .expect(200);
    assert_eq!(previewed["data"]["matching"], 0);
    app.post_json(&writer, "/api/groups/preview", &preview)
        .await
        .expect_error(403, "forbidden");
    app.send(
        app.request(Method::POST, "/api/groups/preview", None)
            .json(&preview),
    )
    .await
    .expect_error(401, "unauthorized");

    // Every write needs `admin`.
    let writes: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/api/groups".into(), json!({"name": "New"})),
        (
            Method::PATCH,
            format!("/api/groups/{group}"),
            json!({"name": "Renamed"}),
        ),
        (Method::DELETE, format!("/api/groups/{group}"), json!({})),
        (
            Method::POST,
            format!("/api/groups/{group}/restore"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/groups/{group}/members"),
            json!({"user_id": ana}),
        ),
        (
            Method::DELETE,
            format!("/api/groups/{group}/members/{ana}"),
            json!({}),
        ),
    ];
    for (method, path, body) in &writes {
        for token in [&reader, &writer] {
            let answer = app
                .send(
                    app.request(method.clone(), path, Some(token.as_str()))
                        .json(body),
                )
                .await;
            assert_eq!(answer.status, 403, "{method} {path}: {}", answer.text);
            answer.expect_error(403, "forbidden");
        }
        let anonymous = app
            .send(app.request(method.clone(), path, None).json(body))
            .await;
        anonymous.expect_error(401, "unauthorized");
    }
    // Even a bad body gets 403 first.
    app.post_json(&reader, "/api/groups", &json!({"colour": 1}))
        .await
        .expect_error(403, "forbidden");
    // Nothing changed.
    assert_eq!(listed(&app, "").await, ["VIPs", "Clicked"]);
    assert_eq!(member_ids(&app, group).await, [ana]);
}

// ---- isolation of accounts --------------------------------------------------------------

#[tokio::test]
async fn accounts_with_the_same_group_never_share_members() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_account("globex").await;
    let criteria = json!({"event": {"type": PHISHED, "within": "P30D"}});
    let ours = smart(&app, "Clicked", criteria.clone()).await;
    let theirs_body = app
        .post_json(
            &other,
            "/api/groups",
            &json!({"name": "Clicked", "criteria": criteria}),
        )
        .await
        .expect(201);
    let theirs = theirs_body["data"]["id"].as_i64().unwrap();
    assert_ne!(ours, theirs);
    assert_eq!(theirs_body["backfill"]["evaluated"], 0);

    // The same email is a different person in each account.
    let our_ana = user(&app, "ana@acme.example").await;
    let their_ana = app
        .post_json(&other, "/api/users", &json!({"email": "ana@acme.example"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let their_bob = app
        .post_json(&other, "/api/users", &json!({"email": "bob@acme.example"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(our_ana, their_ana);

    app.submit_one(&event("ana@acme.example", PHISHED)).await;
    assert_eq!(member_ids(&app, ours).await, [our_ana]);
    assert!(member_ids_as(&app, &other, theirs).await.is_empty());

    submit_as(&app, &other, &event("bob@acme.example", PHISHED)).await;
    assert_eq!(member_ids_as(&app, &other, theirs).await, [their_bob]);
    assert_eq!(member_ids(&app, ours).await, [our_ana]);

    // Previews and backfills see only their own account.
    let preview = app
        .post_json(
            &other,
            "/api/groups/preview",
            &json!({"criteria": {"event": {"type": PHISHED}}}),
        )
        .await
        .expect(200);
    assert_eq!(preview["data"]["matching"], 1);
    assert_eq!(preview["data"]["people"][0]["id"], their_bob);
    let copy = app
        .post_json(
            &other,
            "/api/groups",
            &json!({"name": "Clicked again", "criteria": {"event": {"type": PHISHED}}}),
        )
        .await
        .expect(201);
    assert_eq!(copy["backfill"]["evaluated"], 2);
    assert_eq!(copy["backfill"]["joined"], 1);

    // Time passing affects each account's own people only.
    app.clock.advance(chrono::Duration::days(31));
    app.store.run_due_groups().await.unwrap();
    assert!(member_ids(&app, ours).await.is_empty());
    assert!(member_ids_as(&app, &other, theirs).await.is_empty());
    let our_history = app
        .get(&app.admin, &format!("/api/groups/{ours}/history"))
        .await
        .expect(200);
    assert!(
        our_history["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["user_id"] == our_ana),
        "{our_history}"
    );
    assert_eq!(listed(&app, "").await, ["Clicked"]);
}

#[tokio::test]
async fn another_accounts_group_is_not_found_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_account("globex").await;
    let ana = user(&app, "ana@acme.example").await;
    let theirs_smart = app
        .post_json(
            &other,
            "/api/groups",
            &json!({"name": "Theirs", "criteria": {"event": {"type": PHISHED}}}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let theirs_manual = app
        .post_json(&other, "/api/groups", &json!({"name": "Their VIPs"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let their_bob = app
        .post_json(
            &other,
            "/api/users",
            &json!({"email": "bob@globex.example"}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    app.post_json(
        &other,
        &format!("/api/groups/{theirs_manual}/members"),
        &json!({"user_id": their_bob}),
    )
    .await
    .expect(201);
    let archived = app
        .post_json(&other, "/api/groups", &json!({"name": "Their old"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    app.delete(&other, &format!("/api/groups/{archived}"))
        .await
        .expect(200);

    for group in [theirs_smart, theirs_manual] {
        let requests: Vec<(Method, String, Value)> = vec![
            (Method::GET, format!("/api/groups/{group}"), Value::Null),
            (
                Method::GET,
                format!("/api/groups/{group}/members"),
                Value::Null,
            ),
            (
                Method::GET,
                format!("/api/groups/{group}/members/{ana}/why"),
                Value::Null,
            ),
            (
                Method::GET,
                format!("/api/groups/{group}/members/{their_bob}/why"),
                Value::Null,
            ),
            (
                Method::GET,
                format!("/api/groups/{group}/history"),
                Value::Null,
            ),
            (
                Method::GET,
                format!("/api/groups/{group}/history?user_id={their_bob}"),
                Value::Null,
            ),
            (
                Method::GET,
                format!("/api/groups/{group}/versions"),
                Value::Null,
            ),
            (
                Method::PATCH,
                format!("/api/groups/{group}"),
                json!({"name": "Stolen"}),
            ),
            (
                Method::PATCH,
                format!("/api/groups/{group}"),
                json!({"criteria": {"event": {"type": "x"}}}),
            ),
            (
                Method::POST,
                format!("/api/groups/{group}/members"),
                json!({"user_id": ana}),
            ),
            (
                Method::DELETE,
                format!("/api/groups/{group}/members/{their_bob}"),
                Value::Null,
            ),
            (Method::DELETE, format!("/api/groups/{group}"), Value::Null),
        ];
        for (method, path, body) in requests {
            let mut request = app.request(method.clone(), &path, Some(&app.admin));
            if !body.is_null() {
                request = request.json(&body);
            }
            let answer = app.send(request).await;
            assert_eq!(answer.status, 404, "{method} {path}: {}", answer.text);
            answer.expect_error(404, "not_found");
        }
    }
    app.post_json(
        &app.admin,
        &format!("/api/groups/{archived}/restore"),
        &json!({}),
    )
    .await
    .expect_error(404, "not_found");

    // Their people are not ours either: not addable, no "why" in our groups.
    let ours = manual(&app, "Our VIPs").await;
    app.post_json(
        &app.admin,
        &format!("/api/groups/{ours}/members"),
        &json!({"user_id": their_bob}),
    )
    .await
    .expect_error(422, "invalid");
    app.get(
        &app.admin,
        &format!("/api/groups/{ours}/members/{their_bob}/why"),
    )
    .await
    .expect_error(404, "not_found");

    // Nothing of theirs changed.
    let read = app
        .get(&other, &format!("/api/groups/{theirs_manual}"))
        .await
        .expect(200);
    assert_eq!(read["data"]["name"], "Their VIPs");
    assert_eq!(read["data"]["status"], "active");
    assert_eq!(read["data"]["member_count"], 1);
    let smart_read = app
        .get(&other, &format!("/api/groups/{theirs_smart}"))
        .await
        .expect(200);
    assert_eq!(smart_read["data"]["version"], 1);
    let archived_read = app
        .get(&other, &format!("/api/groups/{archived}"))
        .await
        .expect(200);
    assert_eq!(archived_read["data"]["status"], "archived");
    assert_eq!(listed(&app, "").await, ["Our VIPs"]);
}
