//! Compliance evidence through the API: per-person records as CSV and JSON with real
//! completions, the triggering event of event-triggered training, OSCAL assessment
//! results that validate against NIST's schema and come out the same twice, a framework
//! not enabled, snapshots that chain and a tampered one that `verify` names, and bad
//! parameters refused.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

const TYPED: &str = "typed_compromised_password";

async fn module(app: &TestApp, slug: &str) -> i64 {
    let content = app
        .get(&app.admin, "/api/content?per_page=500")
        .await
        .expect(200);
    content["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == slug)
        .unwrap_or_else(|| panic!("no content {slug}"))["id"]
        .as_i64()
        .unwrap()
}

/// A passed statement for `email`'s password-management training, scored 9 of 10.
async fn pass(app: &TestApp, email: &str, at: &str) {
    let lms = app.token(&format!("lms-{email}"), "events:write").await;
    app.post_xapi(
        &lms,
        &json!({
            "actor": {"mbox": format!("mailto:{email}")},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"id": "https://lms.example.com/activities/password-management"},
            "result": {"score": {"raw": 9, "max": 10}},
            "timestamp": at,
        }),
    )
    .await
    .expect(200);
}

/// Ana (named) and Bo; SOC 2 enabled; everyone enrolled in password management; Ana
/// passes it.
async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email": "ana@acme.example", "first_name": "Ana",
                            "last_name": "Lopez", "employee_start_date": "2020-01-01"}))
        .await;
    app.create_user(&json!({"email": "bo@acme.example", "employee_start_date": "2020-01-01"}))
        .await;
    app.put_json(&app.admin, "/api/compliance/frameworks/soc2", &json!({}))
        .await
        .expect(200);
    let module = module(&app, "password-management").await;
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Annual", "content": [module], "groups": [0], "relative_duration": "P30D"}),
    )
    .await
    .expect(201);
    app.clock.advance(chrono::Duration::hours(2));
    pass(&app, "ana@acme.example", "2026-11-01T13:00:00Z").await;
    app
}

/// RFC 4180 rows (a quoted field may hold commas and doubled quotes; no line breaks here).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let mut fields = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    fields.last_mut().unwrap().push('"');
                }
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(String::new()),
                c => fields.last_mut().unwrap().push(c),
            }
        }
        rows.push(fields);
    }
    rows
}

/// A non-JSON 200.
fn ok(response: &common::TestResponse) {
    assert_eq!(response.status, 200, "{}", response.text);
}

#[tokio::test]
async fn csv_and_json_carry_each_persons_records() {
    let app = seeded().await;
    let path =
        "/api/compliance/evidence?framework=soc2&control=CC1.4&from=2026-01-01&to=2026-12-31";
    let csv = app.get(&app.admin, path).await;
    ok(&csv);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let snapshot = csv.headers["x-evidence-snapshot"]
        .to_str()
        .unwrap()
        .to_owned();
    let rows = csv_rows(&csv.text);
    let header = &rows[0];
    assert_eq!(
        header[..8],
        [
            "framework",
            "controls",
            "requirement",
            "user_id",
            "name",
            "email",
            "status",
            "reason"
        ]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 3, "{}", csv.text);
    let ana = rows
        .iter()
        .find(|r| r[col("email")] == "ana@acme.example")
        .unwrap();
    assert_eq!(ana[col("name")], "Ana Lopez");
    assert_eq!(ana[col("controls")], "CC1.4 CC2.2");
    assert_eq!(ana[col("status")], "compliant");
    assert_eq!(ana[col("content")], "Cyber Hygiene: Password Management");
    assert_eq!(ana[col("enrolled_at")], "2026-11-01T12:00:00.000Z");
    assert_eq!(ana[col("due_at")], "2026-12-01T12:00:00.000Z");
    assert_eq!(ana[col("completed_at")], "2026-11-01T13:00:00.000Z");
    assert_eq!(ana[col("effective_date")], "2026-11-01");
    assert_eq!(ana[col("score")], "90");
    assert_eq!(ana[col("collected_at")], "2026-11-01T14:00:00.000Z");
    let bo = rows
        .iter()
        .find(|r| r[col("email")] == "bo@acme.example")
        .unwrap();
    assert_eq!(bo[col("status")], "at_risk");
    assert_eq!(bo[col("completed_at")], "");

    // A period before the training: everyone is listed, with no records.
    let before = app
        .get(
            &app.admin,
            "/api/compliance/evidence?framework=soc2&from=2025-01-01&to=2025-12-31&format=json",
        )
        .await;
    before.expect(200);
    assert_eq!(before.headers["content-type"], "application/json");
    let doc = before.json();
    assert_eq!(doc["framework"]["enabled"], true);
    assert_eq!(doc["remarks"], Value::Null);
    assert_eq!(doc["collected_at"], "2026-11-01T14:00:00.000Z");
    let awareness = &doc["requirements"][0];
    assert_eq!(awareness["controls"], json!(["CC1.4", "CC2.2"]));
    assert_eq!(awareness["status"], "at_risk");
    assert_eq!(awareness["counts"]["in_scope"], 2);
    for person in awareness["people"].as_array().unwrap() {
        assert_eq!(person["records"], json!([]), "{person}");
    }

    // The snapshot holds exactly what was sent.
    let kept = app
        .get(
            &app.admin,
            &format!("/api/compliance/evidence/snapshots/{snapshot}"),
        )
        .await;
    ok(&kept);
    assert_eq!(kept.text, csv.text);
    assert_eq!(kept.headers["content-type"], "text/csv; charset=utf-8");
}

