//! The read-only Reporting API under `/v1`, as a black box over HTTP: the JSON shape of
//! every endpoint family (account, risk histories, users, groups, store purchases,
//! policies, training campaigns, enrollments, the empty phishing paths), the scope each
//! path requires, missing, unknown and expired tokens, account isolation, page and cursor
//! pagination (including rows inserted during a cursor walk and rejected cursors), the
//! NDJSON bulk export, 405 for every non-GET method, and per-token rate limits.
//!
//! The contract is `shared/reference/reporting-api.md`; the choices where it is silent are
//! the ones listed in the brief this suite was written from (scopes per path, `[]`/404 for
//! phishing, 400 `bad_request` for bad paging parameters, `rate_limited` with
//! `Retry-After`). Ids in `/v1` are the same ids `/api` answers for people, groups,
//! campaigns and enrolments; content ids are looked up by name in `/v1`.

mod common;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use coachloop_core::clock::Clock;
use common::{TestApp, TestResponse, start_time};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

// ---- shapes ---------------------------------------------------------------------------

/// The JSON type a key must have.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Num,
    Str,
    Bool,
    Null,
    Obj,
    IntArr,
    StrArr,
    ObjArr,
    StrOrNull,
    /// RFC 3339 UTC with milliseconds: `2026-11-01T12:00:00.000Z`.
    Ts,
    TsOrNull,
    /// `YYYY-MM-DD`.
    Date,
    DateOrNull,
    /// Exactly this string.
    Is(&'static str),
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

use Kind::*;

fn is_ts(text: &str) -> bool {
    text.len() == 24
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && DateTime::parse_from_rfc3339(text).is_ok()
}

fn is_date(text: &str) -> bool {
    text.len() == 10 && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

impl Kind {
    fn matches(self, v: &Value) -> bool {
        let all = |f: fn(&Value) -> bool| v.as_array().is_some_and(|a| a.iter().all(f));
        match self {
            Int => v.as_i64().is_some(),
            Num => v.is_number(),
            Str => v.is_string(),
            Bool => v.is_boolean(),
            Null => v.is_null(),
            Obj => v.is_object(),
            IntArr => all(|x| x.as_i64().is_some()),
            StrArr => all(Value::is_string),
            ObjArr => all(Value::is_object),
            StrOrNull => v.is_null() || v.is_string(),
            Ts => v.as_str().is_some_and(is_ts),
            TsOrNull => v.is_null() || v.as_str().is_some_and(is_ts),
            Date => v.as_str().is_some_and(is_date),
            DateOrNull => v.is_null() || v.as_str().is_some_and(is_date),
            Is(expected) => v.as_str() == Some(expected),
            OneOf(options) => v.as_str().is_some_and(|s| options.contains(&s)),
        }
    }
}

type Shape = &'static [(&'static str, Kind)];

/// Asserts `value` is an object holding every key of `shape` with its kind. Keys the
/// shape does not name are tolerated (a client ignores them).
#[track_caller]
fn assert_shape(value: &Value, shape: &[(&str, Kind)]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"));
    let wrong: Vec<String> = shape
        .iter()
        .filter_map(|(key, kind)| match object.get(*key) {
            None => Some(format!("`{key}` is missing")),
            Some(v) if !kind.matches(v) => Some(format!("`{key}` is {v}, expected {kind:?}")),
            Some(_) => None,
        })
        .collect();
    assert!(wrong.is_empty(), "{}\nin {value:#}", wrong.join("; "));
}

/// Asserts every element of `list` (an array) has `shape`; returns the elements.
#[track_caller]
fn assert_rows(list: &Value, shape: &[(&str, Kind)]) -> Vec<Value> {
    let rows = list
        .as_array()
        .unwrap_or_else(|| panic!("expected a bare JSON array, got {list}"));
    for row in rows {
        assert_shape(row, shape);
    }
    rows.clone()
}

#[track_caller]
fn assert_absent(value: &Value, keys: &[&str]) {
    for key in keys {
        assert!(value.get(*key).is_none(), "`{key}` must be absent: {value}");
    }
}

/// The shape without `key`.
fn without(shape: Shape, key: &str) -> Vec<(&'static str, Kind)> {
    shape.iter().copied().filter(|(k, _)| *k != key).collect()
}

const ACCOUNT: Shape = &[
    ("name", Str),
    ("type", Is("paid")),
    ("domains", StrArr),
    ("admins", ObjArr),
    ("subscription_level", Is("coachloop")),
    ("subscription_end_date", Null),
    ("number_of_seats", Int),
    ("current_risk_score", Num),
    ("risk_score_history", ObjArr),
];

const ADMIN: Shape = &[
    ("id", Int),
    ("first_name", Str),
    ("last_name", Str),
    ("email", Str),
];

const HISTORY_ROW: Shape = &[("risk_score", Num), ("date", Date)];

const USER: Shape = &[
    ("id", Int),
    ("employee_number", StrOrNull),
    ("first_name", StrOrNull),
    ("last_name", StrOrNull),
    ("job_title", StrOrNull),
    ("email", Str),
    ("phish_prone_percentage", Num),
    ("phone_number", StrOrNull),
    ("extension", StrOrNull),
    ("mobile_phone_number", StrOrNull),
    ("location", StrOrNull),
    ("division", StrOrNull),
    ("manager_name", StrOrNull),
    ("manager_email", StrOrNull),
    ("provisioning_managed", Bool),
    ("provisioning_guid", StrOrNull),
    ("groups", IntArr),
    ("current_risk_score", Num),
    ("aliases", StrArr),
    ("joined_on", Ts),
    ("last_sign_in", TsOrNull),
    ("status", OneOf(&["active", "archived"])),
    ("organization", StrOrNull),
    ("department", StrOrNull),
    ("language", StrOrNull),
    ("comment", StrOrNull),
    ("employee_start_date", DateOrNull),
    ("archived_at", TsOrNull),
    ("custom_field_1", StrOrNull),
    ("custom_field_2", StrOrNull),
    ("custom_field_3", StrOrNull),
    ("custom_field_4", StrOrNull),
    ("custom_date_1", StrOrNull),
    ("custom_date_2", StrOrNull),
];

const GROUP: Shape = &[
    ("id", Int),
    ("name", Str),
    (
        "group_type",
        OneOf(&["console_group", "smart_group", "adi_managed_group"]),
    ),
    ("provisioning_guid", StrOrNull),
    ("member_count", Int),
    ("current_risk_score", Num),
    ("status", OneOf(&["active", "archived"])),
];

const STORE_PURCHASE: Shape = &[
    ("store_purchase_id", Int),
    ("content_type", Is("Store Purchase")),
    ("name", Str),
    ("description", Str),
    ("type", Is("Training Module")),
    ("duration", Int),
    ("retired", Bool),
    ("retirement_date", TsOrNull),
    ("publish_date", Ts),
    ("publisher", Str),
    ("purchase_date", Ts),
    ("policy_url", Null),
];

const POLICY: Shape = &[
    ("policy_id", Int),
    ("content_type", Is("Uploaded Policy")),
    ("name", Str),
    ("minimum_time", Int),
    ("default_language", Is("en-us")),
    ("published", Bool),
];

