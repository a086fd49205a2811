//! Signing in and out. The sign-in form carries a random token that must match a
//! cookie set with the form (there is no session yet to hold one). A wrong password
//! counts against the administrator; [`LOCK_OUT`] failures in a row lock them out for a
//! while, on every node. An unknown email costs the same hash as a known one.

use super::layout::{self, respond};
use super::password;
use super::session::{self, Posted, Session, see_other_setting};
use crate::AppState;
use crate::cookies;
use axum::extract::{Form, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use coachloop_core::identity::Email;
use coachloop_store::DEFAULT_ACCOUNT;
use coachloop_store::console::LockOut;
use maud::{Markup, html};
use serde::Deserialize;

/// Failures in a row that lock an administrator out, and for how long.
pub const LOCK_OUT: LockOut = LockOut {
    after: 5,
    for_ms: 15 * 60_000,
};
const FORM_COOKIE: &str = "coachloop_console_form";

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    account: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// Where to go after signing in: a console path given with the form, else the dashboard
/// (never another site).
fn next_path(next: &str) -> &str {
    if next.starts_with("/console/") && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        "/console/"
    }
}

fn form(values: &SignInForm, token: &str, message: Option<(&str, &str)>) -> Markup {
    let account = if values.account.is_empty() {
        DEFAULT_ACCOUNT
    } else {
        &values.account
    };
    layout::bare(
        "Sign in",
        html! {
            @if let Some((class, text)) = message {
                p class=(class) role=(if class == "problem" { "alert" } else { "status" }) { (text) }
            }
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next_path(&values.next));
                label for="account" { "Account" }
                input id="account" name="account" value=(account) required autocomplete="organization";
                label for="email" { "Email" }
                input id="email" name="email" type="email" value=(values.email) required
                    autocomplete="username" autofocus;
                label for="password" { "Password" }
                input id="password" name="password" type="password" required
                    autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The form with a fresh token, its cookie set beside it.
fn fresh_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    values: &SignInForm,
    message: Option<(&str, &str)>,
) -> Response {
    let token = session::secret();
    let secure = cookies::over_tls(headers, state.config.public_url.as_deref());
    let mut response = respond(status, form(values, &token, message));
    response.headers_mut().append(
        SET_COOKIE,
        session::cookie(FORM_COOKIE, &token, 3600, secure),
    );
    response
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    match Session::of(&state, &headers).await {
        Ok(Some(_)) => {
            return session::see_other(next_path(query.next.as_deref().unwrap_or_default()));
        }
        Ok(None) => {}
        Err(response) => return response,
    }
    let values = SignInForm {
        account: String::new(),
        email: String::new(),
        password: String::new(),
        next: query.next.unwrap_or_default(),
        csrf: String::new(),
    };
    let message = query
        .signed_out
        .is_some()
        .then_some(("notice", "You are signed out."));
    fresh_form(&state, &headers, StatusCode::OK, &values, message)
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(mut values): Form<SignInForm>,
) -> Response {
    let expected = cookies::get(&headers, FORM_COOKIE).unwrap_or_default();
    if !session::same_token(&values.csrf, expected) {
        return fresh_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            &values,
            Some((
                "problem",
                "This form had expired (or cookies are off for this site). Sign in again.",
            )),
        );
    }
    let password = std::mem::take(&mut values.password);
    let wrong = |state: &AppState, values: &SignInForm, status, text: &str| {
        fresh_form(state, &headers, status, values, Some(("problem", text)))
    };
    let email = Email::parse(values.email.trim()).ok();
    let credentials = match &email {
        Some(email) => match state
            .store
            .sign_in_credentials(values.account.trim(), email)
            .await
        {
            Ok(found) => found,
            Err(e) => return layout::store_error(e),
        },
        None => None,
    };
    let now = state.store.clock().now_ms();
    if let Some(until) = credentials
        .as_ref()
        .and_then(|c| c.locked_until)
        .filter(|&until| until > now)
    {
        return wrong(
            &state,
            &values,
            StatusCode::TOO_MANY_REQUESTS,
            &locked(until),
        );
    }
    let stored = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let matches =
        tokio::task::spawn_blocking(move || password::verify(stored.as_deref(), &password))
            .await
            .unwrap_or(false);
    let Some(credentials) = credentials else {
        return wrong(
            &state,
            &values,
            StatusCode::UNAUTHORIZED,
            "Wrong account, email or password.",
        );
    };
    if !matches {
        match state
            .store
            .sign_in_failed(credentials.account, credentials.admin, LOCK_OUT)
            .await
        {
            Ok(Some(until)) => {
                return wrong(
                    &state,
                    &values,
                    StatusCode::TOO_MANY_REQUESTS,
                    &locked(until),
                );
            }
            Ok(None) => {}
            Err(e) => return layout::store_error(e),
        }
        return wrong(
            &state,
            &values,
            StatusCode::UNAUTHORIZED,
            "Wrong account, email or password.",
        );
    };
    let secret = session::secret();
    let csrf = session::secret();
    if let Err(e) = state
        .store
        .open_console_session(
            credentials.account,
            credentials.admin,
            &session::token_hash(&secret),
            &csrf,
            now + session::TTL_MS,
        )
        .await
    {
        return layout::store_error(e);
    }
    let secure = cookies::over_tls(&headers, state.config.public_url.as_deref());
    let mut response = see_other_setting(
        next_path(&values.next),
        session::cookie(session::COOKIE, &secret, session::TTL_MS / 1000, secure),
    );
    response
        .headers_mut()
        .append(SET_COOKIE, session::cookie(FORM_COOKIE, "", 0, secure));
    response
}

fn locked(until: i64) -> String {
    format!(
        "Too many wrong passwords: signing in as this administrator is locked until {}. \
         Another administrator can set a new password with `coachloop admins create`.",
        layout::when(until)
    )
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

pub async fn sign_out(State(state): State<AppState>, posted: Posted<Nothing>) -> Response {
    match state
        .store
        .end_console_session(posted.session.token_hash())
        .await
    {
        Ok(()) => see_other_setting(
            "/console/sign-in?signed_out=1",
            session::cookie(session::COOKIE, "", 0, false),
        ),
        Err(e) => layout::store_error(e),
    }
}
