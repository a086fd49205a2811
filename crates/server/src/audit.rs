//! The audit log's one mechanism: a layer over every surface. A request that changes
//! something — POST, PUT, PATCH or DELETE on `/api`, `/scim/v2`, the User Event API's
//! event types and deletions, and the console's forms — is recorded once it succeeded,
//! before its answer goes out: who (the token, or the console's administrator), what
//! (method and path), when, and the resource before and after. *Before* is read through
//! the same route's GET with the caller's own credentials (so it shows only what the
//! caller may see); *after* is what the change answered. A handler whose form is not a
//! resource (the console's) gives both itself with a [`Note`]. Secrets never reach the
//! log: values of fields that hold them are replaced.

use crate::AppState;
use crate::console::session_of;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use coachloop_core::ids::AccountId;
use coachloop_store::audit::{Actor, NewAuditEntry};
use serde_json::Value;
use tower::ServiceExt;

/// Marks the internal read of *before*: not audited, not counted against rate limits.
#[derive(Debug, Clone, Copy)]
pub struct AuditRead;

/// A handler's own account of its change, used instead of the generic one.
#[derive(Debug, Clone, Default)]
pub struct Note {
    /// The method of the change, when it is not the request's (a console form's POST
    /// that deleted something).
    pub method: Option<Method>,
    /// The resource changed, when it is not the request's path.
    pub path: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The most of an answer kept as *after*.
const MAX_BODY: usize = 256 * 1024;
/// Fields whose values are secrets, at any depth.
const SECRET_FIELDS: [&str; 5] = ["secret", "password", "key", "token", "csrf"];

/// Whether a request changes something (and so is audited).
fn changes(method: &Method, path: &str) -> bool {
    if !matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return false;
    }
    // Reads that take a body, and actions that change nothing.
    if path.ends_with("/preview") || path.ends_with("/.search") || path.ends_with("/test") {
        return false;
    }
    path.starts_with("/api/")
        || path.starts_with("/scim/v2/")
        || path.starts_with("/event_types")
        || (path.starts_with("/events/") && *method == Method::DELETE)
        || (path.starts_with("/console/") && !path.starts_with("/console/sign-"))
}

/// Who is asking: the bearer token's holder, or the console session's administrator.
async fn actor(state: &AppState, path: &str, headers: &HeaderMap) -> Option<(AccountId, Actor)> {
    if path.starts_with("/console/") {
        let session = session_of(state, headers).await?;
        return Some((
            session.account,
            Actor::Admin {
                id: session.admin.0,
                email: session.email.clone(),
            },
        ));
    }
    let secret = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?
        .1
        .trim();
    let token = state.tokens.lookup(state, secret).await.ok()??;
    Some((
        token.account_id,
        Actor::Token {
            id: token.id.0,
            name: token.name.clone(),
        },
    ))
}

/// The resource as the caller's own GET shows it now, if there is one.
async fn read(state: &AppState, path: &str, headers: &HeaderMap) -> Option<Value> {
    let router = state.reader.get()?.clone().with_state(state.clone());
    let mut get = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .ok()?;
    for name in [AUTHORIZATION, COOKIE] {
        if let Some(value) = headers.get(&name) {
            get.headers_mut().insert(name, value.clone());
        }
    }
    get.extensions_mut().insert(AuditRead);
    let response = router.oneshot(get).await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let bytes = to_bytes(response.into_body(), MAX_BODY).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Replaces the values of secret fields, at any depth.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) && !field.is_null() {
                    *field = Value::String("[secret]".to_owned());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn text(value: Option<Value>) -> Option<String> {
    value.map(|mut v| {
        redact(&mut v);
        v.to_string()
    })
}

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if !changes(&method, &path) || request.extensions().get::<AuditRead>().is_some() {
        return next.run(request).await;
    }
    // Without an identity the request changes nothing: its handler refuses it.
    let headers = request.headers().clone();
    let Some((account, actor)) = actor(&state, &path, &headers).await else {
        return next.run(request).await;
    };
    let before = match method {
        Method::PUT | Method::PATCH | Method::DELETE if !path.starts_with("/console/") => {
            read(&state, &path, &headers).await
        }
        _ => None,
    };
    let response = next.run(request).await;
    let status = response.status();
    // A change happened only when it succeeded (the console answers a form with 303).
    if !(status.is_success() || status == StatusCode::SEE_OTHER) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let (method, path, before, after, body) = match parts.extensions.get::<Note>().cloned() {
        // The handler said what changed; its answer (a page, a download) passes unread.
        Some(note) => (
            note.method.unwrap_or(method),
            note.path.unwrap_or(path),
            note.before,
            note.after,
            body,
        ),
        None => {
            let bytes = match to_bytes(body, usize::MAX).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, %path, "could not read an answer to audit it");
                    return Response::from_parts(parts, Body::empty());
                }
            };
            let after = (bytes.len() <= MAX_BODY)
                .then(|| serde_json::from_slice::<Value>(&bytes).ok())
                .flatten();
            (method, path, before, after, Body::from(bytes))
        }
    };
    let entry = NewAuditEntry {
        account,
        actor,
        method: method.to_string(),
        path,
        status: status.as_u16(),
        before: text(before),
        after: text(after),
    };
    if let Err(e) = state.store.record_audit(&entry).await {
        // The change is made; its record is not. Said loudly, with what it was.
        tracing::error!(error = %e, method = %entry.method, path = %entry.path,
            "could not record a change in the audit log");
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_left_out_at_any_depth() {
        let mut value = json!({"data": {"name": "x", "secret": "cl_abc", "nested": [{"key": "k"}],
                                "key_hint": "…abcd", "password": null}});
        redact(&mut value);
        assert_eq!(
            value,
            json!({"data": {"name": "x", "secret": "[secret]", "nested": [{"key": "[secret]"}],
                            "key_hint": "…abcd", "password": null}})
        );
    }

    #[test]
    fn which_requests_are_changes() {
        assert!(changes(&Method::PATCH, "/api/groups/1"));
        assert!(changes(&Method::DELETE, "/events/abc"));
        assert!(changes(&Method::POST, "/console/unmatched"));
        assert!(changes(&Method::PUT, "/scim/v2/Users/1"));
        assert!(!changes(&Method::POST, "/events"));
        assert!(!changes(&Method::POST, "/api/groups/preview"));
        assert!(!changes(&Method::POST, "/scim/v2/Users/.search"));
        assert!(!changes(&Method::GET, "/api/groups"));
        assert!(!changes(&Method::POST, "/console/sign-in"));
        assert!(!changes(&Method::POST, "/xapi/statements"));
    }
}
