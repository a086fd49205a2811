//! `POST /events`, `GET /events`, `GET/DELETE /events/{id}` and `/statuses` through a real
//! listener.

mod common;

use chrono::{DateTime, Duration};
use common::{TestApp, event};
use serde_json::{Value, json};

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

#[tokio::test]
async fn a_single_event_is_stored_and_listed_by_its_status() {
    let app = TestApp::spawn().await;
    let writer = app.token("dashlane", "events:write").await;

    let answer = app
        .post_events(&writer, &event("ana@acme.example", "phish_click"))
        .await;
    let body = answer.expect(201);
    let keys: Vec<_> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["data"]);
    let data = body["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "data holds only the id: {body}");
    let request_id = data["id"].as_str().unwrap();
    assert!(is_uuid(request_id), "{request_id} is a UUID");

    // A token with events:write alone may read the status of what it sent.
    let status = app
        .get(&writer, &format!("/statuses/{request_id}"))
        .await
        .expect(200)["data"]
        .clone();
    assert_eq!(status["id"], request_id);
    assert_eq!(status["api_key"], "dashlane");
    assert_eq!(status["processed"], "2026-11-01T12:00:00.000Z");
    assert_eq!(status["details"]["failures"], json!([]));
    let events = status["details"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let event_id = events[0].as_str().unwrap();
    assert!(is_uuid(event_id));
    assert_ne!(event_id, request_id);

    let stored = app.event(event_id).await;
    assert_eq!(stored["id"], event_id);
    assert_eq!(stored["event_type"]["name"], "phish_click");
}

#[tokio::test]
async fn an_event_reads_back_in_the_reference_shape() {
    let app = TestApp::spawn().await;
    let id = app
        .submit_one(&json!({
            "target_user": "  Don.Juan@Example.com ",
            "event_type": "dashlane_user_typed_weak_password",
            "external_id": "dl-42",
            "source": "Dashlane",
            "description": "logged in to Dashlane",
            "occurred_date": "2026-11-01",
            "risk_level": 4,
            "risk_decay_mode": 0,
            "metadata": {"device": "laptop-7", "count": 2},
            "sender_specific": "ignored"
        }))
        .await;

    let body = app
        .get(&app.admin, &format!("/events/{id}"))
        .await
        .expect(200);
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "wrapped in data: {body}"
    );
    let event = &body["data"];
    let mut keys: Vec<_> = event.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "account_id",
            "description",
            "event_type",
            "external_id",
            "id",
            "metadata",
            "occurred_date",
            "risk",
            "source",
            "user"
        ]
    );
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["account_id"], json!(app.account.0));
    assert_eq!(
        event["user"],
        json!({"email": "Don.Juan@Example.com", "id": null, "archived": false})
    );
    assert_eq!(event["external_id"], "dl-42");
    assert_eq!(event["source"], "Dashlane");
    assert_eq!(event["description"], "logged in to Dashlane");
    assert_eq!(event["occurred_date"], "2026-11-01T00:00:00.000Z");
    // The default expiry is a month after the day it occurred; at 12:00 on the day it
    // occurred, half a day of 30 has decayed (linear mode).
    assert_eq!(
        event["risk"],
        json!({"level": 4, "decay_mode": 0, "expire_date": "2026-12-01", "factor": 0.983})
    );
    assert_eq!(event["metadata"], json!({"device": "laptop-7", "count": 2}));
    let event_type = event["event_type"].as_object().unwrap();
    assert_eq!(event_type.len(), 3, "{event_type:?}");
    assert!(event_type["id"].is_i64());
    assert_eq!(event_type["name"], "dashlane_user_typed_weak_password");
    assert_eq!(event_type["description"], "A login used a weak password.");
}

