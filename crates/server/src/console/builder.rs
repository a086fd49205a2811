//! The smart-group criteria builder: a form of rule rows (an event count in a time frame
//! with an optional description filter, an attribute's value, membership of a group —
//! each of them optionally negated), joined by *all* or *any*, made into the criteria
//! language and checked by its parser. *Preview* shows who would match now and on each
//! of the last days before anything is saved; *Save* creates the group.

use super::charts::{self, Series};
use super::layout::{self, PreEscaped, Section, csrf};
use super::session::{Posted, Session, see_other};
use crate::AppState;
use crate::audit::Note;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use coachloop_core::criteria::Criteria;
use coachloop_core::user::TEXT_FIELDS;
use coachloop_store::groups::{NewGroup, Preview};
use maud::{Markup, html};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Rule rows the form offers (rows left empty are not part of the criteria).
pub const ROWS: usize = 4;
/// Time frames offered, as ISO 8601 durations.
const FRAMES: [(&str, &str); 6] = [
    ("P7D", "7 days"),
    ("P30D", "30 days"),
    ("P3M", "3 months"),
    ("P6M", "6 months"),
    ("P1Y", "a year"),
    ("any", "any time"),
];

/// The form's values, by field name (`name`, `join`, `r0_kind`, `r0_type`, …).
#[derive(Debug, Default, Clone)]
pub struct Draft(HashMap<String, String>);

impl Draft {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    fn get(&self, key: &str) -> &str {
        self.0.get(key).map(|v| v.trim()).unwrap_or_default()
    }

    fn row(&self, i: usize, key: &str) -> &str {
        self.get(&format!("r{i}_{key}"))
    }

    /// The criteria the rows say, or what to fix (the field and why).
    pub fn criteria(&self) -> Result<Value, (String, String)> {
        let mut rules = Vec::new();
        for i in 0..ROWS {
            let field = |key: &str| format!("r{i}_{key}");
            let rule = match self.row(i, "kind") {
                "" => continue,
                "event" => {
                    let kind = self.row(i, "type");
                    if kind.is_empty() {
                        return Err((field("type"), "choose an event type".into()));
                    }
                    let count: u64 = match self.row(i, "count") {
                        "" => 1,
                        text => text.parse().map_err(|_| {
                            (
                                field("count"),
                                "a whole number of events, 1 or more".to_owned(),
                            )
                        })?,
                    };
                    let mut event = json!({"type": kind, "count": {"at_least": count},
                                           "within": match self.row(i, "within") { "" => "P30D", w => w }});
                    if !self.row(i, "description").is_empty() {
                        event["description"] = json!({"contains": self.row(i, "description")});
                    }
                    json!({ "event": event })
                }
                "attribute" => {
                    let attribute = self.row(i, "attribute");
                    if attribute.is_empty() {
                        return Err((field("attribute"), "choose an attribute".into()));
                    }
                    json!({"user": {"attribute": attribute, "equals": self.row(i, "value")}})
                }
                "group" => {
                    let group: i64 = self
                        .row(i, "group")
                        .parse()
                        .map_err(|_| (field("group"), "choose a group".to_owned()))?;
                    json!({"group": {"member_of": group}})
                }
                other => return Err((field("kind"), format!("`{other}` is not a kind of rule"))),
            };
            rules.push(if self.row(i, "not") == "on" {
                json!({ "not": rule })
            } else {
                rule
            });
        }
        match (rules.len(), self.get("join")) {
            (0, _) => Err(("r0_kind".into(), "give at least one rule".into())),
            (1, _) => Ok(rules.remove(0)),
            (_, "any") => Ok(json!({ "any": rules })),
            _ => Ok(json!({ "all": rules })),
        }
    }
}

/// What the builder page needs besides the draft.
pub struct Choices {
    pub event_types: Vec<String>,
    pub groups: Vec<(i64, String)>,
}

fn select(name: &str, id: &str, current: &str, options: &[(String, String)]) -> Markup {
    html! {
        select name=(name) id=(id) {
            @for (value, label) in options {
                option value=(value) selected[value == current] { (label) }
            }
        }
    }
}

