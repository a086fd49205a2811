//! Notices through real peers on loopback: a webhook receiver (an HTTP server) that fails
//! once and then recovers gets the delivery exactly once in the end, signed; an SMTP
//! server (aiosmtpd, a separate process) that is down at first gets the enrolment email
//! with a working link once it is up; past due tells the manager; a fact is never
//! queued twice.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Duration;
use coachloop_core::destination::PrivateDestinations;
use coachloop_server::ServerConfig;
use coachloop_server::notices::SmtpConfig;
use common::{TestApp, event, start_time};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const TYPED: &str = "typed_compromised_password";

/// What the receiver saw: (headers, body) per request.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// An HTTP receiver on loopback that answers 500 to the first `failures` requests.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn take(
        State((seen, failures)): State<(Seen, usize)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let mut seen = seen.lock().unwrap();
        seen.push((headers, String::from_utf8_lossy(&body).into_owned()));
        if seen.len() <= failures {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        }
    }
    let app = Router::new()
        .route("/hook", post(take))
        .with_state((seen.clone(), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// A server that may send webhooks to the receivers here, which listen on loopback.
async fn spawn_allowing_loopback() -> TestApp {
    TestApp::spawn_with(ServerConfig {
        allow_private_destinations: PrivateDestinations::ranges(["127.0.0.0/8"]).unwrap(),
        ..ServerConfig::default()
    })
    .await
}

/// A server that sends email to a plain SMTP server on loopback `port`.
async fn spawn_with_smtp(port: u16) -> TestApp {
    TestApp::spawn_with(ServerConfig {
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: "none".into(),
            username: None,
            password: None,
            from: "Training <training@acme.example>".into(),
        }),
        ..ServerConfig::default()
    })
    .await
}

/// Waits (up to 10 s) for `check` to hold, nudging the notice runner.
async fn eventually(app: &TestApp, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let jobs = app.store.jobs(app.account, None).await.unwrap();
            panic!("timed out waiting for {what}; jobs: {jobs:#?}");
        }
        app.store.kick_jobs();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A group of people with a `TYPED` event in the last hour, and an auto-enrolling
/// campaign on it; returns the campaign id.
async fn playbook(app: &TestApp) -> i64 {
    playbook_for(app, TYPED).await
}

/// A group of people with an `event_type` event in the last hour, and an auto-enrolling
/// campaign on it (due in 7 days); returns the campaign id.
async fn playbook_for(app: &TestApp, event_type: &str) -> i64 {
    let group = app
        .post_json(
            &app.admin,
            "/api/groups",
            &json!({"name": "typed", "criteria": {"event": {"type": event_type, "within": "PT1H"}}}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let content = app.get(&app.admin, "/api/content").await.expect(200);
    let module = content["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"] == "Cyber Hygiene: Password Management")
        .unwrap()["id"]
        .clone();
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Coaching", "content": [module], "groups": [group],
               "relative_duration": "P7D"}),
    )
    .await
    .expect(201)["data"]["id"]
        .as_i64()
        .unwrap()
}