#[tokio::test]
async fn optional_fields_read_back_as_null_and_the_date_defaults_to_now() {
    let app = TestApp::spawn().await;
    let id = app.submit_one(&event("bo@acme.example", "test")).await;
    let event = app.event(&id).await;

    let occurred = event["occurred_date"].as_str().unwrap();
    // RFC 3339, UTC with `Z`, and milliseconds.
    assert_eq!(occurred, "2026-11-01T12:00:00.000Z");
    assert!(DateTime::parse_from_rfc3339(occurred).is_ok());
    for key in ["external_id", "source", "description", "metadata"] {
        assert!(event[key].is_null(), "{key} is null: {event}");
    }
    assert_eq!(
        event["risk"],
        json!({"level": null, "decay_mode": null, "expire_date": null, "factor": null})
    );
    assert!(event["event_type"]["description"].is_null());
}

#[tokio::test]
async fn the_risk_factor_follows_the_clock() {
    let app = TestApp::spawn().await;
    let linear = app
        .submit_one(&json!({"target_user":"a@acme.example","event_type":"t",
            "occurred_date":"2026-11-01T12:00:00Z","risk_level":8,"risk_expire_date":"2026-11-11"}))
        .await;
    let constant = app
        .submit_one(&json!({"target_user":"a@acme.example","event_type":"t",
            "occurred_date":"2026-11-01T12:00:00Z","risk_level":8,"risk_decay_mode":1,
            "risk_expire_date":"2026-11-11"}))
        .await;
    assert_eq!(app.event(&linear).await["risk"]["factor"], 1.0);

    app.clock.advance(Duration::days(5));
    // 2026-11-06T12:00Z: 4.5 of 9.5 days left.
    assert_eq!(app.event(&linear).await["risk"]["factor"], 0.474);
    assert_eq!(app.event(&constant).await["risk"]["factor"], 1.0);

    app.clock.advance(Duration::days(5));
    assert_eq!(app.event(&linear).await["risk"]["factor"], 0.0);
    assert_eq!(app.event(&constant).await["risk"]["factor"], 0.0);
}

#[tokio::test]
async fn a_bulk_request_stores_valid_items_and_lists_the_invalid_ones() {
    let app = TestApp::spawn().await;
    let answer = app
        .post_events(
            &app.admin,
            &json!([
                event("a@acme.example", "t"),
                {"target_user": "b@acme.example"},
                event("c@acme.example", "t"),
                {"target_user": "d@acme.example", "event_type": "t", "risk_level": 11},
                "not an object"
            ]),
        )
        .await;
    let request_id = answer.expect(201)["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = app
        .get(&app.admin, &format!("/statuses/{request_id}"))
        .await
        .expect(200)["data"]
        .clone();

    let events = status["details"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{status}");
    let targets: Vec<Value> = {
        let mut targets = Vec::new();
        for id in events {
            targets.push(app.event(id.as_str().unwrap()).await["user"]["email"].clone());
        }
        targets
    };
    assert_eq!(targets, [json!("a@acme.example"), json!("c@acme.example")]);

    let failures = status["details"]["failures"].as_array().unwrap();
    let indexes: Vec<_> = failures.iter().map(|f| f["index"].clone()).collect();
    assert_eq!(indexes, [json!(1), json!(3), json!(4)]);
    let reason = |i: usize| failures[i]["reason"].as_str().unwrap().to_owned();
    assert!(reason(0).contains("event_type"), "{}", reason(0));
    assert!(reason(1).contains("risk_level"), "{}", reason(1));
    assert!(reason(2).contains("object"), "{}", reason(2));

    let listed = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(listed["meta"]["count"], 2);
}

#[tokio::test]
async fn an_empty_array_is_refused() {
    let app = TestApp::spawn().await;
    let answer = app.post_events(&app.admin, &json!([])).await;
    answer.expect_error(422, "invalid");
    let statuses = app.get(&app.admin, "/statuses").await.expect(200);
    assert_eq!(statuses["meta"]["count"], 0, "no request was recorded");
}

#[tokio::test]
async fn a_bulk_request_over_a_thousand_events_is_refused_whole() {
    let app = TestApp::spawn().await;
    let many = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| event(&format!("u{i}@acme.example"), "t"))
                .collect(),
        )
    };

    let exactly = app.post_events(&app.admin, &many(1_000)).await;
    exactly.expect(201);

    let over = app.post_events(&app.admin, &many(1_001)).await;
    let body = over.expect_error(413, "payload_too_large");
    assert!(
        body["message"].as_str().unwrap().contains("1000"),
        "says the limit: {body}"
    );
    let huge = app.post_events(&app.admin, &many(10_000)).await;
    huge.expect_error(413, "payload_too_large");

    let listed = app.get(&app.admin, "/events?per_page=1").await.expect(200);
    assert_eq!(
        listed["meta"]["count"], 1_000,
        "nothing of the refused ones"
    );
}

