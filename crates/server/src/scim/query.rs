//! What a list asks for — `filter`, `startIndex`, `count`, `attributes`,
//! `excludedAttributes` — from a query string or a `POST /.search` body, and the list
//! answer (RFC 7644 §3.4.2, §3.4.3).

use super::schema::LIST_RESPONSE;
use super::{DEFAULT_COUNT, MAX_RESULTS, ScimError, ScimResult};
use coachloop_core::scim::{AttrPath, Filter, parse_filter, parse_path};
use coachloop_store::scim::Window;
use serde_json::{Map, Value, json};

#[derive(Debug, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start_index: i64,
    pub count: i64,
    pub projection: Projection,
}

/// Which attributes an answer keeps.
#[derive(Debug, Default)]
pub struct Projection {
    attributes: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

impl ListQuery {
    /// From a query string (`?filter=…&startIndex=…`).
    pub fn from_query(query: Option<&str>) -> ScimResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| ScimError::invalid_value(format!("bad query string: {e}")))?;
        Self::from_parts(|name| {
            (pairs.iter().rev())
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| Value::String(v.clone()))
        })
    }

    /// From the body of a `POST /.search`.
    pub fn from_search(body: &Value) -> ScimResult<Self> {
        Self::from_parts(|name| {
            (body.as_object().into_iter().flatten())
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    }

    fn from_parts(get: impl Fn(&str) -> Option<Value>) -> ScimResult<Self> {
        let filter = match get("filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => Some(
                parse_filter(&text)
                    .map_err(|e| ScimError::bad("invalidFilter", format!("filter: {e}")))?,
            ),
            Some(_) => return Err(ScimError::bad("invalidFilter", "filter must be a string")),
        };
        Ok(Self {
            filter,
            start_index: integer("startIndex", get("startIndex"))?
                .unwrap_or(1)
                .max(1),
            count: integer("count", get("count"))?
                .unwrap_or(DEFAULT_COUNT)
                .clamp(0, MAX_RESULTS),
            projection: Projection {
                attributes: paths("attributes", get("attributes"))?,
                excluded: paths("excludedAttributes", get("excludedAttributes"))?,
            },
        })
    }

    pub fn window(&self) -> Window {
        Window {
            offset: self.start_index - 1,
            count: self.count,
        }
    }

    /// The list answer; `count=0` answers only how many match.
    pub fn answer(&self, total: i64, resources: Vec<Value>) -> Value {
        let mut body = json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "startIndex": self.start_index,
            "itemsPerPage": resources.len(),
        });
        if self.count > 0 {
            body["Resources"] = Value::Array(
                (resources.into_iter())
                    .map(|r| self.projection.apply(r))
                    .collect(),
            );
        }
        body
    }
}

fn integer(name: &str, value: Option<Value>) -> ScimResult<Option<i64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
        Some(Value::String(text)) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer"))),
        Some(_) => Err(ScimError::invalid_value(format!(
            "{name} must be an integer"
        ))),
    }
}

fn paths(name: &str, value: Option<Value>) -> ScimResult<Vec<AttrPath>> {
    let items: Vec<String> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text.split(',').map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(ScimError::invalid_value(format!("{name} lists strings"))),
            })
            .collect::<ScimResult<_>>()?,
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "{name} lists attribute names"
            )));
        }
    };
    (items.iter())
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse_path(s)
                .ok()
                .filter(|p| p.filter.is_none())
                .map(|p| p.attr)
                .ok_or_else(|| {
                    ScimError::invalid_value(format!("{name}: `{s}` is not an attribute name"))
                })
        })
        .collect()
}

impl Projection {
    /// Whether the answer keeps `name` (a top-level attribute of the core schema).
    pub fn wants(&self, name: &str) -> bool {
        let named = |p: &AttrPath| p.name.eq_ignore_ascii_case(name);
        if !self.attributes.is_empty() {
            return self.attributes.iter().any(named);
        }
        !self.excluded.iter().any(|p| named(p) && p.sub.is_none())
    }

