//! Content: the library (built-in and the account's own), a piece's page with its body
//! as learners see it, and the form that adds a module or policy — with a preview of
//! the body before it is saved, through the same checks as `POST /api/content`.

use super::layout::{self, PageQuery, PreEscaped, Section, csrf, pager, when};
use super::people::page_of;
use super::session::{Posted, Session, see_other};
use crate::AppState;
use crate::api::training::ContentInput;
use crate::audit::Note;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use coachloop_core::content::Content;
use coachloop_core::ids::ContentId;
use coachloop_store::StoreError;
use coachloop_store::content::ContentFilter;
use maud::{Markup, html};
use serde_json::json;
use std::collections::HashMap;

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = page_of(query.page.as_deref(), 50);
    let filter = ContentFilter::default();
    let (rows, total) = match state
        .store
        .list_content(session.account, &filter, page)
        .await
    {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        p { a href="/console/content/new" { "New module or policy" } }
        table {
            thead { tr { th { "Title" } th { "Kind" } th.num { "Minutes" } th { "From" } th { "Published" } } }
            tbody {
                @for c in &rows {
                    tr {
                        td { a href=(format!("/console/content/{}", c.id.0)) { (c.title) } }
                        td { (c.kind.as_str()) }
                        td.num { (c.minutes) }
                        td { @if c.builtin { "the built-in library" } @else { "this account" } }
                        td { (when(c.published_at)) }
                    }
                }
            }
        }
        (pager("/console/content", &[], page, total))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Content, "Content", body),
    )
}

fn preview(content: &Content) -> Markup {
    html! {
        section.card.preview aria-label="Preview" {
            p.muted { "As learners see it:" }
            (PreEscaped(content.body_html()))
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Response {
    let row = match state.store.content(session.account, ContentId(id)).await {
        Ok(row) => row,
        Err(e) => return layout::store_error(e),
    };
    let content = row.content();
    let body = html! {
        @if !row.summary.is_empty() { p { (row.summary) } }
        dl.facts {
            dt { "Kind" } dd { (row.kind.as_str()) }
            dt { "Minutes" } dd { (row.minutes) }
            @if let Some(mark) = row.pass_mark { dt { "Pass mark" } dd { (mark) "%" } }
            @if !row.quiz.is_empty() { dt { "Quiz" } dd { (row.quiz.len()) " questions" } }
            @if let Some(version) = &row.version { dt { "Version" } dd { (version) } }
            dt { "From" } dd { @if row.builtin { "the built-in library (read-only)" } @else { "this account" } }
        }
        @if !row.builtin { p { a href=(format!("/console/content/{id}/edit")) { "Edit" } } }
        (preview(&content))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Content, &row.title, body),
    )
}

struct Draft(HashMap<String, String>);

impl Draft {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or_default()
    }

    /// The content the form describes, checked as the API checks it.
    fn content(&self, today: chrono::NaiveDate) -> Result<Content, String> {
        let kind = serde_json::from_value(json!(self.get("kind")))
            .map_err(|_| "kind: choose module or policy".to_owned())?;
        let minutes = self
            .get("minutes")
            .trim()
            .parse()
            .map_err(|_| "minutes: a whole number from 1 to 240".to_owned())?;
        let pass_mark = match self.get("pass_mark").trim() {
            "" => None,
            text => Some(
                text.parse()
                    .map_err(|_| "pass_mark: a percentage".to_owned())?,
            ),
        };
        let optional = |key: &str| Some(self.get(key).trim().to_owned()).filter(|v| !v.is_empty());
        let input = ContentInput {
            kind,
            slug: self.get("slug").trim().to_owned(),
            title: self.get("title").trim().to_owned(),
            summary: self.get("summary").trim().to_owned(),
            minutes,
            pass_mark,
            quiz: match self.get("quiz").trim() {
                "" => Vec::new(),
                text => serde_json::from_str(text).map_err(|e| {
                    format!(
                        "quiz: a JSON list of {{question, choices, answer (0-based), \
                         explanation}} ({e})"
                    )
                })?,
            },
            version: optional("version"),
            body: self.get("body").to_owned(),
            published: None,
        };
        input
            .into_content(today)
            .map_err(|e| match e.details.first() {
                Some(d) => format!("{}: {}", d.field, d.message),
                None => e.message,
            })
    }
}

/// Where a form posts and what its page is called: a new piece, or an edit of one.
struct Target {
    action: String,
    title: String,
}

impl Target {
    fn new() -> Self {
        Self {
            action: "/console/content/new".to_owned(),
            title: "New module or policy".to_owned(),
        }
    }

    fn edit(id: i64, title: &str) -> Self {
        Self {
            action: format!("/console/content/{id}/edit"),
            title: format!("Edit {title}"),
        }
    }
}

fn form(
    session: &Session,
    target: &Target,
    draft: &Draft,
    problem: Option<&str>,
    shown: Option<&Content>,
) -> Markup {
    let kind = draft.get("kind");
    layout::page(
        session,
        Section::Content,
        &target.title,
        html! {
            @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
            form.stack method="post" action=(target.action) {
                (csrf(session))
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="module" selected[kind != "policy"] { "Module" }
                    option value="policy" selected[kind == "policy"] { "Policy (acknowledged)" }
                }
                label for="title" { "Title" }
                input id="title" name="title" value=(draft.get("title")) required;
                label for="slug" { "Short name (lower-case letters, digits and -)" }
                input id="slug" name="slug" value=(draft.get("slug")) required pattern="[a-z0-9-]{1,80}";
                label for="summary" { "Summary" }
                input id="summary" name="summary" value=(draft.get("summary"));
                label for="minutes" { "Minutes (reading time, or a policy's minimum)" }
                input id="minutes" name="minutes" type="number" min="1" max="240"
                    value=(match draft.get("minutes") { "" => "5", m => m });
                label for="version" { "Version (policies)" }
                input id="version" name="version" value=(draft.get("version"));
                label for="body" { "Body (Markdown)" }
                textarea id="body" name="body" rows="14" required { (draft.get("body")) }
                label for="pass_mark" { "Pass mark, percent (modules with a quiz)" }
                input id="pass_mark" name="pass_mark" type="number" min="0" max="100" value=(draft.get("pass_mark"));
                label for="quiz" { "Quiz (modules; JSON: [{\"question\", \"choices\": [...], \"answer\": 0, \"explanation\"}])" }
                textarea id="quiz" name="quiz" rows="6" { (draft.get("quiz")) }
                div.actions {
                    button type="submit" name="action" value="preview" { "Preview" }
                    " "
                    button type="submit" name="action" value="save" { "Save" }
                }
            }
            @if let Some(content) = shown { (preview(content)) }
        },
    )
}

