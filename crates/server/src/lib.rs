//! coachloop-server: the HTTP surfaces of coachloop on one listener.
//!
//! Each surface exposes a router over [`AppState`]; [`app`] merges them and adds the
//! layers every request passes (request id, trace span, metrics, body limit).

pub mod activity;
pub mod api;
pub mod audit;
pub mod auth;
pub mod console;
pub mod cookies;
pub mod docs;
pub mod error;
pub mod learn;
pub mod limits;
pub mod metrics;
pub mod notices;
pub mod ops;
pub mod outbound;
pub mod paging;
pub mod remote;
pub mod reporting;
pub mod schedule;
pub mod schemas;
pub mod scim;
pub mod secrets;
pub mod user_events;
pub mod xapi;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use coachloop_core::destination::PrivateDestinations;
use coachloop_store::Store;
use coachloop_store::ingest::Ingestor;
use error::ApiError;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one bulk `POST /events`.
    pub max_bulk_events: usize,
    /// The address people reach this server at, for links in emails (e.g.
    /// `https://training.example.com`); default: the `Host` of the request at hand.
    pub public_url: Option<String>,
    /// Where email goes out; none: emails are skipped (and say so in their log).
    pub smtp: Option<notices::SmtpConfig>,
    /// Which non-public addresses webhooks (and every other URL a user gives) may reach;
    /// default: none (see [`outbound`]).
    pub allow_private_destinations: PrivateDestinations,
    /// Names answered before the system resolver is asked, for user-given URLs. Empty in
    /// production; tests make a name resolve to an internal address with it (CI machines
    /// have no outside DNS).
    pub static_hosts: HashMap<String, Vec<IpAddr>>,
    /// How long a node holds a notice job it sends (PostgreSQL, several nodes): another
    /// node sends it when a node dies mid-send, this long after it claimed it.
    pub notice_lease: std::time::Duration,
    /// Seals remote sync keys at rest (see [`secrets`]); every node needs the same.
    pub secret_key: Arc<secrets::Secrets>,
    /// Where each region's Reporting API answers (remote sync).
    pub regions: remote::Regions,
    /// One remote sync request's limit.
    pub sync_timeout: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_bulk_events: 1_000,
            public_url: None,
            smtp: None,
            allow_private_destinations: PrivateDestinations::default(),
            static_hosts: HashMap::new(),
            notice_lease: notices::NOTICE_LEASE,
            secret_key: Arc::new(secrets::Secrets::random()),
            regions: remote::Regions::default(),
            sync_timeout: remote::REQUEST_TIMEOUT,
        }
    }
}

/// What every handler can reach: one `Arc`, so extracting it per request is one
/// reference-count bump.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Starts the event writer for `store` and returns the state with the writer's task.
    pub async fn start(
        store: Store,
        config: ServerConfig,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        store.register_node().await?;
        let metrics = Arc::new(metrics::Metrics::new(store.node()));
        let observer = metrics.clone();
        let (ingest, writer) =
            Ingestor::start(&store, Arc::new(move |commit| observer.committed(commit))).await?;
        let executor = tokio::spawn(schedule::run(store.clone(), schedule::Work::Groups));
        let training = tokio::spawn(schedule::run(store.clone(), schedule::Work::Training));
        let daily = tokio::spawn(schedule::daily_risk(store.clone()));
        let heartbeats = tokio::spawn(schedule::heartbeats(store.clone()));
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| "http://localhost".to_owned())
            .trim_end_matches('/')
            .to_owned();
        let outbound = outbound::Gate::new(
            config.allow_private_destinations.clone(),
            config.static_hosts.clone(),
        );
        let webhooks = outbound
            .client(notices::WEBHOOK_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for webhooks: {e}"))?;
        let mailer = match config.smtp.as_ref().map(notices::Mailer::new) {
            None => None,
            Some(Ok(mailer)) => Some(mailer),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "email is off: the SMTP settings are not usable");
                None
            }
        };
        let notices = tokio::spawn(notices::run(
            store.clone(),
            ingest.clone(),
            mailer.clone(),
            base_url,
            webhooks,
            config.notice_lease,
        ));
        let syncer = remote::Syncer {
            store: store.clone(),
            client: outbound
                .client(config.sync_timeout)
                .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for syncs: {e}"))?,
            secret: config.secret_key.clone(),
            holder: store.node().to_owned(),
        };
        let syncs = tokio::spawn(remote::runner(syncer.clone()));
        let state = Self(Arc::new(Shared {
            store,
            ingest,
            tokens: Arc::default(),
            activity: Arc::default(),
            limits: limits::RateLimiter::default(),
            reporting: reporting::Caches::default(),
            metrics,
            outbound,
            syncer,
            mailer,
            config: Arc::new(config),
            reader: std::sync::OnceLock::new(),
            console: console::Caches::default(),
            background: vec![
                executor.abort_handle(),
                training.abort_handle(),
                daily.abort_handle(),
                notices.abort_handle(),
                heartbeats.abort_handle(),
                syncs.abort_handle(),
            ],
        }));
        Ok((state, writer))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Store,
    pub ingest: Ingestor,
    pub tokens: Arc<auth::TokenCache>,
    /// Senders' last events and errors, written a second at a time.
    pub activity: Arc<activity::Activity>,
    pub limits: limits::RateLimiter,
    /// Page anchors and current risk scores of the Reporting API.
    pub reporting: reporting::Caches,
    pub metrics: Arc<metrics::Metrics>,
    /// Where requests to user-given URLs may go.
    pub outbound: outbound::Gate,
    /// Remote syncs: runs and *Test connection*.
    pub syncer: remote::Syncer,
    /// Email, when an SMTP server is configured (the notice runner's, and test sends).
    pub mailer: Option<notices::Mailer>,
    pub config: Arc<ServerConfig>,
    /// The console's caches (the dashboard's latest reports).
    pub console: console::Caches,
    /// The JSON surfaces' routes, for the audit log's read of a resource before a change
    /// (set by [`app`]; kept without the state, which would otherwise own itself).
    pub reader: std::sync::OnceLock<Router<AppState>>,
    /// Background tasks (the executors, daily risk), stopped with the state.
    background: Vec<tokio::task::AbortHandle>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every surface with its OpenAPI description.
fn surfaces() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::base())
        .merge(user_events::router())
        .merge(api::router())
        .merge(reporting::router())
        .merge(xapi::router())
        .merge(ops::router())
}

/// The OpenAPI document of every JSON endpoint, generated from the code.
pub fn openapi() -> OpenApi {
    docs::complete(surfaces().into_openapi())
}

/// The complete application.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = surfaces().split_for_parts();
    let body_limit = state.config.max_body_bytes;
    let _ = state.reader.set(router.clone().merge(scim::router()));
    router
        .merge(docs::router(Arc::new(docs::complete(openapi))))
        .merge(learn::router())
        .merge(console::router())
        .merge(scim::router())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; /docs lists them",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; /docs lists what it takes",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            xapi::alternate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Builds the state for `store` (starting the event writer) and serves on `listener`
/// until `shutdown` resolves; then finishes in-flight requests and the queued writes.
pub async fn serve(
    store: Store,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut config = config;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{}", listener.local_addr()?));
    }
    let (state, writer) = AppState::start(store.clone(), config).await?;
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    // The router (and with it the last Ingestor handle) is gone: the writer drains and ends.
    writer.await?;
    if let Err(e) = store.node_stopped().await {
        tracing::warn!(error = %e, "could not record that this node stopped");
    }
    store.close().await;
    Ok(())
}
