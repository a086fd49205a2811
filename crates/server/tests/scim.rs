//! `/scim/v2`: discovery, users and groups as RFC 7643/7644 describe them and as Okta and
//! Entra ID actually send them, the conformance-tool round trip driven by `/Schemas`, and
//! identity changes flowing into smart groups, campaigns and compliance scope.

mod common;

use common::{TestApp, TestResponse};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM client of one account.
struct Scim<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Scim<'a> {
    async fn new(app: &'a TestApp) -> Self {
        Self {
            token: app.token("okta", "scim").await,
            app,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
        let mut request = self
            .app
            .request(method, &format!("/scim/v2{path}"), Some(&self.token));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/scim+json; charset=utf-8")
                .body(body.to_string());
        }
        self.app.send(request).await
    }

    async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, operations: Value) -> TestResponse {
        let body = json!({"schemas": [PATCH], "Operations": operations});
        self.send(Method::PATCH, path, Some(&body)).await
    }

    async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates a user and returns it.
    async fn user(&self, body: Value) -> Value {
        self.post("/Users", &body).await.expect(201)
    }

    /// The ids (as numbers) of a list answer's resources.
    async fn ids(&self, path: &str) -> Vec<i64> {
        let list = self.get(path).await.expect(200);
        list["Resources"]
            .as_array()
            .unwrap_or_else(|| panic!("no Resources: {list}"))
            .iter()
            .map(|r| r["id"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

fn id(resource: &Value) -> i64 {
    resource["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("a numeric id")
}

/// Asserts a SCIM error of `status` (and `scimType`, if given) and returns it.
#[track_caller]
fn scim_error(response: &TestResponse, status: u16, scim_type: Option<&str>) -> Value {
    let body = response.expect(status);
    assert_eq!(body["schemas"], json!([ERROR]), "{body}");
    assert_eq!(body["status"], status.to_string(), "{body}");
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

fn minimal(user_name: &str) -> Value {
    json!({"schemas": [USER], "userName": user_name})
}

#[tokio::test]
async fn discovery_is_published_read_only_and_needs_the_scim_scope() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let config = scim.get("/ServiceProviderConfig").await;
    assert_eq!(
        config.headers[CONTENT_TYPE.as_str()],
        "application/scim+json"
    );
    let config = config.expect(200);
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["filter"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], false);
    let types = scim.get("/ResourceTypes").await.expect(200);
    assert_eq!(types["totalResults"], 2);
    assert_eq!(
        scim.get("/ResourceTypes/User").await.expect(200)["schemaExtensions"][0]["schema"],
        ENTERPRISE
    );
    let schemas = scim.get("/Schemas").await.expect(200);
    let ids: Vec<&str> = (schemas["Resources"].as_array().unwrap().iter())
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE, GROUP]);
    scim.get(&format!("/Schemas/{USER}")).await.expect(200);
    scim_error(&scim.get("/Schemas/urn:nope").await, 404, None);
    for path in ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"] {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let answer = scim.send(method, path, Some(&json!({}))).await;
            scim_error(&answer, 405, None);
        }
    }
    scim_error(&scim.get("/Nothing").await, 404, None);

    // Without a token, and with a token lacking `scim`.
    let bare = app
        .send(app.request(Method::GET, "/scim/v2/Users", None))
        .await;
    scim_error(&bare, 401, None);
    let reader = app.token("reader", "user:read,events:write").await;
    let refused = app
        .send(app.request(Method::GET, "/scim/v2/Users", Some(&reader)))
        .await;
    scim_error(&refused, 403, None);
    let refused = app
        .send(
            app.request(Method::POST, "/scim/v2/Users", Some(&reader))
                .json(&minimal("x")),
        )
        .await;
    scim_error(&refused, 403, None);
}

#[tokio::test]
async fn a_user_with_only_a_user_name_is_created_read_and_looked_up() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let created = scim.post("/Users", &minimal("bjensen")).await;
    let body = created.expect(201);
    let location = format!(
        "{}/scim/v2/Users/{}",
        app.base,
        body["id"].as_str().unwrap()
    );
    assert_eq!(created.headers["location"], location.as_str());
    assert_eq!(body["meta"]["location"], location);
    assert_eq!(body["meta"]["resourceType"], "User");
    assert_eq!(body["meta"]["created"], "2026-11-01T12:00:00.000Z");
    let version = body["meta"]["version"].as_str().unwrap();
    assert!(version.starts_with("W/\""), "{version}");
    assert_eq!(created.headers["etag"], version);
    assert_eq!(body["userName"], "bjensen");
    assert_eq!(body["active"], true);
    assert_eq!(body["schemas"], json!([USER]));
    assert!(body.get("emails").is_none(), "{body}");

    let read = scim.get(&format!("/Users/{}", id(&body))).await.expect(200);
    assert_eq!(read, body);

    // Okta's look-up before create: found case-insensitively; no match is an empty list.
    let found = scim
        .get("/Users?filter=userName%20eq%20%22BJensen%22")
        .await
        .expect(200);
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], body["id"]);
    let none = scim
        .get("/Users?filter=userName%20eq%20%22nobody%22")
        .await
        .expect(200);
    assert_eq!(none["totalResults"], 0);
    assert_eq!(none["Resources"], json!([]));

    // The same userName in any case is taken.
    let again = scim.post("/Users", &minimal(" BJENSEN ")).await;
    scim_error(&again, 409, Some("uniqueness"));

    // The person exists for the rest of coachloop: known by the userName, managed by SCIM.
    let person = app
        .get(&app.admin, &format!("/api/users/{}", id(&body)))
        .await
        .expect(200);
    assert_eq!(person["data"]["email"], "bjensen");
    assert_eq!(person["data"]["provisioning_managed"], true);
}