const CAMPAIGN: Shape = &[
    ("campaign_id", Int),
    ("name", Str),
    ("groups", ObjArr),
    (
        "status",
        OneOf(&["Created", "In Progress", "Completed", "Closed"]),
    ),
    ("modules", ObjArr),
    ("content", ObjArr),
    (
        "duration_type",
        OneOf(&["Specific End Date", "Relative Duration"]),
    ),
    ("start_date", Ts),
    ("end_date", TsOrNull),
    ("relative_duration", StrOrNull),
    ("auto_enroll", Bool),
    ("allow_multiple_enrollments", Bool),
    ("completion_percentage", Int),
];

const CAMPAIGN_GROUP: Shape = &[("group_id", Int), ("name", Str)];

const ENROLLMENT: Shape = &[
    ("enrollment_id", Int),
    (
        "content_type",
        OneOf(&["Store Purchase", "Uploaded Policy"]),
    ),
    ("module_name", Str),
    ("user", Obj),
    ("campaign_name", Str),
    ("enrollment_date", Ts),
    ("start_date", TsOrNull),
    ("completion_date", TsOrNull),
    (
        "status",
        OneOf(&[
            "Not Started",
            "In Progress",
            "Completed",
            "Passed",
            "Past Due",
        ]),
    ),
    ("time_spent", Int),
    ("policy_acknowledged", Bool),
];

const ENROLLMENT_USER: Shape = &[
    ("id", Int),
    ("first_name", StrOrNull),
    ("last_name", StrOrNull),
    ("email", Str),
];

// ---- small helpers --------------------------------------------------------------------

fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn id(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer `{key}` in {value}"))
}

