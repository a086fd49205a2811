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
