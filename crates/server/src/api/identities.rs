//! The names people are known by: `/api/users/{id}/aliases`, and `/api/unmatched`, the
//! identities that sent events but match nobody. Adding an identity from the inbox as a
//! person's alias maps it: its events become theirs and their smart groups are
//! evaluated again, in one step.

use crate::AppState;
use crate::api::users::User;
use crate::auth::{Admin, Auth};
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::ids::UserId;
use coachloop_core::scope::Scope;
use coachloop_core::time::format_ms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_aliases, add_alias))
        .routes(routes!(remove_alias))
        .routes(routes!(list_unmatched))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasInput {
    /// Another email address or username the person is known by (matched ignoring case
    /// and surrounding spaces).
    #[schema(min_length = 1, max_length = 320, pattern = r"\S")]
    pub alias: String,
}

/// An alias added, and what it brought.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasAdded {
    pub alias: String,
    /// Events that named it and matched nobody, now the person's.
    pub events_attributed: u64,
    pub user: User,
}

/// An identity that sent events matching no person.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnmatchedIdentity {
    /// As the events named it.
    pub identity: String,
    pub events: i64,
    /// RFC 3339: when its first and latest events were received.
    pub first_seen: String,
    pub last_seen: String,
    pub event_types: Vec<EventTypeCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeCount {
    pub name: String,
    pub count: i64,
}

/// A person's aliases.
#[utoipa::path(get, path = "/api/users/{id}/aliases", tag = "people",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, description = "the aliases, in order", body = DataOf<Vec<String>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_aliases(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Vec<String>>>> {
    auth.require(Scope::UserRead)?;
    let user = state.store.user(auth.account(), UserId(id)).await?;
    Ok(Json(DataOf { data: user.aliases }))
}

/// Add an alias. Events that named it and matched nobody become the person's, and
/// their smart groups are evaluated again, in one step: this is how an identity from
/// `/api/unmatched` is mapped to a person.
#[utoipa::path(post, path = "/api/users/{id}/aliases", tag = "people",
    params(("id" = i64, Path, description = "user id")),
    request_body = AliasInput,
    responses(
        (status = 201, description = "added (or the person's already)", body = DataOf<AliasAdded>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody),
        (status = 409, description = "the alias belongs to another person", body = ErrorBody),
        (status = 422, description = "a bad alias", body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_alias(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(body): Json<AliasInput>,
) -> ApiResult<(StatusCode, Json<DataOf<AliasAdded>>)> {
    let (user, events_attributed) = state
        .store
        .add_alias(auth.account(), UserId(id), &body.alias)
        .await?;
    let data = AliasAdded {
        alias: body.alias.trim().to_owned(),
        events_attributed,
        user: user.into(),
    };
    Ok((StatusCode::CREATED, Json(DataOf { data })))
}

/// Remove an alias. Events already the person's stay theirs; new events that name it
/// match nobody.
#[utoipa::path(delete, path = "/api/users/{id}/aliases/{alias}", tag = "people",
    params(("id" = i64, Path, description = "user id"),
           ("alias" = String, Path, description = "the alias (any case)")),
    responses(
        (status = 200, description = "removed", body = DataOf<User>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such person in this account, or no such alias of theirs", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_alias(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path((id, alias)): Path<(i64, String)>,
) -> ApiResult<Json<DataOf<User>>> {
    let user = state
        .store
        .remove_alias(auth.account(), UserId(id), &alias)
        .await?;
    Ok(Json(DataOf { data: user.into() }))
}

/// The identities that sent events but match no person (neither an email nor an
/// alias), the most recently seen first.
#[utoipa::path(get, path = "/api/unmatched", tag = "people",
    params(PageParams),
    responses(
        (status = 200, description = "a page of unmatched identities", body = ListOf<UnmatchedIdentity>),
        (status = 400, description = "a bad page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read` or `events:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_unmatched(
    State(state): State<AppState>,
    auth: Auth,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<UnmatchedIdentity>>> {
    auth.require(Scope::UserRead)?;
    auth.require(Scope::EventsRead)?;
    let page = paging.page()?;
    let (rows, count) = state.store.unmatched(auth.account(), page).await?;
    let data = rows
        .into_iter()
        .map(|u| UnmatchedIdentity {
            identity: u.identity,
            events: u.events,
            first_seen: format_ms(u.first_seen),
            last_seen: format_ms(u.last_seen),
            event_types: u
                .event_types
                .into_iter()
                .map(|(name, count)| EventTypeCount { name, count })
                .collect(),
        })
        .collect();
    Ok(Json(ListOf {
        data,
        meta: Meta::new(page, count),
    }))
}
