//! People: the attributes of the Reporting API's user record, and parsing changes to them.

use crate::FieldError;
use crate::identity::{Email, normalize_identity};
use crate::time::parse_date;
use serde_json::Value;

/// Free-text attributes, named as the Reporting API names them (and as stored).
pub const TEXT_FIELDS: &[&str] = &[
    "employee_number",
    "first_name",
    "last_name",
    "job_title",
    "phone_number",
    "extension",
    "mobile_phone_number",
    "location",
    "division",
    "department",
    "organization",
    "manager_name",
    "manager_email",
    "language",
    "comment",
    "custom_field_1",
    "custom_field_2",
    "custom_field_3",
    "custom_field_4",
];

/// Date attributes, `YYYY-MM-DD`.
pub const DATE_FIELDS: &[&str] = &["employee_start_date", "custom_date_1", "custom_date_2"];

pub const MAX_TEXT: usize = 255;
pub const MAX_COMMENT: usize = 2000;
pub const MAX_ALIASES: usize = 50;

/// A set of changes to a person: `Some(None)` clears an attribute, absence keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    pub email: Option<Email>,
    /// (field, value) for fields of [`TEXT_FIELDS`] and [`DATE_FIELDS`], dates as `YYYY-MM-DD`.
    pub attributes: Vec<(&'static str, Option<String>)>,
    /// Replaces the whole alias list when present.
    pub aliases: Option<Vec<String>>,
    pub status: Option<UserStatus>,
}

/// Whether a person is current. Archived people keep their history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Archived,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

impl UserChanges {
    /// Parses a JSON object of changes. Unknown fields are refused, so a typo is not lost.
    pub fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(object) = value.as_object() else {
            return Err(vec![FieldError::new("", "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let mut changes = UserChanges::default();
        for (key, value) in object {
            if let Err(e) = changes.set_json(key, value) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }

    /// Parses one CSV record given its header names; empty cells clear the attribute.
    pub fn from_record<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut changes = UserChanges::default();
        for (key, cell) in pairs {
            let key = key.trim();
            let result = if key == "aliases" {
                let list = cell
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| Value::String(a.to_owned()))
                    .collect();
                changes.set_json(key, &Value::Array(list))
            } else if key == "status" && cell.trim().is_empty() {
                Ok(())
            } else {
                changes.set_json(key, &Value::String(cell.to_owned()))
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }

    fn set_json(&mut self, key: &str, value: &Value) -> Result<(), FieldError> {
        if key == "email" {
            let text = value
                .as_str()
                .ok_or_else(|| FieldError::new("email", "must be a string"))?;
            let email = Email::parse(text).map_err(|e| FieldError::new("email", e.to_string()))?;
            self.email = Some(email);
            return Ok(());
        }
        if key == "aliases" {
            self.aliases = Some(parse_aliases(value)?);
            return Ok(());
        }
        if key == "status" {
            let status = value
                .as_str()
                .and_then(UserStatus::parse)
                .ok_or_else(|| FieldError::new("status", "must be `active` or `archived`"))?;
            self.status = Some(status);
            return Ok(());
        }
        if let Some(field) = TEXT_FIELDS.iter().find(|f| **f == key) {
            let max = if *field == "comment" {
                MAX_COMMENT
            } else {
                MAX_TEXT
            };
            // Counted as given (before trimming), as the API's schema counts (`maxLength`).
            if let Value::String(raw) = value
                && raw.chars().count() > max
            {
                return Err(FieldError::new(
                    *field,
                    format!("must be at most {max} characters"),
                ));
            }
            let text = optional_text(field, value)?;
            if let Some(text) = &text
                && *field == "manager_email"
            {
                Email::parse(text).map_err(|e| FieldError::new(*field, e.to_string()))?;
            }
            self.attributes.push((field, text));
            return Ok(());
        }
        if let Some(field) = DATE_FIELDS.iter().find(|f| **f == key) {
            let text = optional_text(field, value)?;
            if let Some(text) = &text
                && parse_date(text).is_none()
            {
                return Err(FieldError::new(*field, "must be a date written YYYY-MM-DD"));
            }
            self.attributes.push((field, text));
            return Ok(());
        }
        Err(FieldError::new(
            key,
            "is not a user field (see the user record of the Reporting API)",
        ))
    }

    /// The email to create a user with, or the error saying it is missing.
    pub fn require_email(&self) -> Result<&Email, FieldError> {
        self.email
            .as_ref()
            .ok_or_else(|| FieldError::new("email", "is required"))
    }
}

fn optional_text(field: &str, value: &Value) -> Result<Option<String>, FieldError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => {
            let text = text.trim();
            Ok((!text.is_empty()).then(|| text.to_owned()))
        }
        _ => Err(FieldError::new(field, "must be a string or null")),
    }
}

fn parse_aliases(value: &Value) -> Result<Vec<String>, FieldError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(FieldError::new("aliases", "must be an array of strings")),
    };
    if items.len() > MAX_ALIASES {
        return Err(FieldError::new(
            "aliases",
            format!("must hold at most {MAX_ALIASES} entries"),
        ));
    }
    let mut aliases: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = item
            .as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TEXT)
            .ok_or_else(|| {
                FieldError::new(
                    format!("aliases[{i}]"),
                    "must be a non-empty string of at most 255 characters",
                )
            })?;
        if !aliases
            .iter()
            .any(|a| normalize_identity(a) == normalize_identity(text))
        {
            aliases.push(text.to_owned());
        }
    }
    Ok(aliases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_fields_are_measured_as_given() {
        let padded = format!("{}x", " ".repeat(255));
        let err = UserChanges::from_json(&json!({ "custom_field_4": padded })).unwrap_err();
        assert_eq!(err[0].field, "custom_field_4");
        let ok =
            UserChanges::from_json(&json!({ "custom_field_4": format!(" {} ", "x".repeat(253)) }));
        assert!(ok.is_ok());
    }

    #[test]
    fn parses_json_changes() {
        let changes = UserChanges::from_json(&json!({
            "email":"Ana@Acme.Example","first_name":" Ana ","department":null,
            "employee_start_date":"2024-02-01","aliases":["ana","ANA","ana.l@acme.example"]}))
        .unwrap();
        assert_eq!(
            changes.require_email().unwrap().as_str(),
            "Ana@Acme.Example"
        );
        assert!(
            changes
                .attributes
                .contains(&("first_name", Some("Ana".into())))
        );
        assert!(changes.attributes.contains(&("department", None)));
        assert_eq!(changes.aliases.unwrap(), ["ana", "ana.l@acme.example"]);
    }

    #[test]
    fn names_bad_fields() {
        let errors = UserChanges::from_json(&json!({
            "email":"nope","employee_start_date":"01/02/2024","title":"x",
            "manager_email":"boss","aliases":["ok", 3]}))
        .unwrap_err();
        let mut fields: Vec<_> = errors.iter().map(|e| e.field.clone()).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "aliases[1]",
                "email",
                "employee_start_date",
                "manager_email",
                "title"
            ]
        );
    }

    #[test]
    fn parses_csv_records() {
        let changes = UserChanges::from_record([
            ("email", "bo@acme.example"),
            ("department", ""),
            ("aliases", "bo; bo.b@acme.example ;"),
        ])
        .unwrap();
        assert!(changes.attributes.contains(&("department", None)));
        assert_eq!(changes.aliases.unwrap(), ["bo", "bo.b@acme.example"]);
        assert!(UserChanges::from_record([("email", "x")]).is_err());
    }
}
