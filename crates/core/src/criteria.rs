//! The smart-group criteria language (JSON): parsing, with the JSON path of a bad node,
//! and evaluation of a person's facts at an instant — plus the next instant at which the
//! answer may change, which is when an engine must look again.
//!
//! ```json
//! {"all": [
//!   {"event": {"type": "dashlane_user_typed_compromised_password",
//!              "count": {"at_least": 2}, "within": "P3M"}},
//!   {"not": {"user": {"attribute": "department", "in": ["Security"]}}}
//! ]}
//! ```
//!
//! An event leaf holds at `t` when the number of the person's events whose type and
//! description match, with `occurred_date` in the time frame, satisfies the count. The
//! rolling frame `P` is `(t − P, t]`: an event exactly `P` old no longer counts.

use crate::duration::IsoDuration;
use crate::event_id::EventId;
use crate::time::{date_start_ms, parse_date, parse_date_or_timestamp};
use crate::user::{DATE_FIELDS, TEXT_FIELDS};
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::sync::Arc;

/// A parsed criteria tree.
#[derive(Debug, Clone)]
pub enum Criteria {
    All(Vec<Criteria>),
    Any(Vec<Criteria>),
    Not(Box<Criteria>),
    Event(EventLeaf),
    User(UserLeaf),
    Group(GroupLeaf),
}

/// "Count of matching events in a time frame".
#[derive(Debug, Clone)]
pub struct EventLeaf {
    pub event_type: TypeMatch,
    pub description: Option<TextMatch>,
    pub count: Count,
    pub window: Window,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeMatch {
    Exact(String),
    /// `prefix_*`: every type whose name starts with the prefix.
    Prefix(String),
}

#[derive(Debug, Clone)]
pub enum TextMatch {
    /// Case-insensitive substring.
    Contains(String),
    /// Case-insensitive whole text.
    Equals(String),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    AtLeast(u32),
    AtMost(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every event up to now.
    Any,
    /// `(t − P, t]`.
    Rolling(IsoDuration),
    /// Events that occurred in `[from, to]` (epoch ms), once they have occurred.
    Between(i64, i64),
}

/// A test of one attribute of the person.
#[derive(Debug, Clone)]
pub struct UserLeaf {
    pub attribute: &'static str,
    pub test: UserTest,
}

#[derive(Debug, Clone)]
pub enum UserTest {
    /// Case-insensitive.
    Equals(String),
    /// Case-insensitive, any of.
    In(Vec<String>),
    /// Case-insensitive substring.
    Contains(String),
    /// A date attribute strictly before this day.
    Before(i64),
    /// A date attribute strictly after this day.
    After(i64),
    /// A date attribute within `(t − P, t]`, e.g. "started in the last 30 days".
    WithinLast(IsoDuration),
}

/// Membership of another group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLeaf {
    pub group: i64,
}

/// What is wrong with criteria, and where (`$.all[1].event.count`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CriteriaError {
    pub path: String,
    pub message: String,
}

/// A string shared by many facts, one pointer wide (an engine caches millions of facts,
/// and `Arc<str>` would take two).
pub type SharedText = Arc<String>;

/// Shares `text`.
pub fn shared(text: &str) -> SharedText {
    Arc::new(text.to_owned())
}

/// One event of the person, as the criteria see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFact {
    pub id: EventId,
    /// Shared: an engine interns type names, so a cached fact costs no copy of its name.
    pub event_type: SharedText,
    /// Shared too: descriptions repeat, and an engine keeps one copy of each.
    pub description: Option<SharedText>,
    pub occurred_ms: i64,
}

/// Why a person matches: one holding part of the criteria, named by its JSON path
/// (`$.all[1].event`, as in [`CriteriaError`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// An event leaf that holds: the events it counted (the most recent first).
    Events {
        path: String,
        event_type: String,
        count: usize,
        events: Vec<EventId>,
    },
    /// A user leaf that holds, with the attribute's value.
    Attribute {
        path: String,
        attribute: String,
        value: String,
    },
    /// A group leaf that holds.
    Member { path: String, group: i64 },
    /// A `not` whose inner criterion does not hold.
    Not { path: String },
}

/// What criteria are evaluated against: one person.
pub trait Facts {
    /// A text or date attribute (`YYYY-MM-DD`), `None` when empty.
    fn attribute(&self, name: &str) -> Option<&str>;
    /// The person's events (any order).
    fn events(&self) -> &[EventFact];
    fn member_of(&self, group: i64) -> bool;
}

/// Attributes a user leaf may name.
fn attribute_name(name: &str) -> Option<&'static str> {
    std::iter::once(&"email")
        .chain(TEXT_FIELDS)
        .chain(DATE_FIELDS)
        .find(|known| **known == name)
        .copied()
}

fn is_date_attribute(name: &str) -> bool {
    DATE_FIELDS.contains(&name)
}

// ---- parsing ----------------------------------------------------------------------------

struct Parser;