    /// `resource` with only what was asked for (`id` and `schemas` always stay).
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(source) = resource else {
            return resource;
        };
        if !self.attributes.is_empty() {
            let mut kept = Map::new();
            for key in ["schemas", "id"] {
                if let Some(v) = source.get(key) {
                    kept.insert(key.to_owned(), v.clone());
                }
            }
            for path in &self.attributes {
                copy(&source, &mut kept, path);
            }
            return Value::Object(kept);
        }
        let mut kept = source;
        for path in &self.excluded {
            if !["schemas", "id"].contains(&path.name.as_str()) {
                remove(&mut kept, path);
            }
        }
        Value::Object(kept)
    }
}

/// The object holding `path`'s attribute in `resource` (the resource, or its extension
/// object), with that object's key (`None`: the resource itself).
fn container_key(resource: &Map<String, Value>, path: &AttrPath) -> Option<Option<String>> {
    let extension = |urn: &str| {
        resource
            .keys()
            .find(|k| k.eq_ignore_ascii_case(urn))
            .cloned()
    };
    match &path.urn {
        Some(urn) if !urn.ends_with(":core:2.0:user") && !urn.ends_with(":core:2.0:group") => {
            extension(urn).map(Some)
        }
        _ if key_of(resource, &path.name).is_some() => Some(None),
        // An unqualified name of an extension's attribute.
        _ => resource
            .iter()
            .find(|(k, v)| {
                k.starts_with("urn:")
                    && v.as_object()
                        .is_some_and(|o| key_of(o, &path.name).is_some())
            })
            .map(|(k, _)| Some(k.clone())),
    }
}

fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

fn copy(source: &Map<String, Value>, target: &mut Map<String, Value>, path: &AttrPath) {
    let Some(container) = container_key(source, path) else {
        return;
    };
    let (from, to) = match &container {
        None => (source, &mut *target),
        Some(urn) => {
            let Some(Value::Object(from)) = source.get(urn) else {
                return;
            };
            let to = target
                .entry(urn.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(to) = to else { return };
            (from, to)
        }
    };
    let Some(key) = key_of(from, &path.name) else {
        return;
    };
    let value = &from[&key];
    let picked = match (&path.sub, value) {
        (None, v) => v.clone(),
        (Some(sub), Value::Object(o)) => {
            let mut part = match to.get(&key) {
                Some(Value::Object(existing)) => existing.clone(),
                _ => Map::new(),
            };
            if let Some(k) = key_of(o, sub) {
                part.insert(k.clone(), o[&k].clone());
            }
            Value::Object(part)
        }
        (Some(sub), Value::Array(items)) => Value::Array(
            (items.iter())
                .map(|item| match item {
                    Value::Object(o) => {
                        let mut part = Map::new();
                        if let Some(k) = key_of(o, sub) {
                            part.insert(k.clone(), o[&k].clone());
                        }
                        Value::Object(part)
                    }
                    other => other.clone(),
                })
                .collect(),
        ),
        (Some(_), v) => v.clone(),
    };
    to.insert(key, picked);
}

fn remove(resource: &mut Map<String, Value>, path: &AttrPath) {
    let Some(container) = container_key(resource, path) else {
        return;
    };
    let holder = match &container {
        None => resource,
        Some(urn) => match resource.get_mut(urn) {
            Some(Value::Object(o)) => o,
            _ => return,
        },
    };
    let Some(key) = key_of(holder, &path.name) else {
        return;
    };
    match (&path.sub, holder.get_mut(&key)) {
        (None, _) => {
            holder.remove(&key);
        }
        (Some(sub), Some(Value::Object(o))) => {
            if let Some(k) = key_of(o, sub) {
                o.remove(&k);
            }
        }
        (Some(sub), Some(Value::Array(items))) => {
            for item in items {
                if let Value::Object(o) = item
                    && let Some(k) = key_of(o, sub)
                {
                    o.remove(&k);
                }
            }
        }
        _ => {}
    }
}

/// A list request: the query string of a `GET`, or the body of a `POST /.search`.
pub struct Listing(pub ListQuery);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Listing {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> ScimResult<Self> {
        if req.method() == axum::http::Method::POST {
            let super::Body(body) = super::Body::from_request(req, state).await?;
            return ListQuery::from_search(&body).map(Listing);
        }
        ListQuery::from_query(req.uri().query()).map(Listing)
    }
}
