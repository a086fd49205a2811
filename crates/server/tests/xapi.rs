//! The LRS (`/xapi`): statements stored, read back, voided and applied to enrolments;
//! LRS credentials over HTTP Basic auth; unmapped statements applied once their activity
//! is mapped.

mod common;

use chrono::Duration;
use common::{TestApp, TestResponse};
use reqwest::Method;
use serde_json::{Value, json};

/// An LMS with an LRS credential: sends with Basic auth and the version header.
struct Lms<'a> {
    app: &'a TestApp,
    key: String,
    secret: String,
}

impl<'a> Lms<'a> {
    async fn new(app: &'a TestApp, name: &str, scopes: &[&str]) -> Self {
        // No scopes named: both.
        let body = if scopes.is_empty() {
            json!({"name": name})
        } else {
            json!({"name": name, "scopes": scopes})
        };
        let created = app
            .post_json(&app.admin, "/api/xapi/credentials", &body)
            .await
            .expect(201);
        Self {
            app,
            key: created["data"]["credential"]["key"]
                .as_str()
                .unwrap()
                .to_owned(),
            secret: created["data"]["secret"].as_str().unwrap().to_owned(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .request(method, path, None)
            .basic_auth(&self.key, Some(&self.secret))
            .header("X-Experience-API-Version", "1.0.3")
    }

    async fn post(&self, body: &Value) -> TestResponse {
        self.app
            .send(self.request(Method::POST, "/xapi/statements").json(body))
            .await
    }

    async fn put(&self, id: &str, body: &Value) -> TestResponse {
        self.app
            .send(
                self.request(Method::PUT, &format!("/xapi/statements?statementId={id}"))
                    .json(body),
            )
            .await
    }

    async fn get(&self, query: &str) -> TestResponse {
        self.app
            .send(self.request(Method::GET, &format!("/xapi/statements{query}")))
            .await
    }
}

async fn user(app: &TestApp, email: &str) {
    app.create_user(&json!({ "email": email })).await;
}

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

/// Ana and Bob, enrolled in the password module and the acceptable use policy.
async fn enrolled(app: &TestApp) {
    user(app, "ana@acme.example").await;
    user(app, "bob@acme.example").await;
    let module = content_id(app, "Cyber Hygiene: Password Management").await;
    let policy = content_id(app, "Acceptable Use").await;
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Both", "content": [module, policy], "groups": [0]}),
    )
    .await
    .expect(201);
    app.clock.advance(Duration::hours(2));
}

async fn enrollments(app: &TestApp, query: &str) -> Vec<Value> {
    app.get(&app.admin, &format!("/api/enrollments?{query}"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn status_of(app: &TestApp, email: &str, title: &str) -> Value {
    let all = enrollments(app, "per_page=500").await;
    all.into_iter()
        .find(|e| e["email"] == email && e["content_title"].as_str().unwrap().contains(title))
        .unwrap_or_else(|| panic!("no enrolment of {email} in {title}"))
}

fn statement(email: &str, verb: &str, slug: &str, scaled: Option<f64>) -> Value {
    let mut s = json!({
        "actor": {"mbox": format!("mailto:{email}"), "objectType": "Agent"},
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}"), "display": {"en-US": verb}},
        "object": {"id": format!("https://lms.example.com/activities/{slug}")},
        "timestamp": "2026-11-01T13:00:00Z",
    });
    if let Some(scaled) = scaled {
        s["result"] = json!({"score": {"scaled": scaled}});
    }
    s
}

#[tokio::test]
async fn statements_are_stored_read_back_and_applied_to_enrolments() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &["read", "write"]).await;

    let ids = lms
        .post(&json!([
            statement(
                "ana@acme.example",
                "passed",
                "password-management",
                Some(0.9)
            ),
            statement(
                "bob@acme.example",
                "failed",
                "password-management",
                Some(0.4)
            ),
            statement("Bob@Acme.example", "completed", "acceptable-use", None),
            statement("ana@acme.example", "answered", "password-management", None),
        ]))
        .await;
    assert_eq!(
        ids.headers["x-experience-api-version"].to_str().unwrap(),
        "1.0.3"
    );
    let ids = ids.expect(200);
    let ids: Vec<&str> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);