fn fail(path: &str, message: impl Into<String>) -> CriteriaError {
    CriteriaError {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Criteria {
    /// Parses criteria JSON; an error names the path of the first bad node and why.
    pub fn parse(value: &Value) -> Result<Self, CriteriaError> {
        Parser::node(value, "$")
    }

    /// Evaluates the criteria for one person at `now_ms`.
    pub fn evaluate(&self, facts: &dyn Facts, now_ms: i64) -> bool {
        match self {
            Criteria::All(children) => children.iter().all(|c| c.evaluate(facts, now_ms)),
            Criteria::Any(children) => children.iter().any(|c| c.evaluate(facts, now_ms)),
            Criteria::Not(child) => !child.evaluate(facts, now_ms),
            Criteria::Event(leaf) => leaf.holds(facts.events(), now_ms),
            Criteria::User(leaf) => leaf.holds(facts, now_ms),
            Criteria::Group(leaf) => facts.member_of(leaf.group),
        }
    }

    /// The earliest instant after `now_ms` at which the answer may change without any new
    /// fact (an event entering or leaving a time frame, a date coming within range).
    /// The answer cannot change before it; `None` means never by time alone.
    pub fn next_change(&self, facts: &dyn Facts, now_ms: i64) -> Option<i64> {
        match self {
            Criteria::All(children) | Criteria::Any(children) => children
                .iter()
                .filter_map(|c| c.next_change(facts, now_ms))
                .min(),
            Criteria::Not(child) => child.next_change(facts, now_ms),
            Criteria::Event(leaf) => leaf.next_flip(facts.events(), now_ms),
            Criteria::User(leaf) => leaf.next_change(facts, now_ms),
            Criteria::Group(_) => None,
        }
    }

    /// Every group the criteria refer to.
    pub fn groups(&self) -> Vec<i64> {
        let mut out = Vec::new();
        self.walk(&mut |c| {
            if let Criteria::Group(leaf) = c {
                out.push(leaf.group);
            }
        });
        out
    }

    /// Every event leaf, so an engine knows which events can affect the criteria.
    pub fn event_leaves(&self) -> Vec<&EventLeaf> {
        let mut out = Vec::new();
        self.walk(&mut |c| {
            if let Criteria::Event(leaf) = c {
                out.push(leaf);
            }
        });
        out
    }

    /// The attributes user leaves read (each once), so an engine knows which attribute
    /// changes can affect the criteria.
    pub fn user_attributes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        self.walk(&mut |c| {
            if let Criteria::User(leaf) = c
                && !out.contains(&leaf.attribute)
            {
                out.push(leaf.attribute);
            }
        });
        out
    }

    /// Whether an event of this type can affect the criteria.
    pub fn mentions_type(&self, event_type: &str) -> bool {
        self.event_leaves()
            .iter()
            .any(|leaf| leaf.matches_type(event_type))
    }

    /// Why the criteria hold at `now_ms`; empty when they do not. `all` gives the evidence
    /// of every child, `any` that of its first child that holds.
    pub fn explain(&self, facts: &dyn Facts, now_ms: i64) -> Vec<Evidence> {
        let mut out = Vec::new();
        if self.evaluate(facts, now_ms) {
            self.gather(facts, now_ms, "$", &mut out);
        }
        out
    }

    /// Appends the evidence of a node that holds, at `path` (the path of its parent).
    fn gather(&self, facts: &dyn Facts, now_ms: i64, path: &str, out: &mut Vec<Evidence>) {
        match self {
            Criteria::All(children) => {
                for (i, child) in children.iter().enumerate() {
                    child.gather(facts, now_ms, &format!("{path}.all[{i}]"), out);
                }
            }
            Criteria::Any(children) => {
                let first = children
                    .iter()
                    .enumerate()
                    .find(|(_, child)| child.evaluate(facts, now_ms));
                if let Some((i, child)) = first {
                    child.gather(facts, now_ms, &format!("{path}.any[{i}]"), out);
                }
            }
            Criteria::Not(_) => out.push(Evidence::Not {
                path: format!("{path}.not"),
            }),
            Criteria::Event(leaf) => {
                let mut counted: Vec<&EventFact> = facts
                    .events()
                    .iter()
                    .filter(|e| leaf.matches(e) && leaf.counts(e.occurred_ms, now_ms))
                    .collect();
                counted.sort_unstable_by_key(|e| Reverse(recency(e)));
                out.push(Evidence::Events {
                    path: format!("{path}.event"),
                    event_type: leaf.event_type.to_string(),
                    count: counted.len(),
                    events: counted.iter().map(|e| e.id).collect(),
                });
            }
            Criteria::User(leaf) => out.push(Evidence::Attribute {
                path: format!("{path}.user"),
                attribute: leaf.attribute.to_owned(),
                value: facts
                    .attribute(leaf.attribute)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Criteria::Group(leaf) => out.push(Evidence::Member {
                path: format!("{path}.group"),
                group: leaf.group,
            }),
        }
    }

    fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Criteria)) {
        visit(self);
        match self {
            Criteria::All(children) | Criteria::Any(children) => {
                for child in children {
                    child.walk(visit);
                }
            }
            Criteria::Not(child) => child.walk(visit),
            _ => {}
        }
    }
}

impl Parser {
    fn node(value: &Value, path: &str) -> Result<Criteria, CriteriaError> {
        let object = value.as_object().ok_or_else(|| {
            fail(
                path,
                "must be an object with one of: all, any, not, event, user, group",
            )
        })?;
        let mut keys = object.keys();
        let (Some(key), None) = (keys.next(), keys.next()) else {
            return Err(fail(
                path,
                "must have exactly one key: all, any, not, event, user or group",
            ));
        };
        let inner = &object[key];
        let path = format!("{path}.{key}");
        match key.as_str() {
            "all" | "any" => {
                let items = inner
                    .as_array()
                    .ok_or_else(|| fail(&path, "must be an array of criteria"))?;
                if items.is_empty() {
                    return Err(fail(&path, "must hold at least one criterion"));
                }
                let children = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Self::node(item, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if key == "all" {
                    Criteria::All(children)
                } else {
                    Criteria::Any(children)
                })
            }
            "not" => Ok(Criteria::Not(Box::new(Self::node(inner, &path)?))),
            "event" => Ok(Criteria::Event(Self::event(inner, &path)?)),
            "user" => Ok(Criteria::User(Self::user(inner, &path)?)),
            "group" => Ok(Criteria::Group(Self::group(inner, &path)?)),
            other => Err(fail(
                &path,
                format!("unknown criterion `{other}`; use all, any, not, event, user or group"),
            )),
        }
    }

    fn fields<'a>(
        value: &'a Value,
        path: &str,
        allowed: &[&str],
    ) -> Result<&'a Map<String, Value>, CriteriaError> {
        let object = value
            .as_object()
            .ok_or_else(|| fail(path, "must be an object"))?;
        if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(fail(
                &format!("{path}.{unknown}"),
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            ));
        }
        Ok(object)
    }

    fn text<'a>(value: &'a Value, path: &str) -> Result<&'a str, CriteriaError> {
        value
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| fail(path, "must be a non-empty string"))
    }

    fn event(value: &Value, path: &str) -> Result<EventLeaf, CriteriaError> {
        let object = Self::fields(value, path, &["type", "description", "count", "within"])?;
        let type_path = format!("{path}.type");
        let name = Self::text(
            object
                .get("type")
                .ok_or_else(|| fail(&type_path, "is required"))?,
            &type_path,
        )?
        .trim();
        let event_type = match name.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') || prefix.is_empty() => {
                return Err(fail(
                    &type_path,
                    "a prefix is written `prefix_*` with one `*` at the end",
                ));
            }
            Some(prefix) => TypeMatch::Prefix(prefix.to_owned()),
            None if name.contains('*') => {
                return Err(fail(
                    &type_path,
                    "`*` may only end a prefix, as in `dashlane_*`",
                ));
            }
            None => TypeMatch::Exact(name.to_owned()),
        };
        let description = object
            .get("description")
            .map(|d| Self::text_match(d, &format!("{path}.description")))
            .transpose()?;
        let count = match object.get("count") {
            None => Count::AtLeast(1),
            Some(count) => Self::count(count, &format!("{path}.count"))?,
        };
        let window = match object.get("within") {
            None => Window::Any,
            Some(within) => Self::window(within, &format!("{path}.within"))?,
        };
        Ok(EventLeaf {
            event_type,
            description,
            count,
            window,
        })
    }

    fn text_match(value: &Value, path: &str) -> Result<TextMatch, CriteriaError> {
        let object = Self::fields(value, path, &["contains", "equals", "regex"])?;
        let mut entries = object.iter();
        let (Some((kind, text)), None) = (entries.next(), entries.next()) else {
            return Err(fail(
                path,
                "must have exactly one of: contains, equals, regex",
            ));
        };
        let path = format!("{path}.{kind}");
        let text = Self::text(text, &path)?;
        Ok(match kind.as_str() {
            "contains" => TextMatch::Contains(text.to_lowercase()),
            "equals" => TextMatch::Equals(text.to_lowercase()),
            _ => TextMatch::Regex(
                regex::RegexBuilder::new(text)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| fail(&path, format!("is not a valid regular expression: {e}")))?,
            ),
        })
    }

    fn count(value: &Value, path: &str) -> Result<Count, CriteriaError> {
        let object = Self::fields(value, path, &["at_least", "at_most"])?;
        let mut entries = object.iter();
        let (Some((kind, n)), None) = (entries.next(), entries.next()) else {
            return Err(fail(path, "must have exactly one of: at_least, at_most"));
        };
        let path = format!("{path}.{kind}");
        let n = n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| fail(&path, "must be a whole number, 0 or more"))?;
        Ok(if kind == "at_least" {
            Count::AtLeast(n)
        } else {
            Count::AtMost(n)
        })
    }

    fn window(value: &Value, path: &str) -> Result<Window, CriteriaError> {
        match value {
            Value::String(text) if text == "any" => Ok(Window::Any),
            Value::String(text) => IsoDuration::parse(text)
                .map(Window::Rolling)
                .map_err(|e| fail(path, format!("{e}, or \"any\""))),
            Value::Object(_) => {
                let object = Self::fields(value, path, &["from", "to"])?;
                let instant = |key: &str| -> Result<i64, CriteriaError> {
                    let path = format!("{path}.{key}");
                    let text = Self::text(
                        object.get(key).ok_or_else(|| fail(&path, "is required"))?,
                        &path,
                    )?;
                    parse_date_or_timestamp(text)
                        .map(|at| at.timestamp_millis())
                        .ok_or_else(|| fail(&path, "must be YYYY-MM-DD or an RFC 3339 timestamp"))
                };
                let from = instant("from")?;
                let mut to = instant("to")?;
                // A plain date as the end means the whole of that day.
                if object["to"]
                    .as_str()
                    .is_some_and(|t| parse_date(t).is_some())
                {
                    to += 86_400_000 - 1;
                }
                if to < from {
                    return Err(fail(path, "`to` must not be before `from`"));
                }
                Ok(Window::Between(from, to))
            }
            _ => Err(fail(
                path,
                "must be \"any\", an ISO-8601 duration such as \"P3M\", or {\"from\", \"to\"}",
            )),
        }
    }

    fn user(value: &Value, path: &str) -> Result<UserLeaf, CriteriaError> {
        let tests = ["equals", "in", "contains", "before", "after", "within_last"];
        let mut allowed = vec!["attribute"];
        allowed.extend(tests);
        let object = Self::fields(value, path, &allowed)?;
        let attribute_path = format!("{path}.attribute");
        let name = Self::text(
            object
                .get("attribute")
                .ok_or_else(|| fail(&attribute_path, "is required"))?,
            &attribute_path,
        )?;
        let attribute = attribute_name(name)
            .ok_or_else(|| fail(&attribute_path, format!("`{name}` is not a user attribute")))?;
        let mut present = tests.iter().filter(|t| object.contains_key(**t));
        let (Some(kind), None) = (present.next(), present.next()) else {
            return Err(fail(
                path,
                "must have exactly one test: equals, in, contains, before, after or within_last",
            ));
        };
        let value = &object[*kind];
        let path = format!("{path}.{kind}");
        let dated = is_date_attribute(attribute);
        let date = |value: &Value| -> Result<i64, CriteriaError> {
            if !dated {
                return Err(fail(
                    &path,
                    format!("`{attribute}` is not a date attribute"),
                ));
            }
            value
                .as_str()
                .and_then(parse_date)
                .map(date_start_ms)
                .ok_or_else(|| fail(&path, "must be a date written YYYY-MM-DD"))
        };
        let test = match *kind {
            "equals" => UserTest::Equals(Self::text(value, &path)?.to_lowercase()),
            "contains" => UserTest::Contains(Self::text(value, &path)?.to_lowercase()),
            "in" => {
                let items = value
                    .as_array()
                    .filter(|items| !items.is_empty())
                    .ok_or_else(|| fail(&path, "must be a non-empty array of strings"))?;
                UserTest::In(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            Self::text(item, &format!("{path}[{i}]")).map(str::to_lowercase)
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            "before" => UserTest::Before(date(value)?),
            "after" => UserTest::After(date(value)?),
            _ => {
                if !dated {
                    return Err(fail(
                        &path,
                        format!("`{attribute}` is not a date attribute"),
                    ));
                }
                let text = Self::text(value, &path)?;
                UserTest::WithinLast(
                    IsoDuration::parse(text).map_err(|e| fail(&path, e.to_string()))?,
                )
            }
        };
        Ok(UserLeaf { attribute, test })
    }

    fn group(value: &Value, path: &str) -> Result<GroupLeaf, CriteriaError> {
        let object = Self::fields(value, path, &["member_of"])?;
        let path = format!("{path}.member_of");
        let group = object
            .get("member_of")
            .and_then(Value::as_i64)
            .filter(|id| *id > 0)
            .ok_or_else(|| fail(&path, "must be a group id"))?;
        Ok(GroupLeaf { group })
    }
}

// ---- evaluation -------------------------------------------------------------------------

/// The first instant at which an event that occurred at `occurred_ms` is out of the
/// rolling frame `P`: the least `t` with `t − P ≥ occurred`. With calendar months that
/// is not always `occurred + P` (31 May − 3 months is the end of 28 February), so it is
/// searched; `t − P` never goes back as `t` goes forward, so the event does not return.
pub fn exit_instant(period: &IsoDuration, occurred_ms: i64) -> i64 {
    let fixed_ms = i64::from(period.days) * 86_400_000 + period.seconds as i64 * 1000;
    if period.months == 0 {
        // Days and seconds only: the frame is a fixed length.
        return occurred_ms + fixed_ms;
    }
    let left = |t: i64| period.before_ms(t);
    let mut high = period.after_ms(occurred_ms);
    // Usually `occurred + P` is the answer; two evaluations confirm it.
    if left(high) >= occurred_ms && left(high - 1) < occurred_ms {
        return high;
    }
    let mut step = 86_400_000;
    while left(high) < occurred_ms {
        high += step;
        step *= 2;
    }
    // left() is non-decreasing: find the least t in (occurred, high] with left(t) ≥ occurred.
    let mut low = occurred_ms;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if left(mid) >= occurred_ms {
            high = mid;
        } else {
            low = mid;
        }
    }
    high
}

