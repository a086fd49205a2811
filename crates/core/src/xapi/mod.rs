//! xAPI 1.0.3 statements (accepting what 2.0 adds where it differs): checked exactly as
//! the specification says, every refusal naming its field; normalised for storage
//! (`contextActivities` as arrays); completed by the LRS (`id`, `stored`, `timestamp`,
//! `authority`, `version`); and shown in the `ids`, `exact` or `canonical` format.

use crate::FieldError;
use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use uuid::Uuid;

pub mod multipart;
pub mod signature;

/// The version this LRS speaks (and answers in `X-Experience-API-Version`).
pub const VERSION: &str = "1.0.3";
/// The versions a client may send in `X-Experience-API-Version`.
pub fn version_accepted(version: &str) -> bool {
    static ACCEPTED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(1\.0|2\.0)(\.[0-9]+)?$").expect("valid"));
    ACCEPTED.is_match(version)
}

/// The verb that voids the statement its object refers to.
pub const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// A statement that passed every check, with what the LRS indexes it by.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The statement as it will be stored, without what the LRS adds.
    pub value: Value,
    pub id: Option<Uuid>,
    pub verb: String,
    /// A voiding statement: the statement it voids.
    pub voids: Option<Uuid>,
    /// The statement this one's object refers to (a StatementRef), voiding or not.
    pub refers_to: Option<Uuid>,
    pub registration: Option<Uuid>,
    /// Whom the actor is, to find the person by, lower-case: its `mbox` email, else its
    /// account's name.
    pub actor_email: Option<String>,
    /// The activity the statement is about, when its object is one.
    pub activity: Option<String>,
    /// The score as a fraction (scaled, or raw over min..max), when given.
    pub score: Option<f64>,
    /// `timestamp` in epoch milliseconds, when given.
    pub timestamp_ms: Option<i64>,
    /// The key of the actor (see [`ifi_key`]): what the `agent` filter matches, with
    /// `object_agent`; an anonymous Group has none.
    pub actor_key: Option<String>,
    /// The key of the object, when it is an Agent or Identified Group.
    pub object_agent: Option<String>,
    /// What `related_agents` and `related_activities` match beyond the actor and object:
    /// the authority, instructor, team, group members, context activities and the parts
    /// of a sub-statement.
    pub refs: Vec<Ref>,
    /// The statement's attachments (not a sub-statement's).
    pub attachments: Vec<Attachment>,
}

/// An attachment a statement declares: its content comes by `fileUrl`, or as a part of
/// the multipart/mixed request whose `X-Experience-API-Hash` is its `sha2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub usage_type: String,
    pub content_type: String,
    /// Lower-case hex.
    pub sha2: String,
    pub file_url: Option<String>,
}

/// The usage type of a signature (xAPI 1.0.3, Data 2.6).
pub const SIGNATURE: &str = "http://adlnet.gov/expapi/attachments/signature";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ref {
    pub kind: RefKind,
    pub key: String,
    pub direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefKind {
    Agent,
    Activity,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Activity => "activity",
        }
    }
}

type Checks = Vec<FieldError>;

fn fail(errors: &mut Checks, path: &str, message: impl Into<String>) {
    errors.push(FieldError::new(path, message));
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks one statement; `path` names it in errors (`statement`, `[3]`).
pub fn check(statement: &Value, path: &str) -> Result<Checked, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut refs = Vec::new();
    let mut value = statement.clone();
    let Some(object) = value.as_object_mut() else {
        return Err(vec![FieldError::new(path, "a statement is a JSON object")]);
    };
    const TOP: &[&str] = &[
        "id",
        "actor",
        "verb",
        "object",
        "result",
        "context",
        "timestamp",
        "stored",
        "authority",
        "version",
        "attachments",
    ];
    keys_only(object, TOP, path, &mut errors);
    let id = object
        .get("id")
        .and_then(|id| uuid(id, &join(path, "id"), &mut errors));
    if let Some(version) = object.get("version") {
        let ok = version.as_str().is_some_and(|v| {
            static VERSION_FIELD: LazyLock<Regex> =
                LazyLock::new(|| Regex::new(r"^(1\.0|2\.0)(\.[0-9]+)?$").expect("valid"));
            VERSION_FIELD.is_match(v)
        });
        if !ok {
            fail(
                &mut errors,
                &join(path, "version"),
                "must be 1.0.x or 2.0.x",
            );
        }
    }
    if let Some(stored) = object.get("stored") {
        timestamp(stored, &join(path, "stored"), &mut errors);
    }
    if let Some(authority) = object.get("authority") {
        let authority_path = join(path, "authority");
        actor(authority, &authority_path, &mut errors, &mut refs, false);
        // A Group as authority is OAuth's pair: anonymous, an application and a user.
        if authority.get("objectType").and_then(Value::as_str) == Some("Group") {
            let members = authority
                .get("member")
                .and_then(Value::as_array)
                .map(Vec::len);
            if ifi_key(authority).is_some() || members != Some(2) {
                fail(
                    &mut errors,
                    &authority_path,
                    "a Group as authority is anonymous and has exactly two members",
                );
            }
        }
    }
    let body = statement_body(object, path, false, &mut errors, &mut refs);
    if !errors.is_empty() {
        return Err(errors);
    }
    refs.retain(|r| !r.direct);
    refs.sort();
    refs.dedup();
    let actor_key = value.get("actor").and_then(ifi_key);
    let object_agent = value
        .get("object")
        .filter(|o| {
            matches!(
                o.get("objectType").and_then(Value::as_str),
                Some("Agent" | "Group")
            )
        })
        .and_then(ifi_key);
    Ok(Checked {
        actor_key,
        object_agent,
        id,
        verb: body.verb,
        voids: body.voids,
        refers_to: body.refers_to,
        registration: body.registration,
        actor_email: body.actor_email,
        activity: body.activity,
        score: body.score,
        timestamp_ms: body.timestamp_ms,
        refs,
        attachments: body.attachments,
        value,
    })
}