#[tokio::test]
async fn an_external_id_is_stored_once() {
    let app = TestApp::spawn().await;
    let first = app
        .submit(&json!({"target_user":"a@acme.example","event_type":"t","external_id":"x-1"}))
        .await;
    let again = app
        .submit(
            &json!({"target_user":"a@acme.example","event_type":"t","external_id":"x-1",
            "description":"a retry"}),
        )
        .await;
    let original = &first["details"]["events"][0];
    assert!(original.is_string());
    assert_eq!(again["details"]["events"], json!([original]));
    assert_eq!(again["details"]["failures"], json!([]));
    assert_ne!(first["id"], again["id"], "two requests, two statuses");

    let listed = app
        .get(&app.admin, "/events?external_id=x-1")
        .await
        .expect(200);
    assert_eq!(listed["meta"]["count"], 1);
    assert!(listed["data"][0]["description"].is_null(), "the first wins");
}

#[tokio::test]
async fn an_external_id_twice_in_one_bulk_request_is_stored_once() {
    let app = TestApp::spawn().await;
    let status = app
        .submit(&json!([
            {"target_user":"a@acme.example","event_type":"t","external_id":"dup"},
            {"target_user":"b@acme.example","event_type":"t"},
            {"target_user":"a@acme.example","event_type":"t","external_id":"dup"}
        ]))
        .await;
    let events = status["details"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{status}");
    assert_eq!(events[0], events[2], "both name the one stored event");
    assert_ne!(events[0], events[1]);

    let listed = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(listed["meta"]["count"], 2);
    app.event(events[0].as_str().unwrap()).await;
}

#[tokio::test]
async fn an_external_id_is_unique_per_account_only() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_account("other").await;
    let body = json!({"target_user":"a@acme.example","event_type":"t","external_id":"same"});
    let ours = app.submit(&body).await;
    let theirs = app.post_events(&other, &body).await.expect(201);
    let theirs = app
        .get(
            &other,
            &format!("/statuses/{}", theirs["data"]["id"].as_str().unwrap()),
        )
        .await
        .expect(200);
    assert_ne!(
        ours["details"]["events"][0], theirs["data"]["details"]["events"][0],
        "each account stores its own"
    );
}

#[tokio::test]
async fn a_deleted_event_is_gone() {
    let app = TestApp::spawn().await;
    let writer = app.token("writer", "events:write").await;
    let id = app.submit_one(&event("a@acme.example", "t")).await;

    let deleted = app.delete(&writer, &format!("/events/{id}")).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.text.is_empty(), "no body: {:?}", deleted.text);

    app.get(&app.admin, &format!("/events/{id}"))
        .await
        .expect_error(404, "not_found");
    app.delete(&writer, &format!("/events/{id}"))
        .await
        .expect_error(404, "not_found");
    let listed = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(listed["meta"]["count"], 0);
}

#[tokio::test]
async fn reading_and_deleting_need_their_scopes() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", "events:read").await;
    let writer = app.token("writer", "events:write").await;
    let id = app.submit_one(&event("a@acme.example", "t")).await;

    app.post_events(&reader, &event("a@acme.example", "t"))
        .await
        .expect_error(403, "forbidden");
    app.delete(&reader, &format!("/events/{id}"))
        .await
        .expect_error(403, "forbidden");
    app.get(&writer, "/events")
        .await
        .expect_error(403, "forbidden");
    app.get(&writer, &format!("/events/{id}"))
        .await
        .expect_error(403, "forbidden");
    app.get(&reader, &format!("/events/{id}")).await.expect(200);
}