fn signature_ok(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let timestamp = headers["x-coachloop-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    headers["x-coachloop-signature"].to_str().unwrap() == expected
}

#[tokio::test]
async fn a_failing_receiver_gets_the_webhook_once_it_recovers_signed_and_once() {
    let app = spawn_allowing_loopback().await;
    let (url, seen) = receiver(1).await;
    let hook = app
        .post_json(
            &app.admin,
            "/api/webhooks",
            &json!({"url": url, "events": ["enrollment.created", "group.member_joined"]}),
        )
        .await
        .expect(201);
    let secret = hook["data"]["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["data"]["id"].as_i64().unwrap();
    playbook(&app).await;
    app.create_user(&json!({"email": "ana@acme.example"})).await;
    app.submit_one(&event("ana@acme.example", TYPED)).await;

    // Two facts (the join and the enrolment); one of the first two requests fails.
    eventually(&app, "two requests", async || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    // The retry is due a second after the failure is handled (which may be after the
    // receiver saw it): move the clock on while waiting.
    eventually(&app, "the retry", async || {
        app.clock.advance(Duration::milliseconds(500));
        seen.lock().unwrap().len() >= 3
    })
    .await;
    // Nothing more comes, however often the runner wakes.
    for _ in 0..5 {
        app.clock.advance(Duration::seconds(5));
        app.store.kick_jobs();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let mut deliveries: Vec<&str> = seen
        .iter()
        .map(|(h, _)| h["x-coachloop-delivery"].to_str().unwrap())
        .collect();
    for (headers, body) in &seen {
        assert!(
            signature_ok(&secret, headers, body),
            "bad signature on {body}"
        );
    }
    let failed = deliveries.remove(0);
    assert!(deliveries.contains(&failed), "the failed one was retried");
    let bodies: Vec<Value> = seen
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    let created = bodies
        .iter()
        .find(|b| b["event"] == "enrollment.created")
        .unwrap();
    assert_eq!(created["data"]["cause"]["kind"], "group_joined");
    assert!(bodies.iter().any(|b| b["event"] == "group.member_joined"));

    // The last attempt is recorded with the event writer's next commit, which may come
    // after its receiver answered (later still on a loaded machine).
    let deliveries = format!("/api/webhooks/{hook_id}/deliveries");
    eventually(&app, "both deliveries recorded as done", async || {
        let log = app.get(&app.admin, &deliveries).await.expect(200);
        (log["data"].as_array().unwrap().iter()).all(|d| d["status"] == "done")
    })
    .await;
    let log = app.get(&app.admin, &deliveries).await.expect(200);
    let log = log["data"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|d| d["status"] == "done"));
    let retried = log.iter().find(|d| d["attempts"] == 2).unwrap();
    assert_eq!(retried["log"][0]["ok"], false);
    assert_eq!(retried["log"][0]["status_code"], 500);
    assert_eq!(retried["log"][1]["ok"], true);
}

#[tokio::test]
async fn facts_are_queued_once_and_bad_webhooks_are_refused() {
    let app = spawn_allowing_loopback().await;
    let bad = app
        .post_json(
            &app.admin,
            "/api/webhooks",
            &json!({"url": "ftp://x", "events": ["enrollment.created"]}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["url"]);
    let bad = app
        .post_json(
            &app.admin,
            "/api/webhooks",
            &json!({"url": "http://127.0.0.1:9/x", "events": ["enrollment.made"]}),
        )
        .await;
    assert_eq!(bad.detail_fields(), ["events[0]"]);
    let reader = app.token("reader", "enrollments:read").await;
    app.get(&reader, "/api/webhooks")
        .await
        .expect_error(403, "forbidden");

    let hook = app
        .post_json(
            &app.admin,
            "/api/webhooks",
            &json!({"url": "http://127.0.0.1:9/x", "events": ["enrollment.created"]}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    playbook(&app).await;
    app.create_user(&json!({"email": "ana@acme.example"})).await;
    for _ in 0..3 {
        app.submit_one(&event("ana@acme.example", TYPED)).await;
    }
    // Out of the group and back: the enrolment exists, so nothing new is queued.
    app.clock.set(start_time() + Duration::hours(2));
    app.store.run_due_groups().await.unwrap();
    app.submit_one(&event("ana@acme.example", TYPED)).await;
    let jobs = app.store.jobs(app.account, Some("webhook")).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    // Email jobs: the enrolment notice and its reminder, once each (no SMTP: skipped).
    let emails = app.store.jobs(app.account, Some("email")).await.unwrap();
    let mut kinds: Vec<&str> = emails.iter().map(|j| j.dedupe.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds[0].starts_with("email:enrolled:"));
    assert!(kinds[1].starts_with("email:reminder:"));

    // A stopped webhook is sent nothing new.
    let stopped = app
        .delete(&app.admin, &format!("/api/webhooks/{hook}"))
        .await
        .expect(200);
    assert_eq!(stopped["data"]["active"], false);
    app.create_user(&json!({"email": "bob@acme.example"})).await;
    app.submit_one(&event("bob@acme.example", TYPED)).await;
    assert_eq!(enrollments_of(&app).await, 2);
    let jobs = app.store.jobs(app.account, Some("webhook")).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
}

async fn enrollments_of(app: &TestApp) -> usize {
    app.get(&app.admin, "/api/enrollments").await.expect(200)["meta"]["count"]
        .as_u64()
        .unwrap() as usize
}

/// The aiosmtpd sink, a separate process; killed when dropped.
struct SmtpSink {
    child: Child,
    out: PathBuf,
}

impl SmtpSink {
    fn start(port: u16, dir: &std::path::Path) -> Self {
        // The harness installs what it needs: aiosmtpd from PyPI, once.
        let present = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            let installed = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "aiosmtpd",
                ])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                installed,
                "could not install aiosmtpd (python3 -m pip install aiosmtpd)"
            );
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let out = dir.join("mail.jsonl");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .arg("decode")
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/support/smtp_sink.py (pip install aiosmtpd)");
        let mut ready = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "the SMTP sink did not start; is aiosmtpd installed (pip install aiosmtpd)?"
        );
        Self { child, out }
    }

    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn email_waits_out_a_down_smtp_server_and_tells_the_manager_when_past_due() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_smtp(port).await;
    app.create_user(&json!({"email": "ana@acme.example", "first_name": "Ana",
                            "manager_email": "boss@acme.example"}))
        .await;
    playbook(&app).await;
    app.submit_one(&event("ana@acme.example", TYPED)).await;

    // The server is down: the first attempt fails and is retried later.
    eventually(&app, "a failed attempt", async || {
        let jobs = app.store.jobs(app.account, Some("email")).await.unwrap();
        jobs.iter().any(|j| {
            j.dedupe.starts_with("email:enrolled:") && j.attempts == 1 && j.last_error.is_some()
        })
    })
    .await;
    let sink = SmtpSink::start(port, dir.path());
    app.clock.advance(Duration::seconds(2));
    eventually(&app, "the email", async || !sink.messages().is_empty()).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["to"], json!(["ana@acme.example"]));
    assert_eq!(
        messages[0]["subject"],
        "Training for you: Cyber Hygiene: Password Management"
    );
    let data = messages[0]["text"].as_str().unwrap();
    // The due date as a person reads it, not as a machine stores it.
    let enrolment = &app.get(&app.admin, "/api/enrollments").await.expect(200)["data"][0];
    let due = chrono::DateTime::parse_from_rfc3339(enrolment["due_date"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let human = coachloop_core::time::format_human_ms(due);
    assert!(data.contains(&format!("It is due by {human}.")), "{data}");
    let link = data
        .split_whitespace()
        .find(|w| w.contains("/learn/"))
        .expect("a learner link");
    let opened = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(link)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER, "{data}");

    // Seven days on: the reminder went a day ahead, then past due tells the manager.
    app.clock
        .set(start_time() + Duration::days(7) + Duration::minutes(1));
    app.store.run_due_groups().await.unwrap();
    app.store.run_due_training().await.unwrap();
    eventually(&app, "the reminder and the manager's notice", async || {
        sink.messages().len() >= 3
    })
    .await;
    let messages = sink.messages();
    let to: Vec<&Value> = messages.iter().map(|m| &m["to"][0]).collect();
    assert!(to.contains(&&json!("boss@acme.example")), "{to:?}");
    assert!(
        messages
            .iter()
            .any(|m| m["subject"].as_str().unwrap().starts_with("Reminder:"))
    );
    // And never twice.
    app.store.run_due_training().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sink.messages().len(), 3);
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
async fn a_database_error_during_a_notice_is_retried() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(port, dir.path());
    let app = spawn_with_smtp(port).await;
    app.create_user(&json!({"email": "ana@acme.example"})).await;
    playbook(&app).await;
    app.submit_one(&event("ana@acme.example", TYPED)).await;
    eventually(&app, "the enrolment email", async || {
        sink.messages().len() == 1
    })
    .await;
    let reminder = async || {
        let jobs = app.store.jobs(app.account, Some("email")).await.unwrap();
        jobs.into_iter()
            .find(|j| j.dedupe.starts_with("email:reminder:"))
            .expect("a reminder is queued")
    };

    // The reminder falls due while the table its enrolment is read with is away: a
    // database error while the email is prepared.
    sql(&app, "ALTER TABLE content RENAME TO content_away").await;
    app.clock.set(start_time() + Duration::days(6));
    eventually(&app, "the reminder's first attempt", async || {
        reminder().await.attempts == 1
    })
    .await;
    let job = reminder().await;
    assert_eq!(job.status, "pending", "retried, not given up: {job:#?}");
    let error = job.last_error.clone().unwrap_or_default();
    // SQLite: "no such table: content"; PostgreSQL: "relation \"content\" does not exist".
    assert!(
        error.contains("no such table: content") || error.contains("\"content\" does not exist"),
        "{error}"
    );

    // Back again: the retry, a second after the failure, sends the reminder.
    sql(&app, "ALTER TABLE content_away RENAME TO content").await;
    app.clock.advance(Duration::seconds(2));
    eventually(&app, "the reminder sent and recorded", async || {
        reminder().await.status != "pending"
    })
    .await;
    let job = reminder().await;
    assert_eq!((job.status.as_str(), job.attempts), ("done", 2), "{job:#?}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let subject = messages[1]["subject"].as_str().unwrap();
    assert!(subject.starts_with("Reminder: "), "{subject}");
    let log = app.store.deliveries(job.id).await.unwrap();
    let outcomes: Vec<bool> = log.iter().map(|d| d.ok).collect();
    assert_eq!(outcomes, [false, true], "{log:#?}");
}

/// The catalog's event type whose description the reason sentence uses.
const COMPROMISED: &str = "dashlane_user_typed_compromised_password";

async fn set_notices(app: &TestApp, campaign: i64, body: &Value) -> Value {
    app.put_json(
        &app.admin,
        &format!("/api/campaigns/{campaign}/notices"),
        body,
    )
    .await
    .expect(200)
}

fn message_to<'a>(messages: &'a [Value], to: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["to"][0] == to)
        .unwrap_or_else(|| panic!("no message to {to}: {messages:#?}"))
}