pub async fn new(session: Session) -> Response {
    layout::respond(
        StatusCode::OK,
        form(&session, &Target::new(), &Draft(HashMap::new()), None, None),
    )
}

/// The form filled with a piece of the account's own (built-in content is read-only).
pub async fn edit(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Response {
    let row = match state.store.content(session.account, ContentId(id)).await {
        Ok(row) => row,
        Err(e) => return layout::store_error(e),
    };
    if row.builtin {
        return read_only(&session);
    }
    let mut fields = HashMap::new();
    for (key, value) in [
        ("kind", row.kind.as_str().to_owned()),
        ("title", row.title.clone()),
        ("slug", row.slug.clone()),
        ("summary", row.summary.clone()),
        ("minutes", row.minutes.to_string()),
        ("version", row.version.clone().unwrap_or_default()),
        ("body", row.body.clone()),
        (
            "pass_mark",
            row.pass_mark.map(|m| m.to_string()).unwrap_or_default(),
        ),
        (
            "quiz",
            if row.quiz.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&row.quiz).unwrap_or_default()
            },
        ),
    ] {
        fields.insert(key.to_owned(), value);
    }
    let target = Target::edit(id, &row.title);
    layout::respond(
        StatusCode::OK,
        form(&session, &target, &Draft(fields), None, None),
    )
}

fn read_only(session: &Session) -> Response {
    layout::problem(
        Some(session),
        StatusCode::CONFLICT,
        "Built-in content is read-only",
        "Add a module or policy of your own instead; it can start from this one's text.",
    )
}

pub async fn create(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let Posted {
        session,
        form: fields,
    } = posted;
    let draft = Draft(fields.into_iter().filter(|(k, _)| k != "csrf").collect());
    let today = coachloop_core::time::date_of_ms(state.store.clock().now_ms());
    let content = match draft.content(today) {
        Ok(content) => content,
        Err(problem) => {
            return layout::respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                form(&session, &Target::new(), &draft, Some(&problem), None),
            );
        }
    };
    if draft.get("action") != "save" {
        return layout::respond(
            StatusCode::OK,
            form(&session, &Target::new(), &draft, None, Some(&content)),
        );
    }
    match state.store.create_content(session.account, &content).await {
        Ok(row) => {
            let mut response = see_other(&format!("/console/content/{}", row.id.0));
            response.extensions_mut().insert(Note {
                method: None,
                path: Some(format!("/api/content/{}", row.id.0)),
                before: None,
                after: Some(summary_of(&row)),
            });
            response
        }
        Err(e @ (StoreError::Conflict(_) | StoreError::Invalid(_))) => layout::respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form(
                &session,
                &Target::new(),
                &draft,
                Some(&e.to_string()),
                Some(&content),
            ),
        ),
        Err(e) => layout::store_error(e),
    }
}

/// An edit: previewed, or saved in place of the piece (`PUT /api/content/{id}`).
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let Posted {
        session,
        form: fields,
    } = posted;
    let current = match state.store.content(session.account, ContentId(id)).await {
        Ok(row) => row,
        Err(e) => return layout::store_error(e),
    };
    if current.builtin {
        return read_only(&session);
    }
    let target = Target::edit(id, &current.title);
    let draft = Draft(fields.into_iter().filter(|(k, _)| k != "csrf").collect());
    let today = coachloop_core::time::date_of_ms(state.store.clock().now_ms());
    let content = match draft.content(today) {
        Ok(content) => content,
        Err(problem) => {
            return layout::respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                form(&session, &target, &draft, Some(&problem), None),
            );
        }
    };
    if draft.get("action") != "save" {
        return layout::respond(
            StatusCode::OK,
            form(&session, &target, &draft, None, Some(&content)),
        );
    }
    match state
        .store
        .update_content(session.account, ContentId(id), &content)
        .await
    {
        Ok(row) => {
            let mut response = see_other(&format!("/console/content/{id}"));
            response.extensions_mut().insert(Note {
                method: Some(axum::http::Method::PUT),
                path: Some(format!("/api/content/{id}")),
                before: Some(summary_of(&current)),
                after: Some(summary_of(&row)),
            });
            response
        }
        Err(e @ (StoreError::Conflict(_) | StoreError::Invalid(_))) => layout::respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form(
                &session,
                &target,
                &draft,
                Some(&e.to_string()),
                Some(&content),
            ),
        ),
        Err(e) => layout::store_error(e),
    }
}

/// What the audit log keeps of a piece.
fn summary_of(row: &coachloop_store::content::ContentRow) -> serde_json::Value {
    json!({"kind": row.kind.as_str(), "slug": row.slug, "title": row.title,
           "minutes": row.minutes, "version": row.version, "quiz": row.quiz.len()})
}
