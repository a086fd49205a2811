//! End-to-end helpers: run the real `coachloop` binary as a child process, each test over
//! its own data ([`TestData`]: a database on the engine `COACHLOOP_TEST_ENGINE` picks),
//! and learn a server's address from its own log line.
#![allow(
    dead_code,
    reason = "each test binary uses its own subset of these helpers"
)]

use coachloop_store::testing::TestDatabase;
use coachloop_store::{Backend, DatabaseUrl};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long a child may take to print what we wait for, or to exit.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The line `serve` logs once it is bound.
const LISTENING: &str = "coachloop listening on http://";

/// A test's own data, on the engine of the run: on SQLite a data directory, on
/// PostgreSQL a database of its own. Every command of the test reaches it through
/// [`TestData::flags`]; the commands' environment names no data (see [`command`]).
pub struct TestData {
    /// What the flags name: on SQLite the data directory, on PostgreSQL the database URL.
    flags: [String; 2],
    url: DatabaseUrl,
    database: TestDatabase,
}

impl TestData {
    /// A migrated database.
    pub async fn new() -> Self {
        let database = TestDatabase::new().await;
        let dir = database.dir().to_owned();
        Self::over(database, dir)
    }

    /// Nothing yet, for what creates the database: on SQLite a data directory that does
    /// not exist yet (two levels deep), on PostgreSQL an empty database.
    pub async fn empty() -> Self {
        let database = TestDatabase::empty().await;
        let dir = database.dir().join("new").join("data");
        Self::over(database, dir)
    }

    fn over(database: TestDatabase, data_dir: PathBuf) -> Self {
        let (flags, url) = match Backend::of(database.url()).expect("a test database URL") {
            Backend::Sqlite => (
                ["--data-dir".to_owned(), arg(&data_dir).to_owned()],
                DatabaseUrl::in_data_dir(&data_dir),
            ),
            Backend::Postgres => (
                [
                    "--database-url".to_owned(),
                    database.url().expose().to_owned(),
                ],
                database.url().clone(),
            ),
        };
        Self {
            flags,
            url,
            database,
        }
    }

    /// The flags that point a command at this data (`--data-dir DIR` or
    /// `--database-url URL`).
    pub fn flags(&self) -> [&str; 2] {
        [&self.flags[0], &self.flags[1]]
    }

    /// `ARGS` and then [`TestData::flags`].
    pub fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        args.iter().copied().chain(self.flags()).collect()
    }

    /// `coachloop ARGS` on this data.
    pub fn command(&self, args: &[&str]) -> Command {
        command(&self.args(args))
    }

    /// Runs `coachloop ARGS` on this data to the end.
    pub async fn run(&self, args: &[&str]) -> Output {
        run(&self.args(args)).await
    }

    /// The database the commands open.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A directory of the test's own for files it gives the commands (CSV files); on
    /// SQLite the data directory of [`TestData::new`].
    pub fn scratch(&self) -> &Path {
        self.database.dir()
    }
}

/// `coachloop ARGS`, with the caller's `COACHLOOP_*` and `RUST_LOG` variables removed so
/// that only the flags decide where the data is and what is logged.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coachloop"));
    command.args(args).env_remove("RUST_LOG").kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("COACHLOOP_") {
            command.env_remove(name);
        }
    }
    command
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Both streams, for messages that may go to either.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert!(self.status.success(), "command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts a non-zero exit and returns stderr.
    #[track_caller]
    pub fn failure(&self) -> &str {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "command should fail with an exit code: {self:#?}"
        );
        &self.stderr
    }
}