#[tokio::test]
async fn a_campaigns_own_text_goes_as_html_and_text_in_the_persons_language_with_the_reason() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(port, dir.path());
    let app = spawn_with_smtp(port).await;
    let ana_user = app
        .create_user(
            &json!({"email": "ana@acme.example", "first_name": "Ana <b>&",
                             "language": "de-AT"}),
        )
        .await;
    app.create_user(&json!({"email": "bob@acme.example", "language": "ja"}))
        .await;
    let campaign = playbook_for(&app, COMPROMISED).await;
    set_notices(
        &app,
        campaign,
        &json!({"templates": [
            {"notice": "enrolled", "subject": "Training: {{ content_title }}",
             "body": "Hi {{ first_name }}!\n\n{{ reason }}\n\nDue: {{ due }}"},
            {"notice": "enrolled", "language": "de", "subject": "Schulung: {{ content_title }}",
             "body": "Hallo **{{ first_name }}**!\n\n{{ reason }}", "button": "Los geht's"},
        ]}),
    )
    .await;
    let mut on_a_site = event("ana@acme.example", COMPROMISED);
    on_a_site["metadata"] = json!({"site": "login.example.net"});
    app.submit_one(&on_a_site).await;
    app.submit_one(&event("bob@acme.example", COMPROMISED))
        .await;
    eventually(&app, "two emails", async || sink.messages().len() >= 2).await;
    let messages = sink.messages();

    // Ana reads German (de-AT → de), her name escaped in HTML only, the reason said.
    let ana = message_to(&messages, "ana@acme.example");
    assert_eq!(
        ana["subject"],
        "Schulung: Cyber Hygiene: Password Management"
    );
    assert!(
        ana["to_header"]
            .as_str()
            .unwrap()
            .contains("ana@acme.example")
    );
    let text = ana["text"].as_str().unwrap();
    let html = ana["html"].as_str().unwrap();
    assert!(text.starts_with("Hallo **Ana <b>&**!"), "{text}");
    assert!(
        html.contains("Hallo <strong>Ana &lt;b&gt;&amp;</strong>!"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    let day = start_time().format("%A %-d %B").to_string();
    let reason = format!("On {day}, a login used a known-compromised password.");
    assert!(text.contains(&reason), "{text}");
    assert!(html.contains(&reason), "{html}");
    assert!(
        !text.contains("login.example.net"),
        "the site only when allowed: {text}"
    );
    // The button to the learner's own link, in both parts.
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("Los geht's: "))
        .expect("the link under the button's label");
    assert!(link.contains("/learn/"), "{link}");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(
        ana["message_id"]
            .as_str()
            .unwrap()
            .starts_with("<email.enrolled."),
        "{ana}"
    );

    // Bob's language has no text of its own: the campaign's text for every language.
    let bob = message_to(&messages, "bob@acme.example");
    assert_eq!(
        bob["subject"],
        "Training: Cyber Hygiene: Password Management"
    );
    assert!(
        bob["text"]
            .as_str()
            .unwrap()
            .starts_with("Hi bob@acme.example!")
    );

    // The lesson page says the same at the top.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = client.get(link).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    let cookie = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = opened.headers()["location"].to_str().unwrap().to_owned();
    let page = client
        .get(app.url(&location))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&reason), "{page}");

    // The site of the event, once the campaign allows it.
    set_notices(
        &app,
        campaign,
        &json!({"settings": {"reason_shows_site": true}}),
    )
    .await;
    let preview = app
        .post_json(
            &app.admin,
            &format!("/api/campaigns/{campaign}/notices/preview"),
            &json!({"user_id": ana_user["id"], "notices": ["enrolled"]}),
        )
        .await
        .expect(200);
    let text = preview["data"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("a login used a known-compromised password (login.example.net)."),
        "{text}"
    );
}

