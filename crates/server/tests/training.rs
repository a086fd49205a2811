//! Training through the API and the learner pages: the content library, campaigns that
//! enrol on a join (and only once), allow-multiple with a cooldown, past due at the
//! exact instant, the quiz pass mark, magic links (tampered, expired, someone else's
//! enrolment), policy acknowledgement after the minimum time, dates on the learner pages
//! as people read them.

mod common;

use chrono::{DateTime, Duration, Utc};
use coachloop_core::clock::Clock;
use common::{TestApp, event, start_time};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TYPED: &str = "typed_compromised_password";

fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

async fn user(app: &TestApp, email: &str) -> i64 {
    app.create_user(&json!({ "email": email })).await["id"]
        .as_i64()
        .unwrap()
}

/// The id of the library content titled `title`.
async fn content_id(app: &TestApp, title: &str) -> i64 {
    let list = app
        .get(&app.admin, "/api/content?per_page=500")
        .await
        .expect(200);
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"] == title)
        .unwrap_or_else(|| panic!("no content titled {title}"))["id"]
        .as_i64()
        .unwrap()
}

async fn password_module(app: &TestApp) -> i64 {
    content_id(app, "Cyber Hygiene: Password Management").await
}

/// A smart group: anyone with a `TYPED` event in the last `window`.
async fn typed_group(app: &TestApp, window: &str) -> i64 {
    app.post_json(
        &app.admin,
        "/api/groups",
        &json!({"name": format!("typed {window}"),
                "criteria": {"event": {"type": TYPED, "within": window}}}),
    )
    .await
    .expect(201)["data"]["id"]
        .as_i64()
        .unwrap()
}

async fn campaign(app: &TestApp, body: Value) -> Value {
    app.post_json(&app.admin, "/api/campaigns", &body)
        .await
        .expect(201)
}