/// Runs `coachloop ARGS` to the end.
pub async fn run(args: &[&str]) -> Output {
    let child = command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coachloop");
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`coachloop {}` did not finish", args.join(" ")))
        .expect("wait for coachloop");
    Output {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// `coachloop tokens create` in `account`; returns the secret it printed.
pub async fn create_token(data: &TestData, account: &str, name: &str, scopes: &str) -> String {
    let output = data
        .run(&[
            "tokens",
            "create",
            "--account",
            account,
            "--name",
            name,
            "--scopes",
            scopes,
        ])
        .await;
    let secret = output.success().trim().to_owned();
    assert!(
        secret.starts_with("cl_") && !secret.contains(char::is_whitespace),
        "stdout is not one secret: {output:#?}"
    );
    secret
}

/// Lines a child prints, read in the background so its pipe never fills; kept so a
/// failing test can show them.
pub struct Lines {
    rx: mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(stream: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line `wanted` accepts, within [`PATIENCE`]; `None` when the stream ended
    /// or the time ran out first.
    pub async fn find(&mut self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let line = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()??;
            self.seen.push(line.clone());
            if wanted(&line) {
                return Some(line);
            }
        }
    }

    /// Everything until the stream ends (the child has exited).
    pub async fn rest(&mut self) -> &[String] {
        while let Ok(Some(line)) = tokio::time::timeout(PATIENCE, self.rx.recv()).await {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Everything printed so far, without waiting for more.
    pub fn so_far(&mut self) -> String {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
        self.joined()
    }

    pub fn joined(&self) -> String {
        self.seen.join("\n")
    }
}

/// `coachloop serve` on a test's data, listening on a port of its choosing.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub log: Lines,
}

impl Server {
    /// Starts the server and waits for its "listening" log line.
    pub async fn start(data: &TestData) -> Self {
        Self::start_with(data, &[]).await
    }

    /// [`Server::start`] with settings given as `COACHLOOP_*` variables.
    pub async fn start_with(data: &TestData, settings: &[(&str, &str)]) -> Self {
        Self::start_on(data, "127.0.0.1:0", settings).await
    }

    /// [`Server::start_with`] on a given address (a server restarted where senders know
    /// it).
    pub async fn start_on(data: &TestData, listen: &str, settings: &[(&str, &str)]) -> Self {
        let mut child = data
            .command(&["serve", "--listen", listen])
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start coachloop serve");
        let mut log = Lines::new(child.stderr.take().expect("piped stderr"));
        let Some(line) = log.find(|line| line.contains(LISTENING)).await else {
            let _ = child.start_kill();
            panic!(
                "`coachloop serve` never said where it listens; its log:\n{}",
                log.joined()
            );
        };
        let base = line
            .split_once("http://")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|addr| format!("http://{addr}"))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits for the exit; returns the exit status
    /// and the whole log.
    pub async fn interrupt(mut self) -> (ExitStatus, Vec<String>) {
        let status = interrupt(&mut self.child).await;
        self.log.rest().await;
        (status, std::mem::take(&mut self.log.seen))
    }

    /// SIGKILL: no chance to finish anything.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the server");
    }
}

/// `kill -INT PID`, then the exit status.
pub async fn interrupt(child: &mut Child) -> ExitStatus {
    let pid = child.id().expect("the child is running").to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(sent.success(), "kill -INT {pid} failed");
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the child exits after SIGINT")
        .expect("wait for the child")
}

/// Sends a request; returns the status and the body (JSON or `Null`).
async fn send(request: reqwest::RequestBuilder, what: &str) -> (StatusCode, Value) {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status();
    let text = response.text().await.expect("read the body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

/// A GET with a bearer token; returns the status and the body (JSON or `Null`).
pub async fn get(client: &reqwest::Client, token: &str, url: &str) -> (StatusCode, Value) {
    send(client.get(url).bearer_auth(token), &format!("GET {url}")).await
}

/// A POST of JSON with a bearer token; returns the status and the body.
pub async fn post(
    client: &reqwest::Client,
    token: &str,
    url: &str,
    body: &Value,
) -> (StatusCode, Value) {
    send(
        client.post(url).bearer_auth(token).json(body),
        &format!("POST {url}"),
    )
    .await
}

/// Every item of a paged list (`/events`, `/api/users`), 500 at a time.
pub async fn all_pages(
    client: &reqwest::Client,
    token: &str,
    server: &Server,
    path: &str,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let url = server.url(&format!("{path}?per_page=500&page={page}"));
        let (status, body) = get(client, token, &url).await;
        assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
        items.extend(
            body["data"]
                .as_array()
                .expect("a data array")
                .iter()
                .cloned(),
        );
        match body["meta"]["next_page"].as_u64() {
            Some(next) => page = next,
            None => return items,
        }
    }
}

/// The `external_id`s of every event the token's account holds.
pub async fn stored_external_ids(
    client: &reqwest::Client,
    token: &str,
    server: &Server,
) -> HashSet<String> {
    all_pages(client, token, server, "/events")
        .await
        .iter()
        .filter_map(|event| event["external_id"].as_str().map(str::to_owned))
        .collect()
}