/// Whether `text` contains `part` (lower case) ignoring case, without allocating for
/// ASCII text, the usual case on the event path.
fn contains_folded(text: &str, part: &str) -> bool {
    if text.is_ascii() {
        let (text, part) = (text.as_bytes(), part.as_bytes());
        part.is_empty()
            || text
                .windows(part.len())
                .any(|w| w.eq_ignore_ascii_case(part))
    } else {
        text.to_lowercase().contains(part)
    }
}

/// Whether `text` equals `whole` (lower case) ignoring case; see [`contains_folded`].
fn equals_folded(text: &str, whole: &str) -> bool {
    if text.is_ascii() {
        text.eq_ignore_ascii_case(whole)
    } else {
        text.to_lowercase() == whole
    }
}

/// The order of recency: later first, then the larger id (stored later).
fn recency(event: &EventFact) -> (i64, EventId) {
    (event.occurred_ms, event.id)
}

/// The answer at each of `instants` (ascending). The criteria are evaluated again only
/// where their answer may have changed since the last evaluation (see
/// [`Criteria::next_change`]), so a long daily series costs a few evaluations.
pub fn matches_at(criteria: &Criteria, facts: &dyn Facts, instants: &[i64]) -> Vec<bool> {
    // The last answer, and the span [from, until) over which it holds.
    let mut known: Option<(bool, i64, Option<i64>)> = None;
    instants
        .iter()
        .map(|&t| match known {
            Some((answer, from, until)) if from <= t && until.is_none_or(|u| t < u) => answer,
            _ => {
                let answer = criteria.evaluate(facts, t);
                known = Some((answer, t, criteria.next_change(facts, t)));
                answer
            }
        })
        .collect()
}

