//! The database going away: the server reaches PostgreSQL through a TCP proxy, which is
//! cut (every connection closed, new ones refused) during a stream of events and then
//! restored. While it is cut, requests are answered 503 `unavailable` within seconds
//! and `/readyz` is not ready; after, the server works again by itself; every event
//! answered 201 is stored exactly once, and no request answered otherwise is half stored.

mod common;

use coachloop_server::ServerConfig;
use coachloop_store::testing::{self, POSTGRES_VAR};
use coachloop_store::{Backend, DatabaseUrl};
use common::TestApp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The longest any request may take while the database is away: the pool's connect
/// timeout (5 s) and some room for a loaded machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(12);
/// The longest the test waits for any phase to show what it expects.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// A TCP proxy in front of PostgreSQL that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    /// `host:port` of PostgreSQL.
    upstream: String,
    accept: Mutex<Option<JoinHandle<()>>>,
    /// One task per proxied connection (aborting it closes both sides).
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = listen("127.0.0.1:0".parse().expect("an address"));
        let proxy = Self {
            addr: listener.local_addr().expect("bound"),
            upstream,
            accept: Mutex::default(),
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let connections = self.connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().expect("not poisoned").push(copy);
            }
        });
        *self.accept.lock().expect("not poisoned") = Some(accept);
    }

    /// Closes the listening socket (new connections are refused), then every connection.
    async fn cut(&self) {
        let accept = self.accept.lock().expect("not poisoned").take();
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await;
        }
        let connections: Vec<_> = self
            .connections
            .lock()
            .expect("not poisoned")
            .drain(..)
            .collect();
        for connection in connections {
            connection.abort();
            let _ = connection.await;
        }
    }

    /// Listens again on the same address.
    fn restore(&self) {
        self.serve(listen(self.addr));
    }
}

/// A listener that can take over the address of an earlier one at once.
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind the proxy's address");
    socket.listen(1024).expect("listen")
}

/// `url` with its host and port replaced by `addr`, and the `host:port` it named.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(split);
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{user}{addr}{tail}"), upstream)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Before = 0,
    Cut = 1,
    Restored = 2,
}

impl Phase {
    fn of(value: u8) -> Self {
        match value {
            0 => Self::Before,
            1 => Self::Cut,
            _ => Self::Restored,
        }
    }
}

/// One `POST /events` of the stream and how it was answered.
#[derive(Debug)]
struct Answer {
    descriptions: Vec<String>,
    status: u16,
    body: Value,
    retry_after: Option<String>,
    took: Duration,
    /// The phase when the request was sent and when its answer came.
    sent: Phase,
    answered: Phase,
}

struct Stream {
    answers: Mutex<Vec<Answer>>,
    /// Bumped with every answer, for the test to wait on.
    count: watch::Sender<usize>,
    phase: AtomicU8,
    stop: AtomicBool,
}

impl Stream {
    fn phase(&self) -> Phase {
        Phase::of(self.phase.load(Ordering::SeqCst))
    }

    /// Waits until the answers so far satisfy `done`.
    async fn until(&self, what: &str, done: impl Fn(&[Answer]) -> bool) {
        let mut count = self.count.subscribe();
        let waited = tokio::time::timeout(
            PHASE_LIMIT,
            count.wait_for(|_| done(&self.answers.lock().expect("not poisoned"))),
        )
        .await;
        assert!(waited.is_ok(), "waited {PHASE_LIMIT:?} for {what}");
    }

    fn count(&self, status: u16, sent: Phase, answered: Phase) -> impl Fn(&[Answer]) -> usize {
        move |answers| {
            answers
                .iter()
                .filter(|a| a.status == status && a.sent == sent && a.answered == answered)
                .count()
        }
    }
}

/// Sends events until told to stop, one request at a time: a single event, then an array
/// of three, and so on; each event's description is unique.
async fn send_events(
    stream: Arc<Stream>,
    client: reqwest::Client,
    url: String,
    token: String,
    n: usize,
) {
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    for request in 0.. {
        if stream.stop.load(Ordering::SeqCst) {
            return;
        }
        pace.tick().await;
        let size = if request % 2 == 0 { 1 } else { 3 };
        let descriptions: Vec<String> = (0..size)
            .map(|i| format!("outage {n}-{request}-{i}"))
            .collect();
        let events: Vec<Value> = descriptions
            .iter()
            .map(|d| json!({"target_user": "ana@acme.example", "event_type": "outage_probe", "description": d}))
            .collect();
        let body = if size == 1 {
            events[0].clone()
        } else {
            Value::Array(events)
        };
        let sent = stream.phase();
        let started = Instant::now();
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /events got no answer ({e})"));
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("read the body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let answer = Answer {
            descriptions,
            status,
            body,
            retry_after,
            took: started.elapsed(),
            sent,
            answered: stream.phase(),
        };
        stream.answers.lock().expect("not poisoned").push(answer);
        stream.count.send_modify(|count| *count += 1);
    }
}

