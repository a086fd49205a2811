//! A Learning Record Store for completions from another LMS: the statement resource of
//! xAPI 1.0.3 under `/xapi` (accepting 2.0's version header and timestamps), with
//! `/xapi/about`. LMSs authenticate with an LRS credential over HTTP Basic auth (key and
//! secret); bearer tokens work too (`events:write` or `xapi:write` to send, `xapi:read`
//! to read back). Statements are kept append-only and applied to enrolments as they are
//! stored (see `coachloop_store::xapi`); every refusal is a 400 naming the field.

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::header::{ACCEPT_LANGUAGE, CONTENT_TYPE, LAST_MODIFIED};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use coachloop_core::FieldError;
use coachloop_core::scope::Scope;
use coachloop_core::xapi::multipart;
use coachloop_core::xapi::{self, VERSION};
use coachloop_store::StoreError;
use coachloop_store::xapi::{AttachmentContent, Incoming, StatementQuery};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

const VERSION_HEADER: HeaderName = HeaderName::from_static("x-experience-api-version");
const CONSISTENT_THROUGH: HeaderName =
    HeaderName::from_static("x-experience-api-consistent-through");
/// The most statements one page of a list holds (`limit=0` asks for this).
pub const MAX_LIMIT: u32 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_statements, post_statements, put_statement))
        .routes(routes!(about))
        .layer(axum::middleware::from_fn(versioned))
}

/// The form fields the alternate request syntax carries as headers.
const FORM_HEADERS: [&str; 6] = [
    "authorization",
    "x-experience-api-version",
    "content-type",
    "content-length",
    "if-match",
    "if-none-match",
];

/// xAPI 1.0.3's alternate request syntax (for clients that can only POST forms):
/// `POST /xapi/statements?method=PUT` with a form holding the headers, the other
/// parameters and the body as `content`. Unwrapped here into the request it stands for,
/// which then goes through the API as any other.
pub async fn alternate(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().unwrap_or_default().to_owned();
    if !query.contains("method=") || !request.uri().path().starts_with("/xapi/") {
        return next.run(request).await;
    }
    match unwrap_alternate(&state, request, &query).await {
        Ok(response) => response,
        Err(e) => {
            let mut response = e.into_response();
            response
                .headers_mut()
                .insert(VERSION_HEADER, HeaderValue::from_static(VERSION));
            response
        }
    }
}

