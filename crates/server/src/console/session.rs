//! Console sessions. Signing in sets an HttpOnly, SameSite=Lax cookie (`Secure` behind
//! TLS) holding a random secret; the store keeps only its SHA-256, so every node knows
//! every session and signing out ends it everywhere. Each session has its own CSRF
//! token, which every form carries and every POST must give back ([`Posted`]).

use super::layout;
use crate::AppState;
use crate::cookies;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coachloop_store::console::ConsoleSession;
use rand::RngCore;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "coachloop_console";
/// How long a session lasts after signing in.
pub const TTL_MS: i64 = 12 * 3_600_000;

/// A random secret, hex.
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a session's secret.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The `Set-Cookie` value for `name`: the console's paths only, never readable by
/// scripts; `max_age` 0 removes it.
pub fn cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .expect("cookie values are hex")
}

/// The signed-in administrator of a console request. Without a live session, a page
/// answers with the way to the sign-in form (and back).
pub struct Session(pub ConsoleSession);

impl std::ops::Deref for Session {
    type Target = ConsoleSession;

    fn deref(&self) -> &ConsoleSession {
        &self.0
    }
}

impl Session {
    /// The session a request's cookie names, if it is live.
    pub async fn of(state: &AppState, headers: &HeaderMap) -> Result<Option<Self>, Response> {
        let Some(secret) = cookies::get(headers, COOKIE) else {
            return Ok(None);
        };
        match state.store.console_session(&token_hash(secret)).await {
            Ok(session) => Ok(session.map(Self)),
            Err(e) => Err(layout::store_error(e)),
        }
    }

    /// The name shown for the administrator.
    pub fn who(&self) -> String {
        match (&self.first_name, &self.last_name) {
            (Some(first), Some(last)) => format!("{first} {last}"),
            (Some(name), None) | (None, Some(name)) => name.clone(),
            (None, None) => self.email.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Session::of(state, &parts.headers).await? {
            Some(session) => Ok(session),
            None => {
                let back = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/console/");
                let to = format!("/console/sign-in?next={}", urlencode(back));
                Err((
                    StatusCode::SEE_OTHER,
                    [(LOCATION, HeaderValue::from_str(&to).expect("encoded"))],
                )
                    .into_response())
            }
        }
    }
}

/// Percent-encodes a path for a query value.
pub fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).expect("a string encodes")[1..].to_owned()
}

/// A form posted by a signed-in administrator, refused (403) unless it carries the
/// session's CSRF token in its `csrf` field.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// Whether `given` is `expected`, in constant time.
pub fn same_token(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token: Csrf = serde_urlencoded::from_bytes(&bytes).unwrap_or(Csrf {
            csrf: String::new(),
        });
        if !same_token(&token.csrf, &session.csrf) {
            return Err(layout::problem(
                Some(&session),
                StatusCode::FORBIDDEN,
                "This form did not come from your console session",
                "It may be from an old page or from another site. Go back, reload the page \
                 and send it again.",
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            layout::problem(
                Some(&session),
                StatusCode::UNPROCESSABLE_ENTITY,
                "The form could not be read",
                &e.to_string(),
            )
        })?;
        Ok(Self { session, form })
    }
}

/// A redirect after a form (303, so that reloading does not post again).
pub fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/console/")),
        )],
    )
        .into_response()
}

/// A redirect that also sets a cookie.
pub fn see_other_setting(to: &str, set: HeaderValue) -> Response {
    let mut response = see_other(to);
    response.headers_mut().append(SET_COOKIE, set);
    response
}

/// A posted form's fields, in order (checkboxes give a name several times).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// The value of `name`, trimmed, or none when it is blank.
    pub fn given(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