#[tokio::test]
async fn changed_settings_apply_to_queued_notices_and_past_due_tells_the_learner() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(port, dir.path());
    let app = spawn_with_smtp(port).await;
    app.create_user(&json!({"email": "ana@acme.example", "manager_email": "boss@acme.example"}))
        .await;
    let campaign = playbook(&app).await;
    set_notices(&app, campaign, &json!({"settings": {"past_due": true}})).await;
    app.submit_one(&event("ana@acme.example", TYPED)).await;
    eventually(&app, "the enrolment email", async || {
        sink.messages().len() == 1
    })
    .await;

    // The reminder was queued a day ahead; the campaign stops reminding before it goes.
    set_notices(
        &app,
        campaign,
        &json!({"settings": {"past_due": true, "reminders": ["P3D"]}}),
    )
    .await;
    app.clock
        .set(start_time() + Duration::days(6) + Duration::minutes(1));
    let reminder = async || {
        let jobs = app.store.jobs(app.account, Some("email")).await.unwrap();
        jobs.into_iter()
            .find(|j| j.dedupe.starts_with("email:reminder:"))
            .expect("a reminder is queued")
    };
    eventually(&app, "the reminder handled", async || {
        reminder().await.status != "pending"
    })
    .await;
    let job = reminder().await;
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or("")
            .contains("no longer reminds P1D"),
        "{job:#?}"
    );

    // Past due: the learner and the manager are told.
    app.clock
        .set(start_time() + Duration::days(7) + Duration::minutes(1));
    app.store.run_due_training().await.unwrap();
    eventually(&app, "both past-due notices", async || {
        sink.messages().len() == 3
    })
    .await;
    let messages = sink.messages();
    let learner = message_to(&messages[1..], "ana@acme.example");
    assert!(
        learner["subject"]
            .as_str()
            .unwrap()
            .starts_with("Overdue: "),
        "{learner}"
    );
    let manager = message_to(&messages[1..], "boss@acme.example");
    assert!(
        manager["subject"]
            .as_str()
            .unwrap()
            .starts_with("Overdue training: "),
        "{manager}"
    );
}

