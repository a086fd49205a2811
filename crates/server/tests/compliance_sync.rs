//! Remote sync: a connection to another coachloop's Reporting API, its people and
//! enrolments evaluated like the account's own and marked with their source; *Test
//! connection* telling a wrong key, a missing scope, the wrong region and the network
//! apart; and a remote (a real listener answering as told) that rate-limits, fails,
//! times out or sends a malformed page — each a clear status, nothing half-applied, the
//! run resuming where it stopped.

mod common;

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coachloop_core::compliance::remote::Region;
use coachloop_core::destination::PrivateDestinations;
use coachloop_server::ServerConfig;
use coachloop_server::remote::Regions;
use common::TestApp;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const READ_SCOPES: &str = "account:read,user:read,campaign:read,enrollments:read";

fn local_config(regions: Regions) -> ServerConfig {
    ServerConfig {
        allow_private_destinations: PrivateDestinations::Allowed,
        regions,
        sync_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

/// A remote coachloop with three people, one campaign of the password module for all of
/// them, and two completions (ana's and bo's).
async fn remote_coachloop() -> (TestApp, String) {
    let remote = TestApp::spawn().await;
    for (email, first) in [
        ("ana@acme.example", "Ana"),
        ("bo@acme.example", "Bo"),
        ("cy@acme.example", "Cy"),
    ] {
        remote
            .create_user(&json!({"email": email, "first_name": first,
                                 "employee_start_date": "2020-01-01"}))
            .await;
    }
    let content = remote
        .get(&remote.admin, "/api/content?per_page=500")
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
    remote
        .post_json(
            &remote.admin,
            "/api/campaigns",
            &json!({"name": "Annual", "content": [module], "groups": [0],
                    "relative_duration": "P30D"}),
        )
        .await
        .expect(201);
    let lms = remote.token("lms", "events:write").await;
    for who in ["ana", "bo"] {
        remote
            .post_xapi(
                &lms,
                &json!({
                    "actor": {"mbox": format!("mailto:{who}@acme.example")},
                    "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
                    "object": {"id": "https://lms.example.com/activities/password-management"},
                    "timestamp": "2026-11-01T12:00:00Z",
                }),
            )
            .await
            .expect(200);
    }
    let key = remote.token("sync", READ_SCOPES).await;
    (remote, key)
}

async fn connect(app: &TestApp, body: Value) -> i64 {
    app.post_json(&app.admin, "/api/compliance/connections", &body)
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap()
}

/// Waits until no sync of connection `id` is due or under way, and returns it (the
/// clock stands still: a sync done or failed is due again later).
async fn settled(app: &TestApp, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = app
            .get(&app.admin, &format!("/api/compliance/connections/{id}"))
            .await
            .expect(200)["data"]
            .clone();
        let due = c["next_sync_at"].as_str().unwrap() <= "2026-11-01T12:00:00.000Z";
        if !c["syncing"].as_bool().unwrap() && !due {
            return c;
        }
        assert!(Instant::now() < deadline, "the sync did not settle: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every region at `base`, and `overrides`.
fn regions_at(base: &str, overrides: &[(Region, &str)]) -> Regions {
    Regions::with(Region::ALL.into_iter().map(|r| {
        let url = overrides
            .iter()
            .find(|(o, _)| *o == r)
            .map_or(base, |(_, url)| *url);
        (r, url.to_owned())
    }))
}

async fn people(app: &TestApp) -> Vec<Value> {
    app.get(&app.admin, "/api/compliance/people?per_page=100")
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn of<'a>(people: &'a [Value], email: &str) -> &'a Value {
    people
        .iter()
        .find(|p| p["email"] == email)
        .unwrap_or_else(|| panic!("{email} not listed: {people:?}"))
}

#[tokio::test]
async fn remote_people_and_enrolments_are_evaluated_like_local_ones() {
    let (remote, key) = remote_coachloop().await;
    let app = TestApp::spawn_with(local_config(Regions::default())).await;
    // Ana is a person here too: her remote training counts for her.
    app.create_user(&json!({"email": "ana@acme.example", "employee_start_date": "2020-01-01"}))
        .await;
    app.put_json(&app.admin, "/api/compliance/frameworks/soc2", &json!({}))
        .await
        .expect(200);

    let id = connect(
        &app,
        json!({"name": "Acme KnowBe4", "base_url": format!("{}/v1/", remote.base), "key": key}),
    )
    .await;
    let created = app
        .get(&app.admin, &format!("/api/compliance/connections/{id}"))
        .await
        .expect(200);
    assert_eq!(created["data"]["base_url"], remote.base);
    assert!(
        !created.to_string().contains(&key),
        "the key is never shown"
    );
    assert_eq!(
        created["data"]["key_hint"],
        format!("…{}", &key[key.len() - 4..])
    );

    let tested = app
        .post_json(
            &app.admin,
            &format!("/api/compliance/connections/{id}/test"),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(
        tested["data"],
        json!({"ok": true, "account": "default", "problem": null})
    );

    let c = settled(&app, id).await;
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["last_success_at"], "2026-11-01T12:00:00.000Z");
    assert_eq!(c["people"], 3);
    assert_eq!(c["campaigns"], 1);
    assert_eq!(c["enrollments"], 3);
    assert_eq!(c["skipped"], 0);
    assert_eq!(c["progress"], Value::Null);
    assert_eq!(c["next_sync_at"], "2026-11-01T13:00:00.000Z");

    let list = people(&app).await;
    let ana = of(&list, "ana@acme.example");
    assert_eq!(ana["status"], "compliant", "{ana}");
    assert_eq!(
        ana["source"],
        Value::Null,
        "ana is a person of this account"
    );
    assert_eq!(
        ana["reason"],
        "last completed Cyber Hygiene: Password Management on 2026-11-01; due again 2027-11-01"
    );
    let bo = of(&list, "bo@acme.example");
    assert_eq!(bo["status"], "compliant");
    assert_eq!(bo["source"], "Acme KnowBe4");
    let cy = of(&list, "cy@acme.example");
    assert_eq!(cy["status"], "at_risk", "{cy}");
    assert_eq!(
        cy["reason"],
        "Cyber Hygiene: Password Management not finished yet; due 2026-12-01, in 30 days"
    );
    assert_eq!(cy["source"], "Acme KnowBe4");

    // Evidence shows the synced records with their source.
    let evidence = app
        .get(
            &app.admin,
            "/api/compliance/evidence?framework=soc2&from=2026-01-01&to=2026-12-31&format=json",
        )
        .await
        .expect(200);
    let people_of = evidence["requirements"][0]["people"].as_array().unwrap();
    let bo_records = &people_of
        .iter()
        .find(|p| p["email"] == "bo@acme.example")
        .unwrap()["records"];
    assert_eq!(bo_records[0]["source"], "Acme KnowBe4", "{bo_records}");
    assert_eq!(
        bo_records[0]["content"],
        "Cyber Hygiene: Password Management"
    );
    assert_eq!(bo_records[0]["content_id"], Value::Null);

    // Mapped to phishing, the campaign no longer counts for awareness.
    let campaigns = app
        .get(
            &app.admin,
            &format!("/api/compliance/connections/{id}/campaigns"),
        )
        .await
        .expect(200);
    assert_eq!(campaigns["data"][0]["name"], "Annual");
    let campaign = campaigns["data"][0]["id"].as_i64().unwrap();
    let changed = app
        .patch(
            &app.admin,
            &format!("/api/compliance/connections/{id}"),
            &json!({"requirements": {"phishing": [campaign]}}),
        )
        .await
        .expect(200);
    assert_eq!(
        changed["data"]["requirements"],
        json!({"phishing": [campaign]})
    );
    let list = people(&app).await;
    assert_eq!(of(&list, "ana@acme.example")["status"], "non_compliant");

    // A remote person archived leaves scope at the next sync; removing the connection
    // archives the people it added.
    app.patch(
        &app.admin,
        &format!("/api/compliance/connections/{id}"),
        &json!({"requirements": {}}),
    )
    .await
    .expect(200);
    let users = remote
        .get(&remote.admin, "/api/users?per_page=100")
        .await
        .expect(200);
    let cy_remote = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "cy@acme.example")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    remote
        .delete(&remote.admin, &format!("/api/users/{cy_remote}"))
        .await
        .expect(200);
    app.post_json(
        &app.admin,
        &format!("/api/compliance/connections/{id}/sync"),
        &json!({}),
    )
    .await
    .expect(202);
    let c = settled(&app, id).await;
    assert_eq!(c["status"], "ok", "{c}");
    let list = people(&app).await;
    assert!(
        list.iter().all(|p| p["email"] != "cy@acme.example"),
        "{list:?}"
    );
    assert_eq!(of(&list, "ana@acme.example")["status"], "compliant");

    app.delete(&app.admin, &format!("/api/compliance/connections/{id}"))
        .await
        .expect(204);
    let list = people(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(of(&list, "ana@acme.example")["status"], "non_compliant");
    app.get(&app.admin, &format!("/api/compliance/connections/{id}"))
        .await
        .expect_error(404, "not_found");
}

/// A remote that answers as the test says, and logs what it was asked.
#[derive(Clone, Default)]
struct Fake {
    answer: Arc<Mutex<Option<Answer>>>,
    asked: Arc<Mutex<Vec<(Instant, String)>>>,
    /// How long it takes to answer.
    delay: Arc<Mutex<Duration>>,
}

type Answer = Box<dyn Fn(&str) -> Response + Send + Sync>;

impl Fake {
    async fn start(answer: impl Fn(&str) -> Response + Send + Sync + 'static) -> (Self, String) {
        let fake = Fake::default();
        fake.set(answer);
        let app = axum::Router::new()
            .fallback(|State(fake): State<Fake>, uri: OriginalUri| async move {
                let asked = uri.0.to_string();
                fake.asked
                    .lock()
                    .unwrap()
                    .push((Instant::now(), asked.clone()));
                let delay = *fake.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let answer = fake.answer.lock().unwrap();
                (answer.as_ref().unwrap())(&asked)
            })
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, base)
    }

    fn set(&self, answer: impl Fn(&str) -> Response + Send + Sync + 'static) {
        *self.answer.lock().unwrap() = Some(Box::new(answer));
    }

    fn asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.1.clone())
            .collect()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A healthy remote of `people` people with one enrolment each (`bad`: the enrolment
/// whose date is not a date).
fn healthy(people: usize, bad: Option<usize>) -> impl Fn(&str) -> Response + Send + Sync {
    move |asked: &str| {
        let page: usize = asked
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("page="))
            .map_or(1, |p| p.parse().unwrap());
        let range = ((page - 1) * 500)..(page * 500).min(people);
        if asked.starts_with("/v1/account") {
            json_response(StatusCode::OK, json!({"name": "Remote"}))
        } else if asked.starts_with("/v1/users?status=archived") {
            json_response(StatusCode::OK, json!([]))
        } else if asked.starts_with("/v1/users") {
            let rows: Vec<Value> = range
                .map(|i| {
                    json!({"id": i + 1, "email": format!("p{i}@remote.example"),
                                "employee_start_date": "2020-01-01", "status": "active"})
                })
                .collect();
            json_response(StatusCode::OK, Value::from(rows))
        } else if asked.starts_with("/v1/training/campaigns") {
            json_response(
                StatusCode::OK,
                json!([{"campaign_id": 7, "name": "Yearly", "status": "In Progress",
                        "duration_type": "Specific End Date",
                        "end_date": "2026-12-01T00:00:00.000Z"}]),
            )
        } else {
            let rows: Vec<Value> = range
                .map(|i| {
                    let date = if Some(i) == bad {
                        "yesterday"
                    } else {
                        "2026-10-01T09:00:00.000Z"
                    };
                    json!({"enrollment_id": 1000 + i, "campaign_id": 7,
                           "user": {"id": i + 1, "email": format!("p{i}@remote.example")},
                           "module_name": "Phishing Basics", "content_type": "Store Purchase",
                           "enrollment_date": date, "completion_date": null,
                           "status": "In Progress"})
                })
                .collect();
            json_response(StatusCode::OK, Value::from(rows))
        }
    }
}

async fn enable_soc2(app: &TestApp) {
    app.put_json(&app.admin, "/api/compliance/frameworks/soc2", &json!({}))
        .await
        .expect(200);
}

#[tokio::test]
async fn test_connection_tells_each_problem_apart() {
    // The key is known in the EU region (a real coachloop), not in the US one.
    let (remote, key) = remote_coachloop().await;
    let (us, us_base) = Fake::start(|_: &str| {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid token"}),
        )
    })
    .await;
    let regions = regions_at(&us_base, &[(Region::Eu, &remote.base)]);
    let app = TestApp::spawn_with(local_config(regions)).await;
    let test = |id: i64| {
        let app = &app;
        async move {
            app.post_json(
                &app.admin,
                &format!("/api/compliance/connections/{id}/test"),
                &json!({}),
            )
            .await
            .expect(200)["data"]
                .clone()
        }
    };

    let in_us = connect(&app, json!({"name": "us", "region": "us", "key": key})).await;
    let t = test(in_us).await;
    assert_eq!(t["ok"], false);
    assert_eq!(t["problem"]["kind"], "wrong_region", "{t}");
    assert_eq!(
        t["problem"]["message"],
        "this key belongs to the EU region, not US: choose region `eu`"
    );

    let wrong = connect(
        &app,
        json!({"name": "wrong key", "region": "eu", "key": "nope"}),
    )
    .await;
    let t = test(wrong).await;
    assert_eq!(t["problem"]["kind"], "wrong_key", "{t}");
    assert!(
        t["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("does not accept this key (401"),
        "{t}"
    );

    let narrow = remote.token("narrow", "account:read,user:read").await;
    let scope = connect(
        &app,
        json!({"name": "scope", "base_url": remote.base, "key": narrow}),
    )
    .await;
    let t = test(scope).await;
    assert_eq!(t["problem"]["kind"], "forbidden", "{t}");
    assert!(
        t["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("may not read /v1/training/campaigns (403"),
        "{t}"
    );

    // Nothing listens on a port just freed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = connect(
        &app,
        json!({"name": "closed", "base_url": format!("http://127.0.0.1:{port}"), "key": "k"}),
    )
    .await;
    let t = test(closed).await;
    assert_eq!(t["problem"]["kind"], "network", "{t}");
    assert!(
        t["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the connection"),
        "{t}"
    );

    let (slow_fake, slow_base) =
        Fake::start(|_: &str| json_response(StatusCode::OK, json!({"name": "late"}))).await;
    *slow_fake.delay.lock().unwrap() = Duration::from_millis(1500);
    let slow = connect(
        &app,
        json!({"name": "slow", "base_url": slow_base, "key": "k"}),
    )
    .await;
    let t = test(slow).await;
    assert_eq!(t["problem"]["kind"], "network", "{t}");
    assert!(
        t["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{t}"
    );
    assert!(!us.asked().is_empty());

    // An installation that keeps to public addresses refuses a loopback remote when it
    // is given, and each bad field is named.
    let strict = TestApp::spawn_with(ServerConfig {
        regions: regions_at("http://127.0.0.1:9", &[]),
        ..ServerConfig::default()
    })
    .await;
    let refused = strict
        .post_json(
            &strict.admin,
            "/api/compliance/connections",
            &json!({"name": "x", "base_url": remote.base, "key": "k"}),
        )
        .await;
    assert_eq!(
        refused.expect_error(422, "invalid")["details"][0]["field"],
        "base_url"
    );
    let both = strict
        .post_json(
            &strict.admin,
            "/api/compliance/connections",
            &json!({"name": "x", "region": "us", "base_url": "https://example.com", "key": "k"}),
        )
        .await;
    assert_eq!(both.detail_fields(), ["region"]);
    let mapping = strict
        .post_json(
            &strict.admin,
            "/api/compliance/connections",
            &json!({"name": "x", "region": "us", "key": "k",
                    "requirements": {"awareness": [0]}}),
        )
        .await;
    assert_eq!(mapping.detail_fields(), ["requirements.awareness"]);
    let made = strict
        .post_json(
            &strict.admin,
            "/api/compliance/connections",
            &json!({"name": "x", "region": "us", "key": "k"}),
        )
        .await
        .expect(201);
    let path = format!("/api/compliance/connections/{}", made["data"]["id"]);
    for null in [
        json!({"key": null}),
        json!({"name": null}),
        json!({"requirements": {"awareness": null}}),
    ] {
        let refused = strict.patch(&strict.admin, &path, &null).await;
        assert!(refused.status.is_client_error(), "{null}: {}", refused.text);
    }
    // The interval keeps to the bounds the document gives, on create and on change.
    for minutes in [4, 10_081] {
        let refused = strict
            .patch(&strict.admin, &path, &json!({"interval_minutes": minutes}))
            .await;
        assert_eq!(refused.detail_fields(), ["interval_minutes"], "{minutes}");
        let refused = strict
            .post_json(
                &strict.admin,
                "/api/compliance/connections",
                &json!({"name": "y", "region": "us", "key": "k", "interval_minutes": minutes}),
            )
            .await;
        assert_eq!(refused.detail_fields(), ["interval_minutes"], "{minutes}");
    }
    strict
        .post_json(
            &strict.admin,
            "/api/compliance/connections",
            &json!({"name": "x", "region": "eu", "key": "k"}),
        )
        .await
        .expect_error(409, "conflict");
}

#[tokio::test]
async fn a_rate_limited_remote_is_waited_for() {
    let limited = Arc::new(Mutex::new(true));
    let (fake, base) = {
        let limited = limited.clone();
        let healthy = healthy(3, None);
        Fake::start(move |asked: &str| {
            let mut first = limited.lock().unwrap();
            if *first && asked.starts_with("/v1/users") {
                *first = false;
                let mut r = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"message": "Rate limit exceeded"}),
                );
                r.headers_mut().insert("retry-after", "1".parse().unwrap());
                return r;
            }
            healthy(asked)
        })
        .await
    };
    let app = TestApp::spawn_with(local_config(Regions::default())).await;
    enable_soc2(&app).await;
    let id = connect(&app, json!({"name": "r", "base_url": base, "key": "k"})).await;
    let c = settled(&app, id).await;
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["enrollments"], 3);
    let asked = fake.asked.lock().unwrap().clone();
    assert!(asked[0].1.starts_with("/v1/users"), "{asked:?}");
    assert_eq!(asked[0].1, asked[1].1, "the same page is asked again");
    assert!(
        asked[1].0 - asked[0].0 >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let list = people(&app).await;
    let p = of(&list, "p0@remote.example");
    assert_eq!(p["status"], "at_risk", "{p}");
    assert_eq!(
        p["reason"],
        "Phishing Basics not finished yet; due 2026-12-01, in 30 days"
    );
}

#[tokio::test]
async fn failures_are_reported_and_nothing_is_half_applied() {
    let (fake, base) = Fake::start(|_: &str| {
        json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "boom"}),
        )
    })
    .await;
    let app = TestApp::spawn_with(local_config(Regions::default())).await;
    enable_soc2(&app).await;
    let id = connect(&app, json!({"name": "f", "base_url": base, "key": "k"})).await;
    let c = settled(&app, id).await;
    assert_eq!(c["status"], "pending", "{c}");
    assert_eq!(
        c["last_error"],
        "the remote failed on /v1/users (500: boom)"
    );
    assert_eq!(fake.asked().len(), 3, "three tries of the page");
    assert_eq!(c["progress"]["stage"], "people");
    assert_eq!(c["progress"]["page"], 1);

    // 501 people: the second page of enrolments has a date that is not one. The first
    // page is kept; the second is applied not at all; the run stops there.
    fake.set(healthy(501, Some(500)));
    app.post_json(
        &app.admin,
        &format!("/api/compliance/connections/{id}/sync"),
        &json!({}),
    )
    .await
    .expect(202);
    let c = settled(&app, id).await;
    assert_eq!(c["status"], "pending", "{c}");
    assert_eq!(
        c["last_error"],
        "enrollment [0] `enrollment_date` \"yesterday\" is not an RFC 3339 time; nothing of \
         its page was applied"
    );
    assert_eq!(
        c["progress"],
        json!({"stage": "enrollments", "page": 2,
                                     "started_at": "2026-11-01T12:00:00.000Z"})
    );
    let synced = app
        .get(&app.admin, "/api/compliance/people?per_page=1")
        .await
        .expect(200);
    assert_eq!(synced["meta"]["count"], 501, "every person is in scope");
    let at_risk = app
        .get(
            &app.admin,
            "/api/compliance/people?status=at_risk&per_page=1",
        )
        .await
        .expect(200);
    assert_eq!(
        at_risk["meta"]["count"], 500,
        "the first page's enrolments only"
    );

    // Fixed, the run resumes at the page that failed.
    fake.set(healthy(501, None));
    let before = fake.asked().len();
    app.post_json(
        &app.admin,
        &format!("/api/compliance/connections/{id}/sync"),
        &json!({}),
    )
    .await
    .expect(202);
    let c = settled(&app, id).await;
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["enrollments"], 501);
    assert_eq!(
        c["last_error"],
        "enrollment [0] `enrollment_date` \"yesterday\" is not an RFC 3339 time; nothing of its page was applied"
    );
    assert_eq!(
        fake.asked()[before..],
        ["/v1/training/enrollments?include_campaign_id=true&page=2&per_page=500"]
    );
}