#[derive(Default)]
struct Body {
    verb: String,
    voids: Option<Uuid>,
    refers_to: Option<Uuid>,
    registration: Option<Uuid>,
    actor_email: Option<String>,
    activity: Option<String>,
    score: Option<f64>,
    timestamp_ms: Option<i64>,
    attachments: Vec<Attachment>,
}

/// What a statement and a sub-statement share: actor, verb, object, result, context,
/// timestamp, attachments.
fn statement_body(
    object: &mut Map<String, Value>,
    path: &str,
    sub: bool,
    errors: &mut Checks,
    refs: &mut Vec<Ref>,
) -> Body {
    let mut body = Body::default();
    match object.get("actor") {
        None => fail(errors, &join(path, "actor"), "is required"),
        Some(a) => {
            actor(a, &join(path, "actor"), errors, refs, !sub);
            // An LMS that keeps emails to itself names its account instead (Moodle
            // without *Send learner mailto IRIs*): matched against aliases.
            body.actor_email = a
                .get("mbox")
                .and_then(Value::as_str)
                .and_then(|m| m.strip_prefix("mailto:"))
                .or_else(|| a.get("account")?.get("name")?.as_str())
                .map(str::to_lowercase);
        }
    }
    match object.get("verb") {
        None => fail(errors, &join(path, "verb"), "is required"),
        Some(v) => body.verb = verb(v, &join(path, "verb"), errors),
    }
    let object_path = join(path, "object");
    let mut object_is_activity = false;
    match object.get_mut("object") {
        None => fail(errors, &object_path, "is required"),
        Some(o) => {
            let kind = o
                .get("objectType")
                .and_then(Value::as_str)
                .unwrap_or("Activity")
                .to_owned();
            match kind.as_str() {
                "Activity" => {
                    object_is_activity = true;
                    body.activity = activity(o, &object_path, errors);
                    if let Some(id) = &body.activity {
                        refs.push(Ref {
                            kind: RefKind::Activity,
                            key: id.clone(),
                            direct: !sub,
                        });
                    }
                }
                "Agent" | "Group" => actor(o, &object_path, errors, refs, !sub),
                "StatementRef" => {
                    body.refers_to = statement_ref(o, &object_path, errors);
                    body.voids = body.refers_to;
                }
                "SubStatement" if sub => fail(
                    errors,
                    &join(&object_path, "objectType"),
                    "a sub-statement cannot hold another sub-statement",
                ),
                "SubStatement" => match o.as_object_mut() {
                    Some(inner) => {
                        keys_only(
                            inner,
                            &[
                                "objectType",
                                "actor",
                                "verb",
                                "object",
                                "result",
                                "context",
                                "timestamp",
                                "attachments",
                            ],
                            &object_path,
                            errors,
                        );
                        statement_body(inner, &object_path, true, errors, refs);
                    }
                    None => fail(errors, &object_path, "must be an object"),
                },
                other => fail(
                    errors,
                    &join(&object_path, "objectType"),
                    format!(
                        "`{other}` is not Activity, Agent, Group, StatementRef or SubStatement"
                    ),
                ),
            }
        }
    }
    if body.verb == VOIDED {
        if sub || body.voids.is_none() {
            fail(
                errors,
                &object_path,
                "a voiding statement's object is a StatementRef to the statement it voids",
            );
        }
    } else {
        body.voids = None;
    }
    if let Some(r) = object.get("result") {
        body.score = result(r, &join(path, "result"), errors);
    }
    if let Some(c) = object.get_mut("context") {
        body.registration = context(c, &join(path, "context"), object_is_activity, errors, refs);
    }
    if let Some(t) = object.get("timestamp") {
        body.timestamp_ms = timestamp(t, &join(path, "timestamp"), errors);
    }
    if let Some(a) = object.get("attachments") {
        let found = attachments(a, &join(path, "attachments"), errors);
        if !sub {
            body.attachments = found;
        }
    }
    body
}

fn keys_only(object: &Map<String, Value>, allowed: &[&str], path: &str, errors: &mut Checks) {
    for (key, value) in object {
        if !allowed.contains(&key.as_str()) {
            fail(
                errors,
                &join(path, key),
                format!("is not a property here (allowed: {})", allowed.join(", ")),
            );
        } else if value.is_null() {
            fail(errors, &join(path, key), "cannot be null; leave it out");
        }
    }
}

fn as_object<'v>(
    value: &'v Value,
    path: &str,
    errors: &mut Checks,
) -> Option<&'v Map<String, Value>> {
    let object = value.as_object();
    if object.is_none() {
        fail(errors, path, "must be an object");
    }
    object
}

fn string<'v>(value: &'v Value, path: &str, errors: &mut Checks) -> Option<&'v str> {
    let text = value.as_str();
    if text.is_none() {
        fail(errors, path, "must be a string");
    }
    text
}