#[tokio::test]
async fn concurrent_creates_each_get_their_own_answer() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let finance = finance_group(&app).await;
    // Creates that arrive together are written together; one userName sent six times (in
    // any case) is created once, whichever comes first, and the others conflict.
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..30 {
        let body = if i < 24 {
            let department = if i % 3 == 0 { "Finance" } else { "Sales" };
            json!({"schemas": [USER, ENTERPRISE], "userName": format!("u{i}"),
                   "emails": [{"value": format!("u{i}@acme.example"), "type": "work"},
                              {"value": format!("u{i}@home.example"), "type": "home"}],
                   ENTERPRISE: {"department": department}})
        } else {
            minimal(if i % 2 == 0 { "same" } else { "SAME" })
        };
        let request = (app.request(Method::POST, "/scim/v2/Users", Some(&scim.token)))
            .header(CONTENT_TYPE, "application/scim+json")
            .body(body.to_string());
        requests.spawn(async move {
            let answer = request.send().await.expect("the server answers");
            let status = answer.status().as_u16();
            (i, status, answer.json::<Value>().await.expect("JSON"))
        });
    }
    let mut in_finance = Vec::new();
    let mut same = Vec::new();
    for (i, status, body) in requests.join_all().await {
        if i >= 24 {
            same.push(status);
            if status == 409 {
                assert_eq!(body["scimType"], "uniqueness", "{body}");
            }
            continue;
        }
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["userName"], format!("u{i}"));
        assert_eq!(body["emails"][1]["value"], format!("u{i}@home.example"));
        // What a create answers is what is stored.
        let read = scim.get(&format!("/Users/{}", id(&body))).await.expect(200);
        assert_eq!(read, body);
        let person = (app.get(&app.admin, &format!("/api/users/{}", id(&body))))
            .await
            .expect(200);
        assert_eq!(person["data"]["email"], format!("u{i}@acme.example"));
        if i % 3 == 0 {
            in_finance.push(id(&body));
        }
    }
    same.sort_unstable();
    assert_eq!(same, [201, 409, 409, 409, 409, 409]);
    in_finance.sort_unstable();
    let mut members = members(&app, finance).await;
    members.sort_unstable();
    assert_eq!(members, in_finance);
    let all = scim.get("/Users?count=0").await.expect(200);
    assert_eq!(all["totalResults"], 25);
}

#[tokio::test]
async fn okta_tests_the_connection_and_pages_through_users() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(id(&scim
            .user(minimal(&format!("user{n}@acme.example")))
            .await));
    }
    let page = scim.get("/Users?startIndex=1&count=2").await.expect(200);
    assert_eq!(
        page["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 1);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(scim.ids("/Users?startIndex=1&count=2").await, ids[..2]);
    assert_eq!(scim.ids("/Users?startIndex=4&count=10").await, ids[3..]);
    assert_eq!(scim.ids("/Users?startIndex=0").await, ids);
    assert_eq!(scim.ids("/Users?startIndex=9").await, Vec::<i64>::new());
    let counted = scim.get("/Users?count=0").await.expect(200);
    assert_eq!(counted["totalResults"], 5);
    assert!(counted.get("Resources").is_none(), "{counted}");
    scim_error(
        &scim.get("/Users?count=many").await,
        400,
        Some("invalidValue"),
    );
    // POST /.search answers as GET does.
    let searched = scim
        .post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "userName sw \"user1\"", "startIndex": 1, "count": 10}),
        )
        .await
        .expect(200);
    assert_eq!(searched["totalResults"], 1);
    assert_eq!(id(&searched["Resources"][0]), ids[1]);
}

/// Ana, Bo and Cy with attributes every filter below can tell apart.
async fn three(scim: &Scim<'_>) -> (i64, i64, i64) {
    let ana = scim
        .user(json!({
            "schemas": [USER, ENTERPRISE], "userName": "ana@acme.example", "externalId": "okta-1",
            "displayName": "Ana Lima", "title": "Engineer",
            "emails": [{"value": "ana@acme.example", "type": "work", "primary": true},
                       {"value": "ana@home.example", "type": "home"}],
            ENTERPRISE: {"department": "Finance"}}))
        .await;
    let bo = scim
        .user(json!({
            "schemas": [USER], "userName": "bo", "externalId": "okta-2", "displayName": "Bo Berg",
            "emails": [{"value": "bo@other.example", "type": "home"}], "active": false}))
        .await;
    let cy = scim
        .user(json!({"schemas": [USER], "userName": "cy@acme.example", "displayName": "Cy"}))
        .await;
    (id(&ana), id(&bo), id(&cy))
}