#[tokio::test]
async fn reminders_go_at_each_offset_and_none_after_completion() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(port, dir.path());
    let app = spawn_with_smtp(port).await;
    let ana = app.create_user(&json!({"email": "ana@acme.example"})).await;
    let campaign = playbook(&app).await;
    let set = set_notices(
        &app,
        campaign,
        &json!({"settings": {"reminders": ["P1D", "P3D", "PT0S"], "completed": true}}),
    )
    .await;
    assert_eq!(
        set["data"]["settings"]["reminders"],
        json!(["P3D", "P1D", "PT0S"])
    );
    app.submit_one(&event("ana@acme.example", TYPED)).await;
    eventually(&app, "the enrolment email", async || {
        sink.messages().len() == 1
    })
    .await;
    let enrolment = &app.get(&app.admin, "/api/enrollments").await.expect(200)["data"][0];
    let due = chrono::DateTime::parse_from_rfc3339(enrolment["due_date"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let jobs = app.store.jobs(app.account, Some("email")).await.unwrap();
    let mut reminders: Vec<(String, i64)> = jobs
        .iter()
        .filter(|j| j.dedupe.starts_with("email:reminder:"))
        .map(|j| {
            (
                j.dedupe.rsplit(':').next().unwrap().to_owned(),
                due - j.run_at,
            )
        })
        .collect();
    reminders.sort();
    let day = 86_400_000;
    assert_eq!(
        reminders,
        [
            ("P1D".into(), day),
            ("P3D".into(), 3 * day),
            ("PT0S".into(), 0)
        ]
    );

    // Three days before: the first reminder.
    app.clock
        .set(chrono::DateTime::from_timestamp_millis(due - 3 * day + 60_000).unwrap());
    eventually(&app, "the first reminder", async || {
        sink.messages().len() == 2
    })
    .await;
    assert!(
        sink.messages()[1]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Reminder:")
    );

    // Finished the day after: the completion notice, and no reminder from then on.
    let id = enrolment["id"].as_i64().unwrap();
    app.clock
        .set(chrono::DateTime::from_timestamp_millis(due - 2 * day).unwrap());
    app.store
        .learn(
            app.account,
            coachloop_core::ids::UserId(ana["id"].as_i64().unwrap()),
            coachloop_core::ids::EnrollmentId(id),
            &coachloop_store::learning::Step::External {
                at: due - 2 * day,
                outcome: coachloop_core::enrolment::External::Completed,
            },
        )
        .await
        .unwrap();
    eventually(&app, "the completion notice", async || {
        sink.messages().len() == 3
    })
    .await;
    assert!(
        sink.messages()[2]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Completed:")
    );
    app.clock
        .set(chrono::DateTime::from_timestamp_millis(due + 60_000).unwrap());
    app.store.run_due_training().await.unwrap();
    eventually(&app, "every reminder handled", async || {
        let jobs = app.store.jobs(app.account, Some("email")).await.unwrap();
        jobs.iter().all(|j| j.status != "pending")
    })
    .await;
    assert_eq!(sink.messages().len(), 3, "{:#?}", sink.messages());
    let jobs = app.store.jobs(app.account, Some("email")).await.unwrap();
    let skipped = jobs
        .iter()
        .filter(|j| j.dedupe.starts_with("email:reminder:"))
        .filter(|j| j.last_error.as_deref().unwrap_or("").contains("finished"))
        .count();
    assert_eq!(skipped, 2, "{jobs:#?}");
}

#[tokio::test]
async fn bad_templates_are_refused_naming_what_to_fix_and_the_preview_renders_without_sending() {
    let app = TestApp::spawn().await;
    let campaign = playbook(&app).await;
    let path = format!("/api/campaigns/{campaign}/notices");
    let got = app.get(&app.admin, &path).await.expect(200);
    assert_eq!(got["data"]["settings"]["reminders"], json!(["P1D"]));
    assert_eq!(got["data"]["built_in"].as_array().unwrap().len(), 5);
    let bad = app
        .put_json(
            &app.admin,
            &path,
            &json!({"settings": {"reminders": ["soon"]}, "templates": [
                {"notice": "enrolled", "subject": "Hi", "body": "Hello {{ frist_name }}"},
                {"notice": "nagging", "subject": "x", "body": "y"},
                {"notice": "reminder", "language": "english!", "subject": "x", "body": "y"},
            ]}),
        )
        .await;
    bad.expect(422);
    assert_eq!(
        bad.detail_fields(),
        [
            "settings.reminders[0]",
            "templates[0].body",
            "templates[1].notice",
            "templates[2].language"
        ]
    );
    assert!(bad.text.contains("frist_name"), "{}", bad.text);
    app.put_json(&app.admin, "/api/campaigns/999999/notices", &json!({}))
        .await
        .expect(404);

    // A campaign start's enrolment has no reason; the preview renders the campaign's text
    // for the person, sends nothing, and says what would not go.
    set_notices(
        &app,
        campaign,
        &json!({"templates": [{"notice": "enrolled", "subject": "S {{ name }}",
                               "body": "R=[{{ reason }}] {{ content_title }}"}]}),
    )
    .await;
    let ana = app
        .create_user(&json!({"email": "ana@acme.example", "first_name": "Ana",
                             "last_name": "Silva"}))
        .await;
    let preview = app
        .post_json(
            &app.admin,
            &format!("/api/campaigns/{campaign}/notices/preview"),
            &json!({"user_id": ana["id"]}),
        )
        .await
        .expect(200);
    let previews = preview["data"].as_array().unwrap();
    assert_eq!(previews.len(), 5);
    let enrolled = &previews[0];
    assert_eq!(enrolled["subject"], "S Ana Silva");
    assert_eq!(enrolled["to"], "Ana Silva <ana@acme.example>");
    assert!(
        enrolled["text"]
            .as_str()
            .unwrap()
            .starts_with("R=[] Cyber Hygiene")
    );
    let manager = previews
        .iter()
        .find(|p| p["notice"] == "past_due_manager")
        .unwrap();
    assert_eq!(manager["skipped"], "the person has no manager_email");
    assert_eq!(app.store.jobs(app.account, None).await.unwrap().len(), 0);
    // No SMTP server here: a test send says so.
    app.post_json(
        &app.admin,
        &format!("/api/campaigns/{campaign}/notices/test"),
        &json!({"notice": "enrolled", "to": "me@acme.example", "user_id": ana["id"]}),
    )
    .await
    .expect(409);
}

#[tokio::test]
async fn a_test_send_goes_to_the_address_given() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(port, dir.path());
    let app = spawn_with_smtp(port).await;
    let campaign = playbook(&app).await;
    let ana = app.create_user(&json!({"email": "ana@acme.example"})).await;
    let path = format!("/api/campaigns/{campaign}/notices/test");
    let bad = app
        .post_json(
            &app.admin,
            &path,
            &json!({"notice": "enrolled", "to": "nobody", "user_id": ana["id"]}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["to"]);
    let sent = app
        .post_json(
            &app.admin,
            &path,
            &json!({"notice": "reminder", "to": "me@acme.example", "user_id": ana["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(sent["data"]["status_code"], 250);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["to"], json!(["me@acme.example"]));
    assert!(
        messages[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Reminder:")
    );
}

#[tokio::test]
async fn a_chat_gets_the_notice_text_without_the_link_and_is_retried_after_a_500() {
    let app = spawn_allowing_loopback().await;
    let (url, seen) = receiver(1).await;
    let campaign = playbook(&app).await;
    let bad = app
        .post_json(
            &app.admin,
            "/api/webhooks",
            &json!({"url": url, "format": "slack", "events": ["enrollment.created"]}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.detail_fields(), ["events[0]"]);
    let hook = app
        .post_json(
            &app.admin,
            "/api/webhooks",
            &json!({"url": url, "format": "slack", "events": ["enrolled"],
                    "campaign_id": campaign}),
        )
        .await
        .expect(201);
    let hook_id = hook["data"]["id"].as_i64().unwrap();
    assert_eq!(hook["data"]["format"], "slack");
    app.create_user(&json!({"email": "ana@acme.example", "first_name": "Ana"}))
        .await;
    app.submit_one(&event("ana@acme.example", TYPED)).await;
    eventually(&app, "the first try", async || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    eventually(&app, "the retry", async || {
        app.clock.advance(Duration::milliseconds(500));
        seen.lock().unwrap().len() >= 2
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].1, seen[1].1, "the same text on the retry");
    let body: Value = serde_json::from_str(&seen[1].1).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("*Training for you: Cyber Hygiene: Password Management*"),
        "{text}"
    );
    assert!(text.contains("Hello Ana,"), "{text}");
    assert!(
        !text.contains("/learn/"),
        "no personal link in a shared channel: {text}"
    );
    let deliveries = format!("/api/webhooks/{hook_id}/deliveries");
    eventually(&app, "the delivery recorded", async || {
        let log = app.get(&app.admin, &deliveries).await.expect(200);
        log["data"][0]["status"] == "done"
    })
    .await;
    let log = app.get(&app.admin, &deliveries).await.expect(200);
    assert_eq!(log["data"][0]["attempts"], 2);
    assert_eq!(log["data"][0]["log"][0]["status_code"], 500);
}
