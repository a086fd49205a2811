//! Events of the User Event API: parsing a submitted event, and the risk factor.

use crate::FieldError;
use crate::identity::normalize_identity;
use crate::time::{date_start_ms, parse_date, parse_date_or_timestamp};
use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

pub const MAX_EXTERNAL_ID: usize = 64;
pub const MAX_DESCRIPTION: usize = 255;
pub const MAX_SHORT_TEXT: usize = 255;
pub const MAX_TYPE_NAME: usize = 100;
pub const MAX_METADATA_BYTES: usize = 4096;

/// How an event's risk contribution fades before its expiry date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayMode {
    /// Falls linearly from whole at `occurred_date` to zero at `risk_expire_date`.
    Linear = 0,
    /// Stays whole until `risk_expire_date`, then counts no more.
    Constant = 1,
}

impl DecayMode {
    pub fn from_i64(value: i64) -> Option<Self> {
        match value {
            0 => Some(Self::Linear),
            1 => Some(Self::Constant),
            _ => None,
        }
    }
}

/// The risk part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Risk {
    /// −10 … 10.
    pub level: i64,
    /// As sent; `None` means the default, linear decay.
    pub decay_mode: Option<DecayMode>,
    pub expire_date: NaiveDate,
}

impl Risk {
    /// The share (0 … 1) of `level` that still counts at `now_ms`, for an event that
    /// occurred at `occurred_ms`.
    pub fn factor(&self, occurred_ms: i64, now_ms: i64) -> f64 {
        let expire_ms = date_start_ms(self.expire_date);
        if now_ms >= expire_ms {
            return 0.0;
        }
        if now_ms <= occurred_ms {
            return 1.0;
        }
        match self.decay_mode.unwrap_or(DecayMode::Linear) {
            DecayMode::Constant => 1.0,
            DecayMode::Linear => {
                let span = (expire_ms - occurred_ms) as f64;
                ((expire_ms - now_ms) as f64 / span).clamp(0.0, 1.0)
            }
        }
    }
}

/// A submitted event that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// As sent, trimmed.
    pub target_user: String,
    /// The match key of `target_user`.
    pub target_norm: String,
    pub event_type: String,
    pub external_id: Option<String>,
    pub source: Option<String>,
    pub description: Option<String>,
    pub occurred_ms: i64,
    pub risk: Option<Risk>,
    /// A JSON object, as text.
    pub metadata: Option<String>,
}