/// Asserts the answer of a request made while the database cannot be reached.
#[track_caller]
fn assert_unavailable(what: &str, status: u16, body: &Value, retry_after: Option<&str>) {
    assert_eq!(status, 503, "{what} while the database is cut: {body}");
    assert_eq!(body["code"], "unavailable", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("database cannot be reached") && message.contains("try again"),
        "{what}: the message says the database cannot be reached and to retry: {body}"
    );
    let seconds: u64 = retry_after
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: a Retry-After in seconds, not {retry_after:?}"));
    assert!(seconds > 0, "{what}: Retry-After {seconds}");
}

/// `GET path` with `token`: status, body, Retry-After and how long it took.
async fn get(
    client: &reqwest::Client,
    app: &TestApp,
    token: &str,
    path: &str,
) -> (u16, Value, Option<String>, Duration) {
    let started = Instant::now();
    let response = client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} got no answer ({e})"));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_rides_out_a_database_outage() {
    if testing::backend() != Backend::Postgres {
        eprintln!(
            "skipped: SQLite is a file in the server's own process, there is no network \
             between them to cut (run with COACHLOOP_TEST_ENGINE=postgres)"
        );
        return;
    }
    let server = std::env::var(POSTGRES_VAR).expect("the PostgreSQL server of the tests");
    let (_, upstream) = through(&server, "127.0.0.1:1".parse().expect("an address"));
    let proxy = Proxy::start(upstream).await;
    let app = TestApp::spawn_through(ServerConfig::default(), |url| {
        DatabaseUrl::new(through(url.expose(), proxy.addr).0)
    })
    .await;
    let events = app.token("sender", "events:write").await;
    // Every request is bounded, so a hang fails the test rather than stalling it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");

    let stream = Arc::new(Stream {
        answers: Mutex::default(),
        count: watch::Sender::new(0),
        phase: AtomicU8::new(Phase::Before as u8),
        stop: AtomicBool::new(false),
    });
    let senders: Vec<_> = (0..4)
        .map(|n| {
            tokio::spawn(send_events(
                stream.clone(),
                client.clone(),
                app.url("/events"),
                events.clone(),
                n,
            ))
        })
        .collect();
    let stored_before = stream.count(201, Phase::Before, Phase::Before);
    stream
        .until("events stored before the cut", |a| stored_before(a) >= 20)
        .await;

    // The cut: every connection of the server to PostgreSQL closes, new ones are refused.
    proxy.cut().await;
    stream.phase.store(Phase::Cut as u8, Ordering::SeqCst);
    let refused = stream.count(503, Phase::Cut, Phase::Cut);
    stream
        .until("events refused during the cut", |a| refused(a) >= 8)
        .await;
    let (status, body, retry_after, took) = get(&client, &app, &app.admin, "/readyz").await;
    assert_unavailable("/readyz", status, &body, retry_after.as_deref());
    assert!(took < ANSWER_WITHIN, "/readyz took {took:?}");
    // A read through the pool (the admin token was never used: it is looked up too).
    let (status, body, retry_after, took) = get(&client, &app, &app.admin, "/api/users").await;
    assert_unavailable("GET /api/users", status, &body, retry_after.as_deref());
    assert!(took < ANSWER_WITHIN, "GET /api/users took {took:?}");

    // The database is back: the server recovers without a restart.
    stream.phase.store(Phase::Restored as u8, Ordering::SeqCst);
    proxy.restore();
    let restored = Instant::now();
    loop {
        let (status, body, _, _) = get(&client, &app, &app.admin, "/readyz").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "/readyz after the restore: {body}");
        assert!(
            restored.elapsed() < PHASE_LIMIT,
            "/readyz still not ready {:?} after the restore",
            restored.elapsed()
        );
    }
    let stored_after = stream.count(201, Phase::Restored, Phase::Restored);
    stream
        .until("events stored after the restore", |a| stored_after(a) >= 20)
        .await;
    let person = json!({"email": "after.outage@acme.example", "first_name": "After"});
    app.post_json(&app.admin, "/api/users", &person)
        .await
        .expect(201);
    stream.stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.expect("a sender finished");
    }

    // What each request was answered, against what PostgreSQL holds (read directly).
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(app.database_url().expose())
        .await
        .expect("connect to the test database directly");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT description, COUNT(*) FROM events WHERE description LIKE 'outage %' \
         GROUP BY description",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read the stored events");
    let stored: HashMap<String, i64> = rows.into_iter().collect();
    let answers = stream.answers.lock().expect("not poisoned");
    let mut accepted = 0;
    for answer in answers.iter() {
        let copies: Vec<i64> = answer
            .descriptions
            .iter()
            .map(|d| stored.get(d).copied().unwrap_or(0))
            .collect();
        assert!(
            answer.took < ANSWER_WITHIN,
            "a request took {:?}: {answer:?}",
            answer.took
        );
        match answer.status {
            201 => {
                accepted += answer.descriptions.len();
                assert!(
                    copies.iter().all(|&n| n == 1),
                    "acknowledged events stored exactly once, not {copies:?}: {answer:?}"
                );
            }
            _ => {
                assert_unavailable(
                    "POST /events",
                    answer.status,
                    &answer.body,
                    answer.retry_after.as_deref(),
                );
                // Refused: nothing stored, or (the connection broke during COMMIT) all.
                assert!(
                    copies.iter().all(|&n| n == 0) || copies.iter().all(|&n| n == 1),
                    "a refused request is stored whole or not at all, not {copies:?}: {answer:?}"
                );
            }
        }
        if answer.sent == Phase::Cut && answer.answered == Phase::Cut {
            assert_eq!(
                answer.status, 503,
                "sent and answered during the cut: {answer:?}"
            );
        }
    }
    let sent: usize = answers.iter().map(|a| a.descriptions.len()).sum();
    assert!(
        stored.len() >= accepted && stored.len() <= sent,
        "{} events stored, {accepted} acknowledged, {sent} sent",
        stored.len()
    );
    eprintln!(
        "{} requests: {} acknowledged ({accepted} events), {} refused; {} events stored",
        answers.len(),
        answers.iter().filter(|a| a.status == 201).count(),
        answers.iter().filter(|a| a.status == 503).count(),
        stored.len()
    );
}

