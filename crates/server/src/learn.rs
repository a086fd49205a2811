//! Learner pages at `/learn`: a signed, expiring magic link per enrolment opens a
//! session (an HttpOnly cookie naming the person), then the lesson, the quiz or the
//! policy. Plain HTML forms, no JavaScript; a person only ever sees their own
//! enrolments (another person's id is a 404).
//!
//! Everything signed uses HMAC-SHA-256 with a key kept in the database, each kind of
//! token under its own label so one can never be passed off as another.

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coachloop_core::html;
use coachloop_core::ids::{AccountId, EnrollmentId, UserId};
use coachloop_core::time::format_human_ms;
use coachloop_store::StoreError;
use coachloop_store::campaigns::Enrollment;
use coachloop_store::content::ContentRow;
use coachloop_store::learning::Step;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt::Write as _;

/// How long a magic link works.
pub const LINK_TTL_MS: i64 = 14 * 86_400_000;
/// How long a learner's session lasts after opening a link.
const SESSION_TTL_MS: i64 = 12 * 3_600_000;
const COOKIE_NAME: &str = "coachloop_learner";
/// The key's name in the store.
pub const KEY_NAME: &str = "learn";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/learn", get(home))
        .route("/learn/{token}", get(open_link))
        .route("/learn/enrollments/{id}", get(lesson))
        .route("/learn/enrollments/{id}/quiz", get(quiz).post(submit_quiz))
        .route("/learn/enrollments/{id}/complete", post(complete))
        .route("/learn/enrollments/{id}/acknowledge", post(acknowledge))
}

// ---- signing ------------------------------------------------------------------------

/// The MAC of `parts` under `label`, so a token of one kind never passes for another.
fn mac(key: &[u8], label: &str, parts: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.update(b"|");
    mac.update(parts.as_bytes());
    mac
}

fn sign(key: &[u8], label: &str, parts: &str) -> String {
    hex::encode(mac(key, label, parts).finalize().into_bytes())
}

/// Checks in constant time.
fn verify(key: &[u8], label: &str, parts: &str, signature: &str) -> bool {
    hex::decode(signature).is_ok_and(|sig| mac(key, label, parts).verify_slice(&sig).is_ok())
}

/// Splits `a.b.c.sig` into its numbers and signature, checking the signature.
fn unseal(key: &[u8], label: &str, token: &str, fields: usize) -> Option<Vec<i64>> {
    let (parts, signature) = token.rsplit_once('.')?;
    let numbers: Vec<i64> = parts
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (numbers.len() == fields && verify(key, label, parts, signature)).then_some(numbers)
}

fn seal(key: &[u8], label: &str, numbers: &[i64]) -> String {
    let parts = numbers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let signature = sign(key, label, &parts);
    format!("{parts}.{signature}")
}

/// A magic link's path for one enrolment, valid until `expires_at`.
pub fn link_path(key: &[u8], enrollment: &Enrollment, expires_at: i64) -> String {
    let token = seal(
        key,
        "link",
        &[
            enrollment.account_id.0,
            enrollment.user_id.0,
            enrollment.id.0,
            expires_at,
        ],
    );
    format!("/learn/{token}")
}

/// Where people reach this server: the configured public URL, else the request's host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The learner a request's session cookie names, if valid and unexpired.
fn session(key: &[u8], headers: &HeaderMap, now: i64) -> Option<(AccountId, UserId)> {
    let value = crate::cookies::get(headers, COOKIE_NAME)?;
    let numbers = unseal(key, "session", value, 3)?;
    (numbers[2] > now).then_some((AccountId(numbers[0]), UserId(numbers[1])))
}

// ---- pages --------------------------------------------------------------------------

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · coachloop</title>\
         <style>body{{font:1.05rem/1.6 system-ui,sans-serif;max-width:42rem;margin:2rem auto;\
         padding:0 1rem;color:#1b1b1b}}a{{color:#0b57d0}}fieldset{{margin:1rem 0;\
         border:1px solid #bbb;padding:.5rem 1rem}}button{{font:inherit;padding:.4rem 1rem}}\
         .note{{background:#f2f6fc;padding:.5rem 1rem}}</style></head>\
         <body><main>\n<h1>{title}</h1>\n{body}\n</main></body></html>\n",
        title = html::escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn problem(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Training",
        &format!("<p>{}</p>", html::escape(message)),
    )
}

fn not_signed_in() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Open the link from your training email to see your training. If the link has \
         expired, ask your security team for a new one.",
    )
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => problem(StatusCode::NOT_FOUND, "No such training of yours."),
        StoreError::Conflict(detail) => problem(StatusCode::CONFLICT, &detail.message),
        StoreError::Invalid(details) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &details
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => ApiError::from(other).into_response(),
    }
}

/// The learner's key and session, or the page to show instead.
async fn learner(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Vec<u8>, AccountId, UserId), Response> {
    let key = state.store.secret(KEY_NAME).await.map_err(store_error)?;
    let (account, user) =
        session(&key, headers, state.store.clock().now_ms()).ok_or_else(not_signed_in)?;
    Ok((key, account, user))
}