async fn enrollments(app: &TestApp, query: &str) -> Vec<Value> {
    app.get(&app.admin, &format!("/api/enrollments?{query}"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn typed(app: &TestApp, email: &str) {
    app.submit_one(&event(email, TYPED)).await;
}

async fn run_training_at(app: &TestApp, at: DateTime<Utc>) {
    app.clock.set(at);
    app.store.run_due_groups().await.unwrap();
    app.store.run_due_training().await.unwrap();
}

/// A learner's browser: no redirects followed, the session cookie kept by hand.
struct Learner {
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Learner {
    fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Opens a magic link; returns the status, and keeps the cookie it sets.
    async fn open(&mut self, url: &str) -> StatusCode {
        let response = self.client.get(url).send().await.unwrap();
        if let Some(cookie) = response.headers().get("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        }
        response.status()
    }

    async fn get(&self, url: &str) -> (StatusCode, String) {
        let mut request = self.client.get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn post(&self, url: &str, form: &[(String, String)]) -> (StatusCode, String) {
        let mut request = self.client.post(url).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

async fn link(app: &TestApp, enrollment: i64) -> String {
    app.post_json(
        &app.admin,
        &format!("/api/enrollments/{enrollment}/link"),
        &json!({}),
    )
    .await
    .expect(200)["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The signed `opened` field of a learner page.
fn opened(page: &str) -> String {
    let start = page
        .find("name=\"opened\" value=\"")
        .expect("an opened field")
        + 21;
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_library_ships_modules_and_policies_and_admins_add_their_own() {
    let app = TestApp::spawn().await;
    let modules = app
        .get(&app.admin, "/api/content?kind=module")
        .await
        .expect(200);
    assert!(modules["meta"]["count"].as_i64().unwrap() >= 8);
    let policies = app
        .get(&app.admin, "/api/content?kind=policy")
        .await
        .expect(200);
    assert!(policies["meta"]["count"].as_i64().unwrap() >= 3);
    let module = &modules["data"][0];
    assert_eq!(module["builtin"], true);
    assert!(module["quiz"].as_array().unwrap().len() >= 5);
    assert!(module["pass_mark"].as_i64().is_some());

    let id = module["id"].as_i64().unwrap();
    let own = json!({"kind": "module", "slug": "vpn-basics", "title": "VPN basics",
        "summary": "Why and when.", "minutes": 3, "pass_mark": 50, "body": "## Use it\n\nAlways.",
        "quiz": [{"question": "When?", "choices": ["Always", "Never"], "answer": 0,
                  "explanation": "Always."}]});
    app.put_json(&app.admin, &format!("/api/content/{id}"), &own)
        .await
        .expect_error(409, "conflict");
    let created = app
        .post_json(&app.admin, "/api/content", &own)
        .await
        .expect(201);
    assert_eq!(created["data"]["builtin"], false);
    app.post_json(&app.admin, "/api/content", &own)
        .await
        .expect_error(409, "conflict");

    let mut bad = own.clone();
    bad["slug"] = json!("vpn-2");
    bad["quiz"][0]["answer"] = json!(5);
    let response = app.post_json(&app.admin, "/api/content", &bad).await;
    response.expect(422);
    assert_eq!(response.detail_fields(), ["quiz[0].answer"]);

    let reader = app.token("reader", "program:read").await;
    app.get(&reader, "/api/content").await.expect(200);
    app.post_json(&reader, "/api/content", &own)
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn joining_a_targeted_group_enrols_once_with_the_cause() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let group = typed_group(&app, "PT1H").await;
    let module = password_module(&app).await;
    let created = campaign(
        &app,
        json!({"name": "Password coaching", "content": [module], "groups": [group],
               "relative_duration": "P7D"}),
    )
    .await;
    assert_eq!(created["data"]["status"], "In Progress");
    assert_eq!(created["enrolled"], 0);
    let campaign_id = created["data"]["id"].as_i64().unwrap();

    typed(&app, "ana@acme.example").await;
    let list = enrollments(&app, &format!("campaign_id={campaign_id}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["user_id"], ana);
    assert_eq!(e["status"], "Not Started");
    assert_eq!(e["content_id"], module);
    assert_eq!(e["cause"]["kind"], "group_joined");
    assert_eq!(e["cause"]["group_id"], group);
    assert_eq!(
        e["cause"]["evidence"][0]["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let enrolled = ts(e["enrollment_date"].as_str().unwrap());
    assert_eq!(
        ts(e["due_date"].as_str().unwrap()),
        enrolled + Duration::days(7)
    );

    // Leave (the hour passes) and join again: still one enrolment.
    run_training_at(&app, start_time() + Duration::hours(2)).await;
    typed(&app, "ana@acme.example").await;
    assert_eq!(
        enrollments(&app, &format!("campaign_id={campaign_id}"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn starting_a_campaign_enrols_current_members_and_new_people_when_it_targets_all() {
    let app = TestApp::spawn().await;
    let ana = user(&app, "ana@acme.example").await;
    let manual = app
        .post_json(&app.admin, "/api/groups", &json!({"name": "Finance"}))
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    app.post_json(
        &app.admin,
        &format!("/api/groups/{manual}/members"),
        &json!({ "user_id": ana }),
    )
    .await
    .expect(201);
    let module = password_module(&app).await;
    let created = campaign(
        &app,
        json!({"name": "Finance", "content": [module], "groups": [manual]}),
    )
    .await;
    assert_eq!(created["enrolled"], 1);
    assert_eq!(created["data"]["relative_duration"], "P7D");

    // A hand-made join enrols too.
    let bob = user(&app, "bob@acme.example").await;
    app.post_json(
        &app.admin,
        &format!("/api/groups/{manual}/members"),
        &json!({ "user_id": bob }),
    )
    .await
    .expect(201);
    let campaign_id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(
        enrollments(&app, &format!("campaign_id={campaign_id}"))
            .await
            .len(),
        2
    );

    // All users: everyone now, and whoever is created later.
    let policy = content_id(&app, "Acceptable Use").await;
    let everyone = campaign(
        &app,
        json!({"name": "AUP", "content": [policy], "groups": [0]}),
    )
    .await;
    assert_eq!(everyone["enrolled"], 2);
    assert_eq!(everyone["data"]["groups"][0]["group_id"], 0);
    user(&app, "cy@acme.example").await;
    let id = everyone["data"]["id"].as_i64().unwrap();
    assert_eq!(
        enrollments(&app, &format!("campaign_id={id}")).await.len(),
        3
    );
}

#[tokio::test]
async fn a_later_start_is_scheduled_and_an_end_date_completes_the_campaign() {
    let app = TestApp::spawn().await;
    user(&app, "ana@acme.example").await;
    let module = password_module(&app).await;
    let created = campaign(
        &app,
        json!({"name": "Q1", "content": [module], "groups": [0],
               "start_date": "2026-11-02T09:00:00Z", "end_date": "2026-11-09T09:00:00Z"}),
    )
    .await;
    assert_eq!(created["data"]["status"], "Created");
    assert_eq!(created["data"]["duration_type"], "Specific End Date");
    let id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(
        app.store.next_due_training().await.unwrap(),
        Some(ts("2026-11-02T09:00:00Z").timestamp_millis())
    );

    run_training_at(&app, ts("2026-11-02T08:59:59.999Z")).await;
    assert!(enrollments(&app, "").await.is_empty());
    run_training_at(&app, ts("2026-11-02T09:00:00Z")).await;
    let list = enrollments(&app, "").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["due_date"], "2026-11-09T09:00:00.000Z");

    run_training_at(&app, ts("2026-11-09T09:00:00Z")).await;
    let campaign = app
        .get(&app.admin, &format!("/api/campaigns/{id}"))
        .await
        .expect(200);
    assert_eq!(campaign["data"]["status"], "Completed");
    assert_eq!(enrollments(&app, "").await[0]["status"], "Past Due");
}

#[tokio::test]
async fn past_due_at_the_exact_instant_and_completion_after_keeps_its_real_date() {
    let app = TestApp::spawn().await;
    user(&app, "ana@acme.example").await;
    let policy = content_id(&app, "Acceptable Use").await;
    campaign(
        &app,
        json!({"name": "AUP", "content": [policy], "groups": [0], "relative_duration": "PT2H"}),
    )
    .await;
    let e = &enrollments(&app, "").await[0];
    let due = ts(e["due_date"].as_str().unwrap());
    assert_eq!(due, start_time() + Duration::hours(2));
    assert_eq!(
        app.store.next_due_training().await.unwrap(),
        Some(due.timestamp_millis())
    );

    run_training_at(&app, due - Duration::milliseconds(1)).await;
    assert_eq!(enrollments(&app, "").await[0]["status"], "Not Started");
    run_training_at(&app, due).await;
    let e = &enrollments(&app, "").await[0];
    assert_eq!(e["status"], "Past Due");
    assert_eq!(e["past_due_date"], e["due_date"]);
    let list = enrollments(&app, "status=Past%20Due").await;
    assert_eq!(list.len(), 1);

    // Acknowledged later: Completed, dated when it happened, past due kept for the record.
    let id = e["id"].as_i64().unwrap();
    let mut learner = Learner::new();
    assert_eq!(
        learner.open(&link(&app, id).await).await,
        StatusCode::SEE_OTHER
    );
    let (status, page) = learner
        .get(&app.url(&format!("/learn/enrollments/{id}")))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Dates on the page read as people read them, not in the wire form.
    assert!(
        page.contains("due Sunday 1 November 2026, 14:00 UTC"),
        "{page}"
    );
    assert!(!page.contains("2026-11-01T14:00:00.000Z"), "{page}");
    let stamp = opened(&page);
    let acknowledge = app.url(&format!("/learn/enrollments/{id}/acknowledge"));
    let form = vec![("opened".to_owned(), stamp.clone())];
    let (status, page) = learner.post(&acknowledge, &form).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("more seconds"), "{page}");
    assert_eq!(enrollments(&app, "").await[0]["policy_acknowledged"], false);

    let read_until = due + Duration::minutes(10);
    app.clock.set(read_until);
    let (status, page) = learner.post(&acknowledge, &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Recorded on Sunday 1 November 2026, 14:10 UTC"),
        "{page}"
    );
    assert!(!page.contains("2026-11-01T14:10:00.000Z"), "{page}");
    let e = &enrollments(&app, "").await[0];
    assert_eq!(e["status"], "Completed");
    assert_eq!(e["policy_acknowledged"], true);
    assert_eq!(ts(e["completion_date"].as_str().unwrap()), read_until);
    assert_eq!(e["past_due_date"], e["due_date"]);
    assert!(e["time_spent"].as_i64().unwrap() >= 600);
}

/// Answers for `module`'s quiz with the first `right` answers correct.
async fn answers(app: &TestApp, module: i64, right: usize) -> Vec<(String, String)> {
    let content = app
        .get(&app.admin, &format!("/api/content/{module}"))
        .await
        .expect(200);
    content["data"]["quiz"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let answer = q["answer"].as_u64().unwrap() as usize;
            let given = if i < right {
                answer
            } else {
                (answer + 1) % q["choices"].as_array().unwrap().len()
            };
            (format!("q{i}"), given.to_string())
        })
        .collect()
}

/// Ana and Bob, each enrolled in the library's password module by a campaign for
/// everyone; the module's id.
async fn ana_and_bob_on_the_password_module(app: &TestApp) -> i64 {
    user(app, "ana@acme.example").await;
    user(app, "bob@acme.example").await;
    let module = password_module(app).await;
    campaign(
        app,
        json!({"name": "Passwords", "content": [module], "groups": [0]}),
    )
    .await;
    module
}

#[tokio::test]
async fn the_quiz_passes_at_the_mark_and_not_below() {
    let app = TestApp::spawn().await;
    let module = ana_and_bob_on_the_password_module(&app).await;
    let list = enrollments(&app, "").await;
    // Five questions, pass mark 80: four right passes, three right does not.
    for (e, right, status) in [(&list[0], 4, "Passed"), (&list[1], 3, "In Progress")] {
        let id = e["id"].as_i64().unwrap();
        let mut learner = Learner::new();
        learner.open(&link(&app, id).await).await;
        let (status_code, quiz) = learner
            .get(&app.url(&format!("/learn/enrollments/{id}/quiz")))
            .await;
        assert_eq!(status_code, StatusCode::OK);
        let mut form = answers(&app, module, right).await;
        form.push(("opened".into(), opened(&quiz)));
        app.clock.advance(Duration::minutes(3));
        let (status_code, result) = learner
            .post(&app.url(&format!("/learn/enrollments/{id}/quiz")), &form)
            .await;
        assert_eq!(status_code, StatusCode::OK, "{result}");
        let after = app
            .get(&app.admin, &format!("/api/enrollments/{id}"))
            .await
            .expect(200);
        assert_eq!(after["data"]["status"], status);
        assert_eq!(after["data"]["score"], right as i64 * 20);
        assert_eq!(after["data"]["attempts"], 1);
        assert!(after["data"]["time_spent"].as_i64().unwrap() >= 180);
        assert_eq!(
            after["data"]["completion_date"].is_null(),
            status != "Passed"
        );
    }
}

#[tokio::test]
async fn tampered_expired_and_foreign_links_change_nothing() {
    let app = TestApp::spawn().await;
    let module = ana_and_bob_on_the_password_module(&app).await;
    let list = enrollments(&app, "").await;
    let (ana_e, bob_e) = (
        list[0]["id"].as_i64().unwrap(),
        list[1]["id"].as_i64().unwrap(),
    );
    let url = link(&app, ana_e).await;

    // One character changed in the signature.
    let mut tampered = url.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let mut learner = Learner::new();
    assert_eq!(learner.open(&tampered).await, StatusCode::NOT_FOUND);
    assert!(learner.cookie.is_none());
    // Another enrolment id under the same signature.
    let swapped = url.replacen(&format!(".{ana_e}."), &format!(".{bob_e}."), 1);
    assert_ne!(swapped, url);
    assert_eq!(learner.open(&swapped).await, StatusCode::NOT_FOUND);
    // Without a session the pages say how to get in.
    let (status, _) = learner
        .get(&app.url(&format!("/learn/enrollments/{ana_e}")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(enrollments(&app, "").await[0]["status"], "Not Started");

    // Ana's session does not open Bob's enrolment.
    assert_eq!(learner.open(&url).await, StatusCode::SEE_OTHER);
    let (status, _) = learner
        .get(&app.url(&format!("/learn/enrollments/{bob_e}")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = learner
        .post(
            &app.url(&format!("/learn/enrollments/{bob_e}/quiz")),
            &answers(&app, module, 5).await,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(enrollments(&app, "").await[1]["status"], "Not Started");
    let (status, home) = learner.get(&app.url("/learn")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains(&format!("/learn/enrollments/{ana_e}")));
    assert!(!home.contains(&format!("/learn/enrollments/{bob_e}")));

    // Fifteen days on, the link has expired.
    app.clock.advance(Duration::days(15));
    let mut late = Learner::new();
    assert_eq!(late.open(&url).await, StatusCode::GONE);
    assert!(late.cookie.is_none());
}

#[tokio::test]
async fn allow_multiple_enrols_again_only_after_the_cooldown() {
    let app = TestApp::spawn().await;
    user(&app, "ana@acme.example").await;
    let group = typed_group(&app, "PT1H").await;
    let module = content_id(&app, "Cyber Hygiene: Password Management").await;
    let created = campaign(
        &app,
        json!({"name": "Repeat", "content": [module], "groups": [group],
               "allow_multiple_enrollments": true, "cooldown": "P30D"}),
    )
    .await;
    let id = created["data"]["id"].as_i64().unwrap();
    typed(&app, "ana@acme.example").await;
    let first = enrollments(&app, &format!("campaign_id={id}")).await[0]["id"]
        .as_i64()
        .unwrap();

    // Open and unfinished: a rejoin adds nothing.
    run_training_at(&app, start_time() + Duration::hours(2)).await;
    typed(&app, "ana@acme.example").await;
    assert_eq!(
        enrollments(&app, &format!("campaign_id={id}")).await.len(),
        1
    );

    // Finished now; a rejoin within 30 days adds nothing, after 30 days it does.
    let mut learner = Learner::new();
    learner.open(&link(&app, first).await).await;
    let (_, quiz) = learner
        .get(&app.url(&format!("/learn/enrollments/{first}/quiz")))
        .await;
    let mut form = answers(&app, module, 5).await;
    form.push(("opened".into(), opened(&quiz)));
    learner
        .post(&app.url(&format!("/learn/enrollments/{first}/quiz")), &form)
        .await;
    let finished = app.clock.now();
    run_training_at(&app, finished + Duration::days(10)).await;
    typed(&app, "ana@acme.example").await;
    assert_eq!(
        enrollments(&app, &format!("campaign_id={id}")).await.len(),
        1
    );
    run_training_at(&app, finished + Duration::days(31)).await;
    typed(&app, "ana@acme.example").await;
    let list = enrollments(&app, &format!("campaign_id={id}")).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["status"], "Not Started");
}

#[tokio::test]
async fn campaigns_are_scoped_validated_and_closable() {
    let app = TestApp::spawn().await;
    let module = password_module(&app).await;
    let bad = app
        .post_json(
            &app.admin,
            "/api/campaigns",
            &json!({"name": "x", "content": [module], "groups": [0],
                   "end_date": "2026-12-01", "relative_duration": "P7D"}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["end_date"]);
    let bad = app
        .post_json(
            &app.admin,
            "/api/campaigns",
            &json!({"name": "x", "content": [999], "groups": [0]}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["content[0]"]);
    let bad = app
        .post_json(
            &app.admin,
            "/api/campaigns",
            &json!({"name": "x", "content": [module], "groups": [0], "cooldown": "soon"}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["cooldown"]);
    // Retired content cannot be used by a new campaign.
    let vpn = app
        .post_json(
            &app.admin,
            "/api/content",
            &json!({"kind": "policy", "slug": "vpn", "title": "VPN", "minutes": 1,
                    "version": "1", "body": "Use it."}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let retired = app
        .delete(&app.admin, &format!("/api/content/{vpn}"))
        .await
        .expect(200);
    assert!(retired["data"]["retired_at"].is_string());
    let bad = app
        .post_json(
            &app.admin,
            "/api/campaigns",
            &json!({"name": "x", "content": [vpn], "groups": [0]}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["content[0]"]);

    let created = campaign(
        &app,
        json!({"name": "Mine", "content": [module], "groups": [0]}),
    )
    .await;
    let id = created["data"]["id"].as_i64().unwrap();
    let (_, other) = app.other_account("globex").await;
    app.get(&other, &format!("/api/campaigns/{id}"))
        .await
        .expect_error(404, "not_found");
    let closed = app
        .post_json(
            &app.admin,
            &format!("/api/campaigns/{id}/close"),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(closed["data"]["status"], "Closed");
    let patched = app
        .patch(
            &app.admin,
            &format!("/api/campaigns/{id}"),
            &json!({"name": "Renamed", "cooldown": null}),
        )
        .await
        .expect(200);
    assert_eq!(patched["data"]["name"], "Renamed");
    // Closed: new people are not enrolled.
    user(&app, "late@acme.example").await;
    assert!(
        enrollments(&app, &format!("campaign_id={id}"))
            .await
            .is_empty()
    );
}

/// A campaign that enrols many people at once leaves PostgreSQL's statistics of the
/// enrolments current (the next page is planned for the rows that are there). SQLite
/// keeps no statistics, so there is nothing to test there.
#[tokio::test]
async fn a_campaign_enrolling_thousands_brings_the_statistics_up_to_date() {
    use coachloop_core::identity::Email;
    use coachloop_core::user::UserChanges;
    if coachloop_store::testing::backend() != coachloop_store::Backend::Postgres {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.token("bulk", "admin").await;
    let account = app.account;
    let people: Vec<UserChanges> = (0..10_000)
        .map(|i| UserChanges {
            email: Some(Email::parse(&format!("p{i}@bulk.example")).unwrap()),
            ..UserChanges::default()
        })
        .collect();
    app.store.upsert_users(account, &people).await.unwrap();
    let content = app.get(&admin, "/api/content?per_page=1").await.json()["data"][0]["id"].clone();
    let campaign = app
        .post_json(
            &admin,
            "/api/campaigns",
            &json!({"name": "Everyone", "content": [content], "groups": [0],
                    "relative_duration": "P7D"}),
        )
        .await
        .expect(201);
    let id = campaign["data"]["id"].as_i64().unwrap();
    let listed = app
        .get(
            &admin,
            &format!("/api/enrollments?campaign_id={id}&per_page=1"),
        )
        .await
        .json();
    assert_eq!(listed["meta"]["count"], 10_000, "{listed}");
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(app.database_url().expose())
        .await
        .unwrap();
    // `last_analyze` is an explicit ANALYZE's; autovacuum's goes to `last_autoanalyze`.
    let analyzed: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'enrollments'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        analyzed,
        "the enrolments were not analysed after the campaign"
    );
}
