//! The admin console at `/console/`: server-rendered HTML (maud templates, checked when
//! the binary is built and escaping every value), working without JavaScript. Charts
//! are SVG drawn on the server. Administrators sign in with a password ([`sign_in`]);
//! sessions and CSRF tokens live in the store, so any node serves any page.

mod api;
mod audit_log;
mod builder;
mod campaigns;
mod charts;
mod compliance;
mod content;
mod dashboard;
mod groups;
mod integrations;
mod layout;
mod notices;
pub mod password;
mod people;
mod session;
mod sign_in;
mod unmatched;
mod why;

use crate::AppState;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use sign_in::LOCK_OUT;

/// What the console keeps in memory on a node (caches only).
#[derive(Default)]
pub struct Caches {
    pub(crate) reports: dashboard::Reports,
}

/// The live console session of a request, if any (for the audit log's "who").
pub async fn session_of(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Option<coachloop_store::console::ConsoleSession> {
    session::Session::of(state, headers)
        .await
        .ok()
        .flatten()
        .map(|s| s.0)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { session::see_other("/console/") }),
        )
        .route("/console/", get(dashboard::show))
        .route("/console/assets/console.css", get(layout::stylesheet))
        .route("/console/sign-in", get(sign_in::show).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/integrations", get(integrations::show))
        .route(
            "/console/integrations/tokens",
            post(integrations::create_token),
        )
        .route(
            "/console/integrations/tokens/{name}/revoke",
            post(integrations::revoke_token),
        )
        .route(
            "/console/integrations/webhooks",
            post(integrations::create_webhook),
        )
        .route(
            "/console/integrations/webhooks/{id}",
            get(integrations::webhook),
        )
        .route(
            "/console/integrations/webhooks/{id}/stop",
            post(integrations::stop_webhook),
        )
        .route(
            "/console/integrations/connections",
            post(integrations::create_connection),
        )
        .route(
            "/console/integrations/connections/{id}/{action}",
            post(integrations::connection_action),
        )
        .route("/console/compliance", get(compliance::show))
        .route(
            "/console/compliance/controls/{framework}/{control}",
            get(compliance::control),
        )
        .route(
            "/console/compliance/frameworks/{id}",
            post(compliance::framework),
        )
        .route("/console/compliance/evaluate", post(compliance::evaluate))
        .route(
            "/console/compliance/exceptions",
            post(compliance::grant_exception),
        )
        .route(
            "/console/compliance/exceptions/{id}/revoke",
            post(compliance::revoke_exception),
        )
        .route("/console/compliance/evidence", post(compliance::export))
        .route(
            "/console/compliance/evidence/snapshots/{id}",
            get(compliance::snapshot),
        )
        .route("/console/compliance/verify", post(compliance::verify))
        .route("/console/people", get(people::list))
        .route("/console/people/{id}", get(people::person))
        .route(
            "/console/unmatched",
            get(unmatched::list).post(unmatched::map),
        )
        .route("/console/audit", get(audit_log::show))
        .route("/console/content", get(content::list))
        .route(
            "/console/content/new",
            get(content::new).post(content::create),
        )
        .route("/console/content/{id}", get(content::show))
        .route(
            "/console/content/{id}/edit",
            get(content::edit).post(content::update),
        )
        .route("/console/campaigns", get(campaigns::list))
        .route(
            "/console/campaigns/new",
            get(campaigns::new).post(campaigns::create),
        )
        .route("/console/campaigns/{id}", get(campaigns::campaign))
        .route(
            "/console/campaigns/{id}/notices",
            get(notices::show).post(notices::save),
        )
        .route(
            "/console/campaigns/{id}/notices/preview",
            post(notices::preview),
        )
        .route("/console/groups", get(groups::list))
        .route(
            "/console/groups/new",
            get(builder::new).post(builder::submit),
        )
        .route("/console/groups/{id}", get(groups::group))
        .route("/console/groups/{id}/history", get(groups::history))
        .fallback(not_found)
        .layer(axum::middleware::map_response(secured))
}

async fn secured(response: Response) -> Response {
    layout::secure(response)
}

async fn not_found() -> Response {
    layout::problem(
        None,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such console page.",
    )
    .into_response()
}