/// Drops every fact that none of `leaves` needs, at `now_ms` or any later instant: the
/// answers and next changes of the leaves stay the same from `now_ms` on. Kept are the
/// facts still to occur, and for each leaf its [`EventLeaf::keep`] most recent matching
/// facts among those that may still count (a rolling frame never takes back an event it
/// has let go, a fixed range never counts an event outside it).
pub fn prune(leaves: &[&EventLeaf], facts: &mut Vec<EventFact>, now_ms: i64) {
    Pruner::new(leaves, now_ms).prune(facts);
}

/// [`prune`] for many lists at one instant, as when an engine loads: each leaf's frame
/// is computed once (a calendar step is not free) and the scratch space is reused.
pub struct Pruner<'a> {
    /// Each leaf, with the start of its frame at `now_ms`.
    leaves: Vec<(&'a EventLeaf, i64)>,
    now_ms: i64,
    needed: Vec<bool>,
    past: Vec<usize>,
}

impl<'a> Pruner<'a> {
    pub fn new(leaves: &[&'a EventLeaf], now_ms: i64) -> Self {
        Self {
            leaves: leaves.iter().map(|l| (*l, l.frame(now_ms).0)).collect(),
            now_ms,
            needed: Vec::new(),
            past: Vec::new(),
        }
    }

    pub fn prune(&mut self, facts: &mut Vec<EventFact>) {
        self.needed.clear();
        self.needed.resize(facts.len(), false);
        for &(leaf, after) in &self.leaves {
            self.past.clear();
            for (i, fact) in facts.iter().enumerate() {
                // In the frame at `now`, or later (future-dated); never again once out.
                let may_count = match leaf.window {
                    Window::Between(from, to) => (from..=to).contains(&fact.occurred_ms),
                    _ => fact.occurred_ms > after,
                };
                if !may_count || !leaf.matches(fact) {
                    continue;
                }
                if fact.occurred_ms > self.now_ms {
                    self.needed[i] = true;
                } else {
                    self.past.push(i);
                }
            }
            self.past
                .sort_unstable_by_key(|&i| Reverse(recency(&facts[i])));
            for &i in self.past.iter().take(leaf.keep()) {
                self.needed[i] = true;
            }
        }
        let mut needed = self.needed.iter();
        facts.retain(|_| needed.next().copied().unwrap_or(false));
    }
}

impl std::fmt::Display for TypeMatch {
    /// As written in the criteria: `name`, or `prefix_*`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeMatch::Exact(name) => f.write_str(name),
            TypeMatch::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl EventLeaf {
    /// Whether an event of this type may match (the description aside).
    pub fn matches_type(&self, event_type: &str) -> bool {
        match &self.event_type {
            TypeMatch::Exact(name) => event_type == name,
            TypeMatch::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }

    /// Whether an event matches by type and description, whenever it occurred.
    pub fn matches(&self, event: &EventFact) -> bool {
        self.matches_type(&event.event_type)
            && self.matches_description(event.description.as_ref().map(|d| d.as_str()))
    }

    /// Whether an event's description passes this leaf's test (the type aside).
    pub fn matches_description(&self, description: Option<&str>) -> bool {
        let text = description.unwrap_or("");
        match &self.description {
            None => true,
            Some(TextMatch::Contains(part)) => contains_folded(text, part),
            Some(TextMatch::Equals(whole)) => equals_folded(text, whole),
            Some(TextMatch::Regex(regex)) => regex.is_match(text),
        }
    }

    /// Whether an event that occurred at `occurred` counts at `t`.
    fn counts(&self, occurred: i64, t: i64) -> bool {
        occurred <= t && self.may_count_from(occurred, t)
    }

    /// Whether an event that occurred at `occurred` is inside the frame at `now` (it
    /// counts once it has occurred). One outside at `now` never counts again later.
    fn may_count_from(&self, occurred: i64, now: i64) -> bool {
        match self.window {
            Window::Any => true,
            Window::Rolling(period) => occurred > period.before_ms(now),
            Window::Between(from, to) => (from..=to).contains(&occurred),
        }
    }

    /// How many of the most recent matching events that have occurred must be kept for
    /// the answer and the next flip to stay exact: beyond `n`, "at least `n`" holds
    /// whatever more there are, and "at most `n`" needs only to see one more.
    pub fn keep(&self) -> usize {
        match self.count {
            Count::AtLeast(n) => n as usize,
            Count::AtMost(n) => n as usize + 1,
        }
    }

    fn satisfied(&self, count: usize) -> bool {
        match self.count {
            Count::AtLeast(n) => count >= n as usize,
            Count::AtMost(n) => count <= n as usize,
        }
    }

    /// The matching events that count at `t`.
    /// The frame at `t`: events that occurred in `(after, until]` count. Computed once
    /// per evaluation, not per event: a calendar step is not free.
    fn frame(&self, t: i64) -> (i64, i64) {
        match self.window {
            Window::Any => (i64::MIN, t),
            Window::Rolling(period) => (period.before_ms(t), t),
            Window::Between(from, to) => (from.saturating_sub(1), to.min(t)),
        }
    }

    pub fn count_at(&self, events: &[EventFact], t: i64) -> usize {
        let (after, until) = self.frame(t);
        events
            .iter()
            .filter(|e| after < e.occurred_ms && e.occurred_ms <= until && self.matches(e))
            .count()
    }

    fn holds(&self, events: &[EventFact], t: i64) -> bool {
        self.satisfied(self.count_at(events, t))
    }

    /// The first instant after `now` at which this leaf's answer flips by time alone.
    fn next_flip(&self, events: &[EventFact], now: i64) -> Option<i64> {
        let after = self.frame(now).0;
        // The common case, no matching event still to occur: from now on events only
        // leave the frame, oldest first (an exit instant never comes before that of an
        // earlier event), so the flip is the exit of one event, found without sorting.
        let mut counted: Vec<i64> = Vec::new();
        let mut future = false;
        for event in events
            .iter()
            .filter(|e| e.occurred_ms > after && self.matches(e))
        {
            if event.occurred_ms > now {
                future = true;
                break;
            }
            counted.push(event.occurred_ms);
        }
        if !future {
            let Window::Rolling(period) = self.window else {
                return None;
            };
            let k = counted.len();
            // How many of the oldest must leave for the answer to flip.
            let leaving = match self.count {
                Count::AtLeast(n) if k >= n as usize => k - n as usize + 1,
                Count::AtMost(n) if k > n as usize => k - n as usize,
                _ => return None,
            };
            if leaving > k {
                return None;
            }
            let (_, occurred, _) = counted.select_nth_unstable(leaving - 1);
            return Some(exit_instant(&period, *occurred));
        }
        // Every instant after `now` at which the count moves: +1 as an event enters the
        // frame, −1 as it leaves.
        let mut moves: Vec<(i64, i64)> = Vec::new();
        // An event out of the frame now never counts again.
        for event in events
            .iter()
            .filter(|e| e.occurred_ms > after && self.matches(e))
        {
            let occurred = event.occurred_ms;
            let (enter, leave) = match self.window {
                Window::Any => (occurred, None),
                Window::Rolling(period) => (occurred, Some(exit_instant(&period, occurred))),
                Window::Between(from, to) if (from..=to).contains(&occurred) => (occurred, None),
                Window::Between(..) => continue,
            };
            if enter > now {
                moves.push((enter, 1));
            }
            if let Some(leave) = leave.filter(|l| *l > now) {
                moves.push((leave, -1));
            }
        }
        moves.sort_unstable();
        let mut count = self.count_at(events, now) as i64;
        let current = self.satisfied(count as usize);
        let mut i = 0;
        while i < moves.len() {
            let at = moves[i].0;
            while i < moves.len() && moves[i].0 == at {
                count += moves[i].1;
                i += 1;
            }
            if self.satisfied(count.max(0) as usize) != current {
                return Some(at);
            }
        }
        None
    }
}

impl UserLeaf {
    fn holds(&self, facts: &dyn Facts, t: i64) -> bool {
        let Some(value) = facts.attribute(self.attribute) else {
            return false;
        };
        let date = || parse_date(value).map(date_start_ms);
        match &self.test {
            UserTest::Equals(expected) => value.to_lowercase() == *expected,
            UserTest::In(options) => options.contains(&value.to_lowercase()),
            UserTest::Contains(part) => value.to_lowercase().contains(part.as_str()),
            UserTest::Before(day) => date().is_some_and(|d| d < *day),
            UserTest::After(day) => date().is_some_and(|d| d > *day),
            UserTest::WithinLast(period) => {
                date().is_some_and(|d| d <= t && d > period.before_ms(t))
            }
        }
    }

    fn next_change(&self, facts: &dyn Facts, now: i64) -> Option<i64> {
        let UserTest::WithinLast(period) = &self.test else {
            return None;
        };
        let day = parse_date(facts.attribute(self.attribute)?).map(date_start_ms)?;
        [day, exit_instant(period, day)]
            .into_iter()
            .find(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Debug, Default)]
    struct Person {
        attributes: HashMap<&'static str, String>,
        events: Vec<EventFact>,
        groups: Vec<i64>,
    }

    impl Facts for Person {
        fn attribute(&self, name: &str) -> Option<&str> {
            self.attributes.get(name).map(String::as_str)
        }
        fn events(&self) -> &[EventFact] {
            &self.events
        }
        fn member_of(&self, group: i64) -> bool {
            self.groups.contains(&group)
        }
    }

    const DAY: i64 = 86_400_000;

    fn ms(text: &str) -> i64 {
        parse_date_or_timestamp(text).unwrap().timestamp_millis()
    }

    fn event(kind: &str, description: Option<&str>, at: i64) -> EventFact {
        EventFact {
            id: EventId { hi: at, lo: 0 },
            event_type: shared(kind),
            description: description.map(shared),
            occurred_ms: at,
        }
    }

    fn error(value: Value) -> String {
        Criteria::parse(&value).unwrap_err().to_string()
    }

    #[test]
    fn names_the_path_of_a_bad_node() {
        assert_eq!(
            error(
                json!({"all": [{"event": {"type": "x"}}, {"event": {"type": "y", "count": {"at_least": -1}}}]})
            ),
            "$.all[1].event.count.at_least: must be a whole number, 0 or more"
        );
        assert!(error(json!({"any": []})).starts_with("$.any: "));
        assert!(error(json!({"nope": 1})).starts_with("$.nope: unknown criterion"));
        assert!(error(json!({"all": [1]})).starts_with("$.all[0]: "));
        assert!(error(json!({"event": {"type": "a*b"}})).starts_with("$.event.type: "));
        assert!(
            error(json!({"event": {"type": "x", "within": "3 months"}}))
                .starts_with("$.event.within: ")
        );
        assert!(
            error(json!({"event": {"type": "x", "description": {"regex": "("}}}))
                .starts_with("$.event.description.regex: ")
        );
        assert!(
            error(json!({"user": {"attribute": "shoe_size", "equals": "9"}}))
                .starts_with("$.user.attribute: ")
        );
        assert!(
            error(json!({"user": {"attribute": "department", "within_last": "P30D"}}))
                .starts_with("$.user.within_last: ")
        );
        assert!(
            error(json!({"event": {"type": "x", "colour": "red"}})).starts_with("$.event.colour: ")
        );
        assert!(error(json!({"group": {"member_of": "x"}})).starts_with("$.group.member_of: "));
    }

    #[test]
    fn the_starter_play_counts_in_the_rolling_window() {
        let criteria = Criteria::parse(&json!({"event": {
            "type": "dashlane_user_typed_compromised_password",
            "count": {"at_least": 2}, "within": "P3M"}}))
        .unwrap();
        let first = ms("2026-06-10T09:00:00Z");
        let second = ms("2026-08-01T09:00:00Z");
        let person = Person {
            events: vec![
                event("dashlane_user_typed_compromised_password", None, first),
                event("dashlane_user_typed_compromised_password", None, second),
                event("dashlane_user_typed_weak_password", None, second),
            ],
            ..Person::default()
        };
        assert!(!criteria.evaluate(&person, second - 1));
        assert!(criteria.evaluate(&person, second));
        // The first event is exactly 3 months old at 2026-09-10T09:00Z: out at that instant.
        let edge = ms("2026-09-10T09:00:00Z");
        assert!(criteria.evaluate(&person, edge - 1));
        assert!(!criteria.evaluate(&person, edge));
        assert_eq!(criteria.next_change(&person, second), Some(edge));
        assert_eq!(criteria.next_change(&person, edge), None);
    }

    #[test]
    fn descriptions_prefixes_and_negation() {
        let criteria = Criteria::parse(&json!({"all": [
            {"event": {"type": "dashlane_*", "description": {"contains": "NOT logged in"}}},
            {"not": {"user": {"attribute": "department", "in": ["security", "IT"]}}}
        ]}))
        .unwrap();
        let mut person = Person {
            events: vec![event(
                "dashlane_user_typed_weak_password",
                Some("not logged in to Dashlane"),
                0,
            )],
            ..Person::default()
        };
        person.attributes.insert("department", "Sales".into());
        assert!(criteria.evaluate(&person, DAY));
        person.attributes.insert("department", "it".into());
        assert!(!criteria.evaluate(&person, DAY));
        person.attributes.insert("department", "Sales".into());
        person.events[0].description = Some(shared("logged in to Dashlane"));
        assert!(!criteria.evaluate(&person, DAY));
    }

    #[test]
    fn new_hires_are_within_the_last_thirty_days() {
        let criteria = Criteria::parse(&json!({"user": {
            "attribute": "employee_start_date", "within_last": "P30D"}}))
        .unwrap();
        let mut person = Person::default();
        person
            .attributes
            .insert("employee_start_date", "2026-11-01".into());
        let start = ms("2026-11-01");
        assert!(!criteria.evaluate(&person, start - 1));
        assert!(criteria.evaluate(&person, start));
        assert!(criteria.evaluate(&person, start + 30 * DAY - 1));
        assert!(!criteria.evaluate(&person, start + 30 * DAY));
        assert_eq!(criteria.next_change(&person, start), Some(start + 30 * DAY));
        assert!(!criteria.evaluate(&Person::default(), start));
    }

    #[test]
    fn at_most_and_fixed_ranges_and_groups() {
        let criteria = Criteria::parse(&json!({"any": [
            {"event": {"type": "phish", "count": {"at_most": 0},
                       "within": {"from": "2026-01-01", "to": "2026-01-31"}}},
            {"group": {"member_of": 7}}
        ]}))
        .unwrap();
        let mut person = Person {
            events: vec![event("phish", None, ms("2026-01-31T23:00:00Z"))],
            ..Person::default()
        };
        assert!(criteria.evaluate(&person, ms("2026-01-31T22:00:00Z")));
        assert!(!criteria.evaluate(&person, ms("2026-02-01")));
        person.groups.push(7);
        assert!(criteria.evaluate(&person, ms("2026-02-01")));
        assert_eq!(criteria.groups(), [7]);
    }

    #[test]
    fn exit_instants_follow_the_calendar() {
        let three_months = IsoDuration::parse("P3M").unwrap();
        // 30 Nov + 3 months has no 30 Feb: the event leaves when 1 Mar begins.
        assert_eq!(
            exit_instant(&three_months, ms("2025-11-30T12:00:00Z")),
            ms("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            exit_instant(&three_months, ms("2026-06-10T09:00:00Z")),
            ms("2026-09-10T09:00:00Z")
        );
        let day = IsoDuration::parse("P1D").unwrap();
        assert_eq!(exit_instant(&day, 5), 5 + DAY);
    }

    #[test]
    fn an_event_that_left_a_month_frame_does_not_return_at_the_month_end() {
        let criteria = parse(json!({"event": {"type": "a", "within": "P1M"}}));
        let person = Person {
            events: vec![event("a", None, ms("2026-02-28T04:00:00Z"))],
            ..Person::default()
        };
        let left = ms("2026-03-28T04:00:00Z");
        assert!(criteria.evaluate(&person, left - 1));
        assert!(!criteria.evaluate(&person, left));
        // 31 March − 1 month is the end of 28 February, not 28 February at the same hour.
        assert!(!criteria.evaluate(&person, ms("2026-03-31T00:00:00Z")));
        assert!(!criteria.evaluate(&person, ms("2026-03-31T12:00:00Z")));
        assert_eq!(criteria.next_change(&person, left), None);
    }

    /// Random criteria over a few types and descriptions.
    fn criteria_strategy() -> impl Strategy<Value = Value> {
        let leaf = (
            prop_oneof![Just("a"), Just("b"), Just("a*")],
            prop_oneof![Just(None), Just(Some("x"))],
            0u32..4,
            any::<bool>(),
            prop_oneof![Just("any"), Just("P1D"), Just("P3D"), Just("P1M"), Just("PT36H")],
        )
            .prop_map(|(kind, description, n, at_least, within)| {
                let mut leaf = json!({"type": kind, "within": within,
                    "count": if at_least { json!({"at_least": n}) } else { json!({"at_most": n}) }});
                if let Some(d) = description {
                    leaf["description"] = json!({"contains": d});
                }
                json!({"event": leaf})
            });
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..3).prop_map(|c| json!({"all": c})),
                prop::collection::vec(inner.clone(), 1..3).prop_map(|c| json!({"any": c})),
                inner.prop_map(|c| json!({"not": c})),
            ]
        })
    }

