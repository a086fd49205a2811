//! `GET /events`: filters, order and the paging `meta` block.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

/// Four events, each named by its `external_id` (`e1` … `e4`).
async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    app.submit(&json!([
        {"external_id":"e1","target_user":"a@acme.example","event_type":"phish","source":"Dashlane",
         "occurred_date":"2026-10-30T08:00:00Z","risk_level":5},
        {"external_id":"e2","target_user":"a@acme.example","event_type":"weak","source":"SOAR",
         "occurred_date":"2026-10-31T09:00:00Z","risk_level":-2},
        {"external_id":"e3","target_user":"b@acme.example","event_type":"phish","source":"Dashlane",
         "occurred_date":"2026-10-30T23:59:59.999Z","risk_level":5},
        {"external_id":"e4","target_user":"c@acme.example","event_type":"alpha"}
    ]))
    .await;
    app
}

/// The `external_id`s of the events `GET /events?{query}` answers, in order.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let body = app
        .get(&app.admin, &format!("/events?{query}"))
        .await
        .expect(200);
    let ids: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["external_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        body["meta"]["count"],
        json!(ids.len()),
        "count of `{query}` (one page)"
    );
    ids
}

#[tokio::test]
async fn events_are_listed_newest_first_by_default() {
    let app = seeded().await;
    assert_eq!(listed(&app, "").await, ["e4", "e2", "e3", "e1"]);
}

#[tokio::test]
async fn each_filter_narrows_the_list() {
    let app = seeded().await;
    assert_eq!(listed(&app, "event_type=phish").await, ["e3", "e1"]);
    assert_eq!(
        listed(&app, "target_user=%20A@ACME.example").await,
        ["e2", "e1"]
    );
    assert_eq!(listed(&app, "external_id=e2").await, ["e2"]);
    assert_eq!(listed(&app, "source=Dashlane").await, ["e3", "e1"]);
    assert_eq!(listed(&app, "occurred_date=2026-10-30").await, ["e3", "e1"]);
    assert_eq!(listed(&app, "occurred_date=2026-10-31").await, ["e2"]);
    assert_eq!(listed(&app, "occurred_date=2026-11-01").await, ["e4"]);
    assert_eq!(listed(&app, "risk_level=5").await, ["e3", "e1"]);
    assert_eq!(listed(&app, "risk_level=-2").await, ["e2"]);
    assert_eq!(
        listed(&app, "event_type=phish&target_user=b@acme.example").await,
        ["e3"]
    );
    assert!(listed(&app, "event_type=nothing").await.is_empty());
    assert!(listed(&app, "occurred_date=2026-10-29").await.is_empty());
}

#[tokio::test]
async fn the_order_can_be_chosen() {
    let app = seeded().await;
    assert_eq!(
        listed(&app, "order_direction=asc").await,
        ["e1", "e3", "e2", "e4"]
    );
    assert_eq!(
        listed(&app, "order_by=occurred_date&order_direction=desc").await,
        ["e4", "e2", "e3", "e1"]
    );
    assert_eq!(
        listed(&app, "order_by=id&order_direction=asc").await,
        ["e1", "e2", "e3", "e4"]
    );
    assert_eq!(listed(&app, "order_by=id").await, ["e4", "e3", "e2", "e1"]);
    assert_eq!(
        listed(&app, "order_by=event_type&order_direction=asc").await,
        ["e4", "e1", "e3", "e2"]
    );
}

#[tokio::test]
async fn bad_filters_are_refused() {
    let app = seeded().await;
    for query in [
        "occurred_date=30/10/2026",
        "occurred_date=2026-10-30T08:00:00Z",
        "order_by=user",
        "order_direction=up",
        "risk_level=high",
        "page=0",
        "page=abc",
        "per_page=0",
        "per_page=-1",
        "per_page=abc",
    ] {
        let answer = app.get(&app.admin, &format!("/events?{query}")).await;
        assert_eq!(answer.status, 400, "`{query}` answered {}", answer.text);
        answer.expect_error(400, "bad_request");
    }
}

async fn meta(app: &TestApp, query: &str) -> (usize, Value) {
    let body = app
        .get(&app.admin, &format!("/events?{query}"))
        .await
        .expect(200);
    (body["data"].as_array().unwrap().len(), body["meta"].clone())
}

#[tokio::test]
async fn pages_come_with_a_meta_block() {
    let app = TestApp::spawn().await;
    let seven: Vec<Value> = (0..7)
        .map(|i| event(&format!("u{i}@acme.example"), "t"))
        .collect();
    app.submit(&Value::Array(seven)).await;

    let (rows, first) = meta(&app, "per_page=3").await;
    assert_eq!(rows, 3);
    assert_eq!(
        first,
        json!({"count":7,"limit_value":3,"total_pages":3,"current_page":1,"next_page":2,
            "prev_page":null,"is_first_page":true,"is_last_page":false,"is_out_of_range":false})
    );
    let (rows, last) = meta(&app, "per_page=3&page=3").await;
    assert_eq!(rows, 1);
    assert_eq!(
        last,
        json!({"count":7,"limit_value":3,"total_pages":3,"current_page":3,"next_page":null,
            "prev_page":2,"is_first_page":false,"is_last_page":true,"is_out_of_range":false})
    );
    let (rows, beyond) = meta(&app, "per_page=3&page=4").await;
    assert_eq!(rows, 0);
    assert_eq!(beyond["is_out_of_range"], true);
    assert_eq!(beyond["current_page"], 4);

    let (rows, default) = meta(&app, "").await;
    assert_eq!(rows, 7);
    assert_eq!(default["limit_value"], 50);
    assert_eq!(default["total_pages"], 1);
    assert_eq!(default["is_last_page"], true);

    let (_, clamped) = meta(&app, "per_page=501").await;
    assert_eq!(clamped["limit_value"], 500);
}

#[tokio::test]
async fn pages_do_not_overlap() {
    let app = TestApp::spawn().await;
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"target_user":"a@acme.example","event_type":"t","external_id":format!("x{i}")}))
        .collect();
    app.submit(&Value::Array(five)).await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body = app
            .get(
                &app.admin,
                &format!("/events?per_page=2&page={page}&order_by=id"),
            )
            .await
            .expect(200);
        for e in body["data"].as_array().unwrap() {
            seen.push(e["external_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ["x4", "x3", "x2", "x1", "x0"]);
}

#[tokio::test]
async fn an_empty_list_has_a_sensible_meta_block() {
    let app = TestApp::spawn().await;
    let (rows, meta) = meta(&app, "").await;
    assert_eq!(rows, 0);
    assert_eq!(meta["count"], 0);
    assert_eq!(meta["current_page"], 1);
    assert_eq!(meta["next_page"], Value::Null);
    assert_eq!(meta["is_out_of_range"], false);
}

#[tokio::test]
async fn a_page_far_beyond_the_end_is_out_of_range() {
    let app = seeded().await;
    let (rows, meta) = meta(&app, &format!("page={}", u32::MAX)).await;
    assert_eq!(rows, 0);
    assert_eq!(meta["is_out_of_range"], true);
    assert_eq!(meta["next_page"], Value::Null);
    assert_eq!(meta["current_page"], u32::MAX);
    app.get(
        &app.admin,
        &format!("/events?page={}", u64::from(u32::MAX) + 1),
    )
    .await
    .expect_error(400, "bad_request");
}