#[tokio::test]
async fn event_triggered_records_carry_the_triggering_time() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email": "cy@acme.example"})).await;
    let group = app
        .post_json(
            &app.admin,
            "/api/groups",
            &json!({"name": "typed", "criteria": {"event": {"type": TYPED, "within": "P30D"}}}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let module = module(&app, "password-management").await;
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Coaching", "content": [module], "groups": [group], "relative_duration": "P7D"}),
    )
    .await
    .expect(201);
    app.submit_one(&event("cy@acme.example", TYPED)).await;
    app.clock.advance(chrono::Duration::hours(3));
    pass(&app, "cy@acme.example", "2026-11-01T15:00:00Z").await;

    // NIST SP 800-53 is not enabled: evaluated for the export, and the document says so.
    let doc = app
        .get(
            &app.admin,
            "/api/compliance/evidence?framework=nist-800-53&control=AT-2.a.2&from=2026-11-01&to=2026-11-30&format=json",
        )
        .await
        .expect(200);
    assert_eq!(doc["framework"]["enabled"], false);
    assert!(
        doc["remarks"].as_str().unwrap().contains("not enabled"),
        "{doc}"
    );
    let requirement = &doc["requirements"][0];
    assert_eq!(requirement["kind"], "event_triggered");
    assert_eq!(requirement["settings"], "default");
    let cy = &requirement["people"][0];
    assert_eq!(cy["status"], "compliant");
    let record = &cy["records"][0];
    assert_eq!(record["triggered_at"], "2026-11-01T12:00:00.000Z");
    assert_eq!(record["completed_at"], "2026-11-01T15:00:00.000Z");
    assert_eq!(record["trigger_to_completion_seconds"], 3 * 3600);
    assert_eq!(record["score"], 90);
    // Nothing was stored for a framework that is not enabled.
    let requirements = app
        .get(&app.admin, "/api/compliance/requirements")
        .await
        .expect(200);
    assert_eq!(requirements["data"], json!([]));

    let csv = app
        .get(
            &app.admin,
            "/api/compliance/evidence?framework=nist-800-53&control=AT-2.a.2&from=2026-11-01&to=2026-11-30",
        )
        .await;
    ok(&csv);
    let rows = csv_rows(&csv.text);
    let col = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    assert_eq!(rows[1][col("triggered_at")], "2026-11-01T12:00:00.000Z");
    assert_eq!(rows[1][col("trigger_to_completion_seconds")], "10800");
}

