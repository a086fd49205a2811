//! coachloop-forwarder: the sender side of the User Event API. It reads a password
//! manager's audit log (a followed file, standard input, or records pushed over local
//! HTTP), maps each record to an event ([`mapping`]), keeps it in a durable outbox
//! ([`outbox`]) and delivers it ([`deliver`]) to coachloop or the reference service. It
//! shares no state with the server: it is a client, like any other sender.

pub mod deliver;
pub mod input;
pub mod mapping;
pub mod outbox;
pub mod status;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use deliver::Target;
use input::Input;
use mapping::Mapping;
use outbox::{Accepted, Outbox};
use serde_json::{Value, json};
use status::Status;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Everything a forwarder needs.
#[derive(Debug)]
pub struct Options {
    pub target: Target,
    pub input: Input,
    pub mapping: Mapping,
    pub state_dir: PathBuf,
    /// Send records dated from then on (epoch ms), history included.
    pub backfill_since: Option<i64>,
    /// The local listener for `GET /status` (and `POST /records` with [`Input::Http`]).
    pub listener: Option<tokio::net::TcpListener>,
    /// Requests in flight at once.
    pub parallel: usize,
}

/// What the parts of a running forwarder share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) outbox: Outbox,
    pub(crate) mapping: Arc<Mapping>,
    pub(crate) send_since: i64,
    pub(crate) target: Arc<Target>,
    pub(crate) client: reqwest::Client,
    /// Rung when records are committed.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    pub(crate) warned_statuses: Arc<AtomicBool>,
}

impl Shared {
    pub(crate) fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The default state directory: `$XDG_STATE_HOME/coachloop/forward`, else
/// `~/.local/state/coachloop/forward`, else `./coachloop-forward`.
pub fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("state"))
        });
    match base {
        Some(base) => base.join("coachloop").join("forward"),
        None => PathBuf::from("coachloop-forward"),
    }
}

/// Runs a forwarder until its input ends and everything is delivered (a file without
/// following, standard input), until `shutdown`, or until the target refuses the key
/// (an error saying why and what to do).
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let outbox = Outbox::open(&options.state_dir, now, options.backfill_since).await?;
    let progress = outbox.progress().await?;
    let client = reqwest::Client::builder()
        // A target that takes the connection but never answers is retried, not waited on.
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let shared = Shared {
        outbox: outbox.clone(),
        mapping: Arc::new(options.mapping),
        send_since: progress.send_since,
        target: Arc::new(options.target),
        client,
        wake: Arc::new(tokio::sync::Notify::new()),
        warned_statuses: Arc::new(AtomicBool::new(false)),
    };
    tracing::info!(
        "forwarding to {} records dated from {} (state in {})",
        shared.target.events_url(),
        status::time(progress.send_since),
        options.state_dir.display()
    );
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let local = match options.listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let http = matches!(options.input, Input::Http);
            if http {
                tracing::info!("receiving records at http://{addr}/records");
            }
            tracing::info!("status at http://{addr}/status");
            let app = local_router(shared.clone(), http);
            Some(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ))
        }
        None if matches!(options.input, Input::Http) => {
            anyhow::bail!("records pushed over HTTP need a listener: pass --listen ADDR")
        }
        None => None,
    };
    let reader = {
        let shared = shared.clone();
        let input = options.input.clone();
        tokio::spawn(async move {
            let result = match &input {
                Input::File { path, follow } => input::read_file(&shared, path, *follow).await,
                Input::Stdin => input::read_stream(&shared, tokio::io::stdin(), "stdin").await,
                // Records arrive through the local listener until shutdown.
                Input::Http => std::future::pending().await,
            };
            let _ = done_tx.send(true);
            result
        })
    };
    // Delivery ends by itself once the input has ended and the outbox is empty; an input
    // that fails ends the run at once.
    let failed_input = async {
        match flatten(reader).await {
            Ok(()) => std::future::pending().await,
            Err(e) => Err(e),
        }
    };
    let result = tokio::select! {
        delivered = deliver::run(&shared, options.parallel, done) => delivered,
        failed = failed_input => failed,
        () = shutdown => Ok(()),
    };
    if let Some(local) = local {
        local.abort();
    }
    outbox.close().await;
    result
}

async fn flatten(task: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    task.await.context("the input stopped")?
}

/// `GET /status`, and `POST /records` when records are pushed.
fn local_router(shared: Shared, records: bool) -> Router {
    let router = Router::new().route("/status", get(get_status));
    let router = if records {
        router.route("/records", post(post_records))
    } else {
        router
    };
    router.with_state(shared)
}

async fn get_status(
    State(shared): State<Shared>,
) -> Result<axum::Json<Status>, (StatusCode, String)> {
    Status::of(&shared.outbox)
        .await
        .map(axum::Json)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))
}

/// JSON lines (or one JSON array of records): answered once they are committed, with what
/// became of them; the lines that are not records are named by number.
async fn post_records(
    State(shared): State<Shared>,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let mut batch = Accepted::default();
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        match serde_json::from_slice::<Vec<Box<serde_json::value::RawValue>>>(trimmed) {
            Ok(items) => {
                for (i, item) in items.iter().enumerate() {
                    shared.take_line(
                        &mut batch,
                        "request item",
                        i as u64 + 1,
                        item.get().as_bytes(),
                    );
                }
            }
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({"message": format!("the body is not a JSON array of records: {e}")}),
                    ),
                );
            }
        }
    } else {
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            shared.take_line(&mut batch, "request", i as u64 + 1, line);
        }
    }
    let answer = json!({
        "accepted": batch.events.len(),
        "ignored": batch.ignored,
        "before_activation": batch.before_activation,
        "refused": batch.dead.iter().map(|(why, _)| why.as_str()).collect::<Vec<_>>(),
    });
    match shared.commit(&mut batch).await {
        Ok(()) => (StatusCode::OK, axum::Json(answer)),
        Err(e) => {
            tracing::error!("cannot commit pushed records: {e:#}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({"message": "the outbox cannot be written; nothing was accepted"}),
                ),
            )
        }
    }
}