fn uuid(value: &Value, path: &str, errors: &mut Checks) -> Option<Uuid> {
    let parsed = value
        .as_str()
        .filter(|s| s.len() == 36)
        .and_then(|s| Uuid::parse_str(s).ok());
    if parsed.is_none() {
        fail(
            errors,
            path,
            "must be a UUID such as 936d2b4c-5e47-4c2b-9d3a-1d5b0b2e8c11",
        );
    }
    parsed
}

/// An IRI: a scheme, a colon, and no white space.
pub fn is_iri(text: &str) -> bool {
    static IRI: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$").expect("valid"));
    IRI.is_match(text)
}

fn iri<'v>(value: &'v Value, path: &str, errors: &mut Checks) -> Option<&'v str> {
    let text = string(value, path, errors)?;
    if !is_iri(text) {
        fail(
            errors,
            path,
            format!("`{text}` is not an IRI (such as http://example.com/x)"),
        );
        return None;
    }
    Some(text)
}

fn language_tag(tag: &str) -> bool {
    static TAG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?i)([a-z]{2,3}(-[a-z]{3}){0,3}|[a-z]{4,8}|x(-[a-z0-9]{1,8})+)(-[a-z]{4})?(-([a-z]{2}|[0-9]{3}))?(-([a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*(-[0-9a-wyz](-[a-z0-9]{2,8})+)*(-x(-[a-z0-9]{1,8})+)?$|^(?i)und$")
            .expect("valid")
    });
    TAG.is_match(tag)
}

fn language_map(value: &Value, path: &str, errors: &mut Checks) {
    let Some(map) = as_object(value, path, errors) else {
        return;
    };
    for (tag, text) in map {
        if !language_tag(tag) {
            fail(
                errors,
                &join(path, tag),
                "is not an RFC 5646 language tag (such as en-US)",
            );
        } else if !text.is_string() {
            fail(errors, &join(path, tag), "must be a string");
        }
    }
}

fn extensions(value: &Value, path: &str, errors: &mut Checks) {
    let Some(map) = as_object(value, path, errors) else {
        return;
    };
    for key in map.keys() {
        if !is_iri(key) {
            fail(
                errors,
                &join(path, key),
                "an extension's key must be an IRI",
            );
        }
    }
}

/// The key an Agent or Identified Group is matched by: its one inverse functional
/// identifier.
pub fn ifi_key(agent: &Value) -> Option<String> {
    if let Some(mbox) = agent.get("mbox").and_then(Value::as_str) {
        return Some(format!("mbox:{}", mbox.to_lowercase()));
    }
    if let Some(sum) = agent.get("mbox_sha1sum").and_then(Value::as_str) {
        return Some(format!("mbox_sha1sum:{}", sum.to_lowercase()));
    }
    if let Some(openid) = agent.get("openid").and_then(Value::as_str) {
        return Some(format!("openid:{openid}"));
    }
    let account = agent.get("account")?;
    Some(format!(
        "account:{}|{}",
        account.get("homePage")?.as_str()?,
        account.get("name")?.as_str()?
    ))
}

/// An Agent or a Group (with its members), pushing their keys as refs.
fn actor(value: &Value, path: &str, errors: &mut Checks, refs: &mut Vec<Ref>, direct: bool) {
    let Some(object) = as_object(value, path, errors) else {
        return;
    };
    let kind = match object.get("objectType") {
        None => "Agent",
        Some(Value::String(kind)) if kind == "Agent" || kind == "Group" => kind.as_str(),
        Some(_) => {
            fail(errors, &join(path, "objectType"), "must be Agent or Group");
            return;
        }
    };
    let group = kind == "Group";
    let mut allowed = vec![
        "objectType",
        "name",
        "mbox",
        "mbox_sha1sum",
        "openid",
        "account",
    ];
    if group {
        allowed.push("member");
    }
    keys_only(object, &allowed, path, errors);
    if let Some(name) = object.get("name") {
        string(name, &join(path, "name"), errors);
    }
    let ifis = identifiers(object, path, errors);
    match (group, ifis) {
        (false, 1) | (true, 0 | 1) => {}
        (false, 0) => fail(
            errors,
            path,
            "an Agent needs exactly one of mbox, mbox_sha1sum, openid or account",
        ),
        _ => fail(
            errors,
            path,
            "has more than one of mbox, mbox_sha1sum, openid and account; send one",
        ),
    }
    if ifis == 1
        && let Some(key) = ifi_key(value)
    {
        refs.push(Ref {
            kind: RefKind::Agent,
            key,
            direct,
        });
    }
    if group {
        match object.get("member") {
            None if ifis == 0 => fail(
                errors,
                &join(path, "member"),
                "an anonymous Group (without an identifier) lists its members",
            ),
            None => {}
            Some(Value::Array(members)) => {
                if ifis == 0 && members.is_empty() {
                    fail(
                        errors,
                        &join(path, "member"),
                        "an anonymous Group lists its members",
                    );
                }
                for (i, member) in members.iter().enumerate() {
                    let member_path = format!("{path}.member[{i}]");
                    if member.get("objectType").and_then(Value::as_str) == Some("Group") {
                        fail(
                            errors,
                            &member_path,
                            "a Group's members are Agents, not Groups",
                        );
                    } else {
                        actor(member, &member_path, errors, refs, false);
                    }
                }
            }
            Some(_) => fail(errors, &join(path, "member"), "must be an array of Agents"),
        }
    }
}