/// A hidden field carrying when the page was shown, signed, so the time spent on it is
/// measured by the server without trusting the form.
fn opened_field(key: &[u8], enrollment: i64, now: i64) -> String {
    let token = seal(key, "opened", &[enrollment, now]);
    format!("<input type=\"hidden\" name=\"opened\" value=\"{token}\">")
}

/// Seconds since the page carrying `opened` was shown; 0 if the field is missing or bad.
fn seconds_since(key: &[u8], enrollment: i64, opened: Option<&String>, now: i64) -> i64 {
    opened
        .and_then(|o| unseal(key, "opened", o, 2))
        .filter(|n| n[0] == enrollment && n[1] <= now)
        .map(|n| (now - n[1]) / 1000)
        .unwrap_or(0)
}

fn describe(e: &Enrollment) -> String {
    let due = e
        .due_at
        .map(|d| format!(", due {}", format_human_ms(d)))
        .unwrap_or_default();
    format!(
        "{} ({}{due})",
        html::escape(&e.status),
        html::escape(&e.campaign_name)
    )
}

async fn open_link(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let key = match state.store.secret(KEY_NAME).await {
        Ok(key) => key,
        Err(e) => return store_error(e),
    };
    let now = state.store.clock().now_ms();
    let Some(numbers) = unseal(&key, "link", &token, 4) else {
        return problem(
            StatusCode::NOT_FOUND,
            "This training link is not valid. Use the link exactly as it came in your email.",
        );
    };
    let (account, user, enrollment, expires) = (numbers[0], numbers[1], numbers[2], numbers[3]);
    if expires <= now {
        return problem(
            StatusCode::GONE,
            "This training link has expired. Ask your security team for a new one.",
        );
    }
    if let Err(e) = state
        .store
        .learner_enrollment(AccountId(account), UserId(user), EnrollmentId(enrollment))
        .await
    {
        return store_error(e);
    }
    let session = seal(&key, "session", &[account, user, now + SESSION_TTL_MS]);
    let cookie = format!(
        "{COOKIE_NAME}={session}; Path=/learn; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(SET_COOKIE, cookie);
    }
    if let Ok(location) = HeaderValue::from_str(&format!("/learn/enrollments/{enrollment}")) {
        headers.insert(LOCATION, location);
    }
    response
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, account, user) = match learner(&state, &headers).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let enrollments = match state.store.learner_enrollments(account, user).await {
        Ok(e) => e,
        Err(e) => return store_error(e),
    };
    let mut body = String::new();
    if enrollments.is_empty() {
        body.push_str("<p>You have no training assigned.</p>");
    } else {
        body.push_str("<ul>");
        for e in &enrollments {
            let _ = write!(
                body,
                "<li><a href=\"/learn/enrollments/{}\">{}</a> — {}</li>",
                e.id,
                html::escape(&e.content_title),
                describe(e)
            );
        }
        body.push_str("</ul>");
    }
    page(StatusCode::OK, "Your training", &body)
}

async fn lesson(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let (key, account, user) = match learner(&state, &headers).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let (enrollment, content) = match state
        .store
        .learn(account, user, EnrollmentId(id), &Step::Open)
        .await
    {
        Ok(stepped) => (stepped.enrollment, stepped.content),
        Err(e) => return store_error(e),
    };
    let now = state.store.clock().now_ms();
    // Why this training, in the words of the enrolment email.
    let reason = match state
        .store
        .campaign_notices(account, enrollment.campaign_id)
        .await
    {
        Ok(notices) => {
            state
                .store
                .enrollment_reason(&enrollment, notices.settings.reason_shows_site)
                .await
        }
        Err(e) => Err(e),
    };
    let reason = match reason {
        Ok(Some(reason)) => format!("<p class=\"reason\">{}</p>\n", html::escape(&reason)),
        Ok(None) => String::new(),
        Err(e) => return store_error(e),
    };
    let core = content.content();
    let mut body = format!(
        "{reason}<p class=\"note\">{}. About {} minutes.</p>\n{}\n",
        describe(&enrollment),
        content.minutes,
        core.body_html()
    );
    if enrollment.is_finished() {
        let _ = write!(
            body,
            "<p class=\"note\">Finished on {}. <a href=\"/learn\">All your training</a></p>",
            enrollment
                .completed_at
                .map(format_human_ms)
                .unwrap_or_default()
        );
    } else if content.is_policy() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/learn/enrollments/{id}/acknowledge\">{}\
             <p>Read the policy for at least {} minutes before you acknowledge it.</p>\
             <button type=\"submit\">I acknowledge</button></form>",
            opened_field(&key, id, now),
            content.minutes
        );
    } else if core.quiz.is_empty() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/learn/enrollments/{id}/complete\">{}\
             <button type=\"submit\">Mark as complete</button></form>",
            opened_field(&key, id, now)
        );
    } else {
        let _ = write!(
            body,
            "<p><a href=\"/learn/enrollments/{id}/quiz\">Take the quiz</a> ({} questions; \
             {}% to pass).</p>",
            core.quiz.len(),
            core.pass_mark.unwrap_or(0)
        );
    }
    page(StatusCode::OK, &content.title, &body)
}

