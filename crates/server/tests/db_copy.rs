//! `coachloop db copy` seen from the API: an installation filled through the API
//! (people with aliases, matched and unmatched events, a smart group with joins, leaves
//! and two criteria versions, a manual group, campaigns and enrolments, a webhook with
//! its jobs and failed deliveries, risk scores, an admin, a learner link's signing key)
//! is copied to a SQLite file and from there to a fresh database of the engine under
//! test; a server on each copy answers every read as the original did, with the same
//! tokens, and creates new rows without colliding with copied ids.

mod common;

use chrono::Duration;
use coachloop_core::clock::{Clock, ManualClock};
use coachloop_core::destination::PrivateDestinations;
use coachloop_server::{ServerConfig, serve};
use coachloop_store::testing::TestDatabase;
use coachloop_store::{DatabaseUrl, Store, copy};
use common::{TestApp, event, start_time};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::oneshot;

const TYPED: &str = "typed_compromised_password";

/// A server on an existing database, its clock where the original's is.
struct Copy {
    base: String,
    client: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

impl Copy {
    async fn start(url: &DatabaseUrl, app: &TestApp) -> Self {
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap(),
        ));
        let store = Store::open(url, clock).await.expect("open the copy");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(store, config(), listener, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            _shutdown: shutdown,
        }
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        allow_private_destinations: PrivateDestinations::ranges(["127.0.0.0/8"]).unwrap(),
        ..ServerConfig::default()
    }
}

/// GET `path` on `base` with `token`: the status and the body. Tokens' `last_used_at`,
/// `last_event_at` and `last_error*` are left out: requests move them, written a moment
/// later (the sender's activity up to a second later), so a read and a copy taken just
/// after it can be a request apart. The copy of those columns is checked by the row
/// checksums of `copy::copy`.
async fn read(client: &reqwest::Client, base: &str, token: &str, path: &str) -> (u16, Value) {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let mut body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if path == "/api/tokens" {
        for token in body["data"].as_array_mut().expect("a list of tokens") {
            let token = token.as_object_mut().unwrap();
            for moving in [
                "last_used_at",
                "last_event_at",
                "last_error",
                "last_error_at",
            ] {
                token.remove(moving);
            }
        }
    }
    (status, body)
}

