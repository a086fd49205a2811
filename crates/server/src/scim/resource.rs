//! What users and groups share: reading attributes of a body (names in any case, Entra
//! ID's string booleans), `meta` with a version, and ids in paths.

use super::ScimError;
use super::ScimResult;
use super::patch::{Shape, field};
use super::schema::{SERVER_SET, find};
use coachloop_core::time::format_ms;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Longest text attribute, in characters (as the person's columns hold).
pub const MAX_TEXT: usize = coachloop_core::user::MAX_TEXT;

/// A text attribute of `object`: absent, null and "" are none.
pub fn text(object: &Value, name: &str) -> ScimResult<Option<String>> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_TEXT => Err(ScimError::invalid_value(
            format!("`{name}` is longer than {MAX_TEXT} characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!(
            "`{name}` must be a string"
        ))),
    }
}

/// A boolean attribute: `true`, or Entra ID's `"True"`.
pub fn boolean(object: &Value, name: &str) -> ScimResult<Option<bool>> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ScimError::invalid_value(format!(
            "`{name}` must be true or false"
        ))),
    }
}

/// Refuses top-level attributes that are in no schema (extension objects of other
/// schemas, and attributes of the standard schema that are not stored, are ignored).
pub fn refuse_unknown(body: &Value, shape: &Shape) -> ScimResult<()> {
    for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
        let lower = key.to_ascii_lowercase();
        let known = lower.starts_with("urn:")
            || find(shape.core, key).is_some()
            || SERVER_SET.contains(&lower.as_str())
            || shape.ignored.contains(&lower.as_str());
        if !known {
            return Err(ScimError::invalid_value(format!(
                "`{key}` is not an attribute of this resource (see /Schemas)"
            )));
        }
    }
    Ok(())
}

/// Adds `meta` to a rendered resource: its version is a hash of everything else, so it
/// changes exactly when the resource does, on every node alike.
pub fn with_meta(
    mut body: Value,
    kind: &str,
    location: String,
    created: i64,
    modified: i64,
) -> Value {
    let digest = Sha256::digest(body.to_string().as_bytes());
    let version = format!("W/\"{}\"", hex::encode(&digest[..8]));
    body["meta"] = json!({
        "resourceType": kind,
        "created": format_ms(created),
        "lastModified": format_ms(modified),
        "location": location,
        "version": version,
    });
    body
}

/// The `meta.version` of a rendered resource.
pub fn version_of(body: &Value) -> String {
    body["meta"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The numeric id of a path (an id that is not a number names nothing: 404).
pub fn id_of(text: &str, what: &str) -> ScimResult<i64> {
    text.parse::<i64>()
        .map_err(|_| ScimError::not_found(format!("{what} not found")))
}

/// Drops absent (null) members of an object, so a resource shows only what it has.
pub fn compact(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .filter(|(_, v)| !matches!(v, Value::Object(o) if o.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(compact).collect()),
        other => other,
    }
}
