//! Compliance through the API: a framework enabled, people's status and its reason kept
//! current by the changes that move it (enrolments, a completion, an exception, an
//! archived person, a requirement edited) and by time at its instants, each control's
//! history, validation and account isolation.

mod common;

use chrono::{DateTime, Utc};
use common::TestApp;
use serde_json::{Value, json};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

async fn standing(app: &TestApp, user: i64) -> Value {
    let page = app
        .get(
            &app.admin,
            &format!("/api/compliance/people?user_id={user}"),
        )
        .await
        .expect(200);
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{page}");
    rows[0].clone()
}

async fn control(app: &TestApp, id: &str) -> Value {
    let controls = app
        .get(&app.admin, "/api/compliance/controls")
        .await
        .expect(200);
    controls["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}: {controls}"))
        .clone()
}

async fn history(app: &TestApp) -> Vec<String> {
    let h = app
        .get(&app.admin, "/api/compliance/controls/soc2/CC1.4/history")
        .await
        .expect(200);
    h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs the timed work due by the clock (as the training executor does at its instant).
async fn tick(app: &TestApp, now: &str) {
    app.clock.set(at(now));
    app.store.run_due_training().await.unwrap();
}

#[tokio::test]
async fn status_follows_enrolments_completions_exceptions_and_time() {
    let app = TestApp::spawn().await;
    let id = |v: Value| v["id"].as_i64().unwrap();
    let ana = id(app
        .create_user(&json!({"email": "ana@acme.example", "employee_start_date": "2020-01-01"}))
        .await);
    let bo = id(app
        .create_user(&json!({"email": "bo@acme.example", "employee_start_date": "2020-01-01"}))
        .await);
    // A new hire: started today.
    let cy = id(app.create_user(&json!({"email": "cy@acme.example"})).await);

    let enabled = app
        .put_json(&app.admin, "/api/compliance/frameworks/soc2", &json!({}))
        .await
        .expect(200);
    assert_eq!(enabled["data"]["enabled"], true);
    assert_eq!(enabled["data"]["controls"], 2);
    let a = standing(&app, ana).await;
    assert_eq!(a["status"], "non_compliant");
    assert_eq!(
        a["reason"],
        "started on 2020-01-01; nothing that counts assigned or finished yet; due 2020-02-01; \
         2465 days overdue"
    );
    let c = standing(&app, cy).await;
    assert_eq!(c["status"], "at_risk");
    assert_eq!(c["changes_at"], "2026-12-02T00:00:00.000Z");
    let cc14 = control(&app, "CC1.4").await;
    assert_eq!(cc14["status"], "fail");
    assert_eq!(
        cc14["counts"],
        json!({"compliant": 0, "at_risk": 1, "non_compliant": 2, "excepted": 0, "in_scope": 3})
    );
    assert_eq!(history(&app).await, ["fail"]);

    // Everyone is enrolled, due in 30 days: not done yet, so at risk.
    let content = app
        .get(&app.admin, "/api/content?per_page=500")
        .await
        .expect(200);
    let module = content["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "password-management")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Annual", "content": [module], "groups": [0], "relative_duration": "P30D"}),
    )
    .await
    .expect(201);
    let b = standing(&app, bo).await;
    assert_eq!(b["status"], "at_risk");
    assert_eq!(
        b["reason"],
        "Cyber Hygiene: Password Management not finished yet; due 2026-12-01, in 30 days"
    );
    assert_eq!(control(&app, "CC1.4").await["status"], "at_risk");

    // A completion counts in its own request.
    app.clock.advance(chrono::Duration::hours(2));
    let lms = app.token("lms", "events:write").await;
    app.post_xapi(
        &lms,
        &json!({
            "actor": {"mbox": "mailto:ana@acme.example"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"id": "https://lms.example.com/activities/password-management"},
            "timestamp": "2026-11-01T13:00:00Z",
        }),
    )
    .await
    .expect(200);
    let a = standing(&app, ana).await;
    assert_eq!(a["status"], "compliant");
    assert_eq!(
        a["reason"],
        "last completed Cyber Hygiene: Password Management on 2026-11-01; due again 2027-11-01"
    );
    assert_eq!(a["last_completed"], "2026-11-01T13:00:00.000Z");
    assert_eq!(a["changes_at"], "2027-10-02T13:00:00.000Z");

    // An exception, until a date.
    let requirement = cc14["requirement_id"].as_i64().unwrap();
    let granted = app
        .post_json(
            &app.admin,
            "/api/compliance/exceptions",
            &json!({"requirement_id": requirement, "user_id": bo,
                    "reason": "on parental leave", "expires_at": "2026-11-20"}),
        )
        .await
        .expect(201);
    assert_eq!(granted["data"]["expires_at"], "2026-11-20T00:00:00.000Z");
    let b = standing(&app, bo).await;
    assert_eq!(b["status"], "excepted");
    assert_eq!(
        b["reason"],
        "excepted by token:admin until 2026-11-20: on parental leave"
    );

    // An archived person leaves scope: everyone left is compliant or excepted.
    app.delete(&app.admin, &format!("/api/users/{cy}"))
        .await
        .expect(200);
    let cc14 = control(&app, "CC1.4").await;
    assert_eq!(
        cc14["counts"],
        json!({"compliant": 1, "at_risk": 0, "non_compliant": 0, "excepted": 1, "in_scope": 2})
    );
    assert_eq!(cc14["status"], "pass");
    assert_eq!(history(&app).await, ["fail", "at_risk", "pass"]);

    // Time: the exception ends at its instant, the enrolment falls due at its own.
    tick(&app, "2026-11-20T00:00:00Z").await;
    assert_eq!(standing(&app, bo).await["status"], "at_risk");
    tick(&app, "2026-12-01T12:00:00Z").await;
    let b = standing(&app, bo).await;
    assert_eq!(b["status"], "non_compliant");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .ends_with("due 2026-12-01; less than a day overdue"),
        "{b}"
    );
    assert_eq!(control(&app, "CC2.2").await["status"], "fail");

    // A requirement edited mid-period: a week's tolerance puts bo back at risk.
    let edited = app
        .patch(
            &app.admin,
            &format!("/api/compliance/requirements/{requirement}"),
            &json!({"tolerance_days": 7}),
        )
        .await
        .expect(200);
    assert_eq!(edited["data"]["status"], "at_risk");
    assert_eq!(standing(&app, bo).await["status"], "at_risk");

    // Exactly twelve months after ana's completion it stops counting.
    tick(&app, "2027-10-02T13:00:00Z").await;
    let a = standing(&app, ana).await;
    assert_eq!(a["status"], "at_risk");
    assert_eq!(
        a["reason"],
        "last completed Cyber Hygiene: Password Management on 2026-11-01; \
         due again 2027-11-01, in 30 days"
    );
    tick(&app, "2027-11-01T12:59:59Z").await;
    assert_eq!(standing(&app, ana).await["status"], "at_risk");
    tick(&app, "2027-11-01T13:00:00Z").await;
    assert_eq!(standing(&app, ana).await["status"], "at_risk");
    tick(&app, "2027-11-08T13:00:00Z").await;
    assert_eq!(standing(&app, ana).await["status"], "non_compliant");
    let failing = app
        .get(&app.admin, "/api/compliance/non-compliant")
        .await
        .expect(200);
    assert_eq!(failing["meta"]["count"], 2);
    assert_eq!(
        history(&app).await,
        [
            "fail", "at_risk", "pass", "at_risk", "fail", "at_risk", "fail"
        ]
    );

    // A full evaluation finds nothing to change.
    let evaluated = app
        .post_json(&app.admin, "/api/compliance/evaluate", &json!({}))
        .await
        .expect(200);
    assert_eq!(evaluated["data"]["changed"], 0);
}