/// Checks the inverse functional identifiers present; says how many.
fn identifiers(object: &Map<String, Value>, path: &str, errors: &mut Checks) -> usize {
    let mut count = 0;
    if let Some(mbox) = object.get("mbox") {
        count += 1;
        let ok = mbox
            .as_str()
            .and_then(|m| m.strip_prefix("mailto:"))
            .is_some_and(|email| {
                let mut parts = email.split('@');
                matches!((parts.next(), parts.next(), parts.next()),
                    (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty()
                        && !email.chars().any(char::is_whitespace))
            });
        if !ok {
            fail(
                errors,
                &join(path, "mbox"),
                "must be `mailto:` and an email address",
            );
        }
    }
    if let Some(sum) = object.get("mbox_sha1sum") {
        count += 1;
        let ok = sum
            .as_str()
            .is_some_and(|s| s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            fail(
                errors,
                &join(path, "mbox_sha1sum"),
                "must be 40 hexadecimal digits (a SHA-1)",
            );
        }
    }
    if let Some(openid) = object.get("openid") {
        count += 1;
        iri(openid, &join(path, "openid"), errors);
    }
    if let Some(account) = object.get("account") {
        count += 1;
        let account_path = join(path, "account");
        if let Some(map) = as_object(account, &account_path, errors) {
            keys_only(map, &["homePage", "name"], &account_path, errors);
            match map.get("homePage") {
                Some(home) => {
                    iri(home, &join(&account_path, "homePage"), errors);
                }
                None => fail(errors, &join(&account_path, "homePage"), "is required"),
            }
            match map.get("name") {
                Some(name) => {
                    string(name, &join(&account_path, "name"), errors);
                }
                None => fail(errors, &join(&account_path, "name"), "is required"),
            }
        }
    }
    count
}

fn verb(value: &Value, path: &str, errors: &mut Checks) -> String {
    let Some(object) = as_object(value, path, errors) else {
        return String::new();
    };
    keys_only(object, &["id", "display"], path, errors);
    if let Some(display) = object.get("display") {
        language_map(display, &join(path, "display"), errors);
    }
    match object.get("id") {
        None => {
            fail(errors, &join(path, "id"), "is required");
            String::new()
        }
        Some(id) => iri(id, &join(path, "id"), errors)
            .map(str::to_owned)
            .unwrap_or_default(),
    }
}

fn statement_ref(value: &Value, path: &str, errors: &mut Checks) -> Option<Uuid> {
    let object = as_object(value, path, errors)?;
    keys_only(object, &["objectType", "id"], path, errors);
    match object.get("id") {
        None => {
            fail(errors, &join(path, "id"), "is required");
            None
        }
        Some(id) => uuid(id, &join(path, "id"), errors),
    }
}

/// An Activity; answers its id.
fn activity(value: &Value, path: &str, errors: &mut Checks) -> Option<String> {
    let object = as_object(value, path, errors)?;
    keys_only(object, &["objectType", "id", "definition"], path, errors);
    if let Some(definition) = object.get("definition") {
        activity_definition(definition, &join(path, "definition"), errors);
    }
    match object.get("id") {
        None => {
            fail(errors, &join(path, "id"), "is required");
            None
        }
        Some(id) => iri(id, &join(path, "id"), errors).map(str::to_owned),
    }
}

fn activity_definition(value: &Value, path: &str, errors: &mut Checks) {
    let Some(object) = as_object(value, path, errors) else {
        return;
    };
    const COMPONENTS: [&str; 5] = ["choices", "scale", "source", "target", "steps"];
    keys_only(
        object,
        &[
            "name",
            "description",
            "type",
            "moreInfo",
            "extensions",
            "interactionType",
            "correctResponsesPattern",
            "choices",
            "scale",
            "source",
            "target",
            "steps",
        ],
        path,
        errors,
    );
    for key in ["name", "description"] {
        if let Some(map) = object.get(key) {
            language_map(map, &join(path, key), errors);
        }
    }
    for key in ["type", "moreInfo"] {
        if let Some(value) = object.get(key) {
            iri(value, &join(path, key), errors);
        }
    }
    if let Some(value) = object.get("extensions") {
        extensions(value, &join(path, "extensions"), errors);
    }
    let interaction = match object.get("interactionType") {
        None => None,
        Some(kind) => {
            const KINDS: [&str; 10] = [
                "true-false",
                "choice",
                "fill-in",
                "long-fill-in",
                "matching",
                "performance",
                "sequencing",
                "likert",
                "numeric",
                "other",
            ];
            let kind = kind.as_str().filter(|k| KINDS.contains(k));
            if kind.is_none() {
                fail(
                    errors,
                    &join(path, "interactionType"),
                    format!("must be one of {}", KINDS.join(", ")),
                );
            }
            kind
        }
    };
    if interaction.is_none()
        && let Some(key) = ["correctResponsesPattern"]
            .into_iter()
            .chain(COMPONENTS)
            .find(|k| object.contains_key(*k))
    {
        fail(
            errors,
            &join(path, key),
            "needs the interactionType it belongs to",
        );
    }
    if let Some(pattern) = object.get("correctResponsesPattern") {
        let ok = pattern
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string));
        if !ok {
            fail(
                errors,
                &join(path, "correctResponsesPattern"),
                "must be an array of strings",
            );
        }
    }
    for key in COMPONENTS {
        let Some(list) = object.get(key) else {
            continue;
        };
        let list_path = join(path, key);
        let allowed: &[&str] = match interaction {
            Some("choice" | "sequencing") => &["choices"],
            Some("likert") => &["scale"],
            Some("matching") => &["source", "target"],
            Some("performance") => &["steps"],
            _ => &[],
        };
        if !allowed.contains(&key) {
            fail(
                errors,
                &list_path,
                "does not belong to this interactionType",
            );
            continue;
        }
        let Some(items) = list.as_array() else {
            fail(
                errors,
                &list_path,
                "must be an array of interaction components",
            );
            continue;
        };
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{list_path}[{i}]");
            let Some(component) = as_object(item, &item_path, errors) else {
                continue;
            };
            keys_only(component, &["id", "description"], &item_path, errors);
            match component.get("id").and_then(Value::as_str) {
                Some(id) if !seen.insert(id.to_owned()) => fail(
                    errors,
                    &join(&item_path, "id"),
                    "repeats an id of this list",
                ),
                Some(_) => {}
                None => fail(errors, &join(&item_path, "id"), "is required (a string)"),
            }
            if let Some(description) = component.get("description") {
                language_map(description, &join(&item_path, "description"), errors);
            }
        }
    }
}