/// The `key` of every row, in order.
fn ids(rows: &[Value], key: &str) -> Vec<i64> {
    rows.iter().map(|r| id(r, key)).collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[track_caller]
fn assert_request_id(response: &TestResponse) {
    assert!(
        response.request_id().is_some_and(|id| !id.is_empty()),
        "{} without X-Request-Id",
        response.status
    );
}

/// GET with the token, expecting 200 and a body.
async fn read(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get(token, path).await;
    assert_request_id(&response);
    assert_eq!(
        response.status.as_u16(),
        200,
        "GET {path}: {}",
        response.text
    );
    response.json()
}

/// A page-mode list read with the admin token: the bare array's rows.
async fn list(app: &TestApp, path: &str) -> Vec<Value> {
    list_as(app, &app.admin, path).await
}

async fn list_as(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let body = read(app, token, path).await;
    body.as_array()
        .unwrap_or_else(|| panic!("GET {path} is not a bare array: {body}"))
        .clone()
}

/// `path` with `query` appended after `?` or `&`.
fn with_query(path: &str, query: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{query}")
}

/// One cursor-mode call: `cursor` is `"true"` for the first.
async fn cursor_page(
    app: &TestApp,
    token: &str,
    path: &str,
    cursor: &str,
    per_page: u32,
) -> TestResponse {
    app.send(
        app.request(Method::GET, path, Some(token))
            .query(&[("cursor", cursor), ("per_page", &per_page.to_string())]),
    )
    .await
}

/// Reads a whole list in cursor mode; returns its rows and the cursors seen. `between`
/// runs after each page (to insert rows mid-walk).
async fn walk(
    app: &TestApp,
    path: &str,
    per_page: u32,
    mut between: impl AsyncFnMut(usize),
) -> (Vec<Value>, Vec<String>) {
    let mut rows = Vec::new();
    let mut cursors = Vec::new();
    let mut cursor = "true".to_owned();
    for call in 0.. {
        assert!(call < 1000, "cursor walk of {path} does not end");
        let body = cursor_page(app, &app.admin, path, &cursor, per_page)
            .await
            .expect(200);
        assert_shape(&body, &[("data", ObjArr), ("pagination", Obj)]);
        assert_eq!(body["pagination"]["per_page"], per_page, "{body}");
        let page = body["data"].as_array().unwrap();
        assert!(page.len() <= per_page as usize, "{body}");
        rows.extend(page.iter().cloned());
        match &body["pagination"]["next_cursor"] {
            Value::Null => break,
            Value::String(next) => {
                assert!(!next.is_empty());
                cursors.push(next.clone());
                cursor = next.clone();
            }
            other => panic!("next_cursor is neither null nor a string: {other}"),
        }
        between(call).await;
    }
    (rows, cursors)
}

/// A token made through `POST /api/tokens` with `extra` fields; returns the secret.
async fn api_token(app: &TestApp, name: &str, scopes: &[&str], extra: Value) -> String {
    let mut body = json!({"name": name, "scopes": scopes});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.post_json(&app.admin, "/api/tokens", &body)
        .await
        .expect(201)["data"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned()
}

async fn user(app: &TestApp, body: Value) -> i64 {
    id(&app.create_user(&body).await, "id")
}

async fn group(app: &TestApp, body: Value) -> i64 {
    let created = app
        .post_json(&app.admin, "/api/groups", &body)
        .await
        .expect(201);
    id(&created["data"], "id")
}

async fn add_member(app: &TestApp, group: i64, user: i64) {
    app.post_json(
        &app.admin,
        &format!("/api/groups/{group}/members"),
        &json!({ "user_id": user }),
    )
    .await
    .expect(201);
}

/// The `/api/content` id of the content titled `title`.
async fn content_id(app: &TestApp, title: &str) -> i64 {
    let list = app
        .get(&app.admin, "/api/content?per_page=500")
        .await
        .expect(200);
    let found = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"] == title)
        .unwrap_or_else(|| panic!("no content titled {title}"));
    id(found, "id")
}

async fn campaign(app: &TestApp, body: Value) -> i64 {
    let created = app
        .post_json(&app.admin, "/api/campaigns", &body)
        .await
        .expect(201);
    id(&created["data"], "id")
}

/// The row of `rows` whose `name` is `name`.
fn named<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row named {name} in {rows:?}"))
}

// ---- the populated account ------------------------------------------------------------

const MODULE: &str = "Cyber Hygiene: Password Management";
const POLICY_NAME: &str = "Acceptable Use";
const OWN_MODULE: &str = "VPN basics";

/// What [`populate`] made, by `/api` id.
struct Fixture {
    /// Everything filled in; member of `finance` (by hand) and `sales` (by criteria).
    ana: i64,
    /// Another email domain, in no group.
    bob: i64,
    /// Enrolled by the all-users campaign, then archived.
    cy: i64,
    finance: i64,
    sales: i64,
    /// An archived manual group.
    old: i64,
    /// Module and policy, to `finance`, relative duration.
    targeted: i64,
    /// The module, to all users, with an end date.
    everyone: i64,
    /// Every enrolment, in id order.
    enrollments: Vec<i64>,
    /// Ana's policy enrolment, completed over xAPI.
    completed: i64,
}

async fn populate(app: &TestApp) -> Fixture {
    let sales = group(
        app,
        json!({"name": "Sales", "criteria": {"user": {"attribute": "department", "equals": "Sales"}}}),
    )
    .await;
    let ana = user(
        app,
        json!({
            "email": "ana@acme.example", "employee_number": "19425",
            "first_name": "Ana", "last_name": "Lima", "job_title": "VP of Sales",
            "location": "Office A", "division": "Commercial", "department": "Sales",
            "organization": "Acme", "manager_name": "Mia Lee",
            "manager_email": "mia@acme.example", "language": "English - United States",
            "employee_start_date": "2024-02-01", "custom_field_1": "blue",
            "custom_date_1": "2025-01-15",
            "aliases": ["ana.l@acme.example", "ana-laptop"]
        }),
    )
    .await;
    let bob = user(
        app,
        json!({"email": "bob@beta.example", "first_name": "Bob", "department": "Legal"}),
    )
    .await;
    let cy = user(app, json!({"email": "cy@gamma.example"})).await;
    let finance = group(app, json!({"name": "Finance"})).await;
    add_member(app, finance, ana).await;
    let old = group(app, json!({"name": "Old team"})).await;
    app.delete(&app.admin, &format!("/api/groups/{old}"))
        .await
        .expect(200);
    // A score for Ana: one level-10 event, whole until it expires.
    app.submit_one(
        &json!({"target_user": "ana@acme.example", "event_type": "t",
        "risk_level": 10, "risk_decay_mode": 1, "risk_expire_date": "2027-12-31"}),
    )
    .await;

    app.post_json(
        &app.admin,
        "/api/content",
        &json!({"kind": "module", "slug": "vpn-basics", "title": OWN_MODULE,
            "summary": "Why and when.", "minutes": 3, "pass_mark": 50, "body": "## Use it",
            "quiz": [{"question": "When?", "choices": ["Always", "Never"], "answer": 0,
                      "explanation": "Always."}]}),
    )
    .await
    .expect(201);
    let module = content_id(app, MODULE).await;
    let policy = content_id(app, POLICY_NAME).await;
    let targeted = campaign(
        app,
        json!({"name": "Finance coaching", "content": [module, policy], "groups": [finance],
               "relative_duration": "P14D"}),
    )
    .await;
    let everyone = campaign(
        app,
        json!({"name": "Everyone", "content": [module], "groups": [0],
               "end_date": "2026-11-15T00:00:00Z"}),
    )
    .await;
    app.delete(&app.admin, &format!("/api/users/{cy}"))
        .await
        .expect(200);

    // Ana reads the policy, as another LMS reports over xAPI.
    app.clock.advance(Duration::hours(2));
    let lms = app.token("lms", "events:write").await;
    app.post_xapi(
        &lms,
        &json!({"actor": {"mbox": "mailto:ana@acme.example"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": "https://lms.example.com/activities/acceptable-use"},
            "timestamp": "2026-11-01T13:00:00Z"}),
    )
    .await
    .expect(200);

    let enrolled = app
        .get(&app.admin, "/api/enrollments?per_page=500")
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        enrolled.len(),
        5,
        "2 targeted + 3 for everyone: {enrolled:?}"
    );
    let completed = enrolled
        .iter()
        .find(|e| e["user_id"] == ana && e["content_id"] == policy)
        .expect("Ana's policy enrolment");
    assert_eq!(completed["status"], "Completed");
    let mut enrollments = ids(&enrolled, "id");
    enrollments.sort_unstable();
    Fixture {
        ana,
        bob,
        cy,
        finance,
        sales,
        old,
        targeted,
        everyone,
        enrollments,
        completed: id(completed, "id"),
    }
}

/// The `/v1` id of the store purchase, or the policy, named `name`.
async fn v1_content_id(app: &TestApp, kind: &str, name: &str) -> i64 {
    let (path, key) = match kind {
        "module" => (
            "/v1/training/store_purchases?per_page=500",
            "store_purchase_id",
        ),
        _ => ("/v1/training/policies?per_page=500", "policy_id"),
    };
    id(named(&list(app, path).await, name), key)
}

/// Every reporting path with its scope and what a token with that scope gets. The
/// phishing single reads answer 404; everything else 200.
async fn reporting_paths(app: &TestApp, fx: &Fixture) -> Vec<(String, &'static str, u16)> {
    let module = v1_content_id(app, "module", MODULE).await;
    let policy = v1_content_id(app, "policy", POLICY_NAME).await;
    let (ana, finance, targeted, e) = (fx.ana, fx.finance, fx.targeted, fx.enrollments[0]);
    let ok = |path: String, scope| (path, scope, 200);
    vec![
        ok("/v1/account".into(), "account:read"),
        ok("/v1/account/risk_score_history".into(), "account:read"),
        ok("/v1/users".into(), "user:read"),
        ok(format!("/v1/users/{ana}"), "user:read"),
        ok(format!("/v1/users/{ana}/risk_score_history"), "user:read"),
        ok("/v1/groups".into(), "group:read"),
        ok(format!("/v1/groups/{finance}"), "group:read"),
        ok(format!("/v1/groups/{finance}/members"), "group:read"),
        ok(
            format!("/v1/groups/{finance}/risk_score_history"),
            "group:read",
        ),
        ok("/v1/training/store_purchases".into(), "program:read"),
        ok(
            format!("/v1/training/store_purchases/{module}"),
            "program:read",
        ),
        ok("/v1/training/policies".into(), "program:read"),
        ok(format!("/v1/training/policies/{policy}"), "program:read"),
        ok("/v1/policies".into(), "program:read"),
        ok(format!("/v1/policies/{policy}"), "program:read"),
        ok("/v1/training/campaigns".into(), "campaign:read"),
        ok(
            format!("/v1/training/campaigns/{targeted}"),
            "campaign:read",
        ),
        ok("/v1/training/enrollments".into(), "enrollments:read"),
        ok(format!("/v1/training/enrollments/{e}"), "enrollments:read"),
        ok(format!("/v1/training/enrollment/{e}"), "enrollments:read"),
        ok("/v1/phishing/campaigns".into(), "campaign:read"),
        ok("/v1/phishing/security_tests".into(), "campaign:read"),
        ok(
            "/v1/phishing/campaigns/1/security_tests".into(),
            "campaign:read",
        ),
        ("/v1/phishing/campaigns/1".into(), "campaign:read", 404),
        ("/v1/phishing/security_tests/1".into(), "campaign:read", 404),
    ]
}

/// The page-mode lists of the fixture with the key of their rows' ids.
fn lists(fx: &Fixture) -> Vec<(String, &'static str)> {
    vec![
        ("/v1/users".into(), "id"),
        ("/v1/groups".into(), "id"),
        (format!("/v1/groups/{}/members", fx.finance), "id"),
        ("/v1/training/store_purchases".into(), "store_purchase_id"),
        ("/v1/training/policies".into(), "policy_id"),
        ("/v1/training/campaigns".into(), "campaign_id"),
        ("/v1/training/enrollments".into(), "enrollment_id"),
    ]
}

// ---- shapes, endpoint family by endpoint family ---------------------------------------

#[tokio::test]
async fn the_account_lists_active_domains_seats_admins_and_risk() {
    let app = TestApp::spawn().await;
    populate(&app).await;
    app.store.record_daily_risk().await.unwrap();
    let added = app
        .post_json(
            &app.admin,
            "/api/admins",
            &json!({"email": "ada@acme.example", "first_name": "Ada", "last_name": "Admin"}),
        )
        .await
        .expect(201);
    let ada = id(&added["data"], "id");
    let admins = app.get(&app.admin, "/api/admins").await.expect(200);
    assert!(admins.to_string().contains("ada@acme.example"), "{admins}");

    let account = read(&app, &app.admin, "/v1/account").await;
    assert_shape(&account, ACCOUNT);
    // Cy, archived, is neither a seat nor a domain.
    assert_eq!(
        strings(&account["domains"]),
        ["acme.example", "beta.example"]
    );
    assert_eq!(account["number_of_seats"], 2);
    let admins = assert_rows(&account["admins"], ADMIN);
    let listed = admins
        .iter()
        .find(|a| a["email"] == "ada@acme.example")
        .unwrap_or_else(|| panic!("Ada among the admins: {account}"));
    assert_eq!(id(listed, "id"), ada);
    assert_eq!(listed["first_name"], "Ada");
    assert_eq!(listed["last_name"], "Admin");
    let risk = app.get(&app.admin, "/api/account/risk").await.expect(200);
    assert_eq!(
        account["current_risk_score"],
        risk["data"]["current_risk_score"]
    );
    let history = assert_rows(&account["risk_score_history"], HISTORY_ROW);
    assert_eq!(history.last().unwrap()["date"], "2026-11-01", "{account}");

    // The brief leaves the status of a removal open: any success.
    let removed = app.delete(&app.admin, &format!("/api/admins/{ada}")).await;
    assert!(removed.status.is_success(), "{}", removed.text);
    let account = read(&app, &app.admin, "/v1/account").await;
    assert!(
        !account["admins"].to_string().contains("ada@acme.example"),
        "a removed admin is not listed: {account}"
    );
}

#[tokio::test]
async fn administrators_refuse_repeats_bad_emails_and_other_accounts_ids() {
    let app = TestApp::spawn().await;
    let ada = json!({"email": "ada@acme.example", "first_name": "Ada"});
    let added = app
        .post_json(&app.admin, "/api/admins", &ada)
        .await
        .expect(201);
    let ada_id = id(&added["data"], "id");
    // The same address in another case is the same administrator.
    let again = json!({"email": "ADA@acme.example"});
    app.post_json(&app.admin, "/api/admins", &again)
        .await
        .expect_error(409, "conflict");
    let bad = app
        .post_json(&app.admin, "/api/admins", &json!({"email": "not an email"}))
        .await;
    bad.expect_error(422, "invalid");
    assert_eq!(bad.detail_fields(), ["email"]);
    // Another account neither sees nor removes ours.
    let (_, other) = app.other_account("elsewhere").await;
    let theirs = app.get(&other, "/api/admins").await.expect(200);
    assert_eq!(theirs["data"], json!([]));
    app.delete(&other, &format!("/api/admins/{ada_id}"))
        .await
        .expect_error(404, "not_found");
    // Only `admin` tokens manage administrators.
    let reader = app.token("reader", "account:read").await;
    app.get(&reader, "/api/admins")
        .await
        .expect_error(403, "forbidden");
    app.delete(&app.admin, &format!("/api/admins/{ada_id}"))
        .await;
    app.delete(&app.admin, &format!("/api/admins/{ada_id}"))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn risk_histories_are_oldest_first_and_six_months_unless_full() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let days = ["2026-11-01", "2027-05-20", "2027-06-01"];
    for day in days {
        app.clock.set(ts(&format!("{day}T12:00:00Z")));
        app.store.record_daily_risk().await.unwrap();
    }
    for path in [
        "/v1/account/risk_score_history".to_owned(),
        format!("/v1/users/{}/risk_score_history", fx.ana),
        format!("/v1/groups/{}/risk_score_history", fx.finance),
    ] {
        // On 2027-06-01, 2026-11-01 is seven months back: only with `full`.
        let recent = assert_rows(&read(&app, &app.admin, &path).await, HISTORY_ROW);
        let dates: Vec<_> = recent.iter().map(|r| r["date"].clone()).collect();
        assert_eq!(dates, [days[1], days[2]], "{path}");
        let full = assert_rows(
            &read(&app, &app.admin, &with_query(&path, "full=true")).await,
            HISTORY_ROW,
        );
        let dates: Vec<_> = full.iter().map(|r| r["date"].clone()).collect();
        assert_eq!(dates, days, "{path}?full=true");
    }
    // Ana's score (one level-10 event, whole until 2027-12-31) is in her history.
    let ana = read(
        &app,
        &app.admin,
        &format!("/v1/users/{}/risk_score_history", fx.ana),
    )
    .await;
    assert!(ana[0]["risk_score"].as_f64().unwrap() > 0.0, "{ana}");
}

#[tokio::test]
async fn users_have_the_reference_shape_filters_and_expansion() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let all = list(&app, "/v1/users").await;
    for row in &all {
        assert_shape(row, USER);
    }
    let ids_of = |rows: &[Value]| ids(rows, "id");
    let sorted = {
        let mut v = ids_of(&all);
        v.sort_unstable();
        v
    };
    assert_eq!(ids_of(&all), sorted, "rows in id order");

    let ana = read(&app, &app.admin, &format!("/v1/users/{}", fx.ana)).await;
    assert_shape(&ana, USER);
    assert_eq!(all.iter().find(|u| u["id"] == fx.ana), Some(&ana));
    for (key, value) in [
        ("email", "ana@acme.example"),
        ("employee_number", "19425"),
        ("first_name", "Ana"),
        ("last_name", "Lima"),
        ("job_title", "VP of Sales"),
        ("location", "Office A"),
        ("division", "Commercial"),
        ("department", "Sales"),
        ("organization", "Acme"),
        ("manager_name", "Mia Lee"),
        ("manager_email", "mia@acme.example"),
        ("language", "English - United States"),
        ("employee_start_date", "2024-02-01"),
        ("custom_field_1", "blue"),
        ("custom_date_1", "2025-01-15"),
        ("status", "active"),
        ("joined_on", "2026-11-01T12:00:00.000Z"),
    ] {
        assert_eq!(ana[key], value, "{key} of {ana}");
    }
    assert_eq!(ana["phish_prone_percentage"].as_f64(), Some(0.0));
    assert!(ana["archived_at"].is_null());
    assert!(ana["last_sign_in"].is_null());
    let mut aliases = strings(&ana["aliases"]);
    aliases.sort();
    assert_eq!(aliases, ["ana-laptop", "ana.l@acme.example"]);
    let groups: BTreeSet<i64> = ana["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_i64().unwrap())
        .collect();
    assert_eq!(groups, BTreeSet::from([fx.finance, fx.sales]));
    let risk = app
        .get(&app.admin, &format!("/api/users/{}/risk", fx.ana))
        .await
        .expect(200);
    assert_eq!(
        ana["current_risk_score"],
        risk["data"]["current_risk_score"]
    );
    assert!(ana["current_risk_score"].as_f64().unwrap() > 0.0);

    let cy = read(&app, &app.admin, &format!("/v1/users/{}", fx.cy)).await;
    assert_shape(&cy, USER);
    assert_eq!(cy["status"], "archived");
    assert!(
        is_ts(cy["archived_at"].as_str().unwrap_or_default()),
        "{cy}"
    );
    let bob = read(&app, &app.admin, &format!("/v1/users/{}", fx.bob)).await;
    assert_eq!(bob["groups"], json!([]));

    // Filters.
    let active = list(&app, "/v1/users?status=active").await;
    assert_eq!(ids_of(&active), [fx.ana, fx.bob]);
    let archived = list(&app, "/v1/users?status=archived").await;
    assert_eq!(ids_of(&archived), [fx.cy]);
    for group in [fx.finance, fx.sales] {
        let members = list(&app, &format!("/v1/users?group_id={group}")).await;
        assert_eq!(ids_of(&members), [fx.ana], "group_id={group}");
    }

    // expand=group: Group objects instead of ids.
    let expanded = list(&app, "/v1/users?expand=group&status=active").await;
    let ana_expanded = expanded.iter().find(|u| u["id"] == fx.ana).unwrap();
    let groups = assert_rows(&ana_expanded["groups"], GROUP);
    let expanded_ids: BTreeSet<i64> = ids(&groups, "id").into_iter().collect();
    assert_eq!(expanded_ids, BTreeSet::from([fx.finance, fx.sales]));
    assert_eq!(named(&groups, "Finance")["group_type"], "console_group");

    app.get(&app.admin, "/v1/users/999999")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn groups_have_types_counts_members_and_a_status_filter() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let all = list(&app, "/v1/groups").await;
    for row in &all {
        assert_shape(row, GROUP);
    }
    let active = list(&app, "/v1/groups?status=active").await;
    assert_eq!(ids(&active, "id"), [fx.sales, fx.finance]);
    let archived = list(&app, "/v1/groups?status=archived").await;
    assert_eq!(ids(&archived, "id"), [fx.old]);
    assert_eq!(archived[0]["status"], "archived");

    for (group, group_type) in [(fx.finance, "console_group"), (fx.sales, "smart_group")] {
        let read_one = read(&app, &app.admin, &format!("/v1/groups/{group}")).await;
        assert_shape(&read_one, GROUP);
        assert_eq!(read_one["group_type"], group_type);
        assert_eq!(read_one["member_count"], 1);
        assert_eq!(read_one["status"], "active");
        assert!(read_one["provisioning_guid"].is_null());
        assert_eq!(all.iter().find(|g| g["id"] == group), Some(&read_one));

        let members = list(&app, &format!("/v1/groups/{group}/members")).await;
        for member in &members {
            assert_shape(member, USER);
        }
        assert_eq!(ids(&members, "id"), [fx.ana]);
        assert_eq!(members[0]["email"], "ana@acme.example");
    }
    let history = read(
        &app,
        &app.admin,
        &format!("/v1/groups/{}/risk_score_history", fx.finance),
    )
    .await;
    assert_rows(&history, HISTORY_ROW);
    for path in ["/v1/groups/999999", "/v1/groups/999999/members"] {
        app.get(&app.admin, path)
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn store_purchases_and_policies_list_the_library_and_own_modules() {
    let app = TestApp::spawn().await;
    populate(&app).await;
    let modules = list(&app, "/v1/training/store_purchases").await;
    for row in &modules {
        assert_shape(row, STORE_PURCHASE);
    }
    assert!(modules.len() >= 9, "8 built-in and one own: {modules:?}");
    let ids_in_order = ids(&modules, "store_purchase_id");
    assert!(ids_in_order.windows(2).all(|w| w[0] < w[1]), "id order");
    named(&modules, MODULE);
    named(&modules, OWN_MODULE);
    assert!(
        modules.iter().all(|m| m["name"] != POLICY_NAME),
        "policies are not store purchases"
    );
    let own = named(&modules, OWN_MODULE);
    assert_eq!(own["duration"], 3);
    assert_eq!(own["retired"], false);
    let single = read(
        &app,
        &app.admin,
        &format!(
            "/v1/training/store_purchases/{}",
            id(own, "store_purchase_id")
        ),
    )
    .await;
    assert_shape(&single, STORE_PURCHASE);
    assert_eq!(&single, own);

    let policies = list(&app, "/v1/training/policies").await;
    for row in &policies {
        assert_shape(row, POLICY);
    }
    assert!(policies.len() >= 3, "{policies:?}");
    assert!(policies.iter().all(|p| p["name"] != MODULE));
    let policy = named(&policies, POLICY_NAME);
    let single = read(
        &app,
        &app.admin,
        &format!("/v1/training/policies/{}", id(policy, "policy_id")),
    )
    .await;
    assert_shape(&single, POLICY);
    assert_eq!(&single, policy);

    // The paths older clients (kb4.py) call answer the same.
    assert_eq!(list(&app, "/v1/policies").await, policies);
    let alias = read(
        &app,
        &app.admin,
        &format!("/v1/policies/{}", id(policy, "policy_id")),
    )
    .await;
    assert_eq!(alias, single);

    for path in [
        "/v1/training/store_purchases/999999",
        "/v1/training/policies/999999",
        "/v1/policies/999999",
    ] {
        app.get(&app.admin, path)
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn campaigns_show_groups_content_durations_and_optional_percentages() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let module = v1_content_id(&app, "module", MODULE).await;
    let policy = v1_content_id(&app, "policy", POLICY_NAME).await;
    let campaigns = list(&app, "/v1/training/campaigns").await;
    for row in &campaigns {
        assert_shape(row, CAMPAIGN);
        assert_rows(&row["groups"], CAMPAIGN_GROUP);
        assert_rows(&row["modules"], STORE_PURCHASE);
        let percentage = row["completion_percentage"].as_i64().unwrap();
        assert!((0..=100).contains(&percentage), "{row}");
    }
    assert_eq!(ids(&campaigns, "campaign_id"), [fx.targeted, fx.everyone]);

    let targeted = &campaigns[0];
    assert_eq!(targeted["name"], "Finance coaching");
    assert_eq!(
        targeted["groups"],
        json!([{"group_id": fx.finance, "name": "Finance"}])
    );
    assert_eq!(targeted["status"], "In Progress");
    assert_eq!(targeted["duration_type"], "Relative Duration");
    assert!(targeted["end_date"].is_null());
    assert!(
        targeted["relative_duration"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{targeted}"
    );
    assert_eq!(targeted["start_date"], "2026-11-01T12:00:00.000Z");
    assert_eq!(targeted["auto_enroll"], true);
    assert_eq!(targeted["allow_multiple_enrollments"], false);
    let modules = targeted["modules"].as_array().unwrap();
    assert_eq!(ids(modules, "store_purchase_id"), [module]);
    let content = targeted["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{targeted}");
    let as_module = content
        .iter()
        .find(|c| c["content_type"] == "Store Purchase")
        .expect("the module among the content");
    assert_shape(as_module, STORE_PURCHASE);
    assert_eq!(id(as_module, "store_purchase_id"), module);
    let as_policy = content
        .iter()
        .find(|c| c["content_type"] == "Uploaded Policy")
        .expect("the policy among the content");
    assert_shape(as_policy, POLICY);
    assert_eq!(id(as_policy, "policy_id"), policy);

    let everyone = &campaigns[1];
    assert_eq!(
        everyone["groups"],
        json!([{"group_id": 0, "name": "All Users"}])
    );
    assert_eq!(everyone["duration_type"], "Specific End Date");
    assert_eq!(everyone["end_date"], "2026-11-15T00:00:00.000Z");
    assert!(everyone["relative_duration"].is_null());

    let single = read(
        &app,
        &app.admin,
        &format!("/v1/training/campaigns/{}", fx.targeted),
    )
    .await;
    assert_eq!(&single, targeted);

    // exclude_percentages=true: the key is gone, list and single alike.
    let trimmed = without(CAMPAIGN, "completion_percentage");
    for row in list(&app, "/v1/training/campaigns?exclude_percentages=true").await {
        assert_shape(&row, &trimmed);
        assert_absent(&row, &["completion_percentage"]);
    }
    let single = read(
        &app,
        &app.admin,
        &format!(
            "/v1/training/campaigns/{}?exclude_percentages=true",
            fx.everyone
        ),
    )
    .await;
    assert_shape(&single, &trimmed);
    assert_absent(&single, &["completion_percentage"]);

    app.get(&app.admin, "/v1/training/campaigns/999999")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn enrollments_have_the_reference_shape_optional_ids_and_filters() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let module = v1_content_id(&app, "module", MODULE).await;
    const OPTIONAL: [&str; 2] = ["campaign_id", "store_purchase_id"];

    let all = list(&app, "/v1/training/enrollments").await;
    assert_eq!(ids(&all, "enrollment_id"), fx.enrollments);
    for row in &all {
        assert_shape(row, ENROLLMENT);
        assert_shape(&row["user"], ENROLLMENT_USER);
        assert_absent(row, &OPTIONAL);
        assert_absent(&row["user"], &["employee_number"]);
        let expected_type = if row["module_name"] == POLICY_NAME {
            "Uploaded Policy"
        } else {
            "Store Purchase"
        };
        assert_eq!(row["content_type"], expected_type, "{row}");
    }
    let completed = all
        .iter()
        .find(|e| e["enrollment_id"] == fx.completed)
        .unwrap();
    assert_eq!(completed["status"], "Completed");
    assert_eq!(completed["completion_date"], "2026-11-01T13:00:00.000Z");
    assert_eq!(completed["module_name"], POLICY_NAME);
    assert_eq!(completed["campaign_name"], "Finance coaching");
    assert_eq!(completed["user"]["id"], fx.ana);
    assert_eq!(completed["user"]["email"], "ana@acme.example");
    assert_eq!(completed["user"]["first_name"], "Ana");
    assert_eq!(completed["user"]["last_name"], "Lima");

    // include_* flags add exactly their key.
    let with_campaign = list(&app, "/v1/training/enrollments?include_campaign_id=true").await;
    for row in &with_campaign {
        assert_shape(row, &[("campaign_id", Int)]);
        assert_absent(row, &["store_purchase_id"]);
        let expected = if row["campaign_name"] == "Everyone" {
            fx.everyone
        } else {
            fx.targeted
        };
        assert_eq!(row["campaign_id"], expected, "{row}");
    }
    let with_module = list(
        &app,
        "/v1/training/enrollments?include_store_purchase_id=true",
    )
    .await;
    for row in with_module
        .iter()
        .filter(|r| r["content_type"] == "Store Purchase")
    {
        assert_eq!(row["store_purchase_id"], module, "{row}");
        assert_absent(row, &["campaign_id"]);
    }
    let with_number = list(
        &app,
        "/v1/training/enrollments?include_employee_number=true",
    )
    .await;
    for row in &with_number {
        assert_shape(&row["user"], &[("employee_number", StrOrNull)]);
        assert_absent(row, &OPTIONAL);
        if row["user"]["id"] == fx.ana {
            assert_eq!(row["user"]["employee_number"], "19425");
        }
    }
    let everything = list(
        &app,
        "/v1/training/enrollments?include_campaign_id=true&include_store_purchase_id=true\
         &include_employee_number=true",
    )
    .await;
    for row in &everything {
        assert_shape(row, &[("campaign_id", Int)]);
        assert_shape(&row["user"], &[("employee_number", StrOrNull)]);
    }

    // Filters.
    let users_of =
        |rows: &[Value]| -> Vec<i64> { rows.iter().map(|r| id(&r["user"], "id")).collect() };
    let ana = list(
        &app,
        &format!("/v1/training/enrollments?user_id={}", fx.ana),
    )
    .await;
    assert_eq!(ana.len(), 3, "{ana:?}");
    assert!(users_of(&ana).iter().all(|u| *u == fx.ana));
    let targeted = list(
        &app,
        &format!("/v1/training/enrollments?campaign_id={}", fx.targeted),
    )
    .await;
    assert_eq!(targeted.len(), 2, "{targeted:?}");
    assert!(
        targeted
            .iter()
            .all(|e| e["campaign_name"] == "Finance coaching")
    );
    let of_module = list(
        &app,
        &format!("/v1/training/enrollments?store_purchase_id={module}"),
    )
    .await;
    assert_eq!(of_module.len(), 4, "{of_module:?}");
    assert!(of_module.iter().all(|e| e["module_name"] == MODULE));
    assert!(users_of(&all).contains(&fx.cy));
    let current = list(&app, "/v1/training/enrollments?exclude_archived_users=true").await;
    assert_eq!(current.len(), 4, "{current:?}");
    assert!(!users_of(&current).contains(&fx.cy));

    // One enrolment, by the plural path and the singular alias.
    let path = format!("/v1/training/enrollments/{}", fx.completed);
    let single = read(&app, &app.admin, &path).await;
    assert_shape(&single, ENROLLMENT);
    assert_absent(&single, &OPTIONAL);
    assert_eq!(&single, completed);
    let alias = read(
        &app,
        &app.admin,
        &format!("/v1/training/enrollment/{}", fx.completed),
    )
    .await;
    assert_eq!(alias, single);
    let with_id = read(
        &app,
        &app.admin,
        &with_query(&path, "include_campaign_id=true"),
    )
    .await;
    assert_eq!(with_id["campaign_id"], fx.targeted);
    for path in [
        "/v1/training/enrollments/999999",
        "/v1/training/enrollment/999999",
    ] {
        app.get(&app.admin, path)
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn phishing_lists_are_empty_and_single_reads_not_found() {
    let app = TestApp::spawn().await;
    populate(&app).await;
    for path in [
        "/v1/phishing/campaigns",
        "/v1/phishing/security_tests",
        "/v1/phishing/campaigns/1/security_tests",
    ] {
        assert_eq!(read(&app, &app.admin, path).await, json!([]), "{path}");
    }
    for path in ["/v1/phishing/campaigns/1", "/v1/phishing/security_tests/1"] {
        let response = app.get(&app.admin, path).await;
        assert_request_id(&response);
        response.expect_error(404, "not_found");
    }
}

// ---- authentication and authorisation -------------------------------------------------

#[tokio::test]
async fn each_scope_opens_its_paths_and_no_others() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let paths = reporting_paths(&app, &fx).await;
    let scopes: BTreeSet<&str> = paths.iter().map(|(_, scope, _)| *scope).collect();
    for scope in scopes {
        let token = app.token(&format!("only {scope}"), scope).await;
        for (path, needed, allowed) in &paths {
            let response = app.get(&token, path).await;
            assert_request_id(&response);
            if *needed == scope {
                assert_eq!(
                    response.status.as_u16(),
                    *allowed,
                    "{scope} on {path}: {}",
                    response.text
                );
            } else {
                assert_eq!(response.status.as_u16(), 403, "{scope} on {path}");
                response.expect_error(403, "forbidden");
            }
        }
    }
    // admin reads everything; a token with no reporting scope nothing.
    let writer = app.token("writer", "events:write").await;
    for (path, _, allowed) in &paths {
        assert_eq!(
            app.get(&app.admin, path).await.status.as_u16(),
            *allowed,
            "admin on {path}"
        );
        app.get(&writer, path).await.expect_error(403, "forbidden");
    }
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_are_unauthorized() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let paths = reporting_paths(&app, &fx).await;
    let expiry = app.clock.now() + Duration::days(1);
    let expiring = app
        .token_in(app.account, "expiring", "admin", Some(expiry))
        .await;
    app.clock.set(expiry + Duration::seconds(1));
    for (path, _, _) in &paths {
        let missing = app.send(app.request(Method::GET, path, None)).await;
        assert_request_id(&missing);
        missing.expect_error(401, "unauthorized");
        app.get("cl_not_a_token", path)
            .await
            .expect_error(401, "unauthorized");
        let expired = app.get(&expiring, path).await;
        assert_request_id(&expired);
        expired.expect_error(401, "unauthorized");
    }
}

#[tokio::test]
async fn another_accounts_ids_are_not_found_and_its_lists_hold_none_of_ours() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let module = v1_content_id(&app, "module", OWN_MODULE).await;
    let policy = v1_content_id(&app, "policy", POLICY_NAME).await;
    let (_, other) = app.other_account("globex").await;
    for path in [
        format!("/v1/users/{}", fx.ana),
        format!("/v1/users/{}/risk_score_history", fx.ana),
        format!("/v1/groups/{}", fx.finance),
        format!("/v1/groups/{}/members", fx.finance),
        format!("/v1/groups/{}/risk_score_history", fx.finance),
        format!("/v1/training/store_purchases/{module}"),
        format!("/v1/training/policies/{policy}"),
        format!("/v1/training/campaigns/{}", fx.targeted),
        format!("/v1/training/enrollments/{}", fx.completed),
        format!("/v1/training/enrollment/{}", fx.completed),
    ] {
        app.get(&other, &path).await.expect_error(404, "not_found");
    }
    for path in [
        "/v1/users",
        "/v1/groups",
        "/v1/training/campaigns",
        "/v1/training/enrollments",
    ] {
        assert_eq!(
            list_as(&app, &other, path).await,
            Vec::<Value>::new(),
            "{path}"
        );
    }
    // Each account has its own copy of the library: none of our rows, by id or name.
    let ours = list(&app, "/v1/training/store_purchases").await;
    let theirs = list_as(&app, &other, "/v1/training/store_purchases").await;
    assert!(theirs.iter().all(|m| m["name"] != OWN_MODULE));
    let our_ids: BTreeSet<i64> = ids(&ours, "store_purchase_id").into_iter().collect();
    assert!(
        ids(&theirs, "store_purchase_id")
            .iter()
            .all(|i| !our_ids.contains(i))
    );
    let ours = list(&app, "/v1/training/policies").await;
    let theirs = list_as(&app, &other, "/v1/training/policies").await;
    let our_ids: BTreeSet<i64> = ids(&ours, "policy_id").into_iter().collect();
    assert!(
        ids(&theirs, "policy_id")
            .iter()
            .all(|i| !our_ids.contains(i))
    );

    let account = read(&app, &other, "/v1/account").await;
    assert_shape(&account, ACCOUNT);
    assert_eq!(account["number_of_seats"], 0);
    assert_eq!(account["domains"], json!([]));
}

// ---- pagination -----------------------------------------------------------------------

/// Creates `n` active people `u{from}@acme.example`, `u{from+1}@…`; returns their ids.
async fn people(app: &TestApp, from: usize, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in from..from + n {
        ids.push(user(app, json!({"email": format!("u{i}@acme.example")})).await);
    }
    ids
}

#[tokio::test]
async fn pages_split_a_list_in_id_order_and_per_page_is_capped_at_500() {
    let app = TestApp::spawn().await;
    let everyone = people(&app, 0, 5).await;
    assert_eq!(ids(&list(&app, "/v1/users").await, "id"), everyone);
    let mut walked = Vec::new();
    for (page, expected) in [(1, 2), (2, 2), (3, 1), (4, 0), (99, 0)] {
        let rows = list(&app, &format!("/v1/users?per_page=2&page={page}")).await;
        assert_eq!(rows.len(), expected, "page {page}");
        walked.extend(ids(&rows, "id"));
    }
    assert_eq!(walked, everyone);
    assert_eq!(
        ids(&list(&app, "/v1/users?per_page=2").await, "id"),
        everyone[..2],
        "page 1 by default"
    );
    for per_page in [500, 501, 100_000] {
        let rows = list(&app, &format!("/v1/users?per_page={per_page}")).await;
        assert_eq!(ids(&rows, "id"), everyone, "per_page={per_page}");
    }
    // The cap shows in cursor mode, which reports the page size it used.
    let body = cursor_page(&app, &app.admin, "/v1/users", "true", 501)
        .await
        .expect(200);
    assert_eq!(body["pagination"]["per_page"], 500, "{body}");
}

#[tokio::test]
async fn bad_page_parameters_are_refused_on_every_list() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    for (path, key) in lists(&fx) {
        for query in [
            "per_page=0",
            "per_page=-1",
            "per_page=abc",
            "page=0",
            "page=-1",
            "page=abc",
        ] {
            let response = app.get(&app.admin, &with_query(&path, query)).await;
            assert_request_id(&response);
            assert_eq!(response.status.as_u16(), 400, "{path}?{query}");
            response.expect_error(400, "bad_request");
        }
        let everything = list(&app, &path).await;
        assert!(!everything.is_empty(), "{path} has rows in the fixture");
        let capped = list(&app, &with_query(&path, "per_page=501")).await;
        assert_eq!(ids(&capped, key), ids(&everything, key), "{path}");
        let sorted = {
            let mut v = ids(&everything, key);
            v.sort_unstable();
            v
        };
        assert_eq!(ids(&everything, key), sorted, "{path} in id order");
        let beyond = list(&app, &with_query(&path, "page=1000")).await;
        assert!(beyond.is_empty(), "{path} beyond the end");
    }
}

/// `cursor` with the character at `at` replaced by a digit it is not (a digit, so no
/// decoder reads the change as the same byte in another case).
fn tamper(cursor: &str, at: usize) -> String {
    cursor
        .char_indices()
        .map(|(i, c)| match (i == at, c) {
            (false, c) => c,
            (true, '0') => '1',
            (true, _) => '0',
        })
        .collect()
}

#[tokio::test]
async fn a_cursor_walk_reads_every_row_once_even_with_inserts_between_pages() {
    let app = TestApp::spawn().await;
    let mut expected = people(&app, 0, 5).await;
    let (rows, cursors) = walk(&app, "/v1/users", 2, async |call| {
        // Two more after the first page, one after the second.
        match call {
            0 => drop(people(&app, 100, 2).await),
            1 => drop(people(&app, 200, 1).await),
            _ => {}
        }
    })
    .await;
    expected.extend(ids(&list(&app, "/v1/users?per_page=500").await, "id")[5..].iter());
    assert_eq!(expected.len(), 8);
    assert_eq!(ids(&rows, "id"), expected, "each row once, in id order");
    for row in &rows {
        assert_shape(row, USER);
    }
    assert!(cursors.len() >= 3, "{cursors:?}");
    let cursor = cursors[0].clone();

    // One character changed, at the start, the middle and the end.
    for at in [0, cursor.len() / 2, cursor.len() - 1] {
        let tampered = tamper(&cursor, at);
        let response = cursor_page(&app, &app.admin, "/v1/users", &tampered, 2).await;
        assert_eq!(
            response.status.as_u16(),
            400,
            "{tampered} (from {cursor}): {}",
            response.text
        );
        response.expect_error(400, "bad_request");
    }
    // Garbage.
    cursor_page(&app, &app.admin, "/v1/users", "not-a-cursor", 2)
        .await
        .expect_error(400, "bad_request");
    // Another account's token.
    let (_, other) = app.other_account("globex").await;
    cursor_page(&app, &other, "/v1/users", &cursor, 2)
        .await
        .expect_error(400, "bad_request");
    // Another list.
    cursor_page(&app, &app.admin, "/v1/groups", &cursor, 2)
        .await
        .expect_error(400, "bad_request");
    // Still good where it belongs.
    cursor_page(&app, &app.admin, "/v1/users", &cursor, 2)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_cursor_walk_of_every_list_matches_page_mode() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    for (path, key) in lists(&fx) {
        let paged = list(&app, &with_query(&path, "per_page=500")).await;
        let (walked, _) = walk(&app, &path, 1, async |_| {}).await;
        assert_eq!(ids(&walked, key), ids(&paged, key), "{path}");
        assert_eq!(walked, paged, "{path}: the same rows either way");
    }
}

#[tokio::test]
async fn ndjson_streams_every_row_of_a_list() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    for (path, key) in lists(&fx) {
        let paged = list(&app, &with_query(&path, "per_page=500")).await;
        // page/per_page are ignored: every row comes.
        let response = app
            .send(
                app.request(
                    Method::GET,
                    &with_query(&path, "per_page=1&page=2"),
                    Some(&app.admin),
                )
                .header("accept", "application/x-ndjson"),
            )
            .await;
        assert_eq!(response.status.as_u16(), 200, "{path}: {}", response.text);
        assert_request_id(&response);
        let content_type = response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/x-ndjson"),
            "{path}: {content_type}"
        );
        let rows: Vec<Value> = response
            .text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let row: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{path}: line {l:?} is not JSON: {e}"));
                assert!(row.is_object(), "{path}: {l}");
                row
            })
            .collect();
        assert_eq!(ids(&rows, key), ids(&paged, key), "{path}");
        assert_eq!(rows, paged, "{path}");
    }
}