    let ana = status_of(&app, "ana@acme.example", "Password").await;
    assert_eq!(ana["status"], "Passed");
    assert_eq!(ana["score"], 90);
    // Completed when the statement says, not when it arrived.
    assert_eq!(ana["completion_date"], "2026-11-01T13:00:00.000Z");
    assert_eq!(
        status_of(&app, "bob@acme.example", "Password").await["status"],
        "In Progress"
    );
    assert_eq!(
        status_of(&app, "bob@acme.example", "Acceptable").await["status"],
        "Completed"
    );
    // A late fail does not undo a pass.
    lms.post(&statement(
        "ana@acme.example",
        "failed",
        "password-management",
        Some(0.1),
    ))
    .await
    .expect(200);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Password").await["status"],
        "Passed"
    );

    // Read back as stored, with what the LRS adds.
    let one = lms.get(&format!("?statementId={}", ids[0])).await;
    assert!(
        one.headers
            .contains_key("x-experience-api-consistent-through")
    );
    assert!(one.headers.contains_key("last-modified"));
    let one = one.expect(200);
    assert_eq!(one["id"], ids[0]);
    assert_eq!(one["verb"]["display"]["en-US"], "passed");
    assert_eq!(one["version"], "1.0.0");
    assert_eq!(one["authority"]["account"]["name"], lms.key);
    assert!(one["stored"].as_str().unwrap().ends_with('Z'));

    // Filters: verb, agent, activity (related ones too), newest first.
    let passed = lms
        .get("?verb=http://adlnet.gov/expapi/verbs/passed")
        .await
        .expect(200);
    assert_eq!(passed["statements"].as_array().unwrap().len(), 1);
    assert_eq!(passed["more"], "");
    let agent = urlencode(r#"{"mbox":"mailto:ana@acme.example"}"#);
    let ana_all = lms.get(&format!("?agent={agent}")).await.expect(200);
    let verbs: Vec<&str> = ana_all["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["verb"]["id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(verbs, ["failed", "answered", "passed"]);
    let ascending = lms
        .get(&format!("?agent={agent}&ascending=true&format=ids"))
        .await
        .expect(200);
    assert_eq!(
        ascending["statements"][0]["verb"],
        json!({"id": "http://adlnet.gov/expapi/verbs/passed"})
    );
    assert_eq!(
        ascending["statements"][0]["actor"],
        json!({"mbox": "mailto:ana@acme.example", "objectType": "Agent"})
    );
    let activity = urlencode("https://lms.example.com/activities/acceptable-use");
    let policy = lms.get(&format!("?activity={activity}")).await.expect(200);
    assert_eq!(policy["statements"].as_array().unwrap().len(), 1);

    // The about resource needs no version header.
    let about = app
        .send(app.request(Method::GET, "/xapi/about", None))
        .await
        .expect(200);
    assert!(
        about["version"]
            .as_array()
            .unwrap()
            .contains(&json!("1.0.3"))
    );
    // Every other request does.
    let unversioned = app
        .send(
            app.request(Method::GET, "/xapi/statements", None)
                .basic_auth(&lms.key, Some(&lms.secret)),
        )
        .await;
    unversioned.expect_error(400, "bad_request");
    assert!(
        unversioned
            .headers
            .contains_key("x-experience-api-consistent-through")
    );
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn a_malformed_statement_is_refused_naming_its_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    let mut bad_mbox = statement("ana@acme.example", "passed", "password-management", None);
    bad_mbox["actor"]["mbox"] = json!("ana@acme.example");
    let mut bad_score = statement("bob@acme.example", "passed", "password-management", None);
    bad_score["result"] = json!({"score": {"scaled": 1.5}, "duration": "ten minutes"});
    let mut two_ids = statement("bob@acme.example", "passed", "password-management", None);
    two_ids["actor"]["openid"] = json!("https://id.example/bob");
    let mut extra = statement("bob@acme.example", "passed", "password-management", None);
    extra["colour"] = json!("red");
    let refused = lms
        .post(&json!([
            statement("ana@acme.example", "passed", "password-management", None),
            bad_mbox,
            bad_score,
            two_ids,
            extra,
        ]))
        .await;
    refused.expect_error(400, "bad_request");
    assert_eq!(
        refused.detail_fields(),
        [
            "[1].actor.mbox",
            "[2].result.duration",
            "[2].result.score.scaled",
            "[3].actor",
            "[4].colour"
        ]
    );
    // Nothing stored, nothing applied.
    let all = lms.get("").await.expect(200);
    assert_eq!(all["statements"], json!([]));
    assert_eq!(
        status_of(&app, "ana@acme.example", "Password").await["status"],
        "Not Started"
    );
    // Not JSON, or not application/json.
    app.send(
        lms.request(Method::POST, "/xapi/statements")
            .header("Content-Type", "text/plain")
            .body("{}"),
    )
    .await
    .expect_error(400, "bad_request");
}

#[tokio::test]
async fn a_statement_id_is_stored_once_and_another_content_under_it_conflicts() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &["write", "read"]).await;
    let id = "936d2b4c-5e47-4c2b-9d3a-1d5b0b2e8c11";
    let s = statement("ana@acme.example", "completed", "acceptable-use", None);
    lms.put(id, &s).await.expect(204);
    // The same again: accepted, not stored twice.
    lms.put(id, &s).await.expect(204);
    let mut resent = s.clone();
    resent["id"] = json!(id);
    let ids = lms.post(&json!([resent])).await.expect(200);
    assert_eq!(ids, json!([id]));
    // Other content under the id.
    let mut other = s.clone();
    other["verb"]["id"] = json!("http://adlnet.gov/expapi/verbs/attempted");
    lms.put(id, &other).await.expect_error(409, "conflict");
    let stored = lms.get(&format!("?statementId={id}")).await.expect(200);
    assert_eq!(
        stored["verb"]["id"],
        "http://adlnet.gov/expapi/verbs/completed"
    );
    assert_eq!(
        lms.get("").await.expect(200)["statements"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A PUT names its statement, the same as any id in its body.
    lms.put("not-a-uuid", &s)
        .await
        .expect_error(400, "bad_request");
    let mut mismatch = s.clone();
    mismatch["id"] = json!("0b8c2e8c-1d5b-4c2b-9d3a-5e47936d2b4c");
    lms.put(id, &mismatch)
        .await
        .expect_error(400, "bad_request");
    app.send(lms.request(Method::PUT, "/xapi/statements").json(&s))
        .await
        .expect_error(400, "bad_request");
    // Two statements of one request with one id.
    let mut twice = s.clone();
    twice["id"] = json!("5e47936d-2b4c-4c2b-9d3a-1d5b0b2e8c11");
    lms.post(&json!([twice.clone(), twice]))
        .await
        .expect_error(400, "bad_request");
    // statementId goes with nothing but format and attachments.
    lms.get(&format!("?statementId={id}&verb=http://x.example/v"))
        .await
        .expect_error(400, "bad_request");
    lms.get(&format!(
        "?statementId={id}&format=canonical&attachments=false"
    ))
    .await
    .expect(200);
    lms.get("?colour=red")
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn voiding_takes_a_completion_back_unless_another_statement_also_finished_it() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    let first = lms
        .post(&statement(
            "ana@acme.example",
            "completed",
            "acceptable-use",
            None,
        ))
        .await
        .expect(200)[0]
        .as_str()
        .unwrap()
        .to_owned();
    let mut again = statement("ana@acme.example", "completed", "acceptable-use", None);
    again["timestamp"] = json!("2026-11-01T13:30:00Z");
    // Bob's only completion.
    let bobs = lms
        .post(&statement(
            "bob@acme.example",
            "completed",
            "acceptable-use",
            None,
        ))
        .await
        .expect(200)[0]
        .as_str()
        .unwrap()
        .to_owned();
    let void = |id: &str| {
        json!({
            "actor": {"mbox": "mailto:admin@lms.example"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": id}
        })
    };
    lms.post(&void(&bobs)).await.expect(200);
    let bob = status_of(&app, "bob@acme.example", "Acceptable").await;
    assert_eq!(bob["status"], "Not Started", "{bob:#?}");
    assert_eq!(bob["completion_date"], Value::Null);

    // Ana finished it twice: voiding one leaves it finished while the other stands;
    // voiding both takes it back.
    let second = lms.post(&again).await.expect(200)[0]
        .as_str()
        .unwrap()
        .to_owned();
    lms.post(&void(&first)).await.expect(200);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Acceptable").await["status"],
        "Completed"
    );
    lms.post(&void(&second)).await.expect(200);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Acceptable").await["status"],
        "Not Started"
    );

    // Voided: gone from lists and from statementId, there by voidedStatementId; the
    // voiding statement is listed.
    lms.get(&format!("?statementId={bobs}"))
        .await
        .expect_error(404, "not_found");
    let voided = lms
        .get(&format!("?voidedStatementId={bobs}"))
        .await
        .expect(200);
    assert_eq!(voided["id"], bobs.as_str());
    let listed = lms.get("").await.expect(200);
    let listed: Vec<&str> = listed["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&bobs.as_str()) && !listed.contains(&first.as_str()));
    assert_eq!(listed.len(), 3, "the three voiding statements");
    // A voiding statement's object is a StatementRef.
    let mut wrong = void(&bobs);
    wrong["object"] = json!({"id": "https://lms.example.com/activities/acceptable-use"});
    lms.post(&wrong).await.expect_error(400, "bad_request");
}

#[tokio::test]
async fn a_voided_completion_stays_when_another_statement_also_finished_the_enrolment() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    // A pass and a completion for the same enrolment in one request: the pass finishes
    // it, and the completion would have; voiding either leaves it finished, voiding both
    // takes it back (to In Progress: the attempt stays).
    let ids = lms
        .post(&json!([
            statement(
                "ana@acme.example",
                "passed",
                "password-management",
                Some(0.8)
            ),
            statement("ana@acme.example", "completed", "password-management", None),
        ]))
        .await
        .expect(200);
    let void = |id: &Value| {
        json!({
            "actor": {"mbox": "mailto:admin@lms.example"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": id}
        })
    };
    lms.post(&void(&ids[0])).await.expect(200);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Password").await["status"],
        "Passed"
    );
    lms.post(&void(&ids[1])).await.expect(200);
    let ana = status_of(&app, "ana@acme.example", "Password").await;
    assert_eq!(ana["status"], "In Progress", "{ana:#?}");
    assert_eq!(ana["completion_date"], Value::Null);
}