    fn events_strategy() -> impl Strategy<Value = Vec<EventFact>> {
        prop::collection::vec(
            (
                prop_oneof![Just("a"), Just("ab"), Just("b")],
                prop_oneof![Just(None), Just(Some("x")), Just(Some("y"))],
                0i64..(60 * DAY),
            )
                .prop_map(|(kind, description, at)| event(kind, description, at)),
            0..12,
        )
    }

    proptest! {
        /// The answer holds still until `next_change`, and no flip comes before it.
        #[test]
        fn next_change_is_never_late(
            criteria in criteria_strategy(),
            events in events_strategy(),
            now in 0i64..(90 * DAY),
        ) {
            let criteria = Criteria::parse(&criteria).unwrap();
            let person = Person { events, ..Person::default() };
            let answer = criteria.evaluate(&person, now);
            let next = criteria.next_change(&person, now);
            // Every instant at which any count can move, after now, in order.
            let mut instants: Vec<i64> = person.events.iter().flat_map(|e| {
                ["P1D", "P3D", "P1M", "PT36H"].iter()
                    .map(|p| exit_instant(&IsoDuration::parse(p).unwrap(), e.occurred_ms))
                    .chain(std::iter::once(e.occurred_ms))
                    .collect::<Vec<_>>()
            }).filter(|t| *t > now).collect();
            instants.sort_unstable();
            instants.dedup();
            let first_flip = instants.iter().copied()
                .find(|t| criteria.evaluate(&person, *t) != answer);
            match (first_flip, next) {
                (Some(flip), Some(next)) => prop_assert!(next <= flip, "next {next} after flip {flip}"),
                (Some(flip), None) => prop_assert!(false, "a flip at {flip} was not foreseen"),
                _ => {}
            }
            if let Some(next) = next {
                // Between now and next, nothing changes (checked just before next and midway).
                for t in [now + (next - now) / 2, next - 1] {
                    prop_assert_eq!(criteria.evaluate(&person, t), answer);
                }
            }
        }
    }

