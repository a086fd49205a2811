//! Webhooks never reach an internal address unless the operator allows it
//! (`allow_private_destinations`): registration refuses one with 422 naming the rule; a
//! name that resolves to one by the time of sending, an IP literal stored earlier and a
//! redirect to one each fail the attempt without reaching it. Names resolve through the
//! server's static hosts (CI has no outside DNS); receivers are real listeners.

mod common;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{any, post};
use coachloop_core::destination::PrivateDestinations;
use coachloop_server::ServerConfig;
use common::{TestApp, event};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TYPED: &str = "typed_compromised_password";
const HOW: &str = "coachloop sends only to public addresses unless the operator allows this one \
                   (allow_private_destinations)";

/// A server whose policy is `policy` and whose resolver knows `hosts`.
async fn spawn(policy: PrivateDestinations, hosts: &[(&str, &str)]) -> TestApp {
    let mut static_hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (name, ip) in hosts {
        static_hosts
            .entry((*name).to_owned())
            .or_default()
            .push(ip.parse().unwrap());
    }
    TestApp::spawn_with(ServerConfig {
        allow_private_destinations: policy,
        static_hosts,
        ..ServerConfig::default()
    })
    .await
}

fn ranges(items: &[&str]) -> PrivateDestinations {
    PrivateDestinations::ranges(items.iter().copied()).unwrap()
}

async fn register(app: &TestApp, url: &str) -> common::TestResponse {
    app.post_json(
        &app.admin,
        "/api/webhooks",
        &json!({"url": url, "events": ["group.member_joined"]}),
    )
    .await
}

/// Asserts a 422 on `url` whose message names `refusal` and how to open it.
#[track_caller]
fn assert_refused(answer: &common::TestResponse, refusal: &str) {
    let body = answer.expect_error(422, "invalid");
    assert_eq!(answer.detail_fields(), ["url"], "{body}");
    let message = body["details"][0]["message"].as_str().unwrap();
    assert!(message.contains(refusal), "{message}");
    assert!(message.contains(HOW), "{message}");
}

/// The URLs of the registration tests, with what refuses each by default.
const INTERNAL: [(&str, &str); 5] = [
    ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
    ("http://10.0.0.5/", "10.0.0.5 is a private address"),
    (
        "http://metadata.test/latest/meta-data",
        "169.254.169.254 is a link-local address (metadata.test resolves to it)",
    ),
    (
        "http://169.254.169.254/latest/meta-data",
        "169.254.169.254 is a link-local address",
    ),
    (
        "http://[::ffff:a9fe:a9fe]/latest/meta-data",
        "::ffff:169.254.169.254 is a link-local address",
    ),
];

const METADATA: (&str, &str) = ("metadata.test", "169.254.169.254");

#[tokio::test]
async fn registering_an_internal_destination_is_refused_naming_the_rule() {
    let app = spawn(
        PrivateDestinations::default(),
        &[METADATA, ("public.test", "93.184.215.14")],
    )
    .await;
    for (url, refusal) in INTERNAL {
        assert_refused(&register(&app, url).await, refusal);
    }
    let hooks = app.get(&app.admin, "/api/webhooks").await.expect(200);
    assert_eq!(hooks["data"], json!([]), "nothing was registered");
    // A public address is still fine.
    register(&app, "https://public.test/coachloop")
        .await
        .expect(201);
    register(&app, "http://93.184.215.14/").await.expect(201);
}

#[tokio::test]
async fn the_operator_can_allow_every_internal_destination_or_some_ranges() {
    let app = spawn(PrivateDestinations::Allowed, &[METADATA]).await;
    for (url, _) in INTERNAL {
        register(&app, url).await.expect(201);
    }

    // A list opens its ranges and nothing else.
    let app = spawn(ranges(&["10.0.0.0/8", "169.254.169.254/32"]), &[METADATA]).await;
    register(&app, "http://10.0.0.5/").await.expect(201);
    register(&app, "http://metadata.test/latest/meta-data")
        .await
        .expect(201);
    register(&app, "http://169.254.169.254/").await.expect(201);
    assert_refused(
        &register(&app, "http://127.0.0.1:9/hook").await,
        "127.0.0.1 is a loopback address",
    );
    assert_refused(
        &register(&app, "http://192.168.1.1/").await,
        "192.168.1.1 is a private address",
    );
    assert_refused(
        &register(&app, "http://169.254.169.253/").await,
        "169.254.169.253 is a link-local address",
    );
}

/// What a receiver was sent: the paths of its requests.
type Seen = Arc<Mutex<Vec<String>>>;

/// A receiver on `ip` (port 0) that answers 204 to anything; returns its address.
async fn receiver(ip: &str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn take(State(seen): State<Seen>, uri: axum::http::Uri) -> StatusCode {
        seen.lock().unwrap().push(uri.path().to_owned());
        StatusCode::NO_CONTENT
    }
    let app = Router::new()
        .route("/{*path}", any(take))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, seen)
}

/// Makes one person join a group, which queues `group.member_joined` for every webhook.
async fn join_a_group(app: &TestApp) {
    app.post_json(
        &app.admin,
        "/api/groups",
        &json!({"name": "typed", "criteria": {"event": {"type": TYPED, "within": "PT1H"}}}),
    )
    .await
    .expect(201);
    app.create_user(&json!({"email": "ana@acme.example"})).await;
    app.submit_one(&event("ana@acme.example", TYPED)).await;
}

