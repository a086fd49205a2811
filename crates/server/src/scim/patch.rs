//! PATCH (RFC 7644 §3.5.2) applied to a resource's JSON: `add`, `replace` and `remove`,
//! with or without `path`, with value filters (`emails[type eq "work"].value`,
//! `members[value eq "7"]`), in any case (`Replace`), and the forms Okta and Entra ID
//! send. The result is read again as a whole resource (as a PUT), so a PATCH can only
//! make what a PUT could.

use super::schema::{Attr, Mutability, SERVER_SET, Type, find};
use super::{ScimError, ScimResult};
use coachloop_core::scim::{CompareOp, Filter, PatchPath, parse_path};
use serde_json::{Map, Value};

/// The attributes of a resource type, as PATCH resolves paths against them.
pub struct Shape {
    pub core_urn: &'static str,
    pub core: &'static [Attr],
    pub extension: Option<(&'static str, &'static [Attr])>,
    /// Attributes of the standard schema that are not stored: operations on them are
    /// ignored, as they are in a PUT.
    pub ignored: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies the operations of a PatchOp `body` to `doc`.
pub fn apply(doc: &mut Value, body: &Value, shape: &Shape) -> ScimResult<()> {
    let operations = field(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a PatchOp needs an `Operations` array"))?;
    let Value::Object(doc) = doc else {
        return Err(ScimError::bad("invalidSyntax", "not a resource"));
    };
    for (i, operation) in operations.iter().enumerate() {
        let name = field(operation, "op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let op = match name.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "replace" => Op::Replace,
            "remove" => Op::Remove,
            _ => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!("Operations[{i}].op must be add, replace or remove"),
                ));
            }
        };
        let value = field(operation, "value");
        match field(operation, "path") {
            None | Some(Value::Null) => whole(doc, op, value, shape)?,
            Some(Value::String(text)) => {
                let path = parse_path(text)
                    .map_err(|e| ScimError::bad("invalidPath", format!("path `{text}`: {e}")))?;
                at_path(doc, op, &path, value, shape, true)?;
            }
            Some(_) => {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("Operations[{i}].path must be a string"),
                ));
            }
        }
    }
    Ok(())
}

/// An operation without `path`: `value` is an object of attributes (and extension
/// objects, and Entra ID's dotted names) to add or replace.
fn whole(
    doc: &mut Map<String, Value>,
    op: Op,
    value: Option<&Value>,
    shape: &Shape,
) -> ScimResult<()> {
    if op == Op::Remove {
        return Err(ScimError::bad("noTarget", "a remove needs a path"));
    }
    let Some(Value::Object(values)) = value else {
        return Err(ScimError::invalid_value(
            "an operation without a path takes an object of attributes",
        ));
    };
    for (key, value) in values {
        if SERVER_SET.iter().any(|s| s.eq_ignore_ascii_case(key)) {
            // Okta renames a group with {id, displayName}; `id` cannot change.
            continue;
        }
        let extension = shape
            .extension
            .filter(|(urn, _)| urn.eq_ignore_ascii_case(key));
        if let Some((urn, _)) = extension {
            let Value::Object(inner) = value else {
                return Err(ScimError::invalid_value(format!("`{key}` takes an object")));
            };
            for (name, value) in inner {
                let path = parse_path(&format!("{urn}:{name}"))
                    .map_err(|e| ScimError::bad("invalidPath", format!("`{name}`: {e}")))?;
                at_path(doc, op, &path, Some(value), shape, false)?;
            }
            continue;
        }
        let path =
            parse_path(key).map_err(|e| ScimError::bad("invalidPath", format!("`{key}`: {e}")))?;
        at_path(doc, op, &path, Some(value), shape, false)?;
    }
    Ok(())
}

/// Where an attribute lives: the resource itself or the extension object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Core,
    Extension(&'static str),
}

/// The attribute `path` names; `None` for one that is not stored (ignored).
fn locate(
    path: &PatchPath,
    shape: &Shape,
    named: bool,
) -> ScimResult<Option<(Place, &'static Attr)>> {
    let name = &path.attr.name;
    let core = || find(shape.core, name).map(|a| (Place::Core, a));
    let extension = || {
        shape
            .extension
            .and_then(|(urn, attrs)| find(attrs, name).map(|a| (Place::Extension(urn), a)))
    };
    let found = match path.attr.urn.as_deref() {
        Some(urn) if urn.eq_ignore_ascii_case(shape.core_urn) => core(),
        Some(urn)
            if shape
                .extension
                .is_some_and(|(e, _)| e.eq_ignore_ascii_case(urn)) =>
        {
            extension()
        }
        // Another schema's extension (an identity provider's own attributes).
        Some(_) => return Ok(None),
        None => core().or_else(extension),
    };
    if let Some(found) = found {
        return Ok(Some(found));
    }
    if SERVER_SET.contains(&name.as_str()) {
        return if named {
            Err(ScimError::bad(
                "mutability",
                format!("`{name}` is set by the server"),
            ))
        } else {
            Ok(None)
        };
    }
    if shape.ignored.contains(&name.as_str()) {
        return Ok(None);
    }
    Err(ScimError::bad(
        "invalidPath",
        format!(
            "`{}` is not an attribute of this resource (see /Schemas)",
            path.attr.dotted()
        ),
    ))
}