/// The builder form, with the preview or the problem when there is one.
pub fn page(
    session: &Session,
    draft: &Draft,
    choices: &Choices,
    problem: Option<&(String, String)>,
    preview: Option<&Preview>,
) -> Markup {
    let kinds: Vec<(String, String)> = [
        ("", "(no rule)"),
        ("event", "Events"),
        ("attribute", "An attribute"),
        ("group", "Member of a group"),
    ]
    .iter()
    .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
    .collect();
    let types: Vec<(String, String)> = std::iter::once((String::new(), "(choose)".to_owned()))
        .chain(choices.event_types.iter().map(|t| (t.clone(), t.clone())))
        .collect();
    let attributes: Vec<(String, String)> = std::iter::once((String::new(), "(choose)".to_owned()))
        .chain(
            TEXT_FIELDS
                .iter()
                .map(|f| ((*f).to_owned(), f.replace('_', " "))),
        )
        .collect();
    let groups: Vec<(String, String)> = std::iter::once((String::new(), "(choose)".to_owned()))
        .chain(
            choices
                .groups
                .iter()
                .map(|(id, name)| (id.to_string(), name.clone())),
        )
        .collect();
    let frames: Vec<(String, String)> = FRAMES
        .iter()
        .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
        .collect();
    let body = html! {
        @if let Some((field, message)) = problem {
            p.problem role="alert" { "Check " code { (field) } ": " (message) }
        }
        form.stack method="post" action="/console/groups/new" {
            (csrf(session))
            label for="name" { "Name" }
            input id="name" name="name" value=(draft.get("name")) maxlength="255";
            label for="description" { "Description" }
            input id="description" name="description" value=(draft.get("description")) maxlength="2000";
            fieldset {
                legend { "People match when they meet" }
                label.choice { input type="radio" name="join" value="all" checked[draft.get("join") != "any"]; " all of the rules" }
                label.choice { input type="radio" name="join" value="any" checked[draft.get("join") == "any"]; " any of the rules" }
            }
            @for i in 0..ROWS {
                fieldset.rule {
                    legend { "Rule " (i + 1) }
                    label for=(format!("r{i}_kind")) { "Kind" }
                    (select(&format!("r{i}_kind"), &format!("r{i}_kind"), draft.row(i, "kind"), &kinds))
                    label.choice { input type="checkbox" name=(format!("r{i}_not")) checked[draft.row(i, "not") == "on"]; " Not (people who do not meet it)" }
                    div.grid {
                        div {
                            label for=(format!("r{i}_type")) { "Event type" }
                            (select(&format!("r{i}_type"), &format!("r{i}_type"), draft.row(i, "type"), &types))
                        }
                        div {
                            label for=(format!("r{i}_description")) { "Description contains" }
                            input id=(format!("r{i}_description")) name=(format!("r{i}_description")) value=(draft.row(i, "description"));
                        }
                        div {
                            label for=(format!("r{i}_count")) { "At least this many" }
                            input id=(format!("r{i}_count")) name=(format!("r{i}_count")) type="number" min="1" value=(draft.row(i, "count"));
                        }
                        div {
                            label for=(format!("r{i}_within")) { "Within" }
                            (select(&format!("r{i}_within"), &format!("r{i}_within"), draft.row(i, "within"), &frames))
                        }
                        div {
                            label for=(format!("r{i}_attribute")) { "Attribute" }
                            (select(&format!("r{i}_attribute"), &format!("r{i}_attribute"), draft.row(i, "attribute"), &attributes))
                        }
                        div {
                            label for=(format!("r{i}_value")) { "Equals" }
                            input id=(format!("r{i}_value")) name=(format!("r{i}_value")) value=(draft.row(i, "value"));
                        }
                        div {
                            label for=(format!("r{i}_group")) { "Group" }
                            (select(&format!("r{i}_group"), &format!("r{i}_group"), draft.row(i, "group"), &groups))
                        }
                    }
                }
            }
            div.actions {
                button type="submit" name="action" value="preview" { "Preview" }
                " "
                button type="submit" name="action" value="save" { "Save the group" }
            }
        }
        @if let Some(preview) = preview {
            section.card id="preview" aria-live="polite" {
                h2 { "Preview" }
                p { strong { (preview.matching) } " people match now." }
                @if !preview.people.is_empty() {
                    ul { @for (id, email) in &preview.people {
                        li { a href=(format!("/console/people/{}", id.0)) { (email) } }
                    } }
                }
                @let points: Vec<(NaiveDate, f64)> = preview.daily.iter()
                    .filter_map(|(day, n)| Some((NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?, *n as f64)))
                    .collect();
                figure {
                    (PreEscaped(charts::lines("People who would have matched, day by day",
                        &[Series { name: "matching", points }], None)))
                    figcaption { "How many people these criteria would have matched at the end of each of the last days." }
                }
            }
        }
    };
    layout::page(session, Section::Groups, "New smart group", body)
}

async fn choices(state: &AppState, session: &Session) -> Result<Choices, Response> {
    let types = state
        .store
        .list_event_types(session.account, None)
        .await
        .map_err(layout::store_error)?;
    let (groups, _) = state
        .store
        .list_groups(
            session.account,
            &coachloop_store::groups::GroupFilter {
                status: Some("active".to_owned()),
                group_type: None,
            },
            coachloop_store::Page::new(1, 500),
        )
        .await
        .map_err(layout::store_error)?;
    Ok(Choices {
        event_types: types.into_iter().map(|t| t.name).collect(),
        groups: groups.into_iter().map(|g| (g.id.0, g.name)).collect(),
    })
}