impl NewEvent {
    /// Validates one submitted event. Every bad field is reported.
    pub fn parse(raw: &RawEvent, now: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fields = Fields {
            raw,
            errors: &mut errors,
        };

        let target_user = fields.text("target_user", MAX_SHORT_TEXT, true);
        let event_type = fields.text("event_type", MAX_TYPE_NAME, true);
        // The same rule as `parse_type_name`: an event may create its type.
        if event_type
            .as_deref()
            .is_some_and(|name| name.chars().any(char::is_control))
        {
            fields.errors.push(FieldError::new(
                "event_type",
                "must not contain control characters",
            ));
        }
        let external_id = fields.text("external_id", MAX_EXTERNAL_ID, false);
        let source = fields.text("source", MAX_SHORT_TEXT, false);
        let description = fields.text("description", MAX_DESCRIPTION, false);
        let occurred = fields.occurred_date(now);
        let level = fields.integer("risk_level", -10, 10);
        let decay = fields.integer("risk_decay_mode", 0, 1);
        let expire = fields.date("risk_expire_date");
        let metadata = fields.metadata();

        let occurred_day = occurred.date_naive();
        if let Some(expire) = expire
            && expire < occurred_day
        {
            errors.push(FieldError::new(
                "risk_expire_date",
                "must not be before occurred_date",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let target_user = target_user.unwrap_or_default();
        let risk = level.map(|level| Risk {
            level,
            decay_mode: decay.and_then(DecayMode::from_i64),
            expire_date: expire.unwrap_or_else(|| {
                occurred_day
                    .checked_add_months(Months::new(1))
                    .unwrap_or(occurred_day)
            }),
        });
        Ok(Self {
            target_norm: normalize_identity(&target_user),
            target_user,
            event_type: event_type.unwrap_or_default(),
            external_id,
            source,
            description,
            occurred_ms: occurred.timestamp_millis(),
            risk,
            metadata,
        })
    }
}

/// The fields of a submitted event as sent, any JSON type each (checked by
/// [`NewEvent::parse`]). Unknown fields are skipped without being parsed into values.
#[derive(Debug, Default, Deserialize)]
pub struct RawEvent {
    target_user: Option<Value>,
    event_type: Option<Value>,
    external_id: Option<Value>,
    source: Option<Value>,
    description: Option<Value>,
    occurred_date: Option<Value>,
    risk_level: Option<Value>,
    risk_decay_mode: Option<Value>,
    risk_expire_date: Option<Value>,
    metadata: Option<Value>,
}

impl RawEvent {
    fn get(&self, name: &str) -> Option<&Value> {
        match name {
            "target_user" => self.target_user.as_ref(),
            "event_type" => self.event_type.as_ref(),
            "external_id" => self.external_id.as_ref(),
            "source" => self.source.as_ref(),
            "description" => self.description.as_ref(),
            "occurred_date" => self.occurred_date.as_ref(),
            "risk_level" => self.risk_level.as_ref(),
            "risk_decay_mode" => self.risk_decay_mode.as_ref(),
            "risk_expire_date" => self.risk_expire_date.as_ref(),
            "metadata" => self.metadata.as_ref(),
            _ => None,
        }
    }
}

/// Reads typed fields out of an event, collecting errors instead of stopping.
struct Fields<'a> {
    raw: &'a RawEvent,
    errors: &'a mut Vec<FieldError>,
}

impl Fields<'_> {
    fn present(&self, name: &str) -> Option<&Value> {
        self.raw.get(name).filter(|v| !v.is_null())
    }

    fn text(&mut self, name: &str, max: usize, required: bool) -> Option<String> {
        match self.present(name) {
            None if required => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            None => None,
            Some(Value::String(text)) => {
                // Counted as given (before trimming), as the schema counts (`maxLength`).
                let too_long = text.chars().count() > max;
                let text = text.trim();
                if text.is_empty() && required {
                    self.errors.push(FieldError::new(name, "must not be empty"));
                    None
                } else if too_long {
                    self.errors.push(FieldError::new(
                        name,
                        format!("must be at most {max} characters"),
                    ));
                    None
                } else if text.is_empty() {
                    None
                } else {
                    Some(text.to_owned())
                }
            }
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    fn integer(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let value = self.present(name)?;
        match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.errors.push(FieldError::new(
                    name,
                    format!("must be an integer from {min} to {max}"),
                ));
                None
            }
        }
    }

    fn date(&mut self, name: &str) -> Option<NaiveDate> {
        let value = self.present(name)?;
        match value.as_str().and_then(parse_date) {
            Some(date) => Some(date),
            None => {
                self.errors
                    .push(FieldError::new(name, "must be a date written YYYY-MM-DD"));
                None
            }
        }
    }

    fn occurred_date(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(value) = self.present("occurred_date") else {
            return now;
        };
        match value.as_str().and_then(parse_date_or_timestamp) {
            Some(at) => at,
            None => {
                self.errors.push(FieldError::new(
                    "occurred_date",
                    "must be YYYY-MM-DD or an RFC 3339 timestamp such as 2026-11-01T14:39:40Z",
                ));
                now
            }
        }
    }

    fn metadata(&mut self) -> Option<String> {
        let value = self.present("metadata")?;
        if !value.is_object() {
            self.errors
                .push(FieldError::new("metadata", "must be a JSON object"));
            return None;
        }
        let text = value.to_string();
        if text.len() > MAX_METADATA_BYTES {
            self.errors.push(FieldError::new(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
            ));
            return None;
        }
        Some(text)
    }
}

/// A valid event type name: trimmed, 1 to 100 characters, no control characters.
pub fn parse_type_name(text: &str) -> Result<String, FieldError> {
    let name = text.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    // Counted as given (before trimming), as the schema counts (`maxLength`).
    if text.chars().count() > MAX_TYPE_NAME {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_TYPE_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
    }

    fn parse(value: Value, now: DateTime<Utc>) -> Result<NewEvent, Vec<FieldError>> {
        NewEvent::parse(&serde_json::from_value(value).unwrap(), now)
    }

    #[test]
    fn parses_a_full_event() {
        let event = parse(
            json!({"target_user":" Ana@Acme.Example ","event_type":"dashlane_user_typed_weak_password",
                "external_id":"x-1","source":"Dashlane","description":"logged in to Dashlane",
                "occurred_date":"2026-10-30","risk_level":4,"risk_decay_mode":1,
                "risk_expire_date":"2026-12-01","extra":"ignored"}),
            now(),
        )
        .unwrap();
        assert_eq!(event.target_user, "Ana@Acme.Example");
        assert_eq!(event.target_norm, "ana@acme.example");
        assert_eq!(event.external_id.as_deref(), Some("x-1"));
        assert_eq!(
            event.occurred_ms,
            Utc.with_ymd_and_hms(2026, 10, 30, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        let risk = event.risk.unwrap();
        assert_eq!(risk.level, 4);
        assert_eq!(risk.decay_mode, Some(DecayMode::Constant));
    }

    #[test]
    fn defaults_occurred_to_now_and_expiry_to_a_month_later() {
        let event = parse(
            json!({"target_user":"a@b.c","event_type":"t","risk_level":-2}),
            now(),
        )
        .unwrap();
        assert_eq!(event.occurred_ms, now().timestamp_millis());
        assert_eq!(
            event.risk.unwrap().expire_date,
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        );
    }

    #[test]
    fn names_every_bad_field() {
        let errors = parse(
            json!({"event_type":5,"external_id":"x".repeat(65),"risk_level":11,
                "risk_decay_mode":2,"occurred_date":"yesterday","risk_expire_date":"2026-13-01",
                "description":"d".repeat(256),"metadata":[1]}),
            now(),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "target_user",
                "event_type",
                "external_id",
                "description",
                "occurred_date",
                "risk_level",
                "risk_decay_mode",
                "risk_expire_date",
                "metadata"
            ]
        );
    }

    #[test]
    fn rejects_expiry_before_occurrence() {
        let errors = parse(
            json!({"target_user":"a","event_type":"t","occurred_date":"2026-10-30","risk_expire_date":"2026-10-29"}),
            now(),
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "risk_expire_date");
        let errors = parse(json!({"target_user":"a","event_type":"bell\u{7}"}), now()).unwrap_err();
        assert_eq!(errors[0].field, "event_type");
    }

    #[test]
    fn risk_factor_decays_by_mode() {
        let occurred = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let day = 86_400_000;
        let linear = Risk {
            level: 8,
            decay_mode: None,
            expire_date: NaiveDate::from_ymd_opt(2026, 11, 11).unwrap(),
        };
        assert_eq!(linear.factor(occurred, occurred), 1.0);
        assert!((linear.factor(occurred, occurred + 5 * day) - 0.5).abs() < 1e-9);
        assert_eq!(linear.factor(occurred, occurred + 10 * day), 0.0);
        let constant = Risk {
            decay_mode: Some(DecayMode::Constant),
            ..linear
        };
        assert_eq!(constant.factor(occurred, occurred + 9 * day), 1.0);
        assert_eq!(constant.factor(occurred, occurred + 10 * day), 0.0);
    }

    #[test]
    fn type_names() {
        assert_eq!(parse_type_name("  phish ").unwrap(), "phish");
        assert!(parse_type_name("").is_err());
        assert!(parse_type_name(&"x".repeat(101)).is_err());
        assert!(parse_type_name("a\u{7}").is_err());
    }
}