/// The result; answers its score as a fraction.
fn result(value: &Value, path: &str, errors: &mut Checks) -> Option<f64> {
    let object = as_object(value, path, errors)?;
    keys_only(
        object,
        &[
            "score",
            "success",
            "completion",
            "response",
            "duration",
            "extensions",
        ],
        path,
        errors,
    );
    for key in ["success", "completion"] {
        if object.get(key).is_some_and(|v| !v.is_boolean()) {
            fail(errors, &join(path, key), "must be true or false");
        }
    }
    if let Some(response) = object.get("response") {
        string(response, &join(path, "response"), errors);
    }
    if let Some(duration) = object.get("duration")
        && string(duration, &join(path, "duration"), errors).is_some_and(|d| !is_duration(d))
    {
        fail(
            errors,
            &join(path, "duration"),
            "must be an ISO 8601 duration such as PT1H30M or PT45.5S",
        );
    }
    if let Some(value) = object.get("extensions") {
        extensions(value, &join(path, "extensions"), errors);
    }
    let score = object.get("score")?;
    let score_path = join(path, "score");
    let map = as_object(score, &score_path, errors)?;
    keys_only(map, &["scaled", "raw", "min", "max"], &score_path, errors);
    let mut number = |key: &str| {
        let value = map.get(key)?;
        let n = value.as_f64();
        if n.is_none() {
            fail(errors, &join(&score_path, key), "must be a number");
        }
        n
    };
    let (scaled, raw, min, max) = (
        number("scaled"),
        number("raw"),
        number("min"),
        number("max"),
    );
    if scaled.is_some_and(|s| !(-1.0..=1.0).contains(&s)) {
        fail(errors, &join(&score_path, "scaled"), "must be from -1 to 1");
    }
    if let (Some(min), Some(max)) = (min, max)
        && min >= max
    {
        fail(errors, &join(&score_path, "min"), "must be less than max");
    }
    if let Some(raw) = raw {
        if min.is_some_and(|min| raw < min) {
            fail(
                errors,
                &join(&score_path, "raw"),
                "must not be less than min",
            );
        }
        if max.is_some_and(|max| raw > max) {
            fail(
                errors,
                &join(&score_path, "raw"),
                "must not be more than max",
            );
        }
    }
    scaled.or_else(|| match (raw, min.unwrap_or(0.0), max) {
        (Some(raw), min, Some(max)) if max > min => Some((raw - min) / (max - min)),
        _ => None,
    })
}

/// An ISO 8601 duration as xAPI allows it (fractional seconds included).
pub fn is_duration(text: &str) -> bool {
    static DURATION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^P(\d+(\.\d+)?W|(\d+Y)?(\d+M)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?)$")
            .expect("valid")
    });
    DURATION.is_match(text) && text != "P" && !text.ends_with('T')
}