fn quiz_form(key: &[u8], id: i64, content: &ContentRow, now: i64) -> String {
    let core = content.content();
    let mut body = format!("<form method=\"post\" action=\"/learn/enrollments/{id}/quiz\">");
    body.push_str(&opened_field(key, id, now));
    for (q, question) in core.quiz.iter().enumerate() {
        let _ = write!(
            body,
            "<fieldset><legend>{}. {}</legend>",
            q + 1,
            html::escape(&question.question)
        );
        for (c, choice) in question.choices.iter().enumerate() {
            let _ = write!(
                body,
                "<div><input type=\"radio\" id=\"q{q}c{c}\" name=\"q{q}\" value=\"{c}\">\
                 <label for=\"q{q}c{c}\">{}</label></div>",
                html::escape(choice)
            );
        }
        body.push_str("</fieldset>");
    }
    body.push_str("<button type=\"submit\">Submit answers</button></form>");
    body
}

async fn quiz(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let (key, account, user) = match learner(&state, &headers).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let (enrollment, content) = match state
        .store
        .learner_enrollment(account, user, EnrollmentId(id))
        .await
    {
        Ok(pair) => pair,
        Err(e) => return store_error(e),
    };
    if content.content().quiz.is_empty() {
        return problem(StatusCode::NOT_FOUND, "This training has no quiz.");
    }
    if enrollment.is_finished() {
        return problem(
            StatusCode::CONFLICT,
            "You have finished this training already.",
        );
    }
    let body = quiz_form(&key, id, &content, state.store.clock().now_ms());
    page(StatusCode::OK, &format!("Quiz: {}", content.title), &body)
}

async fn submit_quiz(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (key, account, user) = match learner(&state, &headers).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let (_, content) = match state
        .store
        .learner_enrollment(account, user, EnrollmentId(id))
        .await
    {
        Ok(pair) => pair,
        Err(e) => return store_error(e),
    };
    let core = content.content();
    let answers: Vec<Option<usize>> = (0..core.quiz.len())
        .map(|q| form.get(&format!("q{q}")).and_then(|a| a.parse().ok()))
        .collect();
    let now = state.store.clock().now_ms();
    let seconds = seconds_since(&key, id, form.get("opened"), now);
    let stepped = match state
        .store
        .learn(
            account,
            user,
            EnrollmentId(id),
            &Step::Quiz {
                answers: answers.clone(),
                seconds,
            },
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let Some(grade) = stepped.grade else {
        return problem(StatusCode::CONFLICT, "This training has no quiz.");
    };
    let mut body = format!(
        "<p class=\"note\">You answered {} of {} correctly ({}%). {}</p><ol>",
        grade.correct,
        grade.total,
        grade.score,
        if grade.passed {
            "You passed — well done."
        } else {
            "That is below the pass mark; read the lesson again and retry."
        }
    );
    for (question, answer) in core.quiz.iter().zip(&answers) {
        let right = *answer == Some(question.answer);
        let _ = write!(
            body,
            "<li><strong>{}</strong> {} {}</li>",
            html::escape(&question.question),
            if right { "Correct." } else { "Not quite." },
            html::escape(&question.explanation)
        );
    }
    body.push_str("</ol>");
    if grade.passed {
        body.push_str("<p><a href=\"/learn\">All your training</a></p>");
    } else {
        let _ = write!(
            body,
            "<p><a href=\"/learn/enrollments/{id}\">Back to the lesson</a></p>"
        );
    }
    page(StatusCode::OK, &format!("Result: {}", content.title), &body)
}

async fn finish(
    state: AppState,
    headers: HeaderMap,
    id: i64,
    form: HashMap<String, String>,
    policy: bool,
) -> Response {
    let (key, account, user) = match learner(&state, &headers).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let now = state.store.clock().now_ms();
    let seconds = seconds_since(&key, id, form.get("opened"), now);
    let step = if policy {
        Step::Acknowledge { seconds }
    } else {
        Step::Complete { seconds }
    };
    match state
        .store
        .learn(account, user, EnrollmentId(id), &step)
        .await
    {
        Ok(stepped) => page(
            StatusCode::OK,
            &stepped.enrollment.content_title,
            &format!(
                "<p class=\"note\">{} Recorded on {}.</p><p><a href=\"/learn\">All your \
                 training</a></p>",
                if policy {
                    "Thank you for acknowledging the policy."
                } else {
                    "Marked as complete."
                },
                stepped
                    .enrollment
                    .completed_at
                    .map(format_human_ms)
                    .unwrap_or_default()
            ),
        ),
        Err(e) => store_error(e),
    }
}

async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    finish(state, headers, id, form, false).await
}

async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    finish(state, headers, id, form, true).await
}