async fn unwrap_alternate(state: &AppState, request: Request, query: &str) -> ApiResult<Response> {
    use tower::ServiceExt;
    let given = params(Some(query))?;
    let Some(method) = given.get("method") else {
        return Err(bad("method", "is GET, PUT, POST or DELETE"));
    };
    let method: axum::http::Method = match method.as_str() {
        "GET" | "PUT" | "POST" | "DELETE" => method
            .parse()
            .map_err(|_| bad("method", "is GET, PUT, POST or DELETE"))?,
        _ => return Err(bad("method", "is GET, PUT, POST or DELETE")),
    };
    if request.method() != axum::http::Method::POST {
        return Err(bad("method", "the alternate request syntax is a POST"));
    }
    if let Some(other) = given.keys().find(|k| *k != "method") {
        return Err(bad(
            other,
            "with the alternate request syntax every parameter but `method` goes in the form",
        ));
    }
    let (parts, body) = request.into_parts();
    let form_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(bad(
            "Content-Type",
            "the alternate request syntax sends application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::too_large("the form is larger than the server takes"))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| bad("", format!("the form is not url-encoded: {e}")))?;
    let mut headers = parts.headers.clone();
    headers.remove(CONTENT_TYPE);
    headers.remove(axum::http::header::CONTENT_LENGTH);
    let mut content = None;
    let mut rest = Vec::new();
    for (name, value) in fields {
        let lower = name.to_ascii_lowercase();
        if lower == "content" {
            content = Some(value);
        } else if FORM_HEADERS.contains(&lower.as_str()) {
            if lower != "content-length" {
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| bad(&name, "is not a header value"))?;
                headers.insert(
                    HeaderName::from_bytes(lower.as_bytes())
                        .map_err(|_| bad(&name, "is not a header"))?,
                    value,
                );
            }
        } else {
            rest.push((name, value));
        }
    }
    let body = match (&method, content) {
        (&axum::http::Method::PUT | &axum::http::Method::POST, None) => {
            return Err(bad("content", "the form's `content` holds the body"));
        }
        (_, content) => content.unwrap_or_default(),
    };
    if !body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let query = serde_urlencoded::to_string(&rest).unwrap_or_default();
    let uri = if query.is_empty() {
        parts.uri.path().to_owned()
    } else {
        format!("{}?{query}", parts.uri.path())
    };
    let mut unwrapped = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .map_err(|e| bad("", format!("the request cannot be formed: {e}")))?;
    *unwrapped.headers_mut() = headers;
    let router = state
        .reader
        .get()
        .ok_or_else(|| ApiError::unavailable("starting"))?
        .clone()
        .with_state(state.clone());
    match router.oneshot(unwrapped).await {
        Ok(response) => Ok(response),
        Err(never) => match never {},
    }
}

/// Every answer says the version spoken; every request but `/about` must say the version
/// it speaks (1.0.x or 2.0.x).
async fn versioned(request: Request, next: Next) -> Response {
    let about = request.uri().path().ends_with("/about");
    let sent = request
        .headers()
        .get(&VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let refusal = match sent {
        _ if about => None,
        None => Some(
            "send the X-Experience-API-Version header (for example 1.0.3): every xAPI request needs it",
        ),
        Some(v) if !xapi::version_accepted(&v) => {
            Some("X-Experience-API-Version must be 1.0.x or 2.0.x")
        }
        Some(_) => None,
    };
    let mut response = match refusal {
        Some(message) => {
            let mut answer = ApiError::bad_request(message).into_response();
            if request.method() == axum::http::Method::GET {
                consistent_through(answer.headers_mut());
            }
            answer
        }
        None => next.run(request).await,
    };
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from_static(VERSION));
    response
}

fn consistent_through(headers: &mut HeaderMap) {
    let now = xapi::format_timestamp(chrono::Utc::now().timestamp_millis());
    if let Ok(value) = HeaderValue::from_str(&now) {
        headers.insert(CONSISTENT_THROUGH, value);
    }
}

/// 400 naming each bad field, as xAPI answers a malformed request.
fn bad_fields(details: Vec<FieldError>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        ..ApiError::invalid(details)
    }
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    bad_fields(vec![FieldError::new(field, message)])
}

/// The versions this LRS speaks.
#[utoipa::path(get, path = "/xapi/about", tag = "xapi",
    responses((status = 200, description = "the versions spoken", body = Value)))]
async fn about() -> Response {
    axum::Json(json!({
        "version": ["1.0.0", "1.0.1", "1.0.2", "1.0.3"],
        "extensions": {}
    }))
    .into_response()
}

/// What a statement request sent: the statements, and from a multipart/mixed request the
/// content of their attachments.
struct Sent {
    json: Value,
    parts: Vec<Content>,
}

/// An attachment's content as a part of the request brought it.
struct Content {
    /// The part's number in the request (the statements are part 1).
    number: usize,
    sha2: String,
    bytes: Bytes,
}