    fn parse(value: Value) -> Criteria {
        Criteria::parse(&value).unwrap()
    }

    fn ids(events: &[EventFact]) -> Vec<EventId> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn leaves_attributes_and_types() {
        let criteria = parse(json!({"all": [
            {"event": {"type": "dashlane_*", "count": {"at_most": 2}}},
            {"any": [
                {"event": {"type": "phish", "count": {"at_least": 3}}},
                {"user": {"attribute": "department", "equals": "Sales"}},
                {"not": {"user": {"attribute": "department", "in": ["IT"]}}},
                {"user": {"attribute": "employee_start_date", "within_last": "P30D"}}
            ]}
        ]}));
        let keeps: Vec<usize> = criteria.event_leaves().iter().map(|l| l.keep()).collect();
        assert_eq!(keeps, [3, 3]);
        assert_eq!(
            criteria.user_attributes(),
            ["department", "employee_start_date"]
        );
        assert!(criteria.mentions_type("dashlane_user_typed_weak_password"));
        assert!(criteria.mentions_type("phish"));
        assert!(!criteria.mentions_type("phishing"));
        assert!(!criteria.mentions_type("dashlane"));
        let leaf = &criteria.event_leaves()[0];
        assert!(leaf.matches(&event("dashlane_x", None, 0)));
        assert!(!leaf.matches(&event("x_dashlane_", None, 0)));
        assert_eq!(leaf.event_type.to_string(), "dashlane_*");
    }