pub async fn new(State(state): State<AppState>, session: Session) -> Response {
    let choices = match choices(&state, &session).await {
        Ok(choices) => choices,
        Err(response) => return response,
    };
    let draft = Draft::from_pairs(vec![("r0_kind".into(), "event".into())]);
    layout::respond(StatusCode::OK, page(&session, &draft, &choices, None, None))
}

pub async fn submit(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let Posted { session, form } = posted;
    let draft = Draft::from_pairs(form);
    let choices = match choices(&state, &session).await {
        Ok(choices) => choices,
        Err(response) => return response,
    };
    let again = |status, problem: (String, String)| {
        layout::respond(
            status,
            page(&session, &draft, &choices, Some(&problem), None),
        )
    };
    let value = match draft.criteria() {
        Ok(value) => value,
        Err(problem) => return again(StatusCode::UNPROCESSABLE_ENTITY, problem),
    };
    let criteria = match Criteria::parse(&value) {
        Ok(criteria) => criteria,
        Err(e) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                (
                    format!("criteria{}", e.path.trim_start_matches('$')),
                    e.message,
                ),
            );
        }
    };
    if draft.get("action") != "save" {
        return match state.store.preview_group(session.account, &criteria).await {
            Ok(preview) => layout::respond(
                StatusCode::OK,
                page(&session, &draft, &choices, None, Some(&preview)),
            ),
            Err(e) => layout::store_error(e),
        };
    }
    let name = draft.get("name");
    if name.is_empty() || name.chars().count() > 255 {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            ("name".into(), "a name of 1 to 255 characters".into()),
        );
    }
    let description = Some(draft.get("description").to_owned()).filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            ("description".into(), "at most 2000 characters".into()),
        );
    }
    let new = NewGroup {
        name: name.to_owned(),
        description: description.clone(),
        criteria: Some((value.clone(), criteria)),
    };
    match state.store.create_group(session.account, &new).await {
        Ok((group, _)) => {
            let mut response = see_other(&format!("/console/groups/{}", group.id.0));
            response.extensions_mut().insert(Note {
                method: None,
                path: Some(format!("/api/groups/{}", group.id.0)),
                before: None,
                after: Some(json!({"name": group.name, "description": description,
                                   "criteria": value})),
            });
            response
        }
        Err(e @ coachloop_store::StoreError::Conflict(_)) => {
            again(StatusCode::CONFLICT, ("name".into(), e.to_string()))
        }
        Err(e) => layout::store_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(pairs: &[(&str, &str)]) -> Draft {
        Draft::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn rows_make_criteria_the_parser_takes() {
        let one = draft(&[
            ("r0_kind", "event"),
            ("r0_type", "x_typed"),
            ("r0_count", "2"),
            ("r0_within", "P3M"),
            ("r0_description", "logged in"),
        ]);
        let value = one.criteria().unwrap();
        assert_eq!(
            value,
            json!({"event": {"type": "x_typed", "count": {"at_least": 2},
            "within": "P3M", "description": {"contains": "logged in"}}})
        );
        assert!(Criteria::parse(&value).is_ok());

        let two = draft(&[
            ("join", "any"),
            ("r0_kind", "event"),
            ("r0_type", "a"),
            ("r2_kind", "attribute"),
            ("r2_attribute", "department"),
            ("r2_value", "Sales"),
            ("r2_not", "on"),
            ("r3_kind", "group"),
            ("r3_group", "7"),
        ]);
        let value = two.criteria().unwrap();
        assert_eq!(
            value["any"][1],
            json!({"not": {"user": {"attribute": "department", "equals": "Sales"}}})
        );
        assert_eq!(value["any"][2], json!({"group": {"member_of": 7}}));
        assert!(Criteria::parse(&value).is_ok());
    }

    #[test]
    fn what_to_fix_is_named() {
        assert_eq!(draft(&[]).criteria().unwrap_err().0, "r0_kind");
        assert_eq!(
            draft(&[("r1_kind", "event")]).criteria().unwrap_err().0,
            "r1_type"
        );
        assert_eq!(
            draft(&[("r0_kind", "event"), ("r0_type", "x"), ("r0_count", "-1")])
                .criteria()
                .unwrap_err()
                .0,
            "r0_count"
        );
        assert_eq!(
            draft(&[("r0_kind", "group")]).criteria().unwrap_err().0,
            "r0_group"
        );
    }
}