/// The webhook's first delivery once its first attempt is recorded (up to 10 s).
async fn first_delivery(app: &TestApp, hook: i64) -> Value {
    let started = Instant::now();
    loop {
        let log = app
            .get(&app.admin, &format!("/api/webhooks/{hook}/deliveries"))
            .await
            .expect(200);
        if let Some(delivery) =
            log["data"].as_array().unwrap().iter().find(|d| {
                d["attempts"].as_i64() > Some(0) && !d["log"].as_array().unwrap().is_empty()
            })
        {
            return delivery.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no attempt for webhook {hook}: {log}"
        );
        app.store.kick_jobs();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts a failed first attempt, to be retried, whose error names `refusal`.
#[track_caller]
fn assert_failed_by_rule(delivery: &Value, refusal: &str) {
    assert_eq!(delivery["status"], "pending", "retried: {delivery}");
    assert!(delivery["next_attempt_at"].is_string(), "{delivery}");
    let attempt = &delivery["log"][0];
    assert_eq!(attempt["ok"], false, "{delivery}");
    assert_eq!(attempt["status_code"], Value::Null, "{delivery}");
    let error = attempt["error"].as_str().unwrap();
    assert!(error.contains(refusal), "{error}");
    assert!(error.contains("allow_private_destinations"), "{error}");
}

#[tokio::test]
async fn a_destination_refused_at_send_time_fails_the_attempt_unsent() {
    // The receiver would take the delivery if it were sent.
    let (address, seen) = receiver("127.0.0.1").await;
    let port = address.rsplit(':').next().unwrap();
    let app = spawn(
        PrivateDestinations::default(),
        &[("rebound.test", "127.0.0.1")],
    )
    .await;
    // Stored as if registered while the name pointed elsewhere, or before this rule: the
    // API refuses both now.
    let events = ["group.member_joined".to_owned()];
    let by_name = format!("http://rebound.test:{port}/by-name");
    let by_literal = format!("http://{address}/by-literal");
    assert_refused(
        &register(&app, &by_name).await,
        "127.0.0.1 is a loopback address",
    );
    let by_name = app
        .store
        .create_webhook(
            app.account,
            &by_name,
            &events,
            coachloop_store::notices::FORMAT_JSON,
            None,
        )
        .await
        .unwrap()
        .id
        .0;
    let by_literal = app
        .store
        .create_webhook(
            app.account,
            &by_literal,
            &events,
            coachloop_store::notices::FORMAT_JSON,
            None,
        )
        .await
        .unwrap()
        .id
        .0;
    join_a_group(&app).await;

    let delivery = first_delivery(&app, by_name).await;
    assert_failed_by_rule(
        &delivery,
        "127.0.0.1 is a loopback address (rebound.test resolves to it)",
    );
    let delivery = first_delivery(&app, by_literal).await;
    assert_failed_by_rule(&delivery, "127.0.0.1 is a loopback address");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_not_followed() {
    // Where the redirects lead: 127.0.0.2 is loopback too, but outside the allowed range.
    let (inside, inside_seen) = receiver("127.0.0.2").await;
    let inside_port = inside.rsplit(':').next().unwrap().to_owned();
    // An allowed receiver that redirects (307 keeps the POST).
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outside = listener.local_addr().unwrap().to_string();
    let outside_port = listener.local_addr().unwrap().port();
    let targets = [
        ("/to-literal", format!("http://{inside}/hook")),
        ("/to-name", format!("http://inside.test:{inside_port}/hook")),
        (
            "/to-allowed",
            format!("http://outside.test:{outside_port}/final"),
        ),
    ];
    let mut redirector = Router::new();
    for (path, target) in &targets {
        let (seen, target) = (seen.clone(), target.clone());
        redirector = redirector.route(
            path,
            post(move |uri: axum::http::Uri| async move {
                seen.lock().unwrap().push(uri.path().to_owned());
                Redirect::temporary(&target)
            }),
        );
    }
    let final_seen = seen.clone();
    redirector = redirector.route(
        "/final",
        post(move || async move {
            final_seen.lock().unwrap().push("/final".to_owned());
            StatusCode::NO_CONTENT
        }),
    );
    tokio::spawn(async move { axum::serve(listener, redirector).await });

    let app = spawn(
        ranges(&["127.0.0.1/32"]),
        &[("inside.test", "127.0.0.2"), ("outside.test", "127.0.0.1")],
    )
    .await;
    let mut hooks = Vec::new();
    for (path, _) in &targets {
        let url = format!("http://{outside}{path}");
        let hook = register(&app, &url).await.expect(201)["data"]["id"]
            .as_i64()
            .unwrap();
        hooks.push(hook);
    }
    join_a_group(&app).await;

    let to_literal = first_delivery(&app, hooks[0]).await;
    assert_failed_by_rule(&to_literal, "127.0.0.2 is a loopback address");
    let error = to_literal["log"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("redirected to http://{inside}/hook")),
        "{error}"
    );
    let to_name = first_delivery(&app, hooks[1]).await;
    assert_failed_by_rule(
        &to_name,
        "127.0.0.2 is a loopback address (inside.test resolves to it)",
    );
    // An allowed redirect is followed (to a name whose address is allowed).
    let to_allowed = first_delivery(&app, hooks[2]).await;
    assert_eq!(to_allowed["status"], "done", "{to_allowed}");
    assert_eq!(to_allowed["log"][0]["ok"], true, "{to_allowed}");

    assert!(
        inside_seen.lock().unwrap().is_empty(),
        "{:?}",
        inside_seen.lock().unwrap()
    );
    let mut paths = seen.lock().unwrap().clone();
    paths.sort();
    assert_eq!(paths, ["/final", "/to-allowed", "/to-literal", "/to-name"]);
}