    #[test]
    fn prune_keeps_what_each_leaf_needs() {
        let criteria = parse(json!({"any": [
            {"event": {"type": "a", "count": {"at_most": 1}}},
            {"event": {"type": "b", "count": {"at_least": 1}, "within": "P1D"}},
            {"event": {"type": "c", "within": {"from": "1970-01-03", "to": "1970-01-05"}}}
        ]}));
        let now = 10 * DAY;
        // Two at the same instant: the larger id is the more recent.
        let mut a_tied = event("a", None, 5 * DAY);
        a_tied.id = EventId { hi: 1, lo: 0 };
        let facts = vec![
            event("a", None, DAY),
            event("a", None, 5 * DAY),
            a_tied,
            event("a", None, 6 * DAY),
            event("a", None, 20 * DAY),
            // Out of the one-day frame exactly at `now`, and inside it.
            event("b", None, 9 * DAY),
            event("b", None, 9 * DAY + 1),
            event("b", None, 9 * DAY + 2),
            event("b", None, 11 * DAY),
            // Before, inside and after the fixed range (the last not yet occurred).
            event("c", None, DAY),
            event("c", None, 3 * DAY),
            event("c", None, 4 * DAY),
            event("c", None, 30 * DAY),
            event("z", None, DAY),
        ];
        let mut pruned = facts.clone();
        prune(&criteria.event_leaves(), &mut pruned, now);
        let kept: Vec<(&str, i64, i64)> = pruned
            .iter()
            .map(|e| (e.event_type.as_str(), e.occurred_ms / DAY, e.id.hi))
            .collect();
        assert_eq!(
            kept,
            [
                ("a", 5, 5 * DAY),
                ("a", 6, 6 * DAY),
                ("a", 20, 20 * DAY),
                ("b", 9, 9 * DAY + 2),
                ("b", 11, 11 * DAY),
                ("c", 4, 4 * DAY),
            ]
        );
        for t in [now, now + DAY, 20 * DAY, 40 * DAY] {
            let full = Person {
                events: facts.clone(),
                ..Person::default()
            };
            let small = Person {
                events: pruned.clone(),
                ..Person::default()
            };
            assert_eq!(criteria.evaluate(&small, t), criteria.evaluate(&full, t));
            assert_eq!(
                criteria.next_change(&small, t),
                criteria.next_change(&full, t)
            );
        }
    }

    #[test]
    fn explains_each_kind_of_leaf() {
        let criteria = parse(json!({"all": [
            {"event": {"type": "dashlane_*", "count": {"at_least": 2}, "within": "P3D"}},
            {"any": [
                {"group": {"member_of": 9}},
                {"user": {"attribute": "department", "equals": "sales"}},
                {"group": {"member_of": 7}}
            ]},
            {"not": {"event": {"type": "phish"}}}
        ]}));
        let mut person = Person {
            events: vec![
                event("dashlane_a", None, 0),
                event("dashlane_b", None, 2 * DAY),
                event("dashlane_c", None, 3 * DAY),
                event("dashlane_d", None, 9 * DAY),
                event("other", None, 3 * DAY),
            ],
            groups: vec![7],
            ..Person::default()
        };
        person.attributes.insert("department", "Sales".into());
        let now = 3 * DAY;
        let evidence = criteria.explain(&person, now);
        assert_eq!(
            evidence,
            [
                Evidence::Events {
                    path: "$.all[0].event".into(),
                    event_type: "dashlane_*".into(),
                    count: 2,
                    events: vec![
                        EventId { hi: 3 * DAY, lo: 0 },
                        EventId { hi: 2 * DAY, lo: 0 }
                    ],
                },
                Evidence::Attribute {
                    path: "$.all[1].any[1].user".into(),
                    attribute: "department".into(),
                    value: "Sales".into(),
                },
                Evidence::Not {
                    path: "$.all[2].not".into(),
                },
            ]
        );
        person.attributes.clear();
        assert_eq!(
            criteria.explain(&person, now)[1],
            Evidence::Member {
                path: "$.all[1].any[2].group".into(),
                group: 7,
            }
        );
        person.events.push(event("phish", None, DAY));
        assert!(!criteria.evaluate(&person, now));
        assert!(criteria.explain(&person, now).is_empty());
    }

    #[test]
    fn evidence_serializes_with_its_kind() {
        let id = EventId {
            hi: 0x0190_0000_0000_7000,
            lo: 0x8000_0000_0000_0001_u64 as i64,
        };
        let evidence = Evidence::Events {
            path: "$.event".into(),
            event_type: "phish".into(),
            count: 1,
            events: vec![id],
        };
        assert_eq!(
            serde_json::to_value(&evidence).unwrap(),
            json!({"kind": "events", "path": "$.event", "event_type": "phish", "count": 1,
                   "events": ["01900000-0000-7000-8000-000000000001"]})
        );
        assert_eq!(
            serde_json::to_value(Evidence::Not {
                path: "$.not".into()
            })
            .unwrap(),
            json!({"kind": "not", "path": "$.not"})
        );
    }