/// The context (normalising `contextActivities` to arrays); answers the registration.
fn context(
    value: &mut Value,
    path: &str,
    object_is_activity: bool,
    errors: &mut Checks,
    refs: &mut Vec<Ref>,
) -> Option<Uuid> {
    let object = value.as_object_mut();
    let Some(object) = object else {
        fail(errors, path, "must be an object");
        return None;
    };
    keys_only(
        object,
        &[
            "registration",
            "instructor",
            "team",
            "contextActivities",
            "revision",
            "platform",
            "language",
            "statement",
            "extensions",
        ],
        path,
        errors,
    );
    let registration = object
        .get("registration")
        .and_then(|r| uuid(r, &join(path, "registration"), errors));
    if let Some(instructor) = object.get("instructor") {
        actor(instructor, &join(path, "instructor"), errors, refs, false);
    }
    if let Some(team) = object.get("team") {
        if team.get("objectType").and_then(Value::as_str) != Some("Group") {
            fail(
                errors,
                &join(path, "team"),
                "must be a Group (objectType Group)",
            );
        } else {
            actor(team, &join(path, "team"), errors, refs, false);
        }
    }
    for key in ["revision", "platform"] {
        if let Some(value) = object.get(key) {
            string(value, &join(path, key), errors);
            if !object_is_activity {
                fail(
                    errors,
                    &join(path, key),
                    "is only for a statement whose object is an Activity",
                );
            }
        }
    }
    if let Some(language) = object.get("language")
        && string(language, &join(path, "language"), errors).is_some_and(|l| !language_tag(l))
    {
        fail(
            errors,
            &join(path, "language"),
            "is not an RFC 5646 language tag (such as en-US)",
        );
    }
    if let Some(statement) = object.get("statement") {
        let statement_path = join(path, "statement");
        if statement.get("objectType").and_then(Value::as_str) != Some("StatementRef") {
            fail(
                errors,
                &statement_path,
                "must be a StatementRef (objectType StatementRef)",
            );
        } else {
            statement_ref(statement, &statement_path, errors);
        }
    }
    if let Some(value) = object.get("extensions") {
        extensions(value, &join(path, "extensions"), errors);
    }
    if let Some(activities) = object.get_mut("contextActivities") {
        let activities_path = join(path, "contextActivities");
        match activities.as_object_mut() {
            None => fail(errors, &activities_path, "must be an object"),
            Some(map) => {
                keys_only(
                    map,
                    &["parent", "grouping", "category", "other"],
                    &activities_path,
                    errors,
                );
                for (key, list) in map.iter_mut() {
                    if list.is_object() {
                        *list = Value::Array(vec![list.take()]);
                    }
                    let Some(items) = list.as_array() else {
                        fail(
                            errors,
                            &join(&activities_path, key),
                            "must be an Activity or an array of them",
                        );
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        let item_path = format!("{activities_path}.{key}[{i}]");
                        if item.get("objectType").is_some_and(|t| t != "Activity") {
                            fail(errors, &join(&item_path, "objectType"), "must be Activity");
                        }
                        if let Some(id) = activity(item, &item_path, errors) {
                            refs.push(Ref {
                                kind: RefKind::Activity,
                                key: id,
                                direct: false,
                            });
                        }
                    }
                }
            }
        }
    }
    registration
}

/// An ISO 8601 timestamp with a time zone (RFC 3339); `-00:00` is refused as 1.0.3
/// says. Answers epoch milliseconds.
fn timestamp(value: &Value, path: &str, errors: &mut Checks) -> Option<i64> {
    let text = string(value, path, errors)?;
    match parse_timestamp(text) {
        Some(at) => Some(at),
        None => {
            fail(
                errors,
                path,
                "must be an ISO 8601 timestamp with a time zone, such as 2026-11-20T09:30:00.000Z",
            );
            None
        }
    }
}

/// Epoch milliseconds of an xAPI timestamp.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if text.ends_with("-00:00") || text.ends_with("-0000") || text.ends_with("-00") {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    // ISO 8601's basic offsets (+0100) and hour-only ones (+01), which RFC 3339 lacks.
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.timestamp_millis());
        }
    }
    None
}

/// An instant as xAPI shows it: RFC 3339, UTC, milliseconds.
pub fn format_timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn attachments(value: &Value, path: &str, errors: &mut Checks) -> Vec<Attachment> {
    let Some(items) = value.as_array() else {
        fail(errors, path, "must be an array of attachments");
        return Vec::new();
    };
    let mut found = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(object) = as_object(item, &item_path, errors) else {
            continue;
        };
        keys_only(
            object,
            &[
                "usageType",
                "display",
                "description",
                "contentType",
                "length",
                "sha2",
                "fileUrl",
            ],
            &item_path,
            errors,
        );
        for key in ["usageType", "display", "contentType", "length", "sha2"] {
            if !object.contains_key(key) {
                fail(errors, &join(&item_path, key), "is required");
            }
        }
        let usage_type = object
            .get("usageType")
            .and_then(|v| iri(v, &join(&item_path, "usageType"), errors))
            .map(str::to_owned);
        for key in ["display", "description"] {
            if let Some(v) = object.get(key) {
                language_map(v, &join(&item_path, key), errors);
            }
        }
        let content_type = object.get("contentType").and_then(|v| {
            let path = join(&item_path, "contentType");
            matching(
                v,
                &path,
                &MEDIA_TYPE,
                "must be a media type, like text/plain",
                errors,
            )
            .map(str::to_owned)
        });
        if object.get("length").is_some_and(|l| l.as_u64().is_none()) {
            fail(
                errors,
                &join(&item_path, "length"),
                "must be a whole number of bytes",
            );
        }
        let sha2 = object.get("sha2").and_then(|v| {
            let path = join(&item_path, "sha2");
            let message = "must be the hex SHA-2 hash of the content (SHA-224, -256, -384 or -512)";
            matching(v, &path, &SHA2, message, errors).map(str::to_ascii_lowercase)
        });
        let file_url = object
            .get("fileUrl")
            .and_then(|url| iri(url, &join(&item_path, "fileUrl"), errors))
            .map(str::to_owned);
        if let (Some(usage_type), Some(content_type), Some(sha2)) = (usage_type, content_type, sha2)
        {
            found.push(Attachment {
                usage_type,
                content_type,
                sha2,
                file_url,
            });
        }
    }
    found
}

/// A string that `pattern` matches; else a refusal saying what it `must` be.
fn matching<'v>(
    value: &'v Value,
    path: &str,
    pattern: &Regex,
    must: &str,
    errors: &mut Checks,
) -> Option<&'v str> {
    let text = string(value, path, errors)?;
    if !pattern.is_match(text) {
        fail(errors, path, must);
        return None;
    }
    Some(text)
}

