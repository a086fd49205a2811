//! Risk scores through the API: the formula at an instant, decay, the account mean, the
//! daily history, scopes and account isolation.

mod common;

use coachloop_core::risk::score_from_sum;
use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn scores_follow_the_formula_decay_and_history() {
    let app = TestApp::spawn().await;
    let ana = app.create_user(&json!({"email": "ana@acme.example"})).await["id"]
        .as_i64()
        .unwrap();
    let bo = app.create_user(&json!({"email": "bo@acme.example"})).await["id"]
        .as_i64()
        .unwrap();
    // Whole until it expires: one level-10 event scores 39.347.
    app.submit_one(
        &json!({"target_user": "ana@acme.example", "event_type": "t",
        "risk_level": 10, "risk_decay_mode": 1, "risk_expire_date": "2026-12-31"}),
    )
    .await;
    // Linear decay over 10 days from 2026-11-01T00:00Z.
    app.submit_one(&json!({"target_user": "bo@acme.example", "event_type": "t",
        "occurred_date": "2026-11-01", "risk_level": 10, "risk_decay_mode": 0,
        "risk_expire_date": "2026-11-11"}))
        .await;

    let score = |body: serde_json::Value| body["data"]["current_risk_score"].as_f64().unwrap();
    let ana_now = score(
        app.get(&app.admin, &format!("/api/users/{ana}/risk"))
            .await
            .expect(200),
    );
    assert_eq!(ana_now, 39.347);
    // Noon on day one: 9.5 of 10 still counts.
    let bo_now = score(
        app.get(&app.admin, &format!("/api/users/{bo}/risk"))
            .await
            .expect(200),
    );
    assert_eq!(bo_now, score_from_sum(9.5));
    let account = score(app.get(&app.admin, "/api/account/risk").await.expect(200));
    assert_eq!(account, ((39.347 + bo_now) / 2.0 * 1000.0).round() / 1000.0);

    app.store.record_daily_risk().await.unwrap();
    let history = app
        .get(&app.admin, &format!("/api/users/{ana}/risk"))
        .await
        .expect(200);
    assert_eq!(
        history["data"]["risk_score_history"],
        json!([{"risk_score": 39.347, "date": "2026-11-01"}])
    );

    // Halfway to expiry half counts; at expiry nothing does.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-06T00:00:00Z")
            .unwrap()
            .to_utc(),
    );
    let bo_half = score(
        app.get(&app.admin, &format!("/api/users/{bo}/risk"))
            .await
            .expect(200),
    );
    assert_eq!(bo_half, score_from_sum(5.0));
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-11T00:00:00Z")
            .unwrap()
            .to_utc(),
    );
    let bo_gone = score(
        app.get(&app.admin, &format!("/api/users/{bo}/risk"))
            .await
            .expect(200),
    );
    assert_eq!(bo_gone, 0.0);
    app.store.record_daily_risk().await.unwrap();
    let history = app.get(&app.admin, "/api/account/risk").await.expect(200);
    let days: Vec<&str> = history["data"]["risk_score_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2026-11-11", "2026-11-01"]);
}

#[tokio::test]
async fn scopes_and_accounts_are_respected() {
    let app = TestApp::spawn().await;
    let ana = app.create_user(&json!({"email": "ana@acme.example"})).await["id"]
        .as_i64()
        .unwrap();
    let users_only = app.token("users-only", "user:read").await;
    app.get(&users_only, &format!("/api/users/{ana}/risk"))
        .await
        .expect(200);
    app.get(&users_only, "/api/account/risk")
        .await
        .expect_error(403, "forbidden");
    let (_, other_admin) = app.other_account("other").await;
    app.get(&other_admin, &format!("/api/users/{ana}/risk"))
        .await
        .expect_error(404, "not_found");
    let other = app.get(&other_admin, "/api/account/risk").await.expect(200);
    assert_eq!(other["data"]["current_risk_score"], 0.0);
}
