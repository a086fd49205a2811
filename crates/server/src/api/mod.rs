//! coachloop's own admin API under `/api`: everything the console can do.

mod admins;
pub mod audit;
mod cluster;
mod compliance;
mod connections;
pub(crate) mod evidence;
mod groups;
mod identities;
mod notices;
mod risk;
mod success;
mod tokens;
pub(crate) mod training;
mod users;
mod webhooks;
pub mod xapi;

use crate::AppState;
use utoipa_axum::router::OpenApiRouter;

pub use users::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(admins::router())
        .merge(audit::router())
        .merge(cluster::router())
        .merge(compliance::router())
        .merge(connections::router())
        .merge(evidence::router())
        .merge(users::router())
        .merge(identities::router())
        .merge(groups::router())
        .merge(risk::router())
        .merge(success::router())
        .merge(tokens::router())
        .merge(training::router())
        .merge(notices::router())
        .merge(webhooks::router())
        .merge(xapi::router())
}
