//! Prometheus metrics of one server: requests and latencies by route, events ingested,
//! the smart-group engine's cache, the installation's live nodes and this node.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use coachloop_store::ingest::Commit;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    route: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    events: Counter,
    commits: Counter,
    commit_events: Histogram,
    engine_people: Gauge,
    engine_facts: Gauge,
    nodes_live: Gauge,
}

impl Metrics {
    /// The metrics of the node `node` (see `Store::node`).
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix("coachloop");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        let events = Counter::default();
        registry.register("events_ingested", "Events stored", events.clone());
        let commits = Counter::default();
        registry.register(
            "ingest_commits",
            "Transactions of the event writer (each one fsync)",
            commits.clone(),
        );
        let commit_events = Histogram::new(exponential_buckets(1.0, 4.0, 8));
        registry.register(
            "ingest_commit_events",
            "Events per writer transaction (group commit)",
            commit_events.clone(),
        );
        let engine_people = Gauge::default();
        registry.register(
            "engine_cached_people",
            "People whose facts the smart-group engine holds in memory",
            engine_people.clone(),
        );
        let engine_facts = Gauge::default();
        registry.register(
            "engine_cached_facts",
            "Event facts the smart-group engine holds in memory (about 40 bytes each)",
            engine_facts.clone(),
        );
        let nodes_live = Gauge::default();
        registry.register(
            "cluster_nodes_live",
            "Nodes of the installation whose heartbeat is current (this one included)",
            nodes_live.clone(),
        );
        registry.register(
            "node",
            "This node and the coachloop version it runs",
            Info::new(vec![
                ("node", node.to_owned()),
                ("version", coachloop_store::nodes::VERSION.to_owned()),
            ]),
        );
        Self {
            registry,
            requests,
            latency,
            events,
            commits,
            commit_events,
            engine_people,
            engine_facts,
            nodes_live,
        }
    }

    /// Records a durable commit of the event writer.
    pub fn committed(&self, commit: Commit) {
        self.events.inc_by(commit.events as u64);
        self.commits.inc();
        self.commit_events.observe(commit.events as f64);
    }

    /// Records the size of the smart-group engine's cache (kept as last seen while a
    /// change of facts holds the engine).
    pub fn engine_cache(&self, size: Option<coachloop_store::engine::CacheSize>) {
        if let Some(size) = size {
            self.engine_people.set(size.people as i64);
            self.engine_facts.set(size.facts as i64);
        }
    }

    /// Records how many nodes are live (kept as last seen when they cannot be read).
    pub fn nodes_live(&self, live: Option<usize>) {
        if let Some(live) = live {
            self.nodes_live.set(live as i64);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware: counts and times every request under its route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&LatencyLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
