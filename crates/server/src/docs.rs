//! `/openapi.json` and `/docs`: the OpenAPI 3.1 document generated from the handlers,
//! and a plain HTML rendering of it that needs no JavaScript and no network.

use crate::AppState;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use coachloop_core::html;
use serde_json::Value;
use std::fmt::Write;
use std::sync::Arc;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{OpenApi, PartialSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "coachloop",
        description = "Events in (User Event API), people, tokens and operations. \
            Authenticate with `Authorization: Bearer <token>`; errors come as \
            `{\"message\", \"code\", \"details\"}`."
    ),
    tags(
        (name = "user events", description = "The User Event API: senders push risky behaviour here."),
        (name = "people", description = "People and their event timelines."),
        (name = "tokens", description = "API tokens of the account."),
        (name = "admins", description = "The account's administrators."),
        (name = "audit", description = "Every change an administrator or a token made: who, what, when, before and after."),
        (name = "compliance", description = "Frameworks, the requirements their controls ask of people, who is compliant and why, exceptions."),
        (name = "reporting", description = "The Reporting API (read-only, `/v1`): what compliance tools read."),
        (name = "ops", description = "Liveness, readiness, metrics, the installation's nodes.")
    )
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The document's frame (info, tags, the bearer scheme); routes add their paths.
    pub fn base() -> utoipa::openapi::OpenApi {
        let mut doc = Self::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        doc
    }
}

/// Adds to every operation the statuses that shared mechanisms answer, where the
/// operation does not already list them: the bearer check (401, 403, and 429 for a token
/// with a quota; and 503, since every operation behind a token reads the database, which
/// may be unreachable for a while), the JSON body extractor (400 unreadable JSON, 413 over
/// `max_body_bytes`, 415 without `Content-Type: application/json`), the query extractor
/// (400) and the path extractor (404). Each comes in the error envelope.
pub fn complete(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let has = |place: ParameterIn| {
                op.parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == place)
            };
            let mut shared: Vec<(&str, &str)> = Vec::new();
            if op.security.is_some() {
                shared.extend([
                    ("401", "no token, or an unknown, revoked or expired one"),
                    ("403", "the token lacks the scope this operation needs"),
                    (
                        "429",
                        "over the token's rate limit; `Retry-After` says when to try again",
                    ),
                    (
                        "503",
                        "the database cannot be reached right now; `Retry-After` says when to \
                         try again",
                    ),
                ]);
            }
            if op.request_body.is_some() {
                shared.extend([
                    ("400", "the body is not readable JSON"),
                    ("413", "the body is over the size limit (`max_body_bytes`)"),
                    (
                        "415",
                        "the body is not sent with `Content-Type: application/json`",
                    ),
                ]);
            }
            if has(ParameterIn::Query) {
                shared.push(("400", "a query parameter has a bad value"));
            }
            if has(ParameterIn::Path) {
                shared.push(("404", "no such resource in this account"));
            }
            for (status, description) in shared {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description).into());
            }
            let pages = op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Query && p.name == "cursor");
            if pages {
                add_list_answers(op);
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .entry("Pagination".to_owned())
        .or_insert_with(crate::reporting::listing::Pagination::schema);
    doc
}

