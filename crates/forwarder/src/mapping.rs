//! From an audit-log record to a User Event API event, as a TOML mapping file says
//! (`mapping.toml` in this crate is the default, and documents every key).

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The mapping the forwarder ships with.
pub const DEFAULT: &str = include_str!("../mapping.toml");

/// The User Event API's limits, checked here so that a record the target would refuse is
/// dead-lettered at once instead of costing a round trip.
const MAX_EXTERNAL_ID: usize = 64;
const MAX_DESCRIPTION: usize = 255;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: Option<String>,
    #[serde(default)]
    event_type_prefix: String,
    log_type: String,
    external_id: String,
    occurred: String,
    target_user: String,
    description: Option<DescriptionFile>,
    events: HashMap<String, EventFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptionFile {
    field: String,
    #[serde(default)]
    values: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    event_type: Option<String>,
    risk_level: Option<i64>,
}

/// A parsed mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    source: Option<String>,
    log_type: Path,
    external_id: Path,
    occurred: Path,
    target_user: Path,
    description: Option<(Path, HashMap<String, String>)>,
    /// Log type → (event type, risk level).
    events: HashMap<String, (String, Option<i64>)>,
}

/// A dotted field path, split once.
#[derive(Debug, Clone)]
struct Path(Vec<String>);

impl Path {
    fn new(text: &str) -> Self {
        Self(text.split('.').map(str::to_owned).collect())
    }

    fn get<'a>(&self, record: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.0.split_first()?;
        rest.iter()
            .try_fold(record.get(first)?, |value, key| value.get(key))
            .filter(|v| !v.is_null())
    }

    fn name(&self) -> String {
        self.0.join(".")
    }
}

/// What became of one record.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    /// An event to send (its JSON text) and when it happened.
    Event(Event),
    /// Not a log type the mapping sends.
    Ignored,
    /// A record the target would refuse, and why.
    Invalid(String),
}

/// An event ready for the outbox.
#[derive(Debug, PartialEq)]
pub struct Event {
    pub external_id: String,
    pub occurred_ms: i64,
    /// `target_user` is not an email address (a device's user name).
    pub device_user: bool,
    /// The event as the User Event API takes it.
    pub json: String,
}

impl Mapping {
    /// Parses a mapping file; the error names the bad key.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text)?;
        let mut events = HashMap::with_capacity(file.events.len());
        for (log_type, entry) in file.events {
            if let Some(level) = entry.risk_level
                && !(-10..=10).contains(&level)
            {
                anyhow::bail!("events.{log_type}.risk_level is {level}; it must be -10 to 10");
            }
            let event_type = entry
                .event_type
                .unwrap_or_else(|| format!("{}{log_type}", file.event_type_prefix));
            if event_type.trim().is_empty() {
                anyhow::bail!("events.{log_type}.event_type is empty");
            }
            events.insert(log_type, (event_type, entry.risk_level));
        }
        if events.is_empty() {
            anyhow::bail!("the mapping lists no [events.LOG_TYPE]: nothing would be sent");
        }
        Ok(Self {
            source: file.source.filter(|s| !s.trim().is_empty()),
            log_type: Path::new(&file.log_type),
            external_id: Path::new(&file.external_id),
            occurred: Path::new(&file.occurred),
            target_user: Path::new(&file.target_user),
            description: file.description.map(|d| (Path::new(&d.field), d.values)),
            events,
        })
    }

    /// The shipped mapping.
    pub fn default_mapping() -> Self {
        Self::parse(DEFAULT).expect("the shipped mapping parses")
    }

    /// Maps one record (a JSON object).
    pub fn map(&self, record: &Map<String, Value>) -> Mapped {
        let Some(log_type) = self.log_type.get(record).and_then(Value::as_str) else {
            return Mapped::Invalid(format!("no `{}` string", self.log_type.name()));
        };
        let Some((event_type, risk_level)) = self.events.get(log_type) else {
            return Mapped::Ignored;
        };
        let external_id = match self.external_id.get(record) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Mapped::Invalid(format!(
                    "no `{}`: without it a redelivery could store the event twice",
                    self.external_id.name()
                ));
            }
        };
        if external_id.chars().count() > MAX_EXTERNAL_ID {
            return Mapped::Invalid(format!(
                "`{}` is longer than {MAX_EXTERNAL_ID} characters",
                self.external_id.name()
            ));
        }
        let Some(occurred_ms) = self.occurred.get(record).and_then(epoch_ms) else {
            return Mapped::Invalid(format!(
                "`{}` is not epoch milliseconds or an RFC 3339 time",
                self.occurred.name()
            ));
        };
        let Some(occurred) = chrono::DateTime::from_timestamp_millis(occurred_ms) else {
            return Mapped::Invalid(format!("`{}` is out of range", self.occurred.name()));
        };
        let target = match self.target_user.get(record).and_then(Value::as_str) {
            Some(t) if !t.trim().is_empty() => t.trim(),
            _ => {
                return Mapped::Invalid(format!(
                    "no `{}`: the event would name no one",
                    self.target_user.name()
                ));
            }
        };
        let mut event = Map::new();
        event.insert("target_user".into(), target.into());
        event.insert("event_type".into(), event_type.as_str().into());
        event.insert("external_id".into(), external_id.as_str().into());
        if let Some(source) = &self.source {
            event.insert("source".into(), source.as_str().into());
        }
        if let Some((path, values)) = &self.description
            && let Some(Value::String(raw)) = path.get(record)
        {
            let text = values.get(raw).unwrap_or(raw);
            if text.chars().count() > MAX_DESCRIPTION {
                return Mapped::Invalid(format!(
                    "the description is longer than {MAX_DESCRIPTION} characters"
                ));
            }
            event.insert("description".into(), text.as_str().into());
        }
        event.insert(
            "occurred_date".into(),
            occurred
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        if let Some(level) = risk_level {
            event.insert("risk_level".into(), (*level).into());
        }
        Mapped::Event(Event {
            external_id,
            occurred_ms,
            device_user: !target.contains('@'),
            json: Value::Object(event).to_string(),
        })
    }
}