/// A media type as `Content-Type` names it: type/subtype, maybe with parameters.
static MEDIA_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$")
        .expect("valid")
});

/// The SHA-2 hash (in hex) of `content` of the size `like` is (224, 256, 384 or 512
/// bits), to check a hash that was sent; `None` for a hash of no such size.
pub fn sha2_of(like: &str, content: &[u8]) -> Option<String> {
    use sha2::Digest;
    Some(match like.len() {
        56 => hex::encode(sha2::Sha224::digest(content)),
        64 => hex::encode(sha2::Sha256::digest(content)),
        96 => hex::encode(sha2::Sha384::digest(content)),
        128 => hex::encode(sha2::Sha512::digest(content)),
        _ => return None,
    })
}

/// A SHA-2 hash in hex: 224, 256, 384 or 512 bits.
static SHA2: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?i)([0-9a-f]{56}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$").expect("valid")
});

/// Completes a checked statement for storage: its id, `stored`, `timestamp` (the stored
/// instant when absent), `authority` (the credentials') and `version`.
pub fn complete(value: Value, id: Uuid, stored_ms: i64, authority: &Value) -> Value {
    complete_with(value, id, &format_timestamp(stored_ms), authority)
}

/// [`complete`] with `stored` as written (a placeholder for the instant, say, when the
/// statement is serialised before it is known).
pub fn complete_with(mut value: Value, id: Uuid, stored: &str, authority: &Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert("id".into(), json!(id.to_string()));
        if !object.contains_key("timestamp") {
            object.insert("timestamp".into(), json!(stored));
        }
        object.insert("stored".into(), json!(stored));
        object.insert("authority".into(), authority.clone());
        if !object.contains_key("version") {
            object.insert("version".into(), json!("1.0.0"));
        }
    }
    value
}

/// The statement in the `ids` format: Agents and Groups by their identifier only,
/// Activities and Verbs by id only.
pub fn to_ids(value: &mut Value) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    for key in ["actor", "authority"] {
        if let Some(agent) = object.get_mut(key) {
            agent_ids(agent);
        }
    }
    if let Some(verb) = object.get_mut("verb") {
        keep(verb, &["id"]);
    }
    if let Some(target) = object.get_mut("object") {
        match target.get("objectType").and_then(Value::as_str) {
            None | Some("Activity") => keep(target, &["id"]),
            Some("Agent" | "Group") => agent_ids(target),
            Some("SubStatement") => to_ids(target),
            _ => {}
        }
    }
    if let Some(context) = object.get_mut("context").and_then(Value::as_object_mut) {
        for key in ["instructor", "team"] {
            if let Some(agent) = context.get_mut(key) {
                agent_ids(agent);
            }
        }
        if let Some(lists) = context
            .get_mut("contextActivities")
            .and_then(Value::as_object_mut)
        {
            for list in lists.values_mut() {
                if let Some(items) = list.as_array_mut() {
                    items.iter_mut().for_each(|a| keep(a, &["id"]));
                }
            }
        }
    }
}

/// An Agent or Group by its identifier; an anonymous Group by its members.
fn agent_ids(agent: &mut Value) {
    let identified = ifi_key(agent).is_some();
    if let Some(members) = agent.get_mut("member").and_then(Value::as_array_mut) {
        members.iter_mut().for_each(agent_ids);
    }
    let mut keys = vec!["objectType", "mbox", "mbox_sha1sum", "openid", "account"];
    if !identified {
        keys.push("member");
    }
    keep(agent, &keys);
}

fn keep(value: &mut Value, keys: &[&str]) {
    if let Some(object) = value.as_object_mut() {
        object.retain(|k, _| keys.contains(&k.as_str()));
    }
}

/// The statement in the `canonical` format: every language map reduced to the one
/// language the reader prefers (`languages`, from Accept-Language, in order), else its
/// first.
pub fn to_canonical(value: &mut Value, languages: &[String]) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                let is_map = matches!(key.as_str(), "display" | "name" | "description")
                    && inner
                        .as_object()
                        .is_some_and(|m| m.values().all(Value::is_string));
                if is_map {
                    reduce_language_map(inner, languages);
                } else {
                    to_canonical(inner, languages);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| to_canonical(i, languages)),
        _ => {}
    }
}

fn reduce_language_map(map: &mut Value, languages: &[String]) {
    let Some(object) = map.as_object_mut() else {
        return;
    };
    let chosen = languages
        .iter()
        .find_map(|want| {
            object
                .keys()
                .find(|tag| tag.eq_ignore_ascii_case(want))
                .or_else(|| {
                    object.keys().find(|tag| {
                        tag.split('-')
                            .next()
                            .is_some_and(|primary| primary.eq_ignore_ascii_case(want))
                    })
                })
                .cloned()
        })
        .or_else(|| object.keys().next().cloned());
    if let Some(tag) = chosen {
        object.retain(|k, _| *k == tag);
    }
}

/// The languages of an `Accept-Language` header, most wanted first.
pub fn accept_languages(header: &str) -> Vec<String> {
    let mut weighted: Vec<(f32, String)> = header
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse().ok())
                .unwrap_or(1.0);
            Some((q, tag.to_owned()))
        })
        .collect();
    weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
    weighted.into_iter().map(|(_, tag)| tag).collect()
}

