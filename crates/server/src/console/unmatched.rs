//! Unmatched identities: names that sent events but match nobody, each with a form that
//! maps it to a person (it becomes their alias; its events become theirs and their smart
//! groups are evaluated at once).

use super::layout::{self, PageQuery, Section, csrf, pager, when};
use super::people::page_of;
use super::session::{Posted, Session, see_other};
use crate::AppState;
use crate::audit::Note;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use coachloop_core::identity::Email;
use coachloop_store::StoreError;
use maud::html;
use serde::Deserialize;
use serde_json::json;

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = page_of(query.page.as_deref(), 50);
    let (identities, total) = match state.store.unmatched(session.account, page).await {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        p { "These names sent events that match nobody. Map one to a person: it becomes one of
             their names, and its events become theirs at once." }
        @if identities.is_empty() {
            p { "Every event matches a person." }
        } @else {
            table {
                thead { tr { th { "Identity" } th.num { "Events" } th { "Types" } th { "Last seen" } th { "Map to" } } }
                tbody {
                    @for (i, u) in identities.iter().enumerate() {
                        tr {
                            td { (u.identity) }
                            td.num { (u.events) }
                            td { @for (name, count) in &u.event_types { (name) " × " (count) br; } }
                            td { (when(u.last_seen)) }
                            td {
                                form.inline method="post" action="/console/unmatched" {
                                    (csrf(&session))
                                    input type="hidden" name="identity" value=(u.identity);
                                    label for=(format!("map-{i}")) { "Person's email" }
                                    input id=(format!("map-{i}")) name="email" type="email" required;
                                    button type="submit" { "Map" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/unmatched", &[], page, total))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Unmatched, "Unmatched identities", body),
    )
}

#[derive(Debug, Deserialize)]
pub struct MapForm {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    email: String,
}

pub async fn map(State(state): State<AppState>, posted: Posted<MapForm>) -> Response {
    let Posted { session, form } = posted;
    let refuse = |what: &str| {
        layout::problem(
            Some(&session),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not mapped",
            what,
        )
    };
    let Ok(email) = Email::parse(form.email.trim()) else {
        return refuse("Give the email address of a person of this account.");
    };
    let user = match state.store.user_id_by_email(session.account, &email).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return refuse(&format!(
                "Nobody in this account has the email {}.",
                email.as_str()
            ));
        }
        Err(e) => return layout::store_error(e),
    };
    let before = match state.store.user(session.account, user).await {
        Ok(person) => person.aliases,
        Err(e) => return layout::store_error(e),
    };
    match state
        .store
        .add_alias(session.account, user, &form.identity)
        .await
    {
        Ok((person, attributed)) => {
            let mut response = see_other(&format!("/console/people/{}", user.0));
            response.extensions_mut().insert(Note {
                method: None,
                path: Some(format!("/api/users/{}/aliases", user.0)),
                before: Some(json!({ "aliases": before })),
                after: Some(json!({ "aliases": person.aliases, "events_attributed": attributed })),
            });
            response
        }
        Err(e @ (StoreError::Conflict(_) | StoreError::Invalid(_))) => refuse(&e.to_string()),
        Err(e) => layout::store_error(e),
    }
}
