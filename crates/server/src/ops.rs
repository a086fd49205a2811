//! Operator endpoints: liveness, readiness, Prometheus metrics.

use crate::AppState;
use crate::error::{ApiError, ApiResult, Json};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "ready", body = Health),
        (status = 503, description = "the database does not answer; `Retry-After` says when to ask again", body = crate::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    // Not ready whatever the failure, with the answer requests get while the database
    // cannot be reached.
    state.store.ping().await.map_err(ApiError::unavailable)?;
    Ok(Json(Health { status: "ok" }))
}

/// Prometheus text exposition: requests and latencies by route, events ingested, the
/// smart-group engine's cache, the installation's live nodes and this node's id and
/// version.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text format", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.engine_cache(state.store.engine_cache().await);
    state.metrics.nodes_live(live_nodes(&state.store).await);
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// How many nodes are live; `None` if they cannot be read within a second (the scrape
/// then shows the last count rather than waiting for a database that is away).
async fn live_nodes(store: &coachloop_store::Store) -> Option<usize> {
    let read = tokio::time::timeout(std::time::Duration::from_secs(1), store.nodes()).await;
    match read {
        Ok(Ok(nodes)) => Some(nodes.iter().filter(|n| n.live).count()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "could not read the nodes for /metrics");
            None
        }
        Err(_) => None,
    }
}
