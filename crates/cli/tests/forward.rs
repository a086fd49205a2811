//! `coachloop forward` end to end: the real binary forwarding an audit log to a real
//! `coachloop serve` (on the engine of the run), through outages, restarts, a SIGKILL,
//! rotation and truncation; and the forwarder's code against a stub target for what only
//! the other side decides (429, 5xx, refused items).

mod common;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use coachloop_forwarder::outbox::Outbox;
use coachloop_forwarder::status::Status;
use common::{Lines, PATIENCE, Server, TestData, all_pages, arg, command, create_token, run};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Child;

/// One audit-log line, dated an hour ahead (after any activation).
fn record(uuid: &str, login: &str) -> String {
    let ahead = chrono::Utc::now().timestamp_millis() + 3_600_000;
    record_at(uuid, login, ahead)
}

fn record_at(uuid: &str, login: &str, date_time: i64) -> String {
    json!({"uuid": uuid, "team_id": 1, "category": "user_settings",
        "log_type": "user_typed_compromised_password", "date_time": date_time,
        "properties": {"domain_url": "example.com", "login_status": "logged_in"},
        "author_login": login, "schema_version": "1.0.0"})
    .to_string()
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the audit log");
    for line in lines {
        writeln!(file, "{line}").expect("write the audit log");
    }
}

fn records(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| {
            record(
                &format!("{prefix}-{i}"),
                &format!("p{}@acme.example", i % 7),
            )
        })
        .collect()
}

/// A `coachloop forward` child and its log.
struct Forwarder {
    child: Child,
    log: Lines,
}