#[tokio::test]
async fn unmapped_statements_are_kept_and_applied_once_their_activity_is_mapped() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Docebo", &[]).await;
    let mut course = statement("ana@acme.example", "completed", "x", None);
    course["object"]["id"] = json!("https://docebo.example/course/4711");
    lms.post(&json!([
        course,
        statement(
            "stranger@elsewhere.example",
            "completed",
            "acceptable-use",
            None
        ),
    ]))
    .await
    .expect(200);
    let waiting = app.get(&app.admin, "/api/xapi/unmapped").await.expect(200);
    assert_eq!(waiting["meta"]["count"], 2);
    let reasons: Vec<&str> = waiting["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("no person with the email or alias stranger@elsewhere.example"));
    assert!(reasons[1].contains("map it"));

    let module = content_id(&app, "Cyber Hygiene: Password Management").await;
    let mapped = app
        .put_json(
            &app.admin,
            "/api/xapi/activities",
            &json!({"activity": "https://docebo.example/course/4711", "content_id": module}),
        )
        .await
        .expect(200);
    assert_eq!(mapped["data"]["applied"], 1);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Password").await["status"],
        "Completed"
    );
    assert_eq!(
        app.get(&app.admin, "/api/xapi/unmapped").await.expect(200)["meta"]["count"],
        1
    );
    let mappings = app
        .get(&app.admin, "/api/xapi/activities")
        .await
        .expect(200);
    assert_eq!(mappings["data"][0]["content_id"], module);
    // Later statements about it apply at once.
    let mut bobs = statement("bob@acme.example", "completed", "x", None);
    bobs["object"]["id"] = json!("https://docebo.example/course/4711");
    lms.post(&bobs).await.expect(200);
    assert_eq!(
        status_of(&app, "bob@acme.example", "Password").await["status"],
        "Completed"
    );
    app.put_json(
        &app.admin,
        "/api/xapi/activities",
        &json!({"activity": "not an iri", "content_id": module}),
    )
    .await
    .expect_error(422, "invalid");
    app.send(app.request(
        Method::DELETE,
        "/api/xapi/activities?activity=https%3A%2F%2Fdocebo.example%2Fcourse%2F4711",
        Some(&app.admin),
    ))
    .await
    .expect(204);
    // An actor named by its LMS account (no email) is found by an alias.
    let users = app.get(&app.admin, "/api/users?q=bob").await.expect(200);
    let bob = users["data"][0]["id"].as_i64().unwrap();
    app.post_json(
        &app.admin,
        &format!("/api/users/{bob}/aliases"),
        &json!({"alias": "bsmith"}),
    )
    .await
    .expect(201);
    let mut by_account = statement("x@y.example", "completed", "acceptable-use", None);
    by_account["actor"] =
        json!({"account": {"homePage": "https://moodle.example", "name": "BSmith"}});
    lms.post(&by_account).await.expect(200);
    assert_eq!(
        status_of(&app, "bob@acme.example", "Acceptable").await["status"],
        "Completed"
    );
    // A statement dated before the enrolment is kept as refused; the rest of its
    // request applies.
    let mut early = statement("bob@acme.example", "passed", "password-management", None);
    early["timestamp"] = json!("2026-01-01T00:00:00Z");
    lms.post(&json!([
        early,
        statement("ana@acme.example", "completed", "acceptable-use", None)
    ]))
    .await
    .expect(200);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Acceptable").await["status"],
        "Completed"
    );
}