#[tokio::test]
async fn settings_are_validated_and_accounts_kept_apart() {
    let app = TestApp::spawn().await;
    app.put_json(
        &app.admin,
        "/api/compliance/frameworks/iso27001",
        &json!({}),
    )
    .await
    .expect(200);
    app.put_json(&app.admin, "/api/compliance/frameworks/sox", &json!({}))
        .await
        .expect_error(404, "not_found");
    let requirements = app
        .get(&app.admin, "/api/compliance/requirements")
        .await
        .expect(200);
    let awareness = requirements["data"][0].clone();
    assert_eq!(awareness["kind"], "awareness");
    assert_eq!(
        awareness["recurrence"],
        json!({"kind": "rolling", "months": 12, "month": null, "day": null})
    );
    let id = awareness["id"].as_i64().unwrap();
    let path = format!("/api/compliance/requirements/{id}");
    let bad = app
        .patch(
            &app.admin,
            &path,
            &json!({"recurrence": {"kind": "fixed", "month": 2, "day": 29}, "title": " "}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["recurrence.day", "title"]);
    // Every field given is checked, even one the kind does not read.
    let bad = app
        .patch(
            &app.admin,
            &path,
            &json!({"scope": {"kind": "all", "group_id": 0}}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["scope.group_id"]);
    let bad = app
        .patch(
            &app.admin,
            &path,
            &json!({"recurrence": {"kind": "once", "months": 0}}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["recurrence.months"]);
    let bad = app
        .patch(&app.admin, &path, &json!({"content": [999_999]}))
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["content[0]"]);
    let fixed = app
        .patch(
            &app.admin,
            &path,
            &json!({"recurrence": {"kind": "fixed", "month": 1, "day": 31}}),
        )
        .await
        .expect(200);
    assert_eq!(fixed["data"]["recurrence"]["kind"], "fixed");

    // Another account sees none of it.
    let (_, other) = app.other_account("other").await;
    app.get(&other, &path).await.expect_error(404, "not_found");
    let controls = app
        .get(&other, "/api/compliance/controls")
        .await
        .expect(200);
    assert_eq!(controls["data"], json!([]));
    app.post_json(
        &other,
        "/api/compliance/exceptions",
        &json!({"requirement_id": id, "user_id": 1, "reason": "x"}),
    )
    .await
    .expect(422);
    // Disabled: its controls are no longer listed.
    app.delete(&app.admin, "/api/compliance/frameworks/iso27001")
        .await
        .expect(200);
    let controls = app
        .get(&app.admin, "/api/compliance/controls")
        .await
        .expect(200);
    assert_eq!(controls["data"], json!([]));
}

/// A full pass over thousands of people (evaluated on several threads, the stored
/// standings read beside the inputs, the enrolments in two halves) agrees with what each
/// change stored: nothing to change; and it writes again a row whose digest does not
/// match (as rows written before digests), putting right its reason.
#[tokio::test]
async fn a_full_pass_over_thousands_agrees_with_every_change() {
    use coachloop_core::user::UserChanges;
    let app = TestApp::spawn().await;
    let rows: Vec<UserChanges> = (0..2_500)
        .map(|i| {
            let start = if i % 3 == 0 {
                "2026-10-20"
            } else {
                "2020-01-01"
            };
            UserChanges::from_json(&json!({
                "email": format!("p{i}@acme.example"),
                "employee_start_date": start,
            }))
            .unwrap()
        })
        .collect();
    app.store.upsert_users(app.account, &rows).await.unwrap();
    app.put_json(&app.admin, "/api/compliance/frameworks/soc2", &json!({}))
        .await
        .expect(200);
    let cc14 = control(&app, "CC1.4").await;
    assert_eq!(
        cc14["counts"],
        json!({"compliant": 0, "at_risk": 834, "non_compliant": 1666, "excepted": 0,
               "in_scope": 2500})
    );
    let evaluated = app
        .post_json(&app.admin, "/api/compliance/evaluate", &json!({}))
        .await
        .expect(200);
    assert_eq!(evaluated["data"]["changed"], 0);

    // Everyone enrolled in two pieces of content (5,000 enrolments, read by a full pass
    // in two halves at once): each standing was updated as they were made.
    let content = app
        .get(&app.admin, "/api/content?per_page=2")
        .await
        .expect(200);
    let modules: Vec<i64> = content["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Annual", "content": modules, "groups": [0], "relative_duration": "P30D"}),
    )
    .await
    .expect(201);
    assert_eq!(control(&app, "CC1.4").await["counts"]["at_risk"], 2500);
    let evaluated = app
        .post_json(&app.admin, "/api/compliance/evaluate", &json!({}))
        .await
        .expect(200);
    assert_eq!(evaluated["data"]["changed"], 0);

    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(app.database_url().expose())
        .await
        .unwrap();
    let forge = "UPDATE compliance_people SET reason = 'forged'{} \
        WHERE user_id = (SELECT MAX(id) FROM users)";
    // The reason alone: the digest still says what was written, so nothing is read
    // again (a full pass compares digests, not 400,000 reasons).
    sqlx::query(&forge.replace("{}", ""))
        .execute(&mut conn)
        .await
        .unwrap();
    let evaluated = app
        .post_json(&app.admin, "/api/compliance/evaluate", &json!({}))
        .await
        .expect(200);
    assert_eq!(evaluated["data"]["changed"], 0);
    sqlx::query(&forge.replace("{}", ", digest = NULL"))
        .execute(&mut conn)
        .await
        .unwrap();
    let evaluated = app
        .post_json(&app.admin, "/api/compliance/evaluate", &json!({}))
        .await
        .expect(200);
    assert_eq!(evaluated["data"]["changed"], 1);
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM compliance_people WHERE user_id = (SELECT MAX(id) FROM users)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(reason.contains("due"), "{reason}");
}
