//! `/scim/v2/Users`: people as a provider sees them.

use super::patch::{self, Shape, field};
use super::query::{ListQuery, Listing};
use super::resource::{boolean, compact, id_of, refuse_unknown, text, version_of, with_meta};
use super::schema::{ENTERPRISE_ATTRS, ENTERPRISE_SCHEMA, USER_ATTRS, USER_IGNORED, USER_SCHEMA};
use super::{Answer, Body, ScimClient, ScimError, ScimResult, base_url, check_version, if_match};
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use coachloop_core::identity::Email;
use coachloop_core::ids::UserId;
use coachloop_store::scim::{ScimEmail, ScimUser, ScimUserInput};
use serde_json::{Value, json};

pub const SHAPE: Shape = Shape {
    core_urn: USER_SCHEMA,
    core: USER_ATTRS,
    extension: Some((ENTERPRISE_SCHEMA, ENTERPRISE_ATTRS)),
    ignored: USER_IGNORED,
};

/// Most emails one user has.
const MAX_EMAILS: usize = 20;

/// The user as SCIM shows it.
pub fn render(user: &ScimUser, base: &str) -> Value {
    let u = &user.user;
    let id = u.id.0.to_string();
    let manager = user.manager_ref.as_ref().map(
        |r| json!({"value": r, "$ref": format!("{base}/Users/{r}"), "displayName": u.manager_name}),
    );
    let enterprise = compact(json!({
        "employeeNumber": u.employee_number,
        "department": u.department,
        "division": u.division,
        "organization": u.organization,
        "manager": manager,
    }));
    let mut schemas = vec![USER_SCHEMA];
    if enterprise.as_object().is_some_and(|o| !o.is_empty()) {
        schemas.push(ENTERPRISE_SCHEMA);
    }
    let emails: Vec<Value> = (user.emails.iter())
        .map(|e| json!({"value": e.value, "type": e.kind, "primary": e.primary, "display": e.display}))
        .collect();
    let mut body = compact(json!({
        "schemas": schemas,
        "id": id,
        "externalId": u.provisioning_guid,
        "userName": user.user_name,
        "name": {
            "formatted": user.name_formatted,
            "familyName": u.last_name,
            "givenName": u.first_name,
        },
        "displayName": user.display_name,
        "title": u.job_title,
        "preferredLanguage": u.language,
        "active": u.status == "active",
        "emails": (!emails.is_empty()).then_some(emails),
    }));
    if schemas.len() > 1 {
        body[ENTERPRISE_SCHEMA] = enterprise;
    }
    with_meta(
        body,
        "User",
        format!("{base}/Users/{id}"),
        u.joined_on,
        u.updated_at,
    )
}

/// A whole user from a POST or PUT body (or a PATCHed resource).
pub fn parse(body: &Value) -> ScimResult<ScimUserInput> {
    refuse_unknown(body, &SHAPE)?;
    let user_name = text(body, "userName")?
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ScimError::invalid_value("`userName` is required"))?;
    let name = object(body, "name")?;
    let enterprise = (body.as_object().into_iter().flatten())
        .find(|(k, _)| k.eq_ignore_ascii_case(ENTERPRISE_SCHEMA))
        .map(|(_, v)| v);
    let enterprise = match enterprise {
        None | Some(Value::Null) => Value::Null,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(ScimError::invalid_value(
                "the enterprise extension is an object",
            ));
        }
    };
    let manager = match field(&enterprise, "manager") {
        None | Some(Value::Null) => None,
        // Entra ID sends the manager's id alone.
        Some(Value::String(id)) => Some(id.clone()).filter(|id| !id.trim().is_empty()),
        Some(value @ Value::Object(_)) => text(value, "value")?,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "`manager` is an object with a value",
            ));
        }
    };
    let attributes = vec![
        ("first_name", text(&name, "givenName")?),
        ("last_name", text(&name, "familyName")?),
        ("job_title", text(body, "title")?),
        ("language", text(body, "preferredLanguage")?),
        ("employee_number", text(&enterprise, "employeeNumber")?),
        ("department", text(&enterprise, "department")?),
        ("division", text(&enterprise, "division")?),
        ("organization", text(&enterprise, "organization")?),
    ];
    Ok(ScimUserInput {
        user_name,
        external_id: text(body, "externalId")?,
        display_name: text(body, "displayName")?,
        name_formatted: text(&name, "formatted")?,
        manager_ref: manager,
        emails: emails(body)?,
        attributes,
        active: boolean(body, "active")?.unwrap_or(true),
    })
}