/// Two nodes (two holders over one database): one holds a run while the other cannot
/// take it; once the holder's lease passes (it died), the other takes the run over where
/// it stands, and the first, back, can apply nothing more.
#[tokio::test]
async fn a_run_is_held_by_one_node_and_taken_over_when_its_lease_ends() {
    use coachloop_core::identity::Email;
    use coachloop_core::ids::ConnectionId;
    use coachloop_store::sync::{Position, RemotePerson, Stage, SyncPage};
    let (_fake, base) =
        Fake::start(|_: &str| json_response(StatusCode::UNAUTHORIZED, json!({}))).await;
    let app = TestApp::spawn_with(local_config(Regions::default())).await;
    let id = connect(&app, json!({"name": "n", "base_url": base, "key": "k"})).await;
    // The server's own try fails (a wrong key) and is due again in an hour.
    assert_eq!(settled(&app, id).await["status"], "pending");
    let target = Some((app.account, ConnectionId(id)));
    let lease = Duration::from_secs(120);
    let a = app
        .store
        .claim_sync(target, "node-a", lease)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(
        a.position,
        Position {
            stage: Stage::People,
            page: 1
        }
    );
    assert!(
        app.store
            .claim_sync(target, "node-b", lease)
            .await
            .unwrap()
            .is_none()
    );
    let person = |email: &str, remote_id| RemotePerson {
        remote_id,
        email: Email::parse(email).unwrap(),
        first_name: None,
        last_name: None,
        job_title: None,
        department: None,
        employee_start_date: None,
        archived: false,
    };
    let next = Position {
        stage: Stage::ArchivedPeople,
        page: 1,
    };
    let applied = app
        .store
        .apply_sync_page(
            &a,
            "node-a",
            lease,
            &SyncPage::People(vec![person("a@x.example", 1)]),
            Some(next),
        )
        .await
        .unwrap();
    assert_eq!(applied.added, 1);

    app.clock.advance(chrono::Duration::seconds(121));
    let b = app
        .store
        .claim_sync(target, "node-b", lease)
        .await
        .unwrap()
        .expect("the lease has ended");
    assert_eq!(b.position, next, "resumed where node-a stopped");
    assert_eq!(b.run_started_at, a.run_started_at);
    let late = app
        .store
        .apply_sync_page(
            &a,
            "node-a",
            lease,
            &SyncPage::People(vec![person("b@x.example", 2)]),
            Some(next),
        )
        .await;
    assert!(late.is_err(), "node-a no longer holds the run");
    let users = app
        .get(&app.admin, "/api/users?per_page=10")
        .await
        .expect(200);
    assert_eq!(
        users["meta"]["count"], 1,
        "nothing of node-a's late page: {users}"
    );
    app.store.finish_sync(&b, "node-b").await.unwrap();
    let c = app
        .get(&app.admin, &format!("/api/compliance/connections/{id}"))
        .await
        .expect(200);
    assert_eq!(c["data"]["status"], "ok");
    assert_eq!(c["data"]["people"], 1);
}