impl Forwarder {
    fn start(args: &[&str]) -> Self {
        let mut child = command(&[&["forward"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start coachloop forward");
        let log = Lines::new(child.stderr.take().expect("piped stderr"));
        Self { child, log }
    }

    /// Waits for the exit; returns whether it succeeded, and the log.
    async fn exit(mut self) -> (bool, String) {
        let status = tokio::time::timeout(Duration::from_secs(90), self.child.wait())
            .await
            .expect("the forwarder exits")
            .expect("wait for the forwarder");
        self.log.rest().await;
        (status.success(), self.log.joined())
    }

    /// The URL the forwarder logs after `what` (`"status at "`, `"receiving records at "`).
    async fn url_after(&mut self, what: &str) -> String {
        let line = (self.log.find(|l| l.contains(what)).await)
            .unwrap_or_else(|| panic!("the forwarder logs `{what}`"));
        let (_, url) = line.split_once(what).expect("the line names it");
        url.trim().to_owned()
    }
}

/// The outbox in `dir`'s `state` directory, and its status, read directly.
async fn outbox_status(dir: &Path) -> (Outbox, Status) {
    let outbox = (Outbox::open_existing(&dir.join("state")).await.unwrap())
        .expect("the forwarder made its outbox");
    let status = Status::of(&outbox).await.unwrap();
    (outbox, status)
}

/// `coachloop forward status --json` of a state directory (`Null` before the forwarder
/// has made it).
async fn status(state: &Path) -> Value {
    let out = run(&["forward", "status", "--json", "--state-dir", arg(state)]).await;
    serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
}

/// Polls `check` until it holds (at most 90 s: backoff waits up to 10 s between tries).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 90 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The external ids the receiver holds, each as often as it holds it.
async fn received(server: &Server, token: &str) -> HashMap<String, usize> {
    let client = reqwest::Client::new();
    let mut counts = HashMap::new();
    for event in all_pages(&client, token, server, "/events").await {
        *counts
            .entry(event["external_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    counts
}

/// Asserts that the receiver holds exactly the ids `prefix-0 .. prefix-n`, once each.
async fn assert_exactly_once(server: &Server, token: &str, prefix: &str, n: usize) {
    let counts = received(server, token).await;
    let missing: Vec<usize> = (0..n)
        .filter(|i| !counts.contains_key(&format!("{prefix}-{i}")))
        .collect();
    let twice: Vec<(&String, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "lost: {} records, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(twice.is_empty(), "duplicated: {twice:?}");
    assert_eq!(
        counts.len(),
        n,
        "the receiver holds other events: {counts:?}"
    );
}

/// What a test forwards with: the receiver's data and server, a token file, a state
/// directory and an audit log.
struct Setup {
    data: TestData,
    token: String,
    token_file: PathBuf,
    state: PathBuf,
    log: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        let data = TestData::new().await;
        let token = create_token(&data, "default", "forwarder", "events:write,events:read").await;
        let dir = data.scratch().join("forward");
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        Self {
            token,
            token_file,
            state: dir.join("state"),
            log: dir.join("audit.jsonl"),
            data,
        }
    }

    /// `forward --target BASE --token-file … --state-dir … --file LOG` and `extra`.
    fn args<'a>(&'a self, base: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--target",
            base,
            "--token-file",
            arg(&self.token_file),
            "--state-dir",
            arg(&self.state),
            "--file",
            arg(&self.log),
        ];
        args.extend_from_slice(extra);
        args
    }
}

/// An address nothing listens on yet.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_down_at_start_gets_everything_once_it_is_up_and_status_says_pending_until_then()
{
    let setup = Setup::new().await;
    append(&setup.log, records("down", 0..1_500));
    let addr = free_address();
    let base = format!("http://{addr}");
    let mut forwarder = Forwarder::start(&setup.args(&base, &["--status-listen", "127.0.0.1:0"]));
    let status_url = forwarder.url_after("status at ").await;
    let client = reqwest::Client::new();
    let local = |client: reqwest::Client, url: String| async move {
        client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    until(
        "the forwarder reports that the target cannot be reached",
        || {
            let (client, url) = (client.clone(), status_url.clone());
            async move {
                local(client, url).await["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("cannot reach"))
            }
        },
    )
    .await;
    let pending = local(client.clone(), status_url.clone()).await;
    assert_eq!(pending["status"], "Pending", "{pending}");
    assert_eq!(pending["queued"], 1_500, "{pending}");
    assert!(pending["last_delivery_at"].is_null());

    let server = Server::start_on(&setup.data, &addr, &[]).await;
    until("everything is delivered", || {
        let (client, url) = (client.clone(), status_url.clone());
        async move { local(client, url).await["delivered"] == 1_500 }
    })
    .await;
    let active = local(client.clone(), status_url.clone()).await;
    assert_eq!(active["status"], "Active", "{active}");
    assert_eq!(active["queued"], 0);
    assert!(active["last_delivery_at"].is_string());
    assert_exactly_once(&server, &setup.token, "down", 1_500).await;
    let _ = forwarder.child.start_kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_target_loses_nothing_and_duplicates_nothing() {
    let setup = Setup::new().await;
    let addr = free_address();
    let base = format!("http://{addr}");
    let mut server = Server::start_on(&setup.data, &addr, &[]).await;
    let forwarder = Forwarder::start(&setup.args(&base, &[]));
    let mut written = 0;
    for round in 0..3 {
        append(&setup.log, records("flap", written..written + 2_000));
        written += 2_000;
        // Down while (some of) the round is on its way, then up again.
        until("some of the round is delivered", || {
            let state = setup.state.clone();
            async move {
                status(&state).await["delivered"].as_i64().unwrap_or(0) > (round * 2_000) as i64
            }
        })
        .await;
        server.kill().await;
        append(&setup.log, records("flap", written..written + 500));
        written += 500;
        server = Server::start_on(&setup.data, &addr, &[]).await;
    }
    until("everything is delivered", || {
        let state = setup.state.clone();
        async move {
            status(&state).await["queued"] == 0
                && status(&state).await["delivered"].as_i64() >= Some(written as i64)
        }
    })
    .await;
    assert_exactly_once(&server, &setup.token, "flap", written).await;
    drop(forwarder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_loses_nothing_and_duplicates_nothing() {
    let setup = Setup::new().await;
    const RECORDS: usize = 30_000;
    append(&setup.log, records("kill", 0..RECORDS));
    let server = Server::start(&setup.data).await;
    let mut forwarder = Forwarder::start(&setup.args(&server.base, &["--once"]));
    // Killed once the receiver holds some of it: batches are in flight then.
    let client = reqwest::Client::new();
    until("the first batches arrive", || {
        let (client, url, token) = (
            client.clone(),
            server.url("/events?per_page=1"),
            setup.token.clone(),
        );
        async move {
            let (_, body) = common::get(&client, &token, &url).await;
            body["meta"]["count"].as_u64().unwrap_or(0) > 0
        }
    })
    .await;
    forwarder.child.kill().await.expect("SIGKILL the forwarder");
    let killed_at = status(&setup.state).await;
    assert!(
        killed_at["queued"].as_i64().unwrap_or(0) > 0,
        "the forwarder finished before the kill; nothing was proven: {killed_at}"
    );

    let (ok, log) = Forwarder::start(&setup.args(&server.base, &["--once"]))
        .exit()
        .await;
    assert!(ok, "the restarted forwarder failed: {log}");
    assert_exactly_once(&server, &setup.token, "kill", RECORDS).await;
    let after = status(&setup.state).await;
    assert_eq!(after["queued"], 0, "{after}");
    assert_eq!(after["dead"], 0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_line_is_reported_by_number_and_the_rest_forwarded() {
    let setup = Setup::new().await;
    let mut lines = records("mal", 0..4);
    lines.insert(2, "{\"uuid\": \"broken\", ".to_owned());
    lines.push(
        json!({"uuid": "x", "log_type": "user_changed_language", "date_time": 1,
            "author_login": "a@acme.example"})
        .to_string(),
    );
    // A device user name instead of an email: sent as it is, counted apart.
    lines.push(record("mal-4", "alaptop"));
    append(&setup.log, lines);
    let server = Server::start(&setup.data).await;
    let (ok, log) = Forwarder::start(&setup.args(&server.base, &["--once"]))
        .exit()
        .await;
    assert!(ok, "{log}");
    assert!(
        log.contains("audit.jsonl line 3: not a JSON object"),
        "{log}"
    );
    assert_exactly_once(&server, &setup.token, "mal", 5).await;
    let s = status(&setup.state).await;
    assert_eq!(
        (
            &s["delivered"],
            &s["device_users"],
            &s["dead"],
            &s["ignored"]
        ),
        (&json!(5), &json!(1), &json!(1), &json!(1)),
        "{s}"
    );
    let text = run(&["forward", "status", "--state-dir", arg(&setup.state)]).await;
    assert!(
        text.success().contains("line 3: not a JSON object"),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_records_after_activation_are_sent_unless_backfill_is_asked() {
    let setup = Setup::new().await;
    let old = chrono::DateTime::parse_from_rfc3339("2025-06-01T10:00:00Z")
        .unwrap()
        .timestamp_millis();
    let mut lines: Vec<String> = (0..3)
        .map(|i| record_at(&format!("old-{i}"), "ana@acme.example", old))
        .collect();
    lines.extend(records("new", 0..2));
    append(&setup.log, lines);
    let server = Server::start(&setup.data).await;
    let (ok, log) = Forwarder::start(&setup.args(&server.base, &["--once"]))
        .exit()
        .await;
    assert!(ok, "{log}");
    let s = status(&setup.state).await;
    assert_eq!(
        (&s["delivered"], &s["before_activation"]),
        (&json!(2), &json!(3)),
        "{s}"
    );
    assert_exactly_once(&server, &setup.token, "new", 2).await;

    // History, asked for: a new state directory reads the file again from its start.
    let backfill = setup.state.with_file_name("backfill");
    let mut args = setup.args(&server.base, &["--once", "--backfill-since", "2025-01-01"]);
    let at = args.iter().position(|a| *a == "--state-dir").unwrap() + 1;
    args[at] = arg(&backfill);
    let (ok, log) = Forwarder::start(&args).exit().await;
    assert!(ok, "{log}");
    let counts = received(&server, &setup.token).await;
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|c| *c == 1), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_and_a_truncated_file_are_followed() {
    let setup = Setup::new().await;
    let server = Server::start(&setup.data).await;
    append(&setup.log, records("rot", 0..10));
    let forwarder = Forwarder::start(&setup.args(&server.base, &[]));
    let delivered = |n: i64| {
        let state = setup.state.clone();
        move || {
            let state = state.clone();
            async move { status(&state).await["delivered"].as_i64() == Some(n) }
        }
    };
    until("the first records", delivered(10)).await;

    // Rotation: the file moves away, its writer adds a last few, a new file begins.
    let rotated = setup.log.with_extension("jsonl.1");
    std::fs::rename(&setup.log, &rotated).unwrap();
    append(&rotated, records("rot", 10..12));
    append(&setup.log, records("rot", 12..20));
    until(
        "the rotated file's last records and the new file's",
        delivered(20),
    )
    .await;

    // Truncation (copytruncate): the file is emptied in place and written again.
    std::fs::File::create(&setup.log).unwrap();
    append(&setup.log, records("rot", 20..23));
    until("the records after the truncation", delivered(23)).await;
    assert_exactly_once(&server, &setup.token, "rot", 23).await;
    drop(forwarder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_the_forwarder_with_what_to_fix_and_keeps_the_records() {
    let setup = Setup::new().await;
    let server = Server::start(&setup.data).await;
    append(&setup.log, records("key", 0..3));
    std::fs::write(&setup.token_file, "cl_not_a_key_of_this_server").unwrap();
    let (ok, log) = Forwarder::start(&setup.args(&server.base, &["--once"]))
        .exit()
        .await;
    assert!(!ok, "a wrong key must stop the forwarder: {log}");
    assert!(
        log.contains("refused the key (401: unknown token)"),
        "{log}"
    );
    let s = status(&setup.state).await;
    assert_eq!(
        (&s["queued"], &s["status"]),
        (&json!(3), &json!("Pending")),
        "{s}"
    );
    assert!(s["last_error"].as_str().unwrap().contains("401"), "{s}");

    // A key of the wrong kind: known, but it may not send events.
    let reader = create_token(&setup.data, "default", "reader", "events:read").await;
    std::fs::write(&setup.token_file, &reader).unwrap();
    let (ok, log) = Forwarder::start(&setup.args(&server.base, &["--once"]))
        .exit()
        .await;
    assert!(!ok);
    assert!(log.contains("does not let it send events (403"), "{log}");

    // The right key: the records kept are delivered.
    std::fs::write(&setup.token_file, &setup.token).unwrap();
    let (ok, log) = Forwarder::start(&setup.args(&server.base, &["--once"]))
        .exit()
        .await;
    assert!(ok, "{log}");
    assert_exactly_once(&server, &setup.token, "key", 3).await;
}

// ---- a stub target: what only the other side decides ---------------------------------

/// An answer the stub gives: a status, and the `Retry-After` seconds.
type Answer = (u16, Option<u64>);

/// A User Event API stand-in that answers from a script, then 201, and keeps every
/// external_id it stored, with the time of each request.
#[derive(Clone, Default)]
struct Stub {
    script: Arc<Mutex<Vec<Answer>>>,
    requests: Arc<Mutex<Vec<(Instant, u16)>>>,
    stored: Arc<Mutex<Vec<String>>>,
}

async fn stub_events(
    State(stub): State<Stub>,
    _headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let next = {
        let mut script = stub.script.lock().unwrap();
        (!script.is_empty()).then(|| script.remove(0))
    };
    let (status, retry_after) = next.unwrap_or((201, None));
    stub.requests.lock().unwrap().push((Instant::now(), status));
    if status != 201 {
        let mut response = (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"message": "Limit Exceeded", "code": "x"})),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    let items = body.as_array().cloned().unwrap_or_default();
    stub.stored.lock().unwrap().extend(
        items
            .iter()
            .filter_map(|e| e["external_id"].as_str().map(str::to_owned)),
    );
    (StatusCode::CREATED, Json(json!({"data": {"id": "r"}}))).into_response()
}

async fn start_stub(stub: Stub) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/events", post(stub_events))
        .with_state(stub);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Forwards `log` to `base` with the forwarder's own code, to the end of the file.
async fn forward_file(base: &str, dir: &Path, log: &Path) -> anyhow::Result<()> {
    let options = coachloop_forwarder::Options {
        target: coachloop_forwarder::deliver::Target::new(Some(base), None, "cl_stub".into())?,
        input: coachloop_forwarder::input::Input::File {
            path: log.to_owned(),
            follow: false,
        },
        mapping: coachloop_forwarder::mapping::Mapping::default_mapping(),
        state_dir: dir.join("state"),
        backfill_since: None,
        listener: None,
        parallel: 1,
    };
    tokio::time::timeout(
        PATIENCE * 3,
        coachloop_forwarder::run(options, std::future::pending()),
    )
    .await
    .expect("the forwarder finishes")
}

#[tokio::test]
async fn a_429_is_honoured_with_its_retry_after_and_5xx_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    append(&log, records("stub", 0..5));
    let stub = Stub::default();
    *stub.script.lock().unwrap() = vec![(429, Some(2)), (503, None), (500, None)];
    let base = start_stub(stub.clone()).await;
    forward_file(&base, dir.path(), &log)
        .await
        .expect("forwarded");

    let requests = stub.requests.lock().unwrap().clone();
    let statuses: Vec<u16> = requests.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [429, 503, 500, 201]);
    // The request after the 429 came no sooner than Retry-After said.
    assert!(requests[1].0 - requests[0].0 >= Duration::from_secs(2));
    let mut stored = stub.stored.lock().unwrap().clone();
    stored.sort();
    assert_eq!(
        stored,
        (0..5).map(|i| format!("stub-{i}")).collect::<Vec<_>>()
    );
    let (_, s) = outbox_status(dir.path()).await;
    assert_eq!((s.delivered, s.queued, s.dead), (5, 0, 0));
    assert!(s.last_error.unwrap().contains("500"));
}

#[tokio::test]
async fn a_record_the_target_refuses_is_dead_lettered_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    append(&log, records("split", 0..8));
    let stub = Stub::default();
    // The whole batch refused (422), then its halves: the first half refused again, its
    // halves stored, and so on: the script ends in one refused record.
    *stub.script.lock().unwrap() = vec![
        (422, None),
        (422, None),
        (422, None),
        (201, None),
        (422, None),
    ];
    let base = start_stub(stub.clone()).await;
    forward_file(&base, dir.path(), &log)
        .await
        .expect("forwarded");
    let stored = stub.stored.lock().unwrap().clone();
    let (outbox, s) = outbox_status(dir.path()).await;
    assert_eq!((s.delivered, s.dead, s.queued), (7, 1, 0), "{s:?}");
    assert_eq!(stored.len(), 7);
    let dead = outbox.dead(5).await.unwrap();
    assert!(
        dead[0].reason.contains("the target refused it: 422"),
        "{dead:?}"
    );
    assert!(!stored.iter().any(|id| dead[0].record.contains(id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_standard_input_and_pushed_over_http_are_delivered() {
    let setup = Setup::new().await;
    let server = Server::start(&setup.data).await;
    let common = [
        "forward",
        "--target",
        &server.base,
        "--token-file",
        arg(&setup.token_file),
    ];

    // Standard input: delivered, then the forwarder exits by itself.
    let stdin_state = setup.state.with_file_name("stdin-state");
    let mut child =
        command(&[&common[..], &["--stdin", "--state-dir", arg(&stdin_state)]].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start coachloop forward --stdin");
    let mut input = child.stdin.take().unwrap();
    let text = records("in", 0..50).join("\n") + "\n";
    tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes())
        .await
        .unwrap();
    drop(input);
    let exit = tokio::time::timeout(Duration::from_secs(90), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success());

    // Pushed: answered once committed, with what became of each line.
    let push_state = setup.state.with_file_name("push-state");
    let mut pusher = Forwarder::start(&[
        "--target",
        &server.base,
        "--token-file",
        arg(&setup.token_file),
        "--state-dir",
        arg(&push_state),
        "--receive",
        "127.0.0.1:0",
    ]);
    let url = pusher.url_after("receiving records at ").await;
    let body = records("in", 50..60).join("\n") + "\nnot json\n";
    let answer: Value = reqwest::Client::new()
        .post(&url)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["accepted"], 10, "{answer}");
    assert!(
        answer["refused"][0]
            .as_str()
            .unwrap()
            .starts_with("request line 11: not a JSON object"),
        "{answer}"
    );
    until("the pushed records are delivered", || {
        let state = push_state.clone();
        async move { status(&state).await["delivered"] == 10 }
    })
    .await;
    assert_exactly_once(&server, &setup.token, "in", 60).await;
    let _ = pusher.child.start_kill();
}