    #[test]
    fn matches_at_follows_the_days() {
        let criteria = parse(json!({"event": {"type": "a", "within": "P3D"}}));
        let person = Person {
            events: vec![event("a", None, 2 * DAY), event("a", None, 4 * DAY)],
            ..Person::default()
        };
        let days: Vec<i64> = (0..10).map(|d| d * DAY).collect();
        assert_eq!(
            matches_at(&criteria, &person, &days),
            [
                false, false, true, true, true, true, true, false, false, false
            ]
        );
        assert!(matches_at(&criteria, &person, &[]).is_empty());
    }

    /// Events on a coarse grid as well, so that ties and frame edges happen; ids follow
    /// the order of generation.
    fn tied_events_strategy() -> impl Strategy<Value = Vec<EventFact>> {
        prop::collection::vec(
            (
                prop_oneof![Just("a"), Just("ab"), Just("b")],
                prop_oneof![Just(None), Just(Some("x")), Just(Some("y"))],
                prop_oneof![0i64..(60 * DAY), (0i64..120).prop_map(|h| h * DAY / 2)],
            )
                .prop_map(|(kind, description, at)| event(kind, description, at)),
            0..20,
        )
        .prop_map(|mut events| {
            for (i, e) in events.iter_mut().enumerate() {
                e.id = EventId {
                    hi: i as i64,
                    lo: 0,
                };
            }
            events
        })
    }

    /// Event leaves mixed with user and group leaves.
    fn mixed_criteria_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            3 => criteria_strategy(),
            1 => prop_oneof![Just("x"), Just("y")]
                .prop_map(|d| json!({"user": {"attribute": "department", "equals": d}})),
            1 => prop_oneof![Just("P3D"), Just("P1M")].prop_map(|p| json!({"user": {
                "attribute": "employee_start_date", "within_last": p}})),
            1 => (1i64..3).prop_map(|g| json!({"group": {"member_of": g}})),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(|c| json!({"all": c})),
                prop::collection::vec(inner.clone(), 1..4).prop_map(|c| json!({"any": c})),
                inner.prop_map(|c| json!({"not": c})),
            ]
        })
    }

    fn person_strategy() -> impl Strategy<Value = Person> {
        (
            tied_events_strategy(),
            prop_oneof![Just(None), Just(Some("X")), Just(Some("y"))],
            prop::option::of(0i64..60),
            prop::collection::vec(1i64..3, 0..2),
        )
            .prop_map(|(events, department, start_day, groups)| {
                let mut person = Person {
                    events,
                    groups,
                    ..Person::default()
                };
                if let Some(d) = department {
                    person.attributes.insert("department", d.to_owned());
                }
                if let Some(day) = start_day {
                    let date = chrono::DateTime::from_timestamp_millis(day * DAY)
                        .unwrap_or_default()
                        .date_naive()
                        .to_string();
                    person.attributes.insert("employee_start_date", date);
                }
                person
            })
    }

    /// Every instant at which an event enters or leaves the frame of a leaf it matches.
    fn frame_edges(criteria: &Criteria, events: &[EventFact]) -> Vec<i64> {
        let mut out = Vec::new();
        for leaf in criteria.event_leaves() {
            for event in events.iter().filter(|e| leaf.matches(e)) {
                out.push(event.occurred_ms);
                if let Window::Rolling(period) = leaf.window {
                    out.push(exit_instant(&period, event.occurred_ms));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Answers and next changes after pruning at `now` equal those of the full facts at
    /// `now`, at each later change of the full facts, and at `later`.
    fn pruning_agrees(
        criteria: &Criteria,
        events: &[EventFact],
        now: i64,
        later: i64,
    ) -> Result<(), TestCaseError> {
        let mut pruned = events.to_vec();
        prune(&criteria.event_leaves(), &mut pruned, now);
        let full = Person {
            events: events.to_vec(),
            ..Person::default()
        };
        let small = Person {
            events: pruned,
            ..Person::default()
        };
        let mut instants = vec![later];
        let mut t = Some(now);
        while let Some(at) = t.filter(|_| instants.len() < 8) {
            instants.push(at);
            t = criteria.next_change(&full, at);
        }
        for t in instants {
            prop_assert_eq!(
                criteria.evaluate(&small, t),
                criteria.evaluate(&full, t),
                "at {} pruned at {}",
                t,
                now
            );
            prop_assert_eq!(
                criteria.next_change(&small, t),
                criteria.next_change(&full, t),
                "at {} pruned at {}",
                t,
                now
            );
        }
        Ok(())
    }

    proptest! {
        /// After pruning at `now`, the answers and next changes are those of the full
        /// facts at `now`, at every later change, and at a later instant picked at random;
        /// `now` is random and also every instant an event enters or leaves a frame, ±1 ms.
        #[test]
        fn pruning_changes_no_answer(
            criteria in criteria_strategy(),
            events in tied_events_strategy(),
            now in prop_oneof![0i64..(90 * DAY), (0i64..180).prop_map(|h| h * DAY / 2)],
            later in 0i64..(60 * DAY),
        ) {
            let criteria = Criteria::parse(&criteria).unwrap();
            let mut nows = vec![now];
            for at in frame_edges(&criteria, &events) {
                nows.extend([at - 1, at, at + 1]);
            }
            for now in nows {
                pruning_agrees(&criteria, &events, now, now + later)?;
            }
        }

        /// Evidence comes exactly when the criteria hold, and each event leaf's count is
        /// the number of events it names.
        #[test]
        fn evidence_iff_the_criteria_hold(
            criteria in mixed_criteria_strategy(),
            person in person_strategy(),
            now in 0i64..(90 * DAY),
        ) {
            let criteria = Criteria::parse(&criteria).unwrap();
            let evidence = criteria.explain(&person, now);
            prop_assert_eq!(evidence.is_empty(), !criteria.evaluate(&person, now));
            for item in &evidence {
                if let Evidence::Events { count, events, .. } = item {
                    prop_assert_eq!(*count, events.len());
                    let known = ids(&person.events);
                    prop_assert!(events.iter().all(|id| known.contains(id)));
                }
            }
        }

        /// The series equals evaluating at every instant.
        #[test]
        fn matches_at_equals_evaluating_each_instant(
            criteria in mixed_criteria_strategy(),
            person in person_strategy(),
            start in prop_oneof![0i64..(30 * DAY), (0i64..60).prop_map(|h| h * DAY / 2)],
            steps in prop::collection::vec(prop_oneof![3 => Just(DAY), 3 => Just(DAY / 2), 1 => 0i64..(3 * DAY)], 0..40),
        ) {
            let criteria = Criteria::parse(&criteria).unwrap();
            let instants: Vec<i64> = steps.iter()
                .scan(start, |t, step| { *t += step; Some(*t) })
                .collect();
            let direct: Vec<bool> = instants.iter().map(|t| criteria.evaluate(&person, *t)).collect();
            prop_assert_eq!(matches_at(&criteria, &person, &instants), direct);
        }
    }
}
