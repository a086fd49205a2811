//! The frame every console page shares (navigation, the signed-in administrator, the
//! sign-out form), error pages, and small pieces pages repeat: a CSRF field, a pager.
//! Markup is maud's: every value written into a page is escaped unless it is
//! [`PreEscaped`] markup of our own (the SVG of a chart).

use super::session::Session;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coachloop_store::Page;
use coachloop_store::StoreError;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

pub use maud::PreEscaped;

/// The console's sections, in the order the navigation shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Integrations,
    People,
    Unmatched,
    Groups,
    Content,
    Campaigns,
    Compliance,
    Audit,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Dashboard,
        Section::Integrations,
        Section::People,
        Section::Unmatched,
        Section::Groups,
        Section::Content,
        Section::Campaigns,
        Section::Compliance,
        Section::Audit,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Dashboard => "Dashboard",
            Section::Integrations => "Integrations",
            Section::People => "People",
            Section::Unmatched => "Unmatched identities",
            Section::Groups => "Groups",
            Section::Content => "Content",
            Section::Campaigns => "Campaigns",
            Section::Compliance => "Compliance",
            Section::Audit => "Audit log",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Dashboard => "/console/",
            Section::Integrations => "/console/integrations",
            Section::People => "/console/people",
            Section::Unmatched => "/console/unmatched",
            Section::Groups => "/console/groups",
            Section::Content => "/console/content",
            Section::Campaigns => "/console/campaigns",
            Section::Compliance => "/console/compliance",
            Section::Audit => "/console/audit",
        }
    }
}

const STYLE: &str = include_str!("console.css");

/// The stylesheet, cached by browsers for a day (its URL carries no version: it is
/// small, and a stale copy for a day after an upgrade only looks older).
pub async fn stylesheet() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        STYLE,
    )
        .into_response()
}

/// The headers of every console page: never cached (they show one account's data), never
/// framed, no scripts but our own, forms only to ourselves.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · coachloop" }
            link rel="stylesheet" href="/console/assets/console.css";
        }
    }
}

/// A hidden field with the session's CSRF token; every form of a signed-in page has one.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A signed-in page: navigation with `section` marked, the body under an `h1`.
pub fn page(session: &Session, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    a.brand href="/console/" { "coachloop" }
                    nav aria-label="Sections" {
                        ul {
                            @for s in Section::ALL {
                                li {
                                    @if s == section {
                                        a href=(s.path()) aria-current="page" { (s.title()) }
                                    } @else {
                                        a href=(s.path()) { (s.title()) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span { (session.who()) " · " (session.account_name) }
                        form method="post" action="/console/sign-out" {
                            (csrf(session))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without the navigation (signing in).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main id="main" {
                    p.brand { "coachloop" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page with a status.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    secure((status, markup).into_response())
}

/// An error page that says what happened and what to do.
pub fn problem(session: Option<&Session>, status: StatusCode, title: &str, what: &str) -> Response {
    let body = html! {
        p.problem role="alert" { (what) }
        p { a href="/console/" { "Back to the dashboard" } }
    };
    let markup = match session {
        Some(session) => page(session, Section::Dashboard, title, body),
        None => bare(title, body),
    };
    respond(status, markup)
}

/// A store error as a page: a missing row is a 404 (as another account's is), a refused
/// value says why, anything else is logged and shown as a 500 without detail.
pub fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(what) => problem(
            None,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("There is no such {what} in this account."),
        ),
        StoreError::Invalid(_) | StoreError::Conflict(_) => problem(
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not saved",
            &e.to_string(),
        ),
        StoreError::Unavailable(_) => problem(
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "The database cannot be reached",
            "Try again in a moment.",
        ),
        other => {
            tracing::error!(error = %other, "console page failed");
            problem(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be made; the server's log says why.",
            )
        }
    }
}

/// A list page's query: which page (anything unreadable is the first).
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
}

/// "Page 2 of 9" with links to the pages either side, keeping the other query values.
pub fn pager(path: &str, query: &[(&str, &str)], page: Page, total: i64) -> Markup {
    let pages = ((total + i64::from(page.per_page) - 1) / i64::from(page.per_page)).max(1);
    let link = |n: i64| {
        let mut pairs: Vec<(&str, String)> = query
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        pairs.push(("page", n.to_string()));
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&pairs).expect("strings encode")
        )
    };
    let current = i64::from(page.page);
    // A capped count: more rows than it reached, so more pages than it tells.
    let more = page.is_more_than(total);
    html! {
        nav.pager aria-label="Pages" {
            @if current > 1 { a rel="prev" href=(link(current - 1)) { "← Previous" } }
            span {
                "Page " (current)
                @if !more { " of " (pages) }
                " · " (total_text(page, total)) " in all"
            }
            @if more || current < pages { a rel="next" href=(link(current + 1)) { "Next →" } }
        }
    }
}

/// A list's total as counted for `page`: the number, or "more than" the count's cap.
pub fn total_text(page: Page, total: i64) -> String {
    if page.is_more_than(total) {
        format!("more than {}", total - 1)
    } else {
        total.to_string()
    }
}

/// A date and time in UTC, as the console shows them.
pub fn when(ms: i64) -> String {
    coachloop_core::time::format_human_ms(ms)
}