#[tokio::test]
async fn an_unknown_event_or_status_is_not_found() {
    let app = TestApp::spawn().await;
    let nobody = uuid::Uuid::new_v4();
    app.get(&app.admin, &format!("/events/{nobody}"))
        .await
        .expect_error(404, "not_found");
    app.get(&app.admin, &format!("/statuses/{nobody}"))
        .await
        .expect_error(404, "not_found");
    app.get(&app.admin, "/statuses/not-a-uuid")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn statuses_are_listed_newest_first() {
    let app = TestApp::spawn().await;
    let first = app.submit(&event("a@acme.example", "t")).await;
    let second = app.submit(&event("b@acme.example", "t")).await;

    let listed = app.get(&app.admin, "/statuses").await.expect(200);
    let ids: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ids, [second["id"].clone(), first["id"].clone()]);
    assert_eq!(listed["meta"]["count"], 2);

    let processed = app
        .get(&app.admin, "/statuses?processed=true&per_page=1&page=2")
        .await
        .expect(200);
    assert_eq!(processed["data"][0]["id"], first["id"]);
    assert_eq!(processed["meta"]["current_page"], 2);
    let unprocessed = app
        .get(&app.admin, "/statuses?processed=false")
        .await
        .expect(200);
    assert_eq!(unprocessed["data"], json!([]));
    app.get(&app.admin, "/statuses?processed=maybe")
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_events() {
    let app = TestApp::spawn().await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..24 {
        let request = app
            .request(reqwest::Method::POST, "/events", Some(&app.admin))
            .json(&json!([
                {"target_user": format!("u{i}@acme.example"), "event_type": "t",
                 "external_id": format!("own-{i}")},
                // Every request also sends the one shared external id.
                {"target_user": "shared@acme.example", "event_type": "t",
                 "external_id": "shared"}
            ]));
        requests.spawn(async move {
            let answer = request.send().await.expect("the server answers");
            assert_eq!(answer.status(), 201);
            let body: Value = answer.json().await.expect("JSON");
            (i, body["data"]["id"].as_str().unwrap().to_owned())
        });
    }
    let mut shared = Vec::new();
    for (i, request_id) in requests.join_all().await {
        let status = app
            .get(&app.admin, &format!("/statuses/{request_id}"))
            .await
            .expect(200);
        let events = status["data"]["details"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 2, "{status}");
        let own = app.event(events[0].as_str().unwrap()).await;
        assert_eq!(own["external_id"], format!("own-{i}"));
        assert_eq!(own["user"]["email"], format!("u{i}@acme.example"));
        shared.push(events[1].clone());
    }
    shared.dedup();
    assert_eq!(shared.len(), 1, "one shared event for all: {shared:?}");

    let listed = app.get(&app.admin, "/events?per_page=1").await.expect(200);
    assert_eq!(listed["meta"]["count"], 25);
    let statuses = app
        .get(&app.admin, "/statuses?per_page=1")
        .await
        .expect(200);
    assert_eq!(statuses["meta"]["count"], 24);
}

#[tokio::test]
async fn an_offset_timestamp_is_stored_in_utc() {
    let app = TestApp::spawn().await;
    let id = app
        .submit_one(&json!({"target_user":"a@acme.example","event_type":"t",
            "occurred_date":"2026-10-30T15:52:04.529+02:00"}))
        .await;
    assert_eq!(
        app.event(&id).await["occurred_date"],
        "2026-10-30T13:52:04.529Z"
    );
}

#[tokio::test]
async fn a_bulk_request_of_only_invalid_items_is_recorded() {
    let app = TestApp::spawn().await;
    let status = app.submit(&json!([{"event_type":"t"}, 7])).await;
    assert_eq!(status["details"]["events"], json!([]));
    let indexes: Vec<_> = status["details"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].clone())
        .collect();
    assert_eq!(indexes, [json!(0), json!(1)]);
    let listed = app.get(&app.admin, "/events").await.expect(200);
    assert_eq!(listed["meta"]["count"], 0);
}