fn at_path(
    doc: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
    shape: &Shape,
    named: bool,
) -> ScimResult<()> {
    let Some((place, attr)) = locate(path, shape, named)? else {
        return Ok(());
    };
    if attr.mutability == Mutability::ReadOnly {
        return Err(ScimError::bad(
            "mutability",
            format!("`{}` is read-only", attr.name),
        ));
    }
    let sub = match &path.attr.sub {
        Some(sub) => {
            let found = find(attr.sub, sub).ok_or_else(|| {
                ScimError::bad(
                    "invalidPath",
                    format!("`{}` has no sub-attribute `{sub}`", attr.name),
                )
            })?;
            if found.mutability == Mutability::ReadOnly {
                return Err(ScimError::bad(
                    "mutability",
                    format!("`{}.{}` is read-only", attr.name, found.name),
                ));
            }
            Some(found.name)
        }
        None => None,
    };
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "`{}`: add and replace need a value",
            attr.name
        )));
    }
    let container = match place {
        Place::Core => doc,
        Place::Extension(urn) => {
            let key = key_of(doc, urn).unwrap_or_else(|| urn.to_owned());
            let entry = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            entry.as_object_mut().expect("made an object")
        }
    };
    let key = key_of(container, attr.name).unwrap_or_else(|| attr.name.to_owned());
    if attr.multi {
        let list = container
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        let items = list.as_array_mut().expect("made an array");
        return multi(items, op, path.filter.as_ref(), sub, value, attr.name);
    }
    if path.filter.is_some() {
        return Err(ScimError::bad(
            "invalidPath",
            format!("`{}` is not multi-valued: it takes no filter", attr.name),
        ));
    }
    match (op, sub) {
        (Op::Remove, None) => {
            container.remove(&key);
        }
        (Op::Remove, Some(sub)) => {
            if let Some(Value::Object(object)) = container.get_mut(&key)
                && let Some(k) = key_of(object, sub)
            {
                object.remove(&k);
            }
        }
        (_, Some(sub)) => {
            let entry = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                // Entra ID's bare manager id becomes {value}.
                let bare = entry.take();
                *entry = Value::Object(Map::from_iter([("value".to_owned(), bare)]));
            }
            let object = entry.as_object_mut().expect("made an object");
            let k = key_of(object, sub).unwrap_or_else(|| sub.to_owned());
            object.insert(k, value.cloned().unwrap_or(Value::Null));
        }
        (_, None) => {
            let value = value.cloned().unwrap_or(Value::Null);
            match (attr.kind, value, container.get_mut(&key)) {
                // Sub-attributes given replace theirs; the others stay (§3.5.2.3).
                (Type::Complex, Value::Object(values), Some(Value::Object(existing))) => {
                    for (name, v) in values {
                        let k = key_of(existing, &name).unwrap_or(name);
                        existing.insert(k, v);
                    }
                }
                (_, value, _) => {
                    container.insert(key, value);
                }
            }
        }
    }
    Ok(())
}

/// An operation on a multi-valued attribute's `items`.
fn multi(
    items: &mut Vec<Value>,
    op: Op,
    filter: Option<&Filter>,
    sub: Option<&str>,
    value: Option<&Value>,
    name: &str,
) -> ScimResult<()> {
    let given: Vec<Value> = match value {
        Some(Value::Array(values)) => values.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(one) => vec![one.clone()],
    };
    if let Some(filter) = filter {
        let hits: Vec<usize> = (0..items.len())
            .filter(|i| matches(&items[*i], filter))
            .collect();
        if hits.is_empty() {
            if op != Op::Add {
                return Err(ScimError::bad(
                    "noTarget",
                    format!("no value of `{name}` matches the filter"),
                ));
            }
            // Entra ID adds `emails[type eq "work"].value` to a person without one: the
            // filter's equalities make the new value.
            let mut made = Map::new();
            if !equalities(filter, &mut made) {
                return Err(ScimError::bad(
                    "noTarget",
                    format!("no value of `{name}` matches the filter"),
                ));
            }
            let mut item = Value::Object(made);
            set(&mut item, sub, value);
            items.push(item);
            return Ok(());
        }
        if op == Op::Remove && sub.is_none() {
            for i in hits.into_iter().rev() {
                items.remove(i);
            }
            return Ok(());
        }
        for i in hits {
            match op {
                Op::Remove => {
                    if let (Value::Object(o), Some(sub)) = (&mut items[i], sub)
                        && let Some(k) = key_of(o, sub)
                    {
                        o.remove(&k);
                    }
                }
                _ => set(&mut items[i], sub, value),
            }
        }
        return Ok(());
    }
    if let Some(sub) = sub {
        for item in items.iter_mut() {
            match op {
                Op::Remove => {
                    if let Value::Object(o) = item
                        && let Some(k) = key_of(o, sub)
                    {
                        o.remove(&k);
                    }
                }
                _ => set(item, Some(sub), value),
            }
        }
        return Ok(());
    }
    match op {
        Op::Replace => {
            items.clear();
            add_all(items, given)?;
        }
        Op::Add => add_all(items, given)?,
        // Entra ID removes members with `path: members` and the members as the value.
        Op::Remove if !given.is_empty() => {
            let gone: Vec<Option<String>> =
                given.iter().map(|g| text_of(field(g, "value"))).collect();
            items.retain(|item| !gone.contains(&text_of(field(item, "value"))));
        }
        Op::Remove => items.clear(),
    }
    Ok(())
}