/// Reads a statement request: `application/json`, or `multipart/mixed` with the
/// statements as the first part and each attachment's content in a part of its own
/// (xAPI 1.0.3, 1.5.2), each part checked against the hash it names.
fn sent(headers: &HeaderMap, body: &Bytes) -> ApiResult<Sent> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.to_ascii_lowercase();
    if media.starts_with("application/json") {
        let json = serde_json::from_slice(body)
            .map_err(|e| bad("", format!("the body is not JSON: {e}")))?;
        return Ok(Sent {
            json,
            parts: Vec::new(),
        });
    }
    if !media.starts_with("multipart/mixed") {
        return Err(bad(
            "Content-Type",
            "must be application/json, or multipart/mixed with attachments",
        ));
    }
    let boundary = multipart::boundary(content_type).ok_or_else(|| {
        bad(
            "Content-Type",
            "multipart/mixed needs its boundary: multipart/mixed; boundary=…",
        )
    })?;
    let parts = multipart::parse(body, boundary).map_err(|e| bad("body", e))?;
    let Some((first, rest)) = parts.split_first() else {
        return Err(bad("body", "the first part must be the statements"));
    };
    let first_type = first.header("content-type").unwrap_or_default();
    if !first_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(bad(
            "part 1",
            "the first part is the statements, with Content-Type: application/json",
        ));
    }
    let json = serde_json::from_slice(first.body)
        .map_err(|e| bad("part 1", format!("the statements are not JSON: {e}")))?;
    let mut errors = Vec::new();
    let mut contents = Vec::with_capacity(rest.len());
    for (i, part) in rest.iter().enumerate() {
        let number = i + 2;
        let field = format!("part {number}");
        let mut fail = |message: &str| errors.push(FieldError::new(field.clone(), message));
        if part.header("content-type").is_none() {
            fail("an attachment's part has a Content-Type");
        }
        if !part
            .header("content-transfer-encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("binary"))
        {
            fail("an attachment's part has Content-Transfer-Encoding: binary");
        }
        let Some(hash) = part.header("x-experience-api-hash") else {
            fail("an attachment's part names its content's SHA-2 in X-Experience-API-Hash");
            continue;
        };
        let hash = hash.to_ascii_lowercase();
        if xapi::sha2_of(&hash, part.body).as_deref() != Some(hash.as_str()) {
            fail("X-Experience-API-Hash is not the SHA-2 hash of the part's content");
            continue;
        }
        contents.push(Content {
            number,
            sha2: hash,
            bytes: body.slice_ref(part.body),
        });
    }
    if errors.is_empty() {
        Ok(Sent {
            json,
            parts: contents,
        })
    } else {
        Err(bad_fields(errors))
    }
}

/// The statements of a request, each as `(path, statement)`, its fields named from it.
fn statements_of(json: &Value) -> ApiResult<Vec<(String, &Value)>> {
    match json {
        Value::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("[{i}]"), s))
            .collect()),
        Value::Object(_) => Ok(vec![("statement".to_owned(), json)]),
        _ => Err(bad(
            "",
            "send one statement (an object) or an array of them",
        )),
    }
}

/// Checks statements and their attachments; refuses the whole request (400 naming every
/// bad field) if any is bad, if two share an id, if an attachment has neither a
/// `fileUrl` nor a part, if a part belongs to no attachment, or if a signature does not
/// hold.
fn checked(list: &[(String, &Value)], parts: &[Content]) -> ApiResult<Vec<Incoming>> {
    let mut errors = Vec::new();
    let mut incoming = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::new();
    let mut used = vec![false; parts.len()];
    for (path, statement) in list {
        match xapi::check(statement, path) {
            Err(mut e) => errors.append(&mut e),
            Ok(checked) => {
                if let Some(id) = checked.id
                    && !seen.insert(id)
                {
                    errors.push(FieldError::new(
                        format!("{path}.id"),
                        format!("{id} is the id of another statement of this request"),
                    ));
                }
                let mut attachments = Vec::new();
                for (i, attachment) in checked.attachments.iter().enumerate() {
                    let field = format!("{path}.attachments[{i}]");
                    let part = parts.iter().position(|p| p.sha2 == attachment.sha2);
                    if let Some(at) = part {
                        used[at] = true;
                        attachments.push(AttachmentContent {
                            sha2: attachment.sha2.clone(),
                            content_type: attachment.content_type.clone(),
                            content: parts[at].bytes.to_vec(),
                        });
                    }
                    if attachment.usage_type == xapi::SIGNATURE {
                        let signature = part.map(|at| &parts[at].bytes);
                        if let Err(message) = signed(&checked, attachment, signature) {
                            errors.push(FieldError::new(field, message));
                        }
                    } else if part.is_none() && attachment.file_url.is_none() {
                        errors.push(FieldError::new(
                            field,
                            "has no fileUrl, and no part of the request carries its content \
                             (a part whose X-Experience-API-Hash is its sha2)",
                        ));
                    }
                }
                let digest = hex::encode(Sha256::digest(checked.value.to_string().as_bytes()));
                incoming.push(Incoming {
                    id: checked.id.unwrap_or_else(Uuid::new_v4),
                    checked,
                    digest,
                    attachments,
                });
            }
        }
    }
    for (part, _) in parts.iter().zip(&used).filter(|(_, used)| !**used) {
        errors.push(FieldError::new(
            format!("part {}", part.number),
            format!(
                "X-Experience-API-Hash {} is the sha2 of no attachment of these statements",
                part.sha2
            ),
        ));
    }
    if errors.is_empty() {
        Ok(incoming)
    } else {
        Err(bad_fields(errors))
    }
}

