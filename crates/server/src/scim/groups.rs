//! `/scim/v2/Groups`: provisioned groups (`adi_managed_group`) that campaigns and
//! smart-group criteria target like any other group.

use super::patch::{self, Shape, field};
use super::query::{ListQuery, Listing};
use super::resource::{compact, id_of, refuse_unknown, text, version_of, with_meta};
use super::schema::{GROUP_ATTRS, GROUP_SCHEMA};
use super::{Answer, Body, ScimClient, ScimError, ScimResult, base_url, check_version, if_match};
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use coachloop_core::ids::{GroupId, UserId};
use coachloop_store::scim::{ScimGroup, ScimGroupInput};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub const SHAPE: Shape = Shape {
    core_urn: GROUP_SCHEMA,
    core: GROUP_ATTRS,
    extension: None,
    ignored: &[],
};

/// The group as SCIM shows it; `members` only when they were read.
pub fn render(group: &ScimGroup, base: &str, members: bool) -> Value {
    let g = &group.group;
    let id = g.id.0.to_string();
    let mut body = compact(json!({
        "schemas": [GROUP_SCHEMA],
        "id": id,
        "externalId": g.provisioning_guid,
        "displayName": g.name,
    }));
    // The version must not depend on whether members were read: it covers what the row
    // says of them (how many, when the group last changed).
    let seed = json!({"group": body, "members": g.member_count, "changed": g.updated_at});
    if members {
        body["members"] = (group.members.iter())
            .map(|m| {
                json!({
                    "value": m.user_id.0.to_string(),
                    "display": m.display,
                    "type": "User",
                    "$ref": format!("{base}/Users/{}", m.user_id.0),
                })
            })
            .collect();
    }
    let mut meta = with_meta(
        seed,
        "Group",
        format!("{base}/Groups/{id}"),
        g.created_at,
        g.updated_at,
    );
    body["meta"] = meta["meta"].take();
    body
}

pub fn parse(body: &Value) -> ScimResult<ScimGroupInput> {
    refuse_unknown(body, &SHAPE)?;
    let name = text(body, "displayName")?
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ScimError::invalid_value("`displayName` is required"))?;
    let items = match field(body, "members") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("`members` is an array")),
    };
    let mut members = BTreeSet::new();
    for item in items {
        if let Some(kind) = text(item, "type")?
            && !kind.eq_ignore_ascii_case("User")
        {
            return Err(ScimError::invalid_value(
                "groups do not nest: members are users",
            ));
        }
        let id = match field(item, "value") {
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| ScimError::invalid_value("each member needs the value of a user id"))?;
        members.insert(UserId(id));
    }
    Ok(ScimGroupInput {
        name,
        external_id: text(body, "externalId")?,
        members,
    })
}

pub async fn list(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    Listing(query): Listing,
) -> ScimResult<Answer> {
    // Okta and Entra ID look groups up with `excludedAttributes=members`: skip reading them.
    let members = query.projection.wants("members");
    let (groups, total) = (state.store)
        .scim_groups(
            auth.account(),
            query.filter.as_ref(),
            query.window(),
            members,
        )
        .await?;
    let base = base_url(&state);
    let resources = groups.iter().map(|g| render(g, &base, members)).collect();
    Ok(Answer(StatusCode::OK, query.answer(total, resources)))
}

pub async fn create(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    Body(body): Body,
) -> ScimResult<Answer> {
    let input = parse(&body)?;
    let group = state
        .store
        .scim_create_group(auth.account(), &input)
        .await?;
    Ok(Answer(
        StatusCode::CREATED,
        render(&group, &base_url(&state), true),
    ))
}

pub async fn read(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ScimResult<Answer> {
    let projection = ListQuery::from_query(query.as_deref())?.projection;
    let members = projection.wants("members");
    let id = GroupId(id_of(&id, "group")?);
    let group = state.store.scim_group(auth.account(), id, members).await?;
    let body = projection.apply(render(&group, &base_url(&state), members));
    Ok(Answer(StatusCode::OK, body))
}

pub async fn replace(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body,
) -> ScimResult<Answer> {
    let id = GroupId(id_of(&id, "group")?);
    let input = parse(&body)?;
    let wanted = if_match(&headers);
    let base = base_url(&state);
    let group = (state.store)
        .scim_edit_group(auth.account(), id, |current| {
            check_version(&wanted, &version(current, &base))?;
            Ok::<_, ScimError>(input)
        })
        .await?;
    Ok(Answer(StatusCode::OK, render(&group, &base, true)))
}

/// Answers 204, as Okta expects of a group PATCH (members can be many).
pub async fn modify(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body,
) -> ScimResult<StatusCode> {
    let id = GroupId(id_of(&id, "group")?);
    let wanted = if_match(&headers);
    let base = base_url(&state);
    (state.store)
        .scim_edit_group(auth.account(), id, |current| {
            check_version(&wanted, &version(current, &base))?;
            let mut doc = render(current, &base, true);
            patch::apply(&mut doc, &body, &SHAPE)?;
            parse(&doc)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    ScimClient(auth): ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    let id = GroupId(id_of(&id, "group")?);
    let wanted = if_match(&headers);
    if wanted.is_some() {
        let current = state.store.scim_group(auth.account(), id, false).await?;
        check_version(&wanted, &version(&current, &base_url(&state)))?;
    }
    state.store.scim_delete_group(auth.account(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn version(group: &ScimGroup, base: &str) -> String {
    version_of(&render(group, base, false))
}