/// A Reporting API list answers a bare array by default, `{"data", "pagination"}` with
/// `cursor`, and NDJSON rows with `Accept: application/x-ndjson`: the 200 lists all three.
fn add_list_answers(op: &mut Operation) {
    use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, OneOfBuilder, Schema};
    use utoipa::openapi::{RefOr, Response};
    let Some(RefOr::T(Response { content, .. })) = op.responses.responses.get_mut("200") else {
        return;
    };
    let Some(array) = content
        .get("application/json")
        .and_then(|c| c.schema.clone())
    else {
        return;
    };
    let item = match &array {
        RefOr::T(Schema::Array(a)) => match &a.items {
            ArrayItems::RefOrSchema(item) => Some((**item).clone()),
            ArrayItems::False => None,
        },
        _ => None,
    };
    let page = ObjectBuilder::new()
        .property("data", array.clone())
        .required("data")
        .property("pagination", Ref::from_schema_name("Pagination"))
        .required("pagination");
    let either = Schema::OneOf(OneOfBuilder::new().item(array).item(page).build());
    content.insert(
        "application/json".to_owned(),
        ContentBuilder::new().schema(Some(either)).build(),
    );
    if let Some(item) = item {
        content.insert(
            crate::reporting::listing::NDJSON.to_owned(),
            ContentBuilder::new().schema(Some(item)).build(),
        );
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

pub fn router(openapi: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    let json = Arc::new(openapi.to_pretty_json().unwrap_or_default());
    let html = Arc::new(render(&serde_json::to_value(&*openapi).unwrap_or_default()));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([("content-type", "application/json")], (*json).clone()) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let html = html.clone();
                async move { Html((*html).clone()) }
            }),
        )
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Renders every operation: method, path, summary, parameters, body, responses.
fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} API</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}}\
         code{{background:#f3f3f3;padding:0 .2em}}table{{border-collapse:collapse;margin:.5rem 0}}\
         td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}}\
         section{{border-top:1px solid #ddd;margin-top:1.5rem}}</style></head><body>\
         <h1>{t} API</h1><p>{d}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1).</p>",
        t = html::escape(title),
        d = html::escape(doc["info"]["description"].as_str().unwrap_or_default()),
    );
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    out.push_str("<h2>Endpoints</h2><ul>");
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let _ = write!(
                    out,
                    "<li><a href=\"#{a}\"><code>{m} {p}</code></a> — {s}</li>",
                    a = anchor(method, path),
                    m = method.to_uppercase(),
                    p = html::escape(path),
                    s = html::escape(op["summary"].as_str().unwrap_or_default()),
                );
            }
        }
    }
    out.push_str("</ul>");
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                render_operation(&mut out, method, path, op);
            }
        }
    }
    out.push_str("</body></html>");
    out
}

fn render_operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = write!(
        out,
        "<section id=\"{a}\"><h3><code>{m} {p}</code></h3><p><strong>{s}</strong></p><p>{d}</p>",
        a = anchor(method, path),
        m = method.to_uppercase(),
        p = html::escape(path),
        s = html::escape(op["summary"].as_str().unwrap_or_default()),
        d = html::escape(op["description"].as_str().unwrap_or_default()),
    );
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(
            "<table><tr><th>parameter</th><th>in</th><th>required</th><th>meaning</th></tr>",
        );
        for param in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html::escape(param["name"].as_str().unwrap_or_default()),
                html::escape(param["in"].as_str().unwrap_or_default()),
                if param["required"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                html::escape(param["description"].as_str().unwrap_or_default()),
            );
        }
        out.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        let _ = write!(
            out,
            "<p>Body: {} {}</p>",
            schema_names(&body["content"]),
            html::escape(body["description"].as_str().unwrap_or_default())
        );
    }
    if let Some(responses) = op["responses"].as_object() {
        out.push_str("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>");
        for (status, response) in responses {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                html::escape(status),
                html::escape(response["description"].as_str().unwrap_or_default()),
                schema_names(&response["content"]),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

/// The schema names of a `content` map, e.g. `application/json: Event`.
fn schema_names(content: &Value) -> String {
    let Some(content) = content.as_object() else {
        return String::new();
    };
    content
        .iter()
        .map(|(media, body)| {
            let schema = &body["schema"];
            let name = schema["$ref"]
                .as_str()
                .or_else(|| schema["items"]["$ref"].as_str())
                .and_then(|r| r.rsplit('/').next())
                .or_else(|| schema["type"].as_str())
                .unwrap_or("object");
            format!(
                "<code>{}</code> {}",
                html::escape(media),
                html::escape(name)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn anchor(method: &str, path: &str) -> String {
    let mut id = format!("{method}-{path}");
    id.retain(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    id
}
