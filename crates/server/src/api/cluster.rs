//! `/api/cluster`: the nodes of the installation, the leases of timed work and the notice
//! jobs each node is sending. Installation-wide: every account's admins see the same.

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiResult, ErrorBody, Json};
use crate::paging::DataOf;
use axum::extract::State;
use coachloop_core::time::format_ms;
use coachloop_store::leases::Lease as LeaseRow;
use coachloop_store::nodes::{JobsInFlight as JobsRow, Node as NodeRow};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cluster {
    /// Every node seen in the last day, oldest first.
    pub nodes: Vec<Node>,
    /// Timed work one node does at a time (`daily_risk`: the hourly risk record).
    pub leases: Vec<Lease>,
    /// Notice jobs each node is sending now (claimed, their lease not over).
    pub jobs_in_flight: Vec<NodeJobs>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Node {
    /// Host, process id and a random suffix: a restarted process is a new node.
    pub id: String,
    /// The coachloop version it runs.
    pub version: String,
    pub hostname: String,
    pub started_at: String,
    /// Its last heartbeat (every 5 s while it runs).
    pub heartbeat_at: String,
    /// A heartbeat in the last 15 s, and not stopped.
    pub live: bool,
    /// The node that answered this request.
    pub this_node: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Lease {
    pub name: String,
    /// The node doing the work now; null when none is.
    pub holder: Option<String>,
    /// When the holder's lease ends (another node may take the work over after it);
    /// null when none holds it.
    pub until: Option<String>,
    /// The end of the last period done (for `daily_risk`, the hour); null before the first.
    pub done_through: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeJobs {
    pub node: String,
    pub jobs: i64,
}

impl Node {
    fn of(row: NodeRow, this_node: &str) -> Self {
        Self {
            this_node: row.id == this_node,
            id: row.id,
            version: row.version,
            hostname: row.hostname,
            started_at: format_ms(row.started_at),
            heartbeat_at: format_ms(row.heartbeat_at),
            live: row.live,
        }
    }
}

impl From<LeaseRow> for Lease {
    fn from(row: LeaseRow) -> Self {
        Self {
            until: row.holder.is_some().then(|| format_ms(row.until)),
            holder: row.holder,
            done_through: (row.done_through > 0).then(|| format_ms(row.done_through)),
            name: row.name,
        }
    }
}

impl From<JobsRow> for NodeJobs {
    fn from(row: JobsRow) -> Self {
        Self {
            node: row.node,
            jobs: row.jobs,
        }
    }
}

/// The installation: its nodes, who does the timed work, what each node is sending.
#[utoipa::path(get, path = "/api/cluster", tag = "ops",
    responses(
        (status = 200, description = "nodes, leases and notice jobs in flight", body = DataOf<Cluster>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn cluster(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<DataOf<Cluster>>> {
    let store = &state.store;
    let nodes = store.nodes().await?;
    let leases = store.leases().await?;
    let jobs = store.jobs_in_flight().await?;
    Ok(Json(DataOf {
        data: Cluster {
            nodes: nodes
                .into_iter()
                .map(|n| Node::of(n, store.node()))
                .collect(),
            leases: leases.into_iter().map(Lease::from).collect(),
            jobs_in_flight: jobs.into_iter().map(NodeJobs::from).collect(),
        },
    }))
}