// ---- methods --------------------------------------------------------------------------

#[tokio::test]
async fn every_method_but_get_is_not_allowed() {
    let app = TestApp::spawn().await;
    let fx = populate(&app).await;
    let paths = reporting_paths(&app, &fx).await;
    for (path, _, _) in &paths {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let response = app
                .send(
                    app.request(method.clone(), path, Some(&app.admin))
                        .json(&json!({})),
                )
                .await;
            assert_eq!(
                response.status.as_u16(),
                405,
                "{method} {path}: {}",
                response.text
            );
            assert_request_id(&response);
        }
    }
    // Nothing changed.
    assert_eq!(list(&app, "/v1/users").await.len(), 3);
    assert_eq!(list(&app, "/v1/training/enrollments").await.len(), 5);
}

// ---- rate limits ----------------------------------------------------------------------

/// Asserts a 429 `rate_limited` with an integer `Retry-After` of at least a second;
/// returns it.
#[track_caller]
fn assert_limited(response: &TestResponse) -> u64 {
    response.expect_error(429, "rate_limited");
    assert_request_id(response);
    let retry = response
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", response.headers));
    let seconds: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {retry:?}"));
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

#[tokio::test]
async fn a_daily_limit_refuses_the_request_over_it_until_the_next_utc_day() {
    let app = TestApp::spawn().await;
    people(&app, 0, 1).await;
    let token = api_token(&app, "daily", &["user:read"], json!({"rate_per_day": 3})).await;
    for _ in 0..3 {
        read(&app, &token, "/v1/users").await;
    }
    let refused = app.get(&token, "/v1/users").await;
    let retry = assert_limited(&refused);
    // The day is the server's UTC day: noon to midnight is twelve hours.
    assert!(retry <= 12 * 3600, "Retry-After {retry}");
    // Other tokens are not affected.
    read(&app, &app.admin, "/v1/users").await;

    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap());
    read(&app, &token, "/v1/users").await;
}