#[tokio::test]
async fn credentials_are_scoped_revocable_and_of_their_account() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let writer = Lms::new(&app, "writer", &["write"]).await;
    let reader = Lms::new(&app, "reader", &["read"]).await;
    let s = statement("ana@acme.example", "completed", "acceptable-use", None);
    writer.post(&s).await.expect(200);
    writer.get("").await.expect_error(403, "forbidden");
    reader.post(&s).await.expect_error(403, "forbidden");
    assert_eq!(
        reader.get("").await.expect(200)["statements"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A wrong secret, or the right secret with another key.
    let wrong = Lms {
        app: &app,
        key: reader.key.clone(),
        secret: writer.secret.clone(),
    };
    wrong.get("").await.expect_error(401, "unauthorized");
    // Scopes named are read and/or write; left out, both; an empty list or null is
    // refused.
    for scopes in [json!([]), Value::Null, json!(["admin"])] {
        app.post_json(
            &app.admin,
            "/api/xapi/credentials",
            &json!({"name": "odd", "scopes": scopes}),
        )
        .await
        .expect_error(422, "invalid");
    }
    let listed = app
        .get(&app.admin, "/api/xapi/credentials")
        .await
        .expect(200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&reader.secret));
    // Bearer tokens keep working: `events:write` sends, `xapi:read` reads.
    let bearer = app.token("lms", "events:write").await;
    app.send(
        app.request(Method::POST, "/xapi/statements", Some(&bearer))
            .header("X-Experience-API-Version", "1.0.3")
            .json(&s),
    )
    .await
    .expect(200);
    // Another account sees none of them.
    let (_, other_admin) = app.other_account("globex").await;
    let other = app
        .post_json(
            &other_admin,
            "/api/xapi/credentials",
            &json!({"name": "theirs"}),
        )
        .await
        .expect(201);
    let theirs = Lms {
        app: &app,
        key: other["data"]["credential"]["key"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret: other["data"]["secret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(theirs.get("").await.expect(200)["statements"], json!([]));
    // Revoked: refused at once.
    app.delete(&app.admin, &format!("/api/xapi/credentials/{}", reader.key))
        .await
        .expect(200);
    reader.get("").await.expect_error(401, "unauthorized");
    app.delete(&app.admin, &format!("/api/xapi/credentials/{}", reader.key))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn lists_page_through_more_links() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    let batch: Vec<Value> = (0..7)
        .map(|i| {
            let mut s = statement("ana@acme.example", "experienced", "acceptable-use", None);
            s["object"]["id"] = json!(format!("https://lms.example.com/page/{i}"));
            s
        })
        .collect();
    lms.post(&Value::Array(batch)).await.expect(200);
    let mut seen = Vec::new();
    let mut page = lms
        .get("?limit=3&verb=http://adlnet.gov/expapi/verbs/experienced")
        .await
        .expect(200);
    loop {
        for s in page["statements"].as_array().unwrap() {
            seen.push(s["object"]["id"].as_str().unwrap().to_owned());
        }
        let more = page["more"].as_str().unwrap().to_owned();
        if more.is_empty() {
            break;
        }
        assert!(more.starts_with("/xapi/statements?more="));
        page = app
            .send(
                lms.app
                    .request(Method::GET, &more, None)
                    .basic_auth(&lms.key, Some(&lms.secret))
                    .header("X-Experience-API-Version", "1.0.3"),
            )
            .await
            .expect(200);
    }
    let expected: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("https://lms.example.com/page/{i}"))
        .collect();
    assert_eq!(seen, expected);
    // attachments=true: the StatementResult as the first part of multipart/mixed.
    let multipart = lms.get("?limit=1&attachments=true").await;
    assert_eq!(multipart.status, 200);
    assert!(
        multipart.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/mixed; boundary=")
    );
    assert!(multipart.text.contains("\"statements\""));
}

#[tokio::test]
async fn filters_return_statements_about_matching_ones_and_forms_stand_for_requests() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    let verb = "http://example.com/verbs/rated";
    let mut rated = statement("ana@acme.example", "x", "acceptable-use", None);
    rated["verb"] = json!({"id": verb});
    let rated_id = lms.post(&rated).await.expect(200)[0].clone();
    // A statement about it (another verb) is returned by a filter on the verb, voided
    // or not; the voided statement itself is not.
    let comment = json!({
        "actor": {"mbox": "mailto:bob@acme.example"},
        "verb": {"id": "http://example.com/verbs/commented"},
        "object": {"objectType": "StatementRef", "id": rated_id}
    });
    let comment_id = lms.post(&comment).await.expect(200)[0].clone();
    let voiding = json!({
        "actor": {"mbox": "mailto:admin@lms.example"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": rated_id}
    });
    let voiding_id = lms.post(&voiding).await.expect(200)[0].clone();
    let found = lms
        .get(&format!("?verb={}", urlencode(verb)))
        .await
        .expect(200);
    let ids: Vec<&Value> = found["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&voiding_id, &comment_id]);

    // The alternate request syntax: a form POST standing for a GET or a PUT, headers
    // and all in the form.
    let form = |fields: &[(&str, String)]| serde_urlencoded::to_string(fields).unwrap();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", lms.key, lms.secret)
        )
    );
    let get = app
        .send(
            app.request(Method::POST, "/xapi/statements?method=GET", None)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("Authorization", auth.clone()),
                    ("X-Experience-API-Version", "1.0.3".into()),
                    ("limit", "1".into()),
                ])),
        )
        .await
        .expect(200);
    assert_eq!(get["statements"].as_array().unwrap().len(), 1);
    let id = "1d5b0b2e-8c11-4c2b-9d3a-936d2b4c5e47";
    let put = app
        .send(
            app.request(Method::POST, "/xapi/statements?method=PUT", None)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("Authorization", auth.clone()),
                    ("X-Experience-API-Version", "1.0.3".into()),
                    ("statementId", id.into()),
                    (
                        "content",
                        statement("bob@acme.example", "completed", "acceptable-use", None)
                            .to_string(),
                    ),
                ])),
        )
        .await;
    assert_eq!(put.status, 204, "{}", put.text);
    assert_eq!(
        status_of(&app, "bob@acme.example", "Acceptable").await["status"],
        "Completed"
    );
    // Parameters outside the form, or no content for a PUT: refused.
    app.send(
        app.request(
            Method::POST,
            &format!("/xapi/statements?method=PUT&statementId={id}"),
            None,
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("Authorization", auth.clone())])),
    )
    .await
    .expect_error(400, "bad_request");
    app.send(
        app.request(Method::POST, "/xapi/statements?method=PUT", None)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("Authorization", auth),
                ("X-Experience-API-Version", "1.0.3".into()),
                ("statementId", id.into()),
            ])),
    )
    .await
    .expect_error(400, "bad_request");
}

