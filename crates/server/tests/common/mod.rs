//! `TestApp`: a real coachloop server on 127.0.0.1:0 over a fresh SQLite file, a manual
//! clock the test can move, and one method per endpoint family.
#![allow(
    dead_code,
    reason = "each test binary uses its own subset of these helpers"
)]

pub mod console;

use chrono::{DateTime, TimeZone, Utc};
use coachloop_core::clock::ManualClock;
use coachloop_core::ids::AccountId;
use coachloop_core::scope::Scopes;
use coachloop_server::{ServerConfig, serve};
use coachloop_store::testing::TestDatabase;
use coachloop_store::tokens::NewToken;
use coachloop_store::{DatabaseUrl, Store};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::oneshot;

/// 2026-11-01T12:00:00Z, where every test's clock starts.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    /// The `default` account the store starts with.
    pub account: AccountId,
    /// An `admin` token of the default account.
    pub admin: String,
    shutdown: Option<oneshot::Sender<()>>,
    // Dropped last: the database file lives here.
    database: TestDatabase,
}

/// A response, read to the end.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl TestResponse {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {:?}",
                self.status, self.text
            )
        })
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an error of `status` in the envelope `{"message", "code", "details"}` with
    /// `code`, and returns the body.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {body}"
        );
        assert_eq!(body["code"], code, "error code of {body}");
        assert!(body["details"].is_array(), "error without details: {body}");
        body
    }

    /// The `field` of every entry of `details`, sorted.
    pub fn detail_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.json()["details"]
            .as_array()
            .expect("details is an array")
            .iter()
            .map(|d| d["field"].as_str().expect("field is a string").to_owned())
            .collect();
        fields.sort();
        fields
    }

    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(ServerConfig::default()).await
    }

    /// With other settings (SMTP, a public URL).
    pub async fn spawn_with(config: ServerConfig) -> Self {
        Self::spawn_through(config, DatabaseUrl::clone).await
    }

    /// With the server reaching its database at the URL `through` makes of the test
    /// database's (e.g. through a proxy in front of it).
    pub async fn spawn_through(
        config: ServerConfig,
        through: impl FnOnce(&DatabaseUrl) -> DatabaseUrl,
    ) -> Self {
        let database = TestDatabase::new().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let store = Store::open(&through(database.url()), clock.clone())
            .await
            .expect("open store");
        let account = store
            .account_by_name(coachloop_store::DEFAULT_ACCOUNT)
            .await
            .expect("read account")
            .expect("the default account exists")
            .id;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(store.clone(), config, listener, async move {
            let _ = stopped.await;
        }));
        let mut app = Self {
            base,
            client: reqwest::Client::new(),
            store,
            clock,
            account,
            admin: String::new(),
            shutdown: Some(shutdown),
            database,
        };
        app.admin = app.token("admin", "admin").await;
        app
    }

    /// Shuts the server down as SIGTERM does (in-flight requests and queued writes
    /// finish; then the store is closed), keeping the database for the test to read.
    pub fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The database the server uses, for a test that reaches it with a connection of
    /// its own.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database.url().clone()
    }

    // ---- tokens and accounts, straight through the store ------------------------------

    /// Creates a token named `name` in the default account with comma-separated `scopes`
    /// and returns its secret.
    pub async fn token(&self, name: &str, scopes: &str) -> String {
        self.token_in(self.account, name, scopes, None).await
    }

    pub async fn token_in(
        &self,
        account: AccountId,
        name: &str,
        scopes: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> String {
        let new = NewToken {
            name: name.to_owned(),
            scopes: Scopes::parse_list(scopes).expect("scopes"),
            expires_at: expires_at.map(|at| at.timestamp_millis()),
            limits: Default::default(),
            lrs: false,
        };
        let (_, secret) = self
            .store
            .create_token(account, &new)
            .await
            .expect("create token");
        secret
    }

    /// Creates another account and returns it with an `admin` token of it.
    pub async fn other_account(&self, name: &str) -> (AccountId, String) {
        let account = self
            .store
            .create_account(name)
            .await
            .expect("create account")
            .id;
        let token = self.token_in(account, "admin", "admin", None).await;
        (account, token)
    }

    // ---- requests ---------------------------------------------------------------------

    /// A request to `path` with the token, if any; send it with [`TestApp::send`].
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn send(&self, request: RequestBuilder) -> TestResponse {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read the body");
        TestResponse {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, token: &str, path: &str) -> TestResponse {
        self.send(self.request(Method::GET, path, Some(token)))
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> TestResponse {
        self.send(self.request(Method::DELETE, path, Some(token)))
            .await
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> TestResponse {
        self.send(self.request(Method::POST, path, Some(token)).json(body))
            .await
    }

    /// xAPI statements to `/xapi/statements`, with the version header xAPI requires.
    pub async fn post_xapi(&self, token: &str, body: &Value) -> TestResponse {
        self.send(
            self.request(Method::POST, "/xapi/statements", Some(token))
                .header("X-Experience-API-Version", "1.0.3")
                .json(body),
        )
        .await
    }

    pub async fn put_json(&self, token: &str, path: &str, body: &Value) -> TestResponse {
        self.send(self.request(Method::PUT, path, Some(token)).json(body))
            .await
    }

    pub async fn patch(&self, token: &str, path: &str, body: &Value) -> TestResponse {
        self.send(self.request(Method::PATCH, path, Some(token)).json(body))
            .await
    }

    // ---- the User Event API -----------------------------------------------------------

    pub async fn post_events(&self, token: &str, body: &Value) -> TestResponse {
        self.post_events_raw(token, body.to_string().into_bytes())
            .await
    }

    /// `POST /events` with exactly these bytes as the body.
    pub async fn post_events_raw(&self, token: &str, body: Vec<u8>) -> TestResponse {
        self.send(
            self.request(Method::POST, "/events", Some(token))
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    /// Posts `body` with the admin token, expects 201 and returns the request's status.
    pub async fn submit(&self, body: &Value) -> Value {
        let answer = self.post_events(&self.admin, body).await.expect(201);
        let id = answer["data"]["id"].as_str().expect("a request id");
        self.get(&self.admin, &format!("/statuses/{id}"))
            .await
            .expect(200)["data"]
            .clone()
    }

    /// Submits one event and returns the id of the event it stored.
    pub async fn submit_one(&self, event: &Value) -> String {
        let status = self.submit(event).await;
        let events = status["details"]["events"].as_array().expect("events");
        assert_eq!(events.len(), 1, "one event stored: {status}");
        events[0].as_str().expect("an event id").to_owned()
    }

    /// `GET /events/{id}` with the admin token: the event, unwrapped.
    pub async fn event(&self, id: &str) -> Value {
        self.get(&self.admin, &format!("/events/{id}"))
            .await
            .expect(200)["data"]
            .clone()
    }

    // ---- the installation -------------------------------------------------------------

    /// `GET /api/cluster` with the admin token: the installation, unwrapped.
    pub async fn cluster(&self) -> Value {
        self.get(&self.admin, "/api/cluster").await.expect(200)["data"].clone()
    }

    // ---- people -----------------------------------------------------------------------

    /// Creates a person with the admin token and returns them.
    pub async fn create_user(&self, body: &Value) -> Value {
        self.post_json(&self.admin, "/api/users", body)
            .await
            .expect(201)["data"]
            .clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A minimal valid event.
pub fn event(target_user: &str, event_type: &str) -> Value {
    json!({"target_user": target_user, "event_type": event_type})
}