#[tokio::test]
async fn a_per_second_limit_refuses_a_burst() {
    let app = TestApp::spawn().await;
    let token = api_token(&app, "burst", &["user:read"], json!({"rate_per_second": 2})).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app.get(&token, "/v1/users").await;
        if response.status.as_u16() == 429 {
            assert_limited(&response);
        } else {
            assert_eq!(response.status.as_u16(), 200, "{}", response.text);
        }
        statuses.push(response.status.as_u16());
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses.contains(&429), "a burst of 5 at 2/s: {statuses:?}");
}

#[tokio::test]
async fn tokens_without_limits_are_never_rate_limited_and_limits_must_be_positive() {
    let app = TestApp::spawn().await;
    let plain = api_token(&app, "plain", &["user:read"], json!({})).await;
    for token in [&plain, &app.admin] {
        for _ in 0..30 {
            let response = app.get(token, "/v1/users").await;
            assert_eq!(response.status.as_u16(), 200, "{}", response.text);
        }
    }
    for bad in [json!(0), json!(-1), json!("ten"), json!(1.5)] {
        for field in ["rate_per_second", "rate_per_day"] {
            let mut body = json!({"name": "bad", "scopes": ["user:read"]});
            body[field] = bad.clone();
            let response = app.post_json(&app.admin, "/api/tokens", &body).await;
            assert!(
                response.status.is_client_error(),
                "{field}={bad} accepted: {}",
                response.text
            );
        }
    }
}

#[test]
fn the_shape_helpers_tell_timestamps_and_dates_apart() {
    assert!(is_ts("2026-11-01T12:00:00.000Z"));
    assert!(!is_ts("2026-11-01T12:00:00Z"));
    assert!(!is_ts("2026-11-01T12:00:00.000+00:00"));
    assert!(is_date("2026-11-01"));
    assert!(!is_date("2026-11-01T12:00:00.000Z"));
    assert!(Ts.matches(&json!(
        start_time().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    )));
    assert!(!Int.matches(&json!(1.5)));
    assert!(IntArr.matches(&json!([1, 2])));
    assert!(!IntArr.matches(&json!([{"id": 1}])));
}