fn add_all(items: &mut Vec<Value>, given: Vec<Value>) -> ScimResult<()> {
    for value in given {
        if !value.is_object() {
            return Err(ScimError::invalid_value(
                "values of a multi-valued attribute are objects",
            ));
        }
        let same = |item: &Value| text_of(field(item, "value")) == text_of(field(&value, "value"));
        if is_true(field(&value, "primary")) {
            // One primary value at most: the newest wins.
            for item in items.iter_mut() {
                if let Value::Object(o) = item
                    && let Some(k) = key_of(o, "primary")
                {
                    o.insert(k, Value::Bool(false));
                }
            }
        }
        match items.iter_mut().find(|i| same(i)) {
            Some(existing) => *existing = value,
            None => items.push(value),
        }
    }
    Ok(())
}

/// Sets `sub` of `item` to `value`, or merges an object `value` into it.
fn set(item: &mut Value, sub: Option<&str>, value: Option<&Value>) {
    let value = value.cloned().unwrap_or(Value::Null);
    if !item.is_object() {
        *item = Value::Object(Map::new());
    }
    let object = item.as_object_mut().expect("made an object");
    match (sub, value) {
        (Some(sub), value) => {
            let k = key_of(object, sub).unwrap_or_else(|| sub.to_owned());
            object.insert(k, value);
        }
        (None, Value::Object(values)) => {
            for (name, v) in values {
                let k = key_of(object, &name).unwrap_or(name);
                object.insert(k, v);
            }
        }
        (None, _) => {}
    }
}

/// Collects the `name eq value` conditions of an `and` of them; false for any other form.
fn equalities(filter: &Filter, into: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::And(a, b) => equalities(a, into) && equalities(b, into),
        Filter::Compare(path, CompareOp::Eq, value) if path.sub.is_none() => {
            into.insert(path.name.clone(), value.to_json());
            true
        }
        _ => false,
    }
}

/// Whether a value of a multi-valued attribute matches a value filter (names are its
/// sub-attributes; text compares case-insensitively).
fn matches(item: &Value, filter: &Filter) -> bool {
    match filter {
        Filter::And(a, b) => matches(item, a) && matches(item, b),
        Filter::Or(a, b) => matches(item, a) || matches(item, b),
        Filter::Not(inner) => !matches(item, inner),
        Filter::Present(path) => text_of(field(item, &path.name)).is_some_and(|t| !t.is_empty()),
        Filter::Compare(path, op, value) => {
            let have = text_of(field(item, &path.name)).map(|t| t.to_lowercase());
            let want = value.as_text().map(|t| t.to_lowercase());
            match (op, have, want) {
                (CompareOp::Eq, have, want) => have == want,
                (CompareOp::Ne, have, want) => have != want,
                (_, None, _) | (_, _, None) => false,
                (CompareOp::Co, Some(h), Some(w)) => h.contains(&w),
                (CompareOp::Sw, Some(h), Some(w)) => h.starts_with(&w),
                (CompareOp::Ew, Some(h), Some(w)) => h.ends_with(&w),
                (CompareOp::Gt, Some(h), Some(w)) => h > w,
                (CompareOp::Ge, Some(h), Some(w)) => h >= w,
                (CompareOp::Lt, Some(h), Some(w)) => h < w,
                (CompareOp::Le, Some(h), Some(w)) => h <= w,
            }
        }
        Filter::Has(..) => false,
    }
}

/// A case-insensitive key's value.
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

pub fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

/// A value as text (Entra ID writes booleans as `"True"`): strings, booleans, numbers.
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_true(value: Option<&Value>) -> bool {
    text_of(value).is_some_and(|t| t.eq_ignore_ascii_case("true"))
}