/// A signature attachment (xAPI 1.0.3, Data 2.6): a JWS, sent as a part, that holds.
fn signed(
    checked: &xapi::Checked,
    attachment: &xapi::Attachment,
    content: Option<&Bytes>,
) -> Result<(), String> {
    if !attachment
        .content_type
        .eq_ignore_ascii_case("application/octet-stream")
    {
        return Err("a signature's contentType is application/octet-stream".into());
    }
    let content = content.ok_or(
        "a signature is sent as a part of the request (a part whose X-Experience-API-Hash is its sha2)",
    )?;
    xapi::signature::verify(&checked.value, content)
}

/// The authority of what this caller stores: the credential, as an Agent.
fn authority(state: &AppState, auth: &Auth, headers: &HeaderMap) -> Value {
    let name = auth
        .token
        .lrs_key
        .clone()
        .unwrap_or_else(|| format!("token:{}", auth.token.name));
    json!({
        "objectType": "Agent",
        "name": auth.token.name,
        "account": {"homePage": crate::learn::base_url(state, headers), "name": name}
    })
}

async fn store(
    state: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
    incoming: Vec<Incoming>,
) -> ApiResult<Vec<Uuid>> {
    let authority = authority(state, auth, headers);
    state
        .store
        .store_statements(auth.account(), incoming, authority)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(detail) => ApiError {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: detail.message.clone(),
                details: vec![FieldError::new(detail.field, detail.message)],
                retry_after: None,
            },
            other => other.into(),
        })
}

fn require_write(auth: &Auth) -> ApiResult<()> {
    auth.require_any(&[Scope::XapiWrite, Scope::EventsWrite])
}