/// What a verb does to an enrolment, if anything: the ADL and cmi5 verbs, by the last
/// word of their IRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Launched, initialized, attempted, experienced, progressed: the learner began.
    Start,
    /// Completed, satisfied, waived.
    Complete,
    Pass,
    Fail,
}

pub fn verb_move(verb: &str) -> Option<Move> {
    match verb
        .trim_end_matches('/')
        .rsplit(['/', '#', ':'])
        .next()
        .unwrap_or_default()
    {
        "launched" | "initialized" | "attempted" | "experienced" | "progressed" => {
            Some(Move::Start)
        }
        "completed" | "satisfied" | "waived" => Some(Move::Complete),
        "passed" => Some(Move::Pass),
        "failed" => Some(Move::Fail),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement() -> Value {
        json!({
            "actor": {"mbox": "mailto:Kim@Example.com", "name": "Kim"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
            "object": {"id": "https://lms.example/activities/password-management"},
            "context": {"contextActivities": {"parent": {"id": "https://lms.example/course/1"}}},
            "result": {"score": {"raw": 8, "min": 0, "max": 10}, "duration": "PT4M30.5S"}
        })
    }

    #[test]
    fn checks_and_indexes_a_statement() {
        let checked = check(&statement(), "statement").unwrap();
        assert_eq!(checked.actor_email.as_deref(), Some("kim@example.com"));
        assert_eq!(
            checked.activity.as_deref(),
            Some("https://lms.example/activities/password-management")
        );
        assert_eq!(checked.score, Some(0.8));
        // A single context activity becomes an array.
        assert!(checked.value["context"]["contextActivities"]["parent"].is_array());
        assert!(checked.refs.contains(&Ref {
            kind: RefKind::Activity,
            key: "https://lms.example/course/1".into(),
            direct: false
        }));
        assert_eq!(verb_move(&checked.verb), Some(Move::Complete));
    }

    #[test]
    fn attachments_need_a_media_type_and_a_sha2_hash() {
        let mut s = statement();
        let hash = "AB".repeat(32);
        s["attachments"] = json!([
            {"usageType": "http://example.com/cert", "display": {"en-US": "a"},
             "contentType": "text/plain", "length": 3, "sha2": hash},
            {"usageType": "http://example.com/cert", "display": {"en-US": "b"},
             "contentType": "plain text", "length": 3, "sha2": "abc"}
        ]);
        let errors = check(&s, "statement").unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "statement.attachments[1].contentType",
                "statement.attachments[1].sha2"
            ]
        );
        s["attachments"].as_array_mut().unwrap().pop();
        let checked = check(&s, "statement").unwrap();
        assert_eq!(checked.attachments[0].sha2, "ab".repeat(32));
        assert_eq!(checked.attachments[0].content_type, "text/plain");
        assert_eq!(checked.attachments[0].file_url, None);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                "/actor/mbox",
                json!("kim@example.com"),
                "statement.actor.mbox",
            ),
            ("/verb/id", json!("not an iri"), "statement.verb.id"),
            (
                "/result/score/scaled",
                json!(1.5),
                "statement.result.score.scaled",
            ),
            (
                "/result/duration",
                json!("4 minutes"),
                "statement.result.duration",
            ),
            ("/id", json!("1234"), "statement.id"),
            (
                "/timestamp",
                json!("2026-11-20T09:30:00-00:00"),
                "statement.timestamp",
            ),
            (
                "/verb/display/not a tag",
                json!("x"),
                "statement.verb.display.not a tag",
            ),
            ("/colour", json!("red"), "statement.colour"),
        ];
        for (pointer, bad, field) in cases {
            let mut s = statement();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let target = if parent.is_empty() {
                &mut s
            } else {
                s.pointer_mut(parent).unwrap()
            };
            target[key] = bad;
            let errors = check(&s, "statement").unwrap_err();
            assert!(
                errors.iter().any(|e| e.field == field),
                "{pointer}: {errors:?}"
            );
        }
    }

    #[test]
    fn an_agent_has_one_identifier_and_voiding_needs_a_statement_ref() {
        let mut s = statement();
        s["actor"]["openid"] = json!("https://id.example/kim");
        assert!(check(&s, "s").is_err());
        let mut s = statement();
        s["verb"]["id"] = json!(VOIDED);
        assert!(check(&s, "s").is_err());
        s["object"] =
            json!({"objectType": "StatementRef", "id": "936d2b4c-5e47-4c2b-9d3a-1d5b0b2e8c11"});
        assert!(check(&s, "s").unwrap().voids.is_some());
    }

    #[test]
    fn formats() {
        let checked = check(&statement(), "s").unwrap();
        let mut ids = checked.value.clone();
        to_ids(&mut ids);
        assert_eq!(ids["actor"], json!({"mbox": "mailto:Kim@Example.com"}));
        assert_eq!(
            ids["verb"],
            json!({"id": "http://adlnet.gov/expapi/verbs/completed"})
        );
        let mut v = json!({"verb": {"id": "x:y", "display": {"en-US": "done", "fr": "fait"}}});
        to_canonical(&mut v, &accept_languages("fr;q=0.9, de"));
        assert_eq!(v["verb"]["display"], json!({"fr": "fait"}));
        assert!(
            is_duration("P1W") && is_duration("PT0.5S") && !is_duration("PT") && !is_duration("P")
        );
        assert_eq!(
            parse_timestamp("2026-11-20T09:30:00+0100"),
            Some(1_795_163_400_000)
        );
    }
}