fn object(body: &Value, name: &str) -> ScimResult<Value> {
    match field(body, name) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(ScimError::invalid_value(format!("`{name}` is an object"))),
    }
}

fn emails(body: &Value) -> ScimResult<Vec<ScimEmail>> {
    let items = match field(body, "emails") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("`emails` is an array")),
    };
    if items.len() > MAX_EMAILS {
        return Err(ScimError::invalid_value(format!(
            "at most {MAX_EMAILS} emails"
        )));
    }
    let mut emails = Vec::with_capacity(items.len());
    for item in items {
        if !item.is_object() {
            return Err(ScimError::invalid_value("each of `emails` is an object"));
        }
        let value = text(item, "value")?
            .ok_or_else(|| ScimError::invalid_value("each of `emails` needs a value"))?;
        Email::parse(&value)
            .map_err(|e| ScimError::invalid_value(format!("emails: `{value}` {e}")))?;
        emails.push(ScimEmail {
            value,
            kind: text(item, "type")?,
            primary: boolean(item, "primary")?.unwrap_or(false),
            display: text(item, "display")?,
        });
    }
    if emails.iter().filter(|e| e.primary).count() > 1 {
        return Err(ScimError::invalid_value("at most one email is primary"));
    }
    Ok(emails)
}

fn version(user: &ScimUser, base: &str) -> String {
    version_of(&render(user, base))
}

pub async fn list(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    Listing(query): Listing,
) -> ScimResult<Answer> {
    let (users, total) = (state.store)
        .scim_users(auth.account(), query.filter.as_ref(), query.window())
        .await?;
    let base = base_url(&state);
    let resources = users.iter().map(|u| render(u, &base)).collect();
    Ok(Answer(StatusCode::OK, query.answer(total, resources)))
}

pub async fn create(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    Body(body): Body,
) -> ScimResult<Answer> {
    let input = parse(&body)?;
    let user = state.store.scim_create_user(auth.account(), &input).await?;
    Ok(Answer(
        StatusCode::CREATED,
        render(&user, &base_url(&state)),
    ))
}

pub async fn read(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ScimResult<Answer> {
    let projection = ListQuery::from_query(query.as_deref())?.projection;
    let id = UserId(id_of(&id, "user")?);
    let user = state.store.scim_user(auth.account(), id).await?;
    let body = projection.apply(render(&user, &base_url(&state)));
    Ok(Answer(StatusCode::OK, body))
}

pub async fn replace(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body,
) -> ScimResult<Answer> {
    let id = UserId(id_of(&id, "user")?);
    let input = parse(&body)?;
    let wanted = if_match(&headers);
    let base = base_url(&state);
    let user = (state.store)
        .scim_edit_user(auth.account(), id, |current| {
            check_version(&wanted, &version(current, &base))?;
            Ok::<_, ScimError>(input)
        })
        .await?;
    Ok(Answer(StatusCode::OK, render(&user, &base)))
}

pub async fn modify(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body,
) -> ScimResult<Answer> {
    let id = UserId(id_of(&id, "user")?);
    let wanted = if_match(&headers);
    let base = base_url(&state);
    let user = (state.store)
        .scim_edit_user(auth.account(), id, |current| {
            let mut doc = render(current, &base);
            check_version(&wanted, doc["meta"]["version"].as_str().unwrap_or_default())?;
            patch::apply(&mut doc, &body, &SHAPE)?;
            parse(&doc)
        })
        .await?;
    Ok(Answer(StatusCode::OK, render(&user, &base)))
}

pub async fn delete(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    let id = UserId(id_of(&id, "user")?);
    let wanted = if_match(&headers);
    if wanted.is_some() {
        let current = state.store.scim_user(auth.account(), id).await?;
        check_version(&wanted, &version(&current, &base_url(&state)))?;
    }
    state.store.scim_delete_user(auth.account(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