const BOUNDARY: &str = "-------314159265358979323846";

fn sha256(content: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(content))
}

/// An attachment a statement declares, its content coming in a part of the request.
fn attachment(usage: &str, content_type: &str, content: &[u8]) -> Value {
    json!({
        "usageType": usage,
        "display": {"en-US": "certificate"},
        "contentType": content_type,
        "length": content.len(),
        "sha2": sha256(content)
    })
}

/// A multipart/mixed body written out by hand, as the specification shows it: the
/// statements, then each `(headers, content)` part.
fn multipart(statements: &Value, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body =
        format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{statements}\r\n")
            .into_bytes();
    for (headers, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The headers of an attachment's part with this content.
fn part_headers(content_type: &str, content: &[u8]) -> String {
    format!(
        "Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {}",
        sha256(content)
    )
}

impl Lms<'_> {
    async fn post_multipart(&self, content_type: &str, body: Vec<u8>) -> TestResponse {
        self.app
            .send(
                self.request(Method::POST, "/xapi/statements")
                    .header("Content-Type", content_type)
                    .body(body),
            )
            .await
    }

    async fn post_parts(&self, statements: &Value, parts: &[(&str, &[u8])]) -> TestResponse {
        let content_type = format!("multipart/mixed; boundary={BOUNDARY}");
        self.post_multipart(&content_type, multipart(statements, parts))
            .await
    }
}

#[tokio::test]
async fn attachments_come_as_parts_of_the_request_and_go_back_out_with_their_statements() {
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    let certificate = b"Ana Lima passed Password Management on 1 November 2026.";
    let usage = "https://lms.example.com/usage/certificate";
    let mut passed = statement("ana@acme.example", "passed", "password-management", None);
    passed["attachments"] = json!([attachment(usage, "text/plain", certificate)]);
    let headers = part_headers("text/plain", certificate);
    let ids = lms
        .post_parts(&passed, &[(&headers, certificate)])
        .await
        .expect(200);
    let id = ids[0].as_str().unwrap();
    assert_eq!(
        status_of(&app, "ana@acme.example", "Password").await["status"],
        "Passed"
    );

    // Read back with `attachments=true`: the statement, then the content it names.
    let one = lms
        .get(&format!("?statementId={id}&attachments=true"))
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    let content_type = one.headers["content-type"].to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let parts: Vec<&str> = one.text.split(&format!("--{boundary}")).collect();
    // Preamble (empty), the statement, the attachment, and the closing `--`.
    assert_eq!(parts.len(), 4, "{}", one.text);
    assert!(parts[1].starts_with("\r\nContent-Type: application/json\r\n\r\n{"));
    let (head, body) = parts[2].split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Content-Type: text/plain"), "{head}");
    assert!(head.contains("Content-Transfer-Encoding: binary"), "{head}");
    assert!(head.contains(&format!("X-Experience-API-Hash: {}", sha256(certificate))));
    assert_eq!(body.strip_suffix("\r\n").unwrap().as_bytes(), certificate);
    assert!(parts[3].starts_with("--"));
    // A list with `attachments=true` carries it too; without, plain JSON.
    assert!(
        lms.get("?attachments=true")
            .await
            .text
            .contains(std::str::from_utf8(certificate).unwrap())
    );
    let plain = lms.get(&format!("?statementId={id}")).await.expect(200);
    assert_eq!(plain["attachments"][0]["sha2"], sha256(certificate));

    // Refusals, each naming what to fix; nothing of them is stored.
    let mut bob = statement("bob@acme.example", "passed", "password-management", None);
    bob["attachments"] = json!([attachment(usage, "text/plain", certificate)]);
    // No fileUrl and no part.
    let refused = lms.post(&bob).await;
    refused.expect_error(400, "bad_request");
    assert_eq!(refused.detail_fields(), ["statement.attachments[0]"]);
    // A part whose content is not its hash.
    let wrong = part_headers("text/plain", b"something else");
    let refused = lms.post_parts(&bob, &[(&wrong, certificate)]).await;
    refused.expect_error(400, "bad_request");
    assert_eq!(refused.detail_fields(), ["part 2"]);
    // A part no attachment names.
    let other: &[u8] = b"not declared";
    let extra = part_headers("text/plain", other);
    let refused = lms
        .post_parts(&bob, &[(&headers, certificate), (&extra, other)])
        .await;
    refused.expect_error(400, "bad_request");
    assert_eq!(refused.detail_fields(), ["part 3"]);
    // Content not sent as binary.
    let base64 = headers.replace("binary", "base64");
    let refused = lms.post_parts(&bob, &[(&base64, certificate)]).await;
    assert_eq!(refused.detail_fields(), ["part 2"]);
    // Not multipart/mixed; no boundary; the statements not first.
    let body = multipart(&bob, &[(&headers, certificate)]);
    let form = format!("multipart/form-data; boundary={BOUNDARY}");
    let refused = lms.post_multipart(&form, body.clone()).await;
    assert_eq!(refused.detail_fields(), ["Content-Type"]);
    let refused = lms.post_multipart("multipart/mixed;", body.clone()).await;
    assert_eq!(refused.detail_fields(), ["Content-Type"]);
    let text_first = String::from_utf8(body)
        .unwrap()
        .replacen("application/json", "text/plain", 1);
    let mixed = format!("multipart/mixed; boundary={BOUNDARY}");
    let refused = lms.post_multipart(&mixed, text_first.into_bytes()).await;
    assert_eq!(refused.detail_fields(), ["part 1"]);
    // A body that ends before its closing boundary.
    let cut = multipart(&bob, &[(&headers, certificate)]);
    let refused = lms
        .post_multipart(&mixed, cut[..cut.len() - 30].to_vec())
        .await;
    assert_eq!(refused.detail_fields(), ["body"]);

    let all = lms.get("").await.expect(200);
    assert_eq!(all["statements"].as_array().unwrap().len(), 1);
    assert_eq!(
        status_of(&app, "bob@acme.example", "Password").await["status"],
        "Not Started"
    );
}

#[tokio::test]
async fn signed_statements_are_kept_when_their_signature_holds() {
    use coachloop_core::xapi::SIGNATURE;
    use coachloop_core::xapi::signature::testing::{
        RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, sign,
    };
    let app = TestApp::spawn().await;
    enrolled(&app).await;
    let lms = Lms::new(&app, "Moodle", &[]).await;
    let original = |email: &str| {
        let mut s = statement(email, "completed", "acceptable-use", None);
        s["id"] = json!(uuid::Uuid::new_v4().to_string());
        s
    };
    // The statement with its signature attached (the part's headers: `part_headers`).
    let signed = |statement: &Value, jws: &str, content_type: &str| {
        let mut s = statement.clone();
        s["attachments"] = json!([attachment(SIGNATURE, content_type, jws.as_bytes())]);
        s
    };
    let octets = "application/octet-stream";

    // RS256 with its certificate, RS384 without one: both kept, the signature with them.
    let ana = original("ana@acme.example");
    let jws = sign(&ana, "RS256", &RSA_PKCS1_SHA256, true);
    let headers = part_headers(octets, jws.as_bytes());
    lms.post_parts(&signed(&ana, &jws, octets), &[(&headers, jws.as_bytes())])
        .await
        .expect(200);
    let bob = original("bob@acme.example");
    let jws_bob = sign(&bob, "RS384", &RSA_PKCS1_SHA384, false);
    let headers = part_headers(octets, jws_bob.as_bytes());
    lms.post_parts(
        &signed(&bob, &jws_bob, octets),
        &[(&headers, jws_bob.as_bytes())],
    )
    .await
    .expect(200);
    let back = lms
        .get(&format!(
            "?statementId={}&attachments=true",
            ana["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(back.status, 200);
    assert!(back.text.contains(&jws), "{}", back.text);
    assert_eq!(
        status_of(&app, "ana@acme.example", "Acceptable").await["status"],
        "Completed"
    );

    // Each refused, naming the signature attachment: (signature, its contentType).
    let carol = original("carol@acme.example");
    let refusals = [
        // Not RS256/384/512.
        (sign(&carol, "HS256", &RSA_PKCS1_SHA256, false), octets),
        // Signed with another algorithm than it says: the certificate's check fails.
        (sign(&carol, "RS256", &RSA_PKCS1_SHA512, true), octets),
        // The signature of another statement.
        (sign(&ana, "RS256", &RSA_PKCS1_SHA256, true), octets),
        // A signature is application/octet-stream.
        (sign(&carol, "RS256", &RSA_PKCS1_SHA256, true), "text/plain"),
        // Not a JWS.
        ("not.a-jws".to_owned(), octets),
    ];
    for (jws, content_type) in &refusals {
        let headers = part_headers(octets, jws.as_bytes());
        let refused = lms
            .post_parts(
                &signed(&carol, jws, content_type),
                &[(&headers, jws.as_bytes())],
            )
            .await;
        refused.expect_error(400, "bad_request");
        assert_eq!(
            refused.detail_fields(),
            ["statement.attachments[0]"],
            "{}",
            refused.text
        );
    }
    // Sent without its part.
    let refused = lms.post(&signed(&carol, &refusals[1].0, octets)).await;
    assert_eq!(refused.detail_fields(), ["statement.attachments[0]"]);
    let all = lms.get("").await.expect(200);
    assert_eq!(all["statements"].as_array().unwrap().len(), 2);
}