/// What a restart of PostgreSQL does to the server's connections (each told FATAL
/// `57P01 admin_shutdown` and closed), without the wait: the writer reconnects at once,
/// requests meanwhile are 503, never 500.
#[tokio::test]
async fn connections_the_server_ends_are_replaced() {
    if testing::backend() != Backend::Postgres {
        eprintln!(
            "skipped: SQLite has no server to end connections (run with COACHLOOP_TEST_ENGINE=postgres)"
        );
        return;
    }
    let app = TestApp::spawn().await;
    let events = app.token("sender", "events:write").await;
    app.post_events(&events, &common::event("ana@acme.example", "outage_probe"))
        .await
        .expect(201);
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(app.database_url().expose())
        .await
        .expect("connect to the test database directly");
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("end the server's connections");
    assert!(!ended.is_empty(), "the server had connections to end");

    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for n in 0.. {
        pace.tick().await;
        let description = format!("after the end {n}");
        let event = json!({"target_user": "ana@acme.example", "event_type": "outage_probe", "description": description});
        let answer = app.post_events(&events, &event).await;
        match answer.status.as_u16() {
            201 => accepted.push(description),
            _ => {
                let retry_after = answer
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok());
                assert_unavailable(
                    "POST /events",
                    answer.status.as_u16(),
                    &answer.json(),
                    retry_after,
                );
                refused += 1;
            }
        }
        if accepted.len() >= 5 {
            break;
        }
        assert!(
            started.elapsed() < PHASE_LIMIT,
            "no events stored {PHASE_LIMIT:?} after the connections ended"
        );
    }
    app.get(&app.admin, "/readyz").await.expect(200);
    app.get(&app.admin, "/api/users").await.expect(200);
    for description in &accepted {
        let copies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE description = $1")
            .bind(description)
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(copies, 1, "{description} stored once");
    }
    eprintln!("{refused} requests refused before the writer reconnected");
}

#[test]
fn the_proxy_url_keeps_everything_but_the_address() {
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(
        through("postgres://postgres@127.0.0.1:5432/test", addr),
        (
            "postgres://postgres@127.0.0.1:4000/test".to_owned(),
            "127.0.0.1:5432".to_owned()
        )
    );
    assert_eq!(
        through("postgresql://u:p@db.example?sslmode=disable", addr),
        (
            "postgresql://u:p@127.0.0.1:4000?sslmode=disable".to_owned(),
            "db.example:5432".to_owned()
        )
    );
}