/// Epoch milliseconds from a number, or from an RFC 3339 string.
fn epoch_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(record: Value) -> Mapped {
        Mapping::default_mapping().map(record.as_object().expect("an object"))
    }

    #[test]
    fn the_reference_record_maps_to_the_catalog_event() {
        let record = json!({"uuid":"7c0f-1","team_id":123,"category":"user_settings",
            "log_type":"user_typed_compromised_password","date_time":1732100000000_i64,
            "properties":{"domain_url":"example.com","health_status":"compromised",
            "fill_type":"manual","login_status":"logged_in"},"author_user_id":456,
            "author_login":"ana@acme.example","schema_version":"1.0.0"});
        let Mapped::Event(event) = map(record) else {
            panic!("not an event")
        };
        assert!(!event.device_user);
        let sent: Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(
            sent,
            json!({"target_user":"ana@acme.example",
                "event_type":"dashlane_user_typed_compromised_password","external_id":"7c0f-1",
                "source":"Dashlane","description":"logged in to Dashlane",
                "occurred_date":"2024-11-20T10:53:20.000Z","risk_level":8})
        );
    }

    #[test]
    fn device_users_other_log_types_and_bad_records() {
        let device = json!({"uuid":"u2","log_type":"user_typed_weak_password",
            "date_time":1732100000000_i64,"author_login":"alaptop",
            "properties":{"login_status":"no_account"}});
        let Mapped::Event(event) = map(device) else {
            panic!("not an event")
        };
        assert!(event.device_user);
        assert!(event.json.contains("\"no Dashlane account\""));
        let other = json!({"uuid":"u3","log_type":"user_changed_settings",
            "date_time":1,"author_login":"a@b.c"});
        assert_eq!(map(other), Mapped::Ignored);
        let no_uuid = json!({"log_type":"user_typed_weak_password","date_time":1,
            "author_login":"a@b.c"});
        assert!(matches!(map(no_uuid), Mapped::Invalid(why) if why.contains("uuid")));
    }

    #[test]
    fn a_bad_mapping_names_its_fault() {
        let err = Mapping::parse(&DEFAULT.replace("risk_level = 9", "risk_level = 11"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user_entered_credential_phishing_website_ai"),
            "{err}"
        );
        let err = Mapping::parse("source = 1").unwrap_err().to_string();
        assert!(err.contains("source"), "{err}");
    }
}