fn oscal_validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/oscal_assessment-results_schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test]
async fn oscal_validates_and_is_the_same_twice() {
    let validator = oscal_validator();
    let app = seeded().await;
    let path = "/api/compliance/evidence?framework=soc2&from=2026-01-01&to=2026-12-31&format=oscal";
    let first = app.get(&app.admin, path).await;
    ok(&first);
    assert_eq!(first.headers["content-type"], "application/json");
    let second = app.get(&app.admin, path).await;
    assert_eq!(first.text, second.text, "same data, same collected time");
    assert_ne!(
        first.headers["x-evidence-snapshot"],
        second.headers["x-evidence-snapshot"]
    );
    let doc = first.json();
    assert_valid(&validator, &doc);
    // The validator checks the schema's `\p{L}` token patterns and its UUID versions.
    let mut bad = doc.clone();
    bad["assessment-results"]["results"][0]["findings"][0]["target"]["target-id"] = json!("12.6.3");
    assert!(!validator.is_valid(&bad));
    let mut bad = doc.clone();
    bad["assessment-results"]["uuid"] = json!("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    assert!(!validator.is_valid(&bad));
    let ar = &doc["assessment-results"];
    let result = &ar["results"][0];
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["target"]["target-id"], "soc2-cc1.4");
    assert_eq!(findings[0]["target"]["type"], "objective-id");
    // Bo has not finished yet: at risk, so the control is satisfied, with our status.
    assert_eq!(findings[0]["target"]["status"]["state"], "satisfied");
    let observation = &result["observations"][0];
    assert_eq!(observation["subjects"].as_array().unwrap().len(), 2);
    assert_eq!(
        findings[0]["related-observations"][0]["observation-uuid"],
        observation["uuid"]
    );
    assert_eq!(ar["metadata"]["parties"].as_array().unwrap().len(), 2);
    let resource = ar["back-matter"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r.get("base64").is_some())
        .unwrap();
    assert_eq!(
        observation["relevant-evidence"][0]["href"],
        format!("#{}", resource["uuid"].as_str().unwrap())
    );
    assert_eq!(resource["rlinks"][0]["hashes"][0]["algorithm"], "SHA-256");
    // The embedded records are the CSV export of a control of the requirement, gzipped.
    let csv = app
        .get(
            &app.admin,
            "/api/compliance/evidence?framework=soc2&control=CC1.4&from=2026-01-01&to=2026-12-31",
        )
        .await;
    assert_eq!(
        resource["rlinks"][0]["hashes"][0]["value"],
        sha256_hex(csv.text.as_bytes())
    );
    assert_eq!(resource["base64"]["media-type"], "application/gzip");
    let gzip = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        resource["base64"]["value"].as_str().unwrap(),
    )
    .unwrap();
    let mut embedded = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(gzip.as_slice()),
        &mut embedded,
    )
    .unwrap();
    assert_eq!(embedded, csv.text);

    // Later, a person fails: not satisfied; still valid; another document.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .to_utc(),
    );
    app.store.run_due_training().await.unwrap();
    let later = app.get(&app.admin, path).await.expect(200);
    assert_valid(&validator, &later);
    assert_ne!(later["assessment-results"]["uuid"], ar["uuid"]);
    let finding = &later["assessment-results"]["results"][0]["findings"][0];
    assert_eq!(finding["target"]["status"]["state"], "not-satisfied");

    // Every framework, each control and a framework not enabled, all valid.
    for framework in ["iso27001", "nist-800-53", "nist-csf", "hipaa", "pci-dss"] {
        let doc = app
            .get(
                &app.admin,
                &format!(
                    "/api/compliance/evidence?framework={framework}&from=2026-01-01&to=2026-12-31&format=oscal"
                ),
            )
            .await
            .expect(200);
        assert_valid(&validator, &doc);
        let metadata = &doc["assessment-results"]["metadata"];
        assert!(
            metadata["remarks"]
                .as_str()
                .unwrap()
                .contains("not enabled"),
            "{framework}"
        );
        assert!(
            metadata["props"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "framework-enabled" && p["value"] == "false")
        );
    }
    let statement = app
        .get(
            &app.admin,
            "/api/compliance/evidence?framework=nist-800-53&control=AT-2.a.2&from=2026-01-01&to=2026-12-31&format=oscal",
        )
        .await
        .expect(200);
    assert_valid(&validator, &statement);
    let target = &statement["assessment-results"]["results"][0]["findings"][0]["target"];
    assert_eq!(target["type"], "statement-id");
    assert_eq!(target["target-id"], "at-2_smt.a.2");
}

fn sha256_hex(bytes: &[u8]) -> String {
    coachloop_core::compliance::evidence::sha256_hex(bytes)
}