fn id(value: &Value) -> i64 {
    value["data"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {value}"))
}

#[tokio::test]
async fn a_server_on_the_copy_answers_every_read_as_the_original_did() {
    let app = TestApp::spawn_with(config()).await;
    let admin = &app.admin;
    let mut people = Vec::new();
    for (email, department, aliases) in [
        ("ana@acme.example", "Finance", json!(["ana-laptop"])),
        ("bob@acme.example", "Sales", json!([])),
        ("cy@acme.example", "Finance", json!(["cy"])),
    ] {
        let user = app
            .create_user(
                &json!({"email": email, "first_name": "Zoë", "department": department,
                                 "employee_start_date": "2024-02-01", "aliases": aliases}),
            )
            .await;
        people.push(user["id"].as_i64().unwrap());
    }
    let hook = app
        .post_json(
            admin,
            "/api/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook",
                    "events": ["enrollment.created", "group.member_joined"]}),
        )
        .await
        .expect(201);
    let hook = id(&hook);
    app.post_json(
        admin,
        "/api/admins",
        &json!({"email": "ada@acme.example", "first_name": "Ada", "last_name": "Admin"}),
    )
    .await
    .expect(201);

    let smart = id(&app
        .post_json(
            admin,
            "/api/groups",
            &json!({"name": "typed", "criteria": {"event": {"type": TYPED, "within": "PT1H"}}}),
        )
        .await
        .expect(201));
    let manual = id(&app
        .post_json(admin, "/api/groups", &json!({"name": "Finance"}))
        .await
        .expect(201));
    app.post_json(
        admin,
        &format!("/api/groups/{manual}/members"),
        &json!({"user_id": people[0]}),
    )
    .await
    .expect(201);
    let content = app
        .get(admin, "/api/content?per_page=500")
        .await
        .expect(200);
    let module = content["data"][0]["id"].as_i64().unwrap();
    for (name, group) in [("Coaching", smart), ("Finance", manual)] {
        app.post_json(
            admin,
            "/api/campaigns",
            &json!({"name": name, "content": [module], "groups": [group],
                    "relative_duration": "P7D"}),
        )
        .await
        .expect(201);
    }

    // Joins by event (one through an alias), an unmatched event, a leave by time.
    app.submit(
        &json!([event("ana-laptop", TYPED), event("bob@acme.example", TYPED),
                       event("kiosk-7", TYPED),
                       {"target_user": "cy@acme.example", "event_type": "usb_plugged",
                        "description": "a USB drive", "risk_level": 7, "external_id": "x-1"}]),
    )
    .await;
    app.clock.set(start_time() + Duration::hours(2));
    app.store.run_due_groups().await.unwrap();
    app.store.run_due_training().await.unwrap();
    app.submit(&json!([event("bob@acme.example", TYPED)])).await;
    app.patch(
        admin,
        &format!("/api/groups/{smart}"),
        &json!({"criteria": {"event": {"type": TYPED, "within": "PT3H"}}}),
    )
    .await
    .expect(200);
    app.store.record_daily_risk().await.unwrap();
    let enrollments = app
        .get(admin, "/api/enrollments?per_page=500")
        .await
        .expect(200);
    let enrollment = enrollments["data"][0]["id"].as_i64().expect("an enrolment");
    let link = app
        .post_json(
            admin,
            &format!("/api/enrollments/{enrollment}/link"),
            &json!({}),
        )
        .await
        .expect(200);
    let link = link["data"]["url"].as_str().unwrap().to_owned();
    let link_path = &link[link.find("/learn").expect("a learner path")..];

    // The webhook's attempts fail (nothing listens on port 9) and are recorded; wait
    // until no job is due (each waits for an instant the stopped clock never reaches)
    // or being sent (on PostgreSQL a claimed job's run_at is its lease's end, and its
    // attempt is recorded after), so the original stays as it is while it is read and
    // copied.
    let started = std::time::Instant::now();
    loop {
        let jobs = app.store.jobs(app.account, None).await.unwrap();
        let now = app.clock.now_ms();
        let settled = (jobs.iter())
            .all(|j| j.status != "pending" || (j.run_at > now && j.claimed_by.is_none()));
        if settled && jobs.iter().any(|j| j.kind == "webhook" && j.attempts > 0) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "jobs still due: {jobs:#?}"
        );
        app.store.kick_jobs();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut paths = vec![
        "/api/users?per_page=500".to_owned(),
        "/events?per_page=500".to_owned(),
        "/statuses?per_page=50".to_owned(),
        "/event_types".to_owned(),
        "/api/groups".to_owned(),
        "/api/campaigns".to_owned(),
        "/api/enrollments?per_page=500".to_owned(),
        "/api/content?per_page=500".to_owned(),
        "/api/tokens".to_owned(),
        "/api/webhooks".to_owned(),
        format!("/api/webhooks/{hook}/deliveries"),
        "/api/admins".to_owned(),
        "/api/account/risk".to_owned(),
        "/v1/account".to_owned(),
        "/v1/users".to_owned(),
        "/v1/groups".to_owned(),
        "/v1/training/campaigns".to_owned(),
        "/v1/training/enrollments".to_owned(),
        "/v1/account/risk_score_history".to_owned(),
    ];
    for group in [smart, manual] {
        for what in ["", "/members", "/history", "/versions"] {
            paths.push(format!("/api/groups/{group}{what}"));
        }
        paths.push(format!("/v1/groups/{group}/risk_score_history"));
    }
    for person in &people {
        for what in ["", "/timeline", "/risk"] {
            paths.push(format!("/api/users/{person}{what}"));
        }
        paths.push(format!("/v1/users/{person}/risk_score_history"));
    }
    let mut before = Vec::new();
    for path in &paths {
        let answer = read(&app.client, &app.base, admin, path).await;
        assert_eq!(answer.0, 200, "{path}: {answer:?}");
        before.push(answer);
    }
    // What must be in there for the comparison to mean something.
    let all = serde_json::to_string(&before).unwrap();
    for seen in [
        "kiosk-7",
        "ana-laptop",
        "\"left\"",
        "PT3H",
        "ada@acme.example",
        "x-1",
    ] {
        assert!(all.contains(seen), "{seen} is not in what was read");
    }
    let learner = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = |base: String| {
        let learner = learner.clone();
        let path = link_path.to_owned();
        async move {
            let response = learner.get(format!("{base}{path}")).send().await.unwrap();
            response.status().as_u16()
        }
    };
    let link_status = opened(app.base.clone()).await;
    assert!(link_status < 400, "the learner link works: {link_status}");

    let dir = tempfile::tempdir().unwrap();
    let middle = DatabaseUrl::new(format!(
        "sqlite://{}",
        dir.path().join("copy.db").to_str().unwrap()
    ));
    let last = TestDatabase::new().await;
    for (from, to) in [(&app.database_url(), &middle), (&middle, last.url())] {
        let report = copy::copy(from, to, &|_| {}).await.expect("copy");
        assert!(report.committed && report.matches(), "{report:#?}");
        // Read back on its own, the copy holds what the source's snapshot held.
        let source: Vec<_> = report.tables.iter().map(|t| (t.table, t.source)).collect();
        assert_eq!(copy::tally(to).await.unwrap(), source);
    }

    for url in [&middle, last.url()] {
        let copy = Copy::start(url, &app).await;
        for (path, answer) in paths.iter().zip(&before) {
            let after = read(&copy.client, &copy.base, admin, path).await;
            assert_eq!(&after, answer, "{path} on the copy {url:?}");
        }
        assert_eq!(opened(copy.base.clone()).await, link_status);
        // New rows take ids after the copied ones.
        let created = copy
            .client
            .post(format!("{}/api/users", copy.base))
            .bearer_auth(admin)
            .json(&json!({"email": "dee@acme.example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let created: Value = created.json().await.unwrap();
        assert!(id(&created) > *people.iter().max().unwrap(), "{created}");
        let group = copy
            .client
            .post(format!("{}/api/groups", copy.base))
            .bearer_auth(admin)
            .json(&json!({"name": "later"}))
            .send()
            .await
            .unwrap();
        assert_eq!(group.status().as_u16(), 201);
    }
}
