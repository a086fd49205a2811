//! The console's changes go through the API, inside the process: a form becomes the JSON
//! request a script would send, answered by the same handler with the same checks
//! (outbound addresses, sealed keys, scopes, limits). The session's administrator acts
//! with `admin` on the session's account ([`ActingAdmin`]); the audit log records the
//! form, with the API's path and answer ([`noted`]).

use super::session::{Session, see_other};
use crate::AppState;
use crate::audit::Note;
use crate::auth::ActingAdmin;
use axum::body::{Body, to_bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use coachloop_core::ids::TokenId;
use coachloop_core::scope::{Scope, Scopes};
use coachloop_store::tokens::{RateLimits, Token};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// The most of an answer the console reads (evidence exports are streamed, not read).
const MAX_ANSWER: usize = 64 << 20;

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The answer's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// A refusal in words: the message, then each field and what is wrong with it.
    pub fn problem(&self) -> String {
        let mut text = self.body["message"]
            .as_str()
            .unwrap_or("the request was refused")
            .to_owned();
        for detail in self.body["details"].as_array().into_iter().flatten() {
            let said = format!(
                "{}: {}",
                detail["field"].as_str().unwrap_or_default(),
                detail["message"].as_str().unwrap_or_default()
            );
            if !text.contains(&said) {
                text.push_str("; ");
                text.push_str(&said);
            }
        }
        text
    }

    /// `response` with the change written into the audit log as this API call.
    pub fn noted(&self, mut response: Response) -> Response {
        response.extensions_mut().insert(Note {
            method: Some(self.method.clone()),
            path: Some(self.path.clone()),
            before: None,
            after: Some(self.body.clone()),
        });
        response
    }

    /// After a form: back to `to` when it worked (noted in the audit log), else the
    /// refusal as a page.
    pub fn then_see(&self, session: &Session, to: &str) -> Response {
        if self.ok() {
            self.noted(see_other(to))
        } else {
            super::layout::problem(Some(session), self.status, "Not done", &self.problem())
        }
    }
}

/// The request `method path` with a JSON `body`, made by the session's administrator.
pub async fn call(
    state: &AppState,
    session: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let answer = |status: StatusCode, body: Value| Answer {
        method: method.clone(),
        path: path.to_owned(),
        status,
        body,
    };
    let Some(router) = state.reader.get() else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"message": "the server is starting; try again in a moment"}),
        );
    };
    let mut request = Request::builder().method(method.clone()).uri(path);
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let Ok(mut request) = request.body(Body::from(bytes)) else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"message": "that address cannot be requested"}),
        );
    };
    request.extensions_mut().insert(acting(session));
    let router = router.clone().with_state(state.clone());
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let body = match to_bytes(response.into_body(), MAX_ANSWER).await {
        Ok(bytes) if bytes.is_empty() => Value::Null,
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(e) => {
            tracing::error!(error = %e, path, "could not read the API's answer to the console");
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"message": "the answer could not be read"}),
            );
        }
    };
    answer(status, body)
}

/// The request made through the API without reading its answer (an export, passed on
/// to the browser as it is).
pub async fn pass_through(state: &AppState, session: &Session, path: &str) -> Response {
    let Some(router) = state.reader.get() else {
        return super::layout::problem(
            Some(session),
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "The server is starting; try again in a moment.",
        );
    };
    let Ok(mut request) = Request::builder().uri(path).body(Body::empty()) else {
        return super::layout::problem(
            Some(session),
            StatusCode::BAD_REQUEST,
            "Bad address",
            "That address cannot be requested.",
        );
    };
    request.extensions_mut().insert(acting(session));
    match router
        .clone()
        .with_state(state.clone())
        .oneshot(request)
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn acting(session: &Session) -> ActingAdmin {
    ActingAdmin {
        token: Arc::new(Token {
            // Not a stored token: nothing the console does is attributed to one.
            id: TokenId(0),
            account_id: session.account,
            account_name: session.account_name.clone(),
            name: format!("console ({})", session.email),
            scopes: Scopes::new(vec![Scope::Admin]),
            expires_at: Some(session.expires_at),
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
            limits: RateLimits::default(),
            last_event_at: None,
            last_error: None,
            lrs_key: None,
        }),
        email: session.email.clone(),
    }
}

/// `text` as one segment of a path.
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