#[tokio::test]
async fn snapshots_chain_and_verify_names_a_tampered_one() {
    let app = seeded().await;
    for format in ["csv", "json", "oscal"] {
        let export = app
            .get(
                &app.admin,
                &format!(
                    "/api/compliance/evidence?framework=soc2&from=2026-01-01&to=2026-12-31&format={format}"
                ),
            )
            .await;
        ok(&export);
    }
    let list = app
        .get(&app.admin, "/api/compliance/evidence/snapshots")
        .await
        .expect(200);
    let snapshots = list["data"].as_array().unwrap();
    assert_eq!(snapshots.len(), 3);
    assert_eq!(list["meta"]["count"], 3);
    // Newest first; each links to the one before it.
    assert_eq!(snapshots[0]["format"], "oscal");
    assert_eq!(snapshots[2]["previous_sha256"], Value::Null);
    assert_eq!(
        snapshots[1]["previous_sha256"],
        snapshots[2]["chain_sha256"]
    );
    assert_eq!(
        snapshots[0]["previous_sha256"],
        snapshots[1]["chain_sha256"]
    );
    assert_eq!(snapshots[2]["period_from"], "2026-01-01");
    assert_eq!(snapshots[2]["control"], Value::Null);
    let verified = app
        .get(&app.admin, "/api/compliance/evidence/verify")
        .await
        .expect(200);
    assert_eq!(
        verified["data"],
        json!({"ok": true, "checked": 3, "broken": null})
    );

    // Another account sees none of them.
    let (_, other) = app.other_account("other").await;
    let id = snapshots[1]["id"].as_i64().unwrap();
    app.get(&other, &format!("/api/compliance/evidence/snapshots/{id}"))
        .await
        .expect_error(404, "not_found");

    // Someone edits the middle one's body behind the server's back.
    sql(
        &app,
        &format!("UPDATE evidence_snapshots SET body = body || ' ' WHERE id = {id}"),
    )
    .await;
    let verified = app
        .get(&app.admin, "/api/compliance/evidence/verify")
        .await
        .expect(200);
    assert_eq!(verified["data"]["ok"], false);
    assert_eq!(verified["data"]["checked"], 2);
    assert_eq!(verified["data"]["broken"]["snapshot_id"], id);
    assert!(
        verified["data"]["broken"]["what"]
            .as_str()
            .unwrap()
            .starts_with("its body differs"),
        "{verified}"
    );
    // Making its hash agree breaks the next link instead.
    let (sha, _) = body_sha(&app, id).await;
    sql(
        &app,
        &format!("UPDATE evidence_snapshots SET sha256 = '{sha}' WHERE id = {id}"),
    )
    .await;
    let verified = app
        .get(&app.admin, "/api/compliance/evidence/verify")
        .await
        .expect(200);
    assert_eq!(verified["data"]["broken"]["snapshot_id"], id);
    assert!(
        verified["data"]["broken"]["what"]
            .as_str()
            .unwrap()
            .starts_with("its record"),
        "{verified}"
    );
}

/// The SHA-256 of a snapshot's body as it is now in the database.
async fn body_sha(app: &TestApp, id: i64) -> (String, String) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(app.database_url().expose())
        .await
        .unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM evidence_snapshots WHERE id = $1")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (sha256_hex(body.as_bytes()), body)
}

/// Runs `statement` on a connection of the test's own to the server's database.
async fn sql(app: &TestApp, statement: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(app.database_url().expose())
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn bad_parameters_are_refused_by_name() {
    let app = TestApp::spawn().await;
    let base = "/api/compliance/evidence";
    let cases = [
        ("from=2026-01-01&to=2026-12-31", 400, "framework"),
        ("framework=soc2&to=2026-12-31", 400, "from"),
        ("framework=soc2&from=2026-01-01", 400, "to"),
        ("framework=soc2&from=2026-13-01&to=2026-12-31", 400, "from"),
        ("framework=soc2&from=2026-01-01&to=31/12/2026", 400, "to"),
        ("framework=soc2&from=2026-12-31&to=2026-01-01", 400, "from"),
        ("framework=soc2&from=0001-01-01&to=2026-01-01", 400, "from"),
        (
            "framework=soc2&from=2026-01-01&to=2026-12-31&format=pdf",
            400,
            "format",
        ),
    ];
    for (query, status, field) in cases {
        let response = app.get(&app.admin, &format!("{base}?{query}")).await;
        response.expect_error(status, "bad_request");
        assert_eq!(response.detail_fields(), [field], "{query}");
    }
    app.get(
        &app.admin,
        &format!("{base}?framework=sox&from=2026-01-01&to=2026-12-31"),
    )
    .await
    .expect_error(404, "not_found");
    let unknown = app
        .get(
            &app.admin,
            &format!("{base}?framework=soc2&control=A.6.3&from=2026-01-01&to=2026-12-31"),
        )
        .await;
    unknown.expect_error(404, "not_found");
    assert!(unknown.text.contains("control"), "{}", unknown.text);
    app.get(&app.admin, "/api/compliance/evidence/snapshots/999")
        .await
        .expect_error(404, "not_found");
    // Admins only.
    let reader = app.token("reader", "events:read").await;
    app.get(
        &reader,
        &format!("{base}?framework=soc2&from=2026-01-01&to=2026-12-31"),
    )
    .await
    .expect_error(403, "forbidden");
    // Nothing refused was kept.
    let list = app
        .get(&app.admin, "/api/compliance/evidence/snapshots")
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 0);
}