/// Store statements: one, or an array. Answers their ids, in order. A statement whose
/// id is stored already is not changed: the same content again is accepted (a resend),
/// other content is 409. Each is applied to its person's enrolment as it is stored.
#[utoipa::path(post, path = "/xapi/statements", tag = "xapi",
    request_body(description = "one xAPI statement, or an array of them; or multipart/mixed: the statements (application/json) first, then each attachment's content in a part with `Content-Transfer-Encoding: binary` and `X-Experience-API-Hash` (its sha2)",
        content((Value = "application/json"), (String = "multipart/mixed"))),
    params(("X-Experience-API-Version" = String, Header, pattern = r"^(1\.0|2\.0)(\.[0-9]+)?$", description = "1.0.x or 2.0.x")),
    responses(
        (status = 200, description = "stored; the statement ids", body = Vec<String>),
        (status = 400, description = "a statement is malformed (each bad field named), an attachment's content or a signature is missing or wrong, or the version header is missing; nothing was stored", body = ErrorBody),
        (status = 401, description = "bad credentials", body = ErrorBody),
        (status = 403, description = "the credential cannot write statements", body = ErrorBody),
        (status = 409, description = "a statement id is stored already with other content; nothing was stored", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
async fn post_statements(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&auth)?;
    let sent = sent(&headers, &body)?;
    let list = statements_of(&sent.json)?;
    let incoming = checked(&list, &sent.parts)?;
    let ids = store(&state, &auth, &headers, incoming).await?;
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    Ok(axum::Json(ids).into_response())
}

/// Store one statement under the id given (`statementId`). 204 when stored, or when
/// the same statement is stored already; 409 when another is.
#[utoipa::path(put, path = "/xapi/statements", tag = "xapi",
    request_body(description = "one xAPI statement; or multipart/mixed with its attachments' content, as for POST",
        content((Value = "application/json"), (String = "multipart/mixed"))),
    params(
        ("statementId" = String, Query, format = Uuid, description = "the statement's id"),
        ("X-Experience-API-Version" = String, Header, pattern = r"^(1\.0|2\.0)(\.[0-9]+)?$", description = "1.0.x or 2.0.x")),
    responses(
        (status = 204, description = "stored"),
        (status = 400, description = "no statementId, another id in the body, a malformed statement, or an attachment's content or signature missing or wrong", body = ErrorBody),
        (status = 401, description = "bad credentials", body = ErrorBody),
        (status = 403, description = "the credential cannot write statements", body = ErrorBody),
        (status = 409, description = "another statement is stored with this id", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
async fn put_statement(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_write(&auth)?;
    let params = params(query.as_deref())?;
    let id = params.get("statementId").ok_or_else(|| {
        bad(
            "statementId",
            "a PUT names its statement: ?statementId=<uuid>",
        )
    })?;
    let id = Uuid::parse_str(id).map_err(|_| bad("statementId", "must be a UUID"))?;
    if let Some(other) = params.keys().find(|k| *k != "statementId") {
        return Err(bad(other, "is not a parameter of PUT /statements"));
    }
    let Sent {
        json: mut body,
        parts,
    } = sent(&headers, &body)?;
    let Some(object) = body.as_object_mut() else {
        return Err(bad("", "a PUT sends one statement (an object)"));
    };
    match object.get("id") {
        None => {
            object.insert("id".into(), json!(id.to_string()));
        }
        Some(given) => {
            if given.as_str().and_then(|g| Uuid::parse_str(g).ok()) != Some(id) {
                return Err(bad(
                    "statement.id",
                    "differs from the statementId parameter",
                ));
            }
        }
    }
    let incoming = checked(&[("statement".to_owned(), &body)], &parts)?;
    store(&state, &auth, &headers, incoming).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query parameters, each once.
fn params(query: Option<&str>) -> ApiResult<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let mut params = HashMap::new();
    for (key, value) in pairs {
        if params.insert(key.clone(), value).is_some() {
            return Err(bad(&key, "is given more than once"));
        }
    }
    Ok(params)
}

const LIST_PARAMS: [&str; 13] = [
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
    "more",
];

/// Read statements: one by `statementId` (or a voided one by `voidedStatementId`), or a
/// page of them, newest stored first, filtered as xAPI 1.0.3 says, with a `more` link to
/// the next page. Voided statements are only ever returned by `voidedStatementId`.
#[utoipa::path(get, path = "/xapi/statements", tag = "xapi",
    params(
        ("statementId" = Option<String>, Query, format = Uuid),
        ("voidedStatementId" = Option<String>, Query, format = Uuid),
        ("agent" = Option<String>, Query, description = "an Agent or Identified Group as JSON"),
        ("verb" = Option<String>, Query, description = "a verb IRI"),
        ("activity" = Option<String>, Query, description = "an activity IRI"),
        ("registration" = Option<String>, Query, format = Uuid),
        ("related_activities" = Option<bool>, Query),
        ("related_agents" = Option<bool>, Query),
        ("since" = Option<String>, Query, description = "stored after (ISO 8601)"),
        ("until" = Option<String>, Query, description = "stored at or before (ISO 8601)"),
        ("limit" = Option<u32>, Query, minimum = 0, description = "0: the most a page holds (500)"),
        ("format" = Option<String>, Query, description = "ids, exact (default) or canonical"),
        ("attachments" = Option<bool>, Query),
        ("ascending" = Option<bool>, Query),
        ("more" = Option<String>, Query, description = "the `more` link of an earlier page"),
        ("X-Experience-API-Version" = String, Header, pattern = r"^(1\.0|2\.0)(\.[0-9]+)?$", description = "1.0.x or 2.0.x")),
    responses(
        (status = 200, description = "a statement, or a StatementResult; with `attachments=true`, multipart/mixed: the JSON, then each attachment's content kept",
            content((Value = "application/json"), (String = "multipart/mixed"))),
        (status = 400, description = "a bad or unknown parameter", body = ErrorBody),
        (status = 401, description = "bad credentials", body = ErrorBody),
        (status = 403, description = "the credential cannot read statements", body = ErrorBody),
        (status = 404, description = "no such statement (or it is voided, or not)", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
async fn get_statements(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut response = match read(&state, &auth, query.as_deref(), &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    consistent_through(response.headers_mut());
    response
}

async fn read(
    state: &AppState,
    auth: &Auth,
    query: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    auth.require(Scope::XapiRead)?;
    let mut params = params(query)?;
    if let Some(more) = params.remove("more") {
        if !params.is_empty() {
            return Err(bad(
                "more",
                "a `more` link is followed as it is, without other parameters",
            ));
        }
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(more)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("more", "is not a `more` link of this LRS"))?;
        params = self::params(Some(&decoded))?;
    }
    let format = match params.get("format").map(String::as_str) {
        None | Some("exact") => Format::Exact,
        Some("ids") => Format::Ids,
        Some("canonical") => Format::Canonical(
            headers
                .get(ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(xapi::accept_languages)
                .unwrap_or_default(),
        ),
        Some(_) => return Err(bad("format", "must be ids, exact or canonical")),
    };
    let attachments = flag(&params, "attachments")?;
    let single = match (params.get("statementId"), params.get("voidedStatementId")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "voidedStatementId",
                "ask for a statement by statementId or voidedStatementId, not both",
            ));
        }
        (Some(id), None) => Some((id, false, "statementId")),
        (None, Some(id)) => Some((id, true, "voidedStatementId")),
        (None, None) => None,
    };
    if let Some((id, voided, name)) = single {
        if let Some(other) = params.keys().find(|k| {
            !matches!(
                k.as_str(),
                "statementId" | "voidedStatementId" | "format" | "attachments"
            )
        }) {
            return Err(bad(other, format!("cannot be used with {name}")));
        }
        let id = Uuid::parse_str(id).map_err(|_| bad(name, "must be a UUID"))?;
        let (body, stored_at) = state
            .store
            .statement(auth.account(), id, voided)
            .await?
            .ok_or_else(|| ApiError::not_found("statement"))?;
        let body = format.apply(body)?;
        let mut response = answer(state, auth, body, attachments).await?;
        if let Some(value) = chrono::DateTime::from_timestamp_millis(stored_at)
            .map(|at| at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
            .and_then(|text| HeaderValue::from_str(&text).ok())
        {
            response.headers_mut().insert(LAST_MODIFIED, value);
        }
        return Ok(response);
    }
    if let Some(unknown) = params
        .keys()
        .find(|k| !LIST_PARAMS.contains(&k.as_str()) && k.as_str() != "after")
    {
        return Err(bad(unknown, "is not a parameter of GET /statements"));
    }
    let list = list_query(&params)?;
    let (bodies, next) = state.store.statements(auth.account(), &list).await?;
    let more = match next {
        None => String::new(),
        Some(after) => {
            let mut rest: Vec<(&String, &String)> =
                params.iter().filter(|(k, _)| *k != "after").collect();
            rest.sort();
            let after = after.to_string();
            let key = "after".to_owned();
            rest.push((&key, &after));
            let encoded = serde_urlencoded::to_string(&rest).unwrap_or_default();
            format!(
                "/xapi/statements?more={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encoded)
            )
        }
    };
    let mut out = String::with_capacity(bodies.iter().map(String::len).sum::<usize>() + 64);
    out.push_str("{\"statements\":[");
    for (i, body) in bodies.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format.apply(body)?);
    }
    out.push_str("],\"more\":");
    out.push_str(&Value::String(more).to_string());
    out.push('}');
    answer(state, auth, out, attachments).await
}

/// A statement or StatementResult; with `attachments=true`, a multipart/mixed answer:
/// the JSON first, then the content of each attachment of these statements that this
/// LRS keeps (xAPI 1.0.3, 2.1.3; an attachment sent by `fileUrl` only has none).
async fn answer(
    state: &AppState,
    auth: &Auth,
    json: String,
    attachments: bool,
) -> ApiResult<Response> {
    if !attachments {
        return Ok(([(CONTENT_TYPE, "application/json")], json).into_response());
    }
    let hashes = attachment_hashes(&json);
    let contents = state
        .store
        .attachment_contents(auth.account(), &hashes)
        .await?;
    let header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let mut parts = vec![multipart::Part {
        headers: vec![header("Content-Type", "application/json")],
        body: json.as_bytes(),
    }];
    for content in &contents {
        parts.push(multipart::Part {
            headers: vec![
                header("Content-Type", &content.content_type),
                header("Content-Transfer-Encoding", "binary"),
                header("X-Experience-API-Hash", &content.sha2),
            ],
            body: &content.content,
        });
    }
    let boundary = format!("xapi-{}", Uuid::new_v4().simple());
    let body = multipart::write(&boundary, &parts);
    Response::builder()
        .header(
            CONTENT_TYPE,
            format!("multipart/mixed; boundary={boundary}"),
        )
        .body(Body::from(body))
        .map_err(ApiError::internal)
}

/// The `sha2` of every attachment of a statement or StatementResult, once each.
fn attachment_hashes(json: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let statements: Vec<&Value> = match value.get("statements") {
        Some(Value::Array(list)) => list.iter().collect(),
        _ => vec![&value],
    };
    let mut hashes: Vec<String> = statements
        .iter()
        .filter_map(|s| s.get("attachments")?.as_array())
        .flatten()
        .filter_map(|a| a.get("sha2")?.as_str())
        .map(str::to_ascii_lowercase)
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

enum Format {
    Exact,
    Ids,
    Canonical(Vec<String>),
}

impl Format {
    fn apply(&self, body: String) -> ApiResult<String> {
        let transform = match self {
            Format::Exact => return Ok(body),
            Format::Ids => |v: &mut Value, _: &[String]| xapi::to_ids(v),
            Format::Canonical(_) => xapi::to_canonical,
        };
        let languages = match self {
            Format::Canonical(languages) => languages.as_slice(),
            _ => &[],
        };
        let mut value: Value = serde_json::from_str(&body).map_err(ApiError::internal)?;
        transform(&mut value, languages);
        Ok(value.to_string())
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> ApiResult<bool> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(bad(name, "must be true or false")),
    }
}

fn list_query(params: &HashMap<String, String>) -> ApiResult<StatementQuery> {
    let agent = match params.get("agent") {
        None => None,
        Some(text) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|_| bad("agent", "must be an Agent or Identified Group as JSON"))?;
            let mut errors = Vec::new();
            let probe = json!({
                "actor": value,
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": "http://example.com/probe"}
            });
            if let Err(mut e) = xapi::check(&probe, "") {
                errors.append(&mut e);
            }
            let key = xapi::ifi_key(&value);
            if !errors.is_empty() || key.is_none() {
                return Err(bad(
                    "agent",
                    "must be an Agent or Identified Group with one of mbox, mbox_sha1sum, openid or account",
                ));
            }
            key
        }
    };
    let iri = |name: &str| -> ApiResult<Option<String>> {
        match params.get(name) {
            None => Ok(None),
            Some(v) if xapi::is_iri(v) => Ok(Some(v.clone())),
            Some(_) => Err(bad(name, "must be an IRI")),
        }
    };
    let instant = |name: &str| -> ApiResult<Option<i64>> {
        params
            .get(name)
            .map(|t| {
                xapi::parse_timestamp(t).ok_or_else(|| bad(name, "must be an ISO 8601 timestamp"))
            })
            .transpose()
    };
    let limit = match params.get("limit") {
        None => MAX_LIMIT,
        Some(text) => match text.parse::<u32>() {
            Ok(0) => MAX_LIMIT,
            Ok(n) => n.min(MAX_LIMIT),
            Err(_) => return Err(bad("limit", "must be a whole number from 0")),
        },
    };
    let registration = params
        .get("registration")
        .map(|r| {
            Uuid::parse_str(r)
                .map(|u| u.to_string())
                .map_err(|_| bad("registration", "must be a UUID"))
        })
        .transpose()?;
    Ok(StatementQuery {
        agent,
        verb: iri("verb")?,
        activity: iri("activity")?,
        registration,
        related_activities: flag(params, "related_activities")?,
        related_agents: flag(params, "related_agents")?,
        since: instant("since")?,
        until: instant("until")?,
        limit,
        ascending: flag(params, "ascending")?,
        after: params
            .get("after")
            .map(|a| {
                a.parse()
                    .map_err(|_| bad("more", "is not a `more` link of this LRS"))
            })
            .transpose()?,
    })
}