fn filtered(filter: &str) -> String {
    let query: String = url_encode(filter);
    format!("/Users?filter={query}")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn filters_cover_every_operator_logic_grouping_and_value_paths() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, bo, cy) = three(&scim).await;
    // A person no identity provider named answers to their email.
    let dee = app.create_user(&json!({"email": "dee@acme.example"})).await["id"]
        .as_i64()
        .unwrap();
    let by_id = format!("id eq \"{bo}\"");
    let cases: Vec<(&str, Vec<i64>)> = vec![
        (r#"userName eq "ANA@acme.example""#, vec![ana]),
        (r#"userName eq "dee@acme.example""#, vec![dee]),
        (r#"userName ne "bo""#, vec![ana, cy, dee]),
        (r#"userName co "acme""#, vec![ana, cy, dee]),
        (r#"userName sw "C""#, vec![cy]),
        (r#"userName ew ".EXAMPLE""#, vec![ana, cy, dee]),
        (r#"userName gt "bo""#, vec![cy, dee]),
        (r#"userName ge "bo""#, vec![bo, cy, dee]),
        (r#"userName lt "bo""#, vec![ana]),
        (r#"userName le "bo""#, vec![ana, bo]),
        (r#"externalId eq "okta-2""#, vec![bo]),
        (r#"externalId eq "OKTA-2""#, vec![]),
        (r#"displayName co "lima""#, vec![ana]),
        ("displayName pr", vec![ana, bo, cy]),
        ("active eq false", vec![bo]),
        ("active eq true", vec![ana, cy, dee]),
        ("title pr and active eq true", vec![ana]),
        (r#"emails co "home.example""#, vec![ana]),
        (r#"emails.value eq "dee@acme.example""#, vec![dee]),
        (r#"emails[type eq "work"]"#, vec![ana]),
        (
            r#"emails[type eq "home" and value ew "other.example"]"#,
            vec![bo],
        ),
        (r#"emails[primary eq true]"#, vec![ana, dee]),
        ("emails pr", vec![ana, bo, dee]),
        (r#"not (emails[type eq "work"])"#, vec![bo, cy, dee]),
        (
            r#"(userName eq "bo" or userName eq "cy@acme.example") and not (active eq false)"#,
            vec![cy],
        ),
        (
            r#"userName eq "bo" or userName eq "cy@acme.example" and active eq false"#,
            vec![bo],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"finance\"",
            vec![ana],
        ),
        (
            "meta.lastModified gt \"2026-11-01T11:59:59Z\"",
            vec![ana, bo, cy, dee],
        ),
        ("meta.lastModified lt \"2026-11-01T12:00:00Z\"", vec![]),
        (&by_id, vec![bo]),
        ("id eq \"not-a-number\"", vec![]),
    ];
    for (filter, expected) in cases {
        assert_eq!(scim.ids(&filtered(filter)).await, expected, "{filter}");
    }
    for bad in [
        "userName",
        "userName eq",
        "userName zz \"x\"",
        "(userName eq \"x\"",
        "userName eq \"x\" junk",
        "favouriteColour eq \"red\"",
        "emails[type eq \"work\"",
        "active gt true",
        "meta.lastModified gt \"yesterday\"",
        "title[value eq \"x\"]",
    ] {
        let answer = scim.get(&filtered(bad)).await;
        scim_error(&answer, 400, Some("invalidFilter"));
    }
}

#[tokio::test]
async fn attributes_and_excluded_attributes_shape_the_answer() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, ..) = three(&scim).await;
    let only = scim
        .get(&format!(
            "/Users/{ana}?attributes=userName,emails.value,{ENTERPRISE}:department"
        ))
        .await
        .expect(200);
    assert_eq!(
        only,
        json!({"schemas": [USER, ENTERPRISE], "id": ana.to_string(), "userName": "ana@acme.example",
               "emails": [{"value": "ana@acme.example"}, {"value": "ana@home.example"}],
               ENTERPRISE: {"department": "Finance"}})
    );
    let without = scim
        .get(&format!(
            "{}&excludedAttributes=emails,meta,name",
            filtered("userName eq \"ana@acme.example\"")
        ))
        .await
        .expect(200);
    let resource = &without["Resources"][0];
    assert!(
        resource.get("emails").is_none() && resource.get("meta").is_none(),
        "{resource}"
    );
    assert_eq!(resource["displayName"], "Ana Lima");
}

#[tokio::test]
async fn put_replaces_the_whole_user_and_a_rename_into_a_taken_name_conflicts() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, bo, _) = three(&scim).await;
    // Okta's PUT: the whole user, as it holds it.
    let replaced = scim
        .put(
            &format!("/Users/{ana}"),
            &json!({"schemas": [USER], "id": ana.to_string(), "userName": "ana@acme.example",
                    "name": {"givenName": "Ana", "familyName": "Lima"},
                    "emails": [{"value": "ana.lima@acme.example", "type": "work", "primary": true}],
                    "active": true, "locale": "en-US", "groups": []}),
        )
        .await
        .expect(200);
    assert_eq!(
        replaced["name"],
        json!({"givenName": "Ana", "familyName": "Lima"})
    );
    // What the PUT left out is gone.
    assert!(
        replaced.get("title").is_none() && replaced.get(ENTERPRISE).is_none(),
        "{replaced}"
    );
    assert!(replaced.get("externalId").is_none(), "{replaced}");
    let person = app
        .get(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(person["data"]["email"], "ana.lima@acme.example");
    assert_eq!(person["data"]["first_name"], "Ana");
    assert!(person["data"]["department"].is_null());

    // Renaming into another person's userName (in any case) conflicts; a case-only change
    // of one's own is applied.
    let taken = scim.put(&format!("/Users/{ana}"), &minimal("BO")).await;
    scim_error(&taken, 409, Some("uniqueness"));
    let recased = scim
        .put(&format!("/Users/{bo}"), &minimal("Bo"))
        .await
        .expect(200);
    assert_eq!(recased["userName"], "Bo");
    assert_eq!(scim.ids(&filtered("userName eq \"bo\"")).await, [bo]);
    // A PUT without userName is refused, and changes nothing.
    let missing = scim
        .put(&format!("/Users/{bo}"), &json!({"schemas": [USER]}))
        .await;
    scim_error(&missing, 400, Some("invalidValue"));
    assert_eq!(
        scim.get(&format!("/Users/{bo}")).await.expect(200)["userName"],
        "Bo"
    );
}

#[tokio::test]
async fn okta_deactivates_and_reactivates_with_a_replace_without_path() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, ..) = three(&scim).await;
    let path = format!("/Users/{ana}");
    let off = scim
        .patch(
            &path,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await
        .expect(200);
    assert_eq!(off["active"], false);
    // Everything else stays.
    assert_eq!(off["displayName"], "Ana Lima");
    assert_eq!(off[ENTERPRISE]["department"], "Finance");
    let person = app
        .get(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(person["data"]["status"], "archived");
    assert_eq!(person["data"]["archived_at"], "2026-11-01T12:00:00.000Z");
    let on = scim
        .patch(&path, json!([{"op": "replace", "value": {"active": true}}]))
        .await
        .expect(200);
    assert_eq!(on["active"], true);
    let person = app
        .get(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(person["data"]["status"], "active");
    assert!(person["data"]["archived_at"].is_null());
}

#[tokio::test]
async fn entra_id_patches_with_its_own_forms() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let boss = id(&scim
        .user(
            json!({"schemas": [USER], "userName": "boss@acme.example", "displayName": "The Boss"}),
        )
        .await);
    let ana = id(&scim.user(minimal("ana@acme.example")).await);
    let path = format!("/Users/{ana}");
    let patched = scim
        .patch(
            &path,
            json!([
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ana@acme.example"},
                {"op": "Replace", "path": "displayName", "value": "Ana Lima"},
                {"op": "Add", "path": "name.givenName", "value": "Ana"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss.to_string()},
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Lisbon"},
            ]),
        )
        .await
        .expect(200);
    assert_eq!(
        patched["emails"],
        json!([{"value": "ana@acme.example", "type": "work", "primary": false}])
    );
    assert_eq!(patched["displayName"], "Ana Lima");
    assert_eq!(patched["name"]["givenName"], "Ana");
    assert_eq!(patched[ENTERPRISE]["department"], "Finance");
    assert_eq!(patched[ENTERPRISE]["manager"]["value"], boss.to_string());
    assert_eq!(patched[ENTERPRISE]["manager"]["displayName"], "The Boss");
    assert_eq!(patched["active"], false);
    // The manager is the person criteria read.
    let person = app
        .get(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(person["data"]["manager_email"], "boss@acme.example");
    assert_eq!(person["data"]["department"], "Finance");

    // The work email changed in place; a string boolean brings the person back.
    let again = scim
        .patch(
            &path,
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ana.lima@acme.example"},
                {"op": "Replace", "path": "active", "value": "True"},
                {"op": "Remove", "path": format!("{ENTERPRISE}:manager")},
            ]),
        )
        .await
        .expect(200);
    assert_eq!(again["emails"][0]["value"], "ana.lima@acme.example");
    assert_eq!(again["active"], true);
    assert!(again[ENTERPRISE].get("manager").is_none(), "{again}");
    let person = app
        .get(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(person["data"]["email"], "ana.lima@acme.example");
    assert!(person["data"]["manager_email"].is_null());

    // Soft delete first, DELETE later: archived all along, then gone from SCIM only.
    scim.patch(
        &path,
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .await
    .expect(200);
    assert_eq!(scim.delete(&path).await.status, 204);
    scim_error(&scim.get(&path).await, 404, None);
    scim_error(&scim.delete(&path).await, 404, None);
    assert_eq!(
        scim.ids(&filtered("userName eq \"ana@acme.example\""))
            .await,
        Vec::<i64>::new()
    );
    let person = app
        .get(&app.admin, &format!("/api/users/{ana}"))
        .await
        .expect(200);
    assert_eq!(person["data"]["status"], "archived");
}

#[tokio::test]
async fn patch_refuses_what_it_cannot_do_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, ..) = three(&scim).await;
    let path = format!("/Users/{ana}");
    let before = scim.get(&path).await.expect(200);
    let cases = [
        (
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x@y.z"}]),
            "noTarget",
        ),
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "add", "path": "favouriteColour", "value": "red"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "name.nickname", "value": "A"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "emails[type eq ", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "title[value eq \"x\"]", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "7"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "value": {"favouriteColour": "red"}}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": ""}]),
            "invalidValue",
        ),
        (
            json!([{"op": "add", "path": "emails", "value": [{"value": "not an email"}]}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "x".repeat(256)}]),
            "invalidValue",
        ),
        (json!([{"op": "move", "path": "title"}]), "invalidSyntax"),
        (json!("not a list"), "invalidSyntax"),
    ];
    for (operations, scim_type) in cases {
        let answer = scim.patch(&path, operations.clone()).await;
        scim_error(&answer, 400, Some(scim_type));
    }
    // An unknown attribute on create is refused too; one of the standard schema that is
    // not stored (sent by identity providers by default) is ignored.
    let unknown = scim
        .post(
            "/Users",
            &json!({"userName": "x", "favouriteColour": "red"}),
        )
        .await;
    scim_error(&unknown, 400, Some("invalidValue"));
    let ignored = scim
        .post(
            "/Users",
            &json!({"userName": "y", "phoneNumbers": [{"value": "1"}], "locale": "en-US",
                    "urn:okta:custom:1.0:User": {"x": 1}}),
        )
        .await
        .expect(201);
    assert!(ignored.get("phoneNumbers").is_none());
    assert_eq!(scim.get(&path).await.expect(200), before);
}

#[tokio::test]
async fn bodies_are_scim_json_or_json_and_bad_ones_are_told() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let plain = app
        .send(
            app.request(Method::POST, "/scim/v2/Users", Some(&scim.token))
                .json(&minimal("plain@acme.example")),
        )
        .await;
    assert_eq!(
        plain.headers[CONTENT_TYPE.as_str()],
        "application/scim+json"
    );
    plain.expect(201);
    let xml = app
        .send(
            app.request(Method::POST, "/scim/v2/Users", Some(&scim.token))
                .header(CONTENT_TYPE, "application/xml")
                .body("<user/>"),
        )
        .await;
    scim_error(&xml, 415, None);
    for body in ["{", "[1]", "\"x\""] {
        let broken = app
            .send(
                app.request(Method::POST, "/scim/v2/Users", Some(&scim.token))
                    .header(CONTENT_TYPE, "application/scim+json")
                    .body(body),
            )
            .await;
        scim_error(&broken, 400, Some("invalidSyntax"));
    }
    scim_error(&scim.get("/Users/abc").await, 404, None);
    scim_error(&scim.get("/Users/99999999999999999999").await, 404, None);
}

#[tokio::test]
async fn etags_change_with_the_resource_and_if_match_guards_writes() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let ana = scim.user(minimal("ana@acme.example")).await;
    let path = format!("/Users/{}", id(&ana));
    let first = ana["meta"]["version"].as_str().unwrap().to_owned();
    let changed = scim
        .patch(
            &path,
            json!([{"op": "add", "path": "title", "value": "Engineer"}]),
        )
        .await
        .expect(200);
    let second = changed["meta"]["version"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let stale = app
        .send(
            app.request(Method::PUT, &format!("/scim/v2{path}"), Some(&scim.token))
                .header("if-match", &first)
                .json(&minimal("ana@acme.example")),
        )
        .await;
    scim_error(&stale, 412, None);
    let current = app
        .send(
            app.request(Method::PUT, &format!("/scim/v2{path}"), Some(&scim.token))
                .header("if-match", &second)
                .json(&minimal("ana@acme.example")),
        )
        .await;
    current.expect(200);
}

/// A value for a published attribute of `kind`, different on each `round`.
fn sample(name: &str, kind: &str, round: usize) -> Value {
    match (kind, name) {
        ("boolean", _) => json!(round % 2 == 1),
        (_, "value") => json!(format!("mail{round}@conformance.example")),
        _ => json!(format!("{name} {round}")),
    }
}

#[tokio::test]
async fn every_writable_attribute_published_in_schemas_is_stored_and_returned() {
    // As conformance tools do: a user with only the required attributes (a userName that
    // is not an email), then add, replace and remove of each writable attribute.
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let schemas = scim.get("/Schemas").await.expect(200);
    let user = scim.user(minimal("conformance-user")).await;
    let path = format!("/Users/{}", id(&user));
    let mut checked = 0;
    for schema in schemas["Resources"].as_array().unwrap() {
        let urn = schema["id"].as_str().unwrap();
        if urn == GROUP {
            continue;
        }
        for attr in schema["attributes"].as_array().unwrap() {
            let name = attr["name"].as_str().unwrap();
            if attr["mutability"] == "readOnly" || name == "userName" {
                continue;
            }
            let full = if urn == USER {
                name.to_owned()
            } else {
                format!("{urn}:{name}")
            };
            let read = |body: &Value| -> Value {
                if urn == USER {
                    body[name].clone()
                } else {
                    body[urn][name].clone()
                }
            };
            for round in 1..=2 {
                let op = if round == 1 { "add" } else { "replace" };
                let value = match attr["type"].as_str().unwrap() {
                    "complex" => {
                        let mut object = serde_json::Map::new();
                        for sub in attr["subAttributes"].as_array().unwrap() {
                            if sub["mutability"] != "readOnly" {
                                let sub_name = sub["name"].as_str().unwrap();
                                let kind = sub["type"].as_str().unwrap();
                                let v = if name == "manager" {
                                    json!(id(&user).to_string())
                                } else {
                                    sample(sub_name, kind, round)
                                };
                                object.insert(sub_name.to_owned(), v);
                            }
                        }
                        if attr["multiValued"] == true {
                            json!([Value::Object(object)])
                        } else {
                            Value::Object(object)
                        }
                    }
                    kind => sample(name, kind, round),
                };
                let answer = scim
                    .patch(&path, json!([{"op": op, "path": full, "value": value}]))
                    .await
                    .expect(200);
                let read_back = scim.get(&path).await.expect(200);
                assert_eq!(answer, read_back);
                let stored = read(&read_back);
                match &value {
                    Value::Object(object) => {
                        for (k, v) in object {
                            assert_eq!(&stored[k], v, "{full}.{k} after {op}: {read_back}");
                        }
                    }
                    Value::Array(items) => {
                        for (k, v) in items[0].as_object().unwrap() {
                            assert_eq!(&stored[0][k], v, "{full}[0].{k} after {op}: {read_back}");
                        }
                    }
                    _ => assert_eq!(stored, value, "{full} after {op}: {read_back}"),
                }
            }
            let removed = scim
                .patch(&path, json!([{"op": "remove", "path": full}]))
                .await
                .expect(200);
            let gone = read(&removed);
            // `active` is always stated; removing it means the default, true.
            if name == "active" {
                assert_eq!(gone, json!(true));
            } else {
                assert!(gone.is_null(), "{full} after remove: {removed}");
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 12,
        "every published writable attribute was exercised"
    );
}

async fn members(app: &TestApp, group: i64) -> Vec<i64> {
    let page = app
        .get(&app.admin, &format!("/api/groups/{group}/members"))
        .await
        .expect(200);
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_i64().unwrap())
        .collect()
}

fn member_ids(group: &Value) -> Vec<i64> {
    (group["members"].as_array().unwrap().iter())
        .map(|m| m["value"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn okta_pushes_groups_renames_them_and_changes_members() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, bo, cy) = three(&scim).await;
    // Members without `type`, as Okta sends them.
    let created = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Finance", "externalId": "okta-g1",
                    "members": [{"value": ana.to_string(), "display": "Ana"}]}),
        )
        .await;
    let group = created.expect(201);
    let gid = id(&group);
    assert_eq!(
        created.headers["location"],
        group["meta"]["location"].as_str().unwrap()
    );
    assert_eq!(
        group["members"][0],
        json!({"value": ana.to_string(), "display": "Ana Lima",
        "type": "User", "$ref": format!("{}/scim/v2/Users/{ana}", app.base)})
    );
    // A provisioned group, which the console may not change by hand.
    let listed = app
        .get(&app.admin, &format!("/api/groups/{gid}"))
        .await
        .expect(200);
    assert_eq!(listed["data"]["group_type"], "adi_managed_group");
    assert_eq!(listed["data"]["provisioning_guid"], "okta-g1");
    app.post_json(
        &app.admin,
        &format!("/api/groups/{gid}/members"),
        &json!({"user_id": bo}),
    )
    .await
    .expect_error(409, "conflict");

    let path = format!("/Groups/{gid}");
    let add = scim
        .patch(
            &path,
            json!([{"op": "add", "path": "members",
                              "value": [{"value": bo.to_string()}, {"value": cy.to_string()}]}]),
        )
        .await;
    assert_eq!(add.status, 204);
    assert_eq!(members(&app, gid).await, [ana, bo, cy]);
    scim.patch(
        &path,
        json!([{"op": "remove", "path": format!("members[value eq \"{bo}\"]")}]),
    )
    .await;
    assert_eq!(members(&app, gid).await, [ana, cy]);
    // Rename: a replace without path carrying the id.
    scim.patch(
        &path,
        json!([{"op": "replace", "value": {"id": gid.to_string(), "displayName": "Finance EU"}}]),
    )
    .await;
    let read = scim.get(&path).await.expect(200);
    assert_eq!(read["displayName"], "Finance EU");
    assert_eq!(member_ids(&read), [ana, cy]);
    // Okta's look-up of a group, without its members.
    let found = scim
        .get("/Groups?filter=displayName%20eq%20%22finance%20eu%22&excludedAttributes=members")
        .await
        .expect(200);
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    assert_eq!(
        found["Resources"][0]["meta"]["version"],
        read["meta"]["version"]
    );
    let by_member = scim
        .get(&format!("/Groups?filter=members%20eq%20%22{cy}%22"))
        .await
        .expect(200);
    assert_eq!(by_member["totalResults"], 1);

    // PUT replaces the members; a name held by another live group conflicts.
    let put = scim
        .put(&path, &json!({"schemas": [GROUP], "displayName": "Finance EU", "members": [{"value": bo.to_string()}]}))
        .await
        .expect(200);
    assert_eq!(member_ids(&put), [bo]);
    scim.post("/Groups", &json!({"displayName": "Other"}))
        .await
        .expect(201);
    scim_error(
        &scim.put(&path, &json!({"displayName": "Other"})).await,
        409,
        Some("uniqueness"),
    );
    scim_error(
        &scim
            .post("/Groups", &json!({"displayName": "Finance EU"}))
            .await,
        409,
        Some("uniqueness"),
    );
    // Members must be users of the account; groups do not nest.
    scim_error(
        &scim
            .patch(
                &path,
                json!([{"op": "add", "path": "members", "value": [{"value": "999999"}]}]),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    scim_error(
        &scim.patch(&path, json!([{"op": "add", "path": "members", "value": [{"value": gid.to_string(), "type": "Group"}]}])).await,
        400,
        Some("invalidValue"),
    );
    scim_error(
        &scim
            .patch(
                &path,
                json!([{"op": "remove", "path": "members[value eq \"424242\"]"}]),
            )
            .await,
        400,
        Some("noTarget"),
    );
    assert_eq!(members(&app, gid).await, [bo]);

    // Deleted: gone from SCIM, archived with its history.
    assert_eq!(scim.delete(&path).await.status, 204);
    scim_error(&scim.get(&path).await, 404, None);
    let archived = app
        .get(&app.admin, &format!("/api/groups/{gid}"))
        .await
        .expect(200);
    assert_eq!(archived["data"]["status"], "archived");
}

#[tokio::test]
async fn entra_id_removes_members_with_a_value_list_and_replaces_with_pascal_case() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let (ana, bo, cy) = three(&scim).await;
    let gid = id(&scim
        .post(
            "/Groups",
            &json!({"displayName": "Sales", "members": [
            {"value": ana.to_string()}, {"value": bo.to_string()}, {"value": cy.to_string()}]}),
        )
        .await
        .expect(201));
    let path = format!("/Groups/{gid}");
    scim.patch(
        &path,
        json!([{"op": "Remove", "path": "members",
                              "value": [{"value": ana.to_string()}, {"value": cy.to_string()}]}]),
    )
    .await;
    assert_eq!(members(&app, gid).await, [bo]);
    scim.patch(&path, json!([{"op": "Replace", "path": "displayName", "value": "Sales EMEA"},
                             {"op": "Add", "path": "members", "value": [{"value": cy.to_string()}]}]))
        .await;
    let read = scim.get(&path).await.expect(200);
    assert_eq!(read["displayName"], "Sales EMEA");
    assert_eq!(member_ids(&read), [bo, cy]);
}

#[tokio::test]
async fn another_accounts_users_and_groups_are_not_found() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let ana = id(&scim.user(minimal("ana@acme.example")).await);
    let gid = id(&scim
        .post(
            "/Groups",
            &json!({"displayName": "Team", "members": [{"value": ana.to_string()}]}),
        )
        .await
        .expect(201));
    let (other, _) = app.other_account("other").await;
    let theirs = Scim {
        app: &app,
        token: app.token_in(other, "okta", "scim", None).await,
    };
    for path in [format!("/Users/{ana}"), format!("/Groups/{gid}")] {
        scim_error(&theirs.get(&path).await, 404, None);
        scim_error(&theirs.delete(&path).await, 404, None);
        scim_error(
            &theirs
                .patch(
                    &path,
                    json!([{"op": "replace", "value": {"displayName": "x"}}]),
                )
                .await,
            404,
            None,
        );
    }
    scim_error(
        &theirs.put(&format!("/Users/{ana}"), &minimal("x")).await,
        404,
        None,
    );
    assert_eq!(theirs.get("/Users").await.expect(200)["totalResults"], 0);
    assert_eq!(theirs.get("/Groups").await.expect(200)["totalResults"], 0);
    // Their group cannot take our people; their userNames are their own.
    let their_group = theirs
        .post(
            "/Groups",
            &json!({"displayName": "T", "members": [{"value": ana.to_string()}]}),
        )
        .await;
    scim_error(&their_group, 400, Some("invalidValue"));
    theirs
        .post("/Users", &minimal("ana@acme.example"))
        .await
        .expect(201);
    assert_eq!(
        scim.get(&format!("/Users/{ana}")).await.expect(200)["userName"],
        "ana@acme.example"
    );
}

async fn module(app: &TestApp) -> i64 {
    let list = app
        .get(&app.admin, "/api/content?per_page=500")
        .await
        .expect(200);
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "password-management")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn enrolled(app: &TestApp, user: i64) -> usize {
    let page = app
        .get(&app.admin, &format!("/api/enrollments?user_id={user}"))
        .await
        .expect(200);
    page["data"].as_array().unwrap().len()
}

/// A smart group of the people whose department is Finance.
async fn finance_group(app: &TestApp) -> i64 {
    let criteria = json!({"user": {"attribute": "department", "equals": "Finance"}});
    smart(app, "Finance people", criteria).await
}

async fn smart(app: &TestApp, name: &str, criteria: Value) -> i64 {
    app.post_json(
        &app.admin,
        "/api/groups",
        &json!({"name": name, "criteria": criteria}),
    )
    .await
    .expect(201)["data"]["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn attribute_and_membership_changes_move_smart_groups_and_campaigns_at_once() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let finance = finance_group(&app).await;
    let (ana, bo, _) = three(&scim).await;
    // Created over SCIM with the department: in the smart group at once.
    assert_eq!(members(&app, finance).await, [ana]);
    // An attribute change re-evaluates in the same request.
    scim.patch(
        &format!("/Users/{bo}"),
        json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance"},
               {"op": "replace", "path": "active", "value": true}]),
    )
    .await
    .expect(200);
    assert_eq!(members(&app, finance).await, [ana, bo]);
    scim.patch(
        &format!("/Users/{ana}"),
        json!([{"op": "remove", "path": format!("{ENTERPRISE}:department")}]),
    )
    .await
    .expect(200);
    assert_eq!(members(&app, finance).await, [bo]);

    // A SCIM group that a campaign targets and a smart group names.
    let team = id(&scim
        .post("/Groups", &json!({"displayName": "Team"}))
        .await
        .expect(201));
    let in_team = smart(&app, "In team", json!({"group": {"member_of": team}})).await;
    let module = module(&app).await;
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Team training", "content": [module], "groups": [team], "relative_duration": "P30D"}),
    )
    .await
    .expect(201);
    assert_eq!(enrolled(&app, ana).await, 0);
    scim.patch(
        &format!("/Groups/{team}"),
        json!([{"op": "add", "path": "members", "value": [{"value": ana.to_string()}]}]),
    )
    .await;
    assert_eq!(enrolled(&app, ana).await, 1);
    assert_eq!(members(&app, in_team).await, [ana]);
    scim.patch(
        &format!("/Groups/{team}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{ana}\"]")}]),
    )
    .await;
    assert_eq!(members(&app, in_team).await, Vec::<i64>::new());
    // Leaving does not cancel the enrolment, which stays on record.
    assert_eq!(enrolled(&app, ana).await, 1);
    let history = app
        .get(&app.admin, &format!("/api/groups/{team}/history"))
        .await
        .expect(200);
    let reasons: Vec<&Value> = (history["data"].as_array().unwrap().iter())
        .map(|h| &h["reason"][0]["kind"])
        .collect();
    assert_eq!(
        reasons,
        [
            &json!("removed_by_identity_provider"),
            &json!("added_by_identity_provider")
        ]
    );

    // An archived person added to a targeted group is not enrolled.
    scim.patch(
        &format!("/Users/{bo}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await
    .expect(200);
    assert_eq!(members(&app, finance).await, Vec::<i64>::new());
    scim.patch(
        &format!("/Groups/{team}"),
        json!([{"op": "add", "path": "members", "value": [{"value": bo.to_string()}]}]),
    )
    .await;
    assert_eq!(enrolled(&app, bo).await, 0);
}

async fn in_scope(app: &TestApp) -> Value {
    let controls = app
        .get(&app.admin, "/api/compliance/controls")
        .await
        .expect(200);
    controls["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "CC1.4")
        .unwrap()["counts"]["in_scope"]
        .clone()
}

#[tokio::test]
async fn deactivation_and_deletion_archive_and_reactivation_restores_compliance_scope() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    app.put_json(&app.admin, "/api/compliance/frameworks/soc2", &json!({}))
        .await
        .expect(200);
    let ana = id(&scim.user(minimal("ana@acme.example")).await);
    let bo = id(&scim.user(minimal("bo@acme.example")).await);
    assert_eq!(in_scope(&app).await, 2);
    let module = module(&app).await;
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Everyone", "content": [module], "groups": [0], "relative_duration": "P30D"}),
    )
    .await
    .expect(201);
    assert_eq!(enrolled(&app, ana).await, 1);

    // Okta's deactivation: out of scope, records kept.
    scim.patch(
        &format!("/Users/{ana}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await
    .expect(200);
    assert_eq!(in_scope(&app).await, 1);
    assert_eq!(enrolled(&app, ana).await, 1);
    // A new person while a campaign enrols everyone: an inactive one is not enrolled.
    let cy = id(&scim
        .user(json!({"userName": "cy@acme.example", "active": false}))
        .await);
    assert_eq!(enrolled(&app, cy).await, 0);
    assert_eq!(in_scope(&app).await, 1);
    // Reactivation restores.
    scim.patch(
        &format!("/Users/{ana}"),
        json!([{"op": "replace", "value": {"active": true}}]),
    )
    .await
    .expect(200);
    assert_eq!(in_scope(&app).await, 2);

    // DELETE archives too; the same userName later brings the same person back.
    assert_eq!(scim.delete(&format!("/Users/{bo}")).await.status, 204);
    assert_eq!(in_scope(&app).await, 1);
    assert_eq!(enrolled(&app, bo).await, 1);
    let back = scim.user(minimal("BO@acme.example")).await;
    assert_eq!(id(&back), bo);
    assert_eq!(back["userName"], "BO@acme.example");
    assert_eq!(back["active"], true);
    assert_eq!(in_scope(&app).await, 2);
    assert_eq!(enrolled(&app, bo).await, 1);
}

#[tokio::test]
async fn a_provisioned_person_takes_the_unmatched_events_that_named_them() {
    let app = TestApp::spawn().await;
    let scim = Scim::new(&app).await;
    let typed = "dashlane_user_typed_weak_password";
    app.submit_one(&common::event("Zed@Acme.example ", typed))
        .await;
    app.submit_one(&common::event("zed-laptop", typed)).await;
    // Known by the primary email, and (without any email) by the userName.
    let zed = id(&scim
        .user(
            json!({"userName": "zed", "emails": [{"value": "zed@acme.example", "primary": true}]}),
        )
        .await);
    let kiosk = id(&scim.user(minimal("ZED-LAPTOP")).await);
    for (user, count) in [(zed, 1), (kiosk, 1)] {
        let timeline = app
            .get(&app.admin, &format!("/api/users/{user}/timeline"))
            .await
            .expect(200);
        assert_eq!(
            timeline["data"].as_array().unwrap().len(),
            count,
            "{timeline}"
        );
    }
}
