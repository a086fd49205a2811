//! Who an event is about: an email address or another identity (a device user name),
//! matched case-insensitively after trimming.

use serde::Serialize;

/// A syntactically plausible email address, trimmed, case kept for display.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 254 characters")]
    TooLong,
    #[error("is not an email address (expected name@domain)")]
    Malformed,
}

impl Email {
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        // Counted as given, in characters, as the API's schema counts (`maxLength`).
        if text.chars().count() > 254 {
            return Err(EmailError::TooLong);
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        let (local, domain) = text.rsplit_once('@').ok_or(EmailError::Malformed)?;
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>';
        if local.is_empty()
            || domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || text.chars().any(bad_char)
        {
            return Err(EmailError::Malformed);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which this address is matched.
    pub fn normalized(&self) -> String {
        normalize_identity(&self.0)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The match key of any identity: trimmed and lower-cased.
pub fn normalize_identity(text: &str) -> String {
    text.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let email = Email::parse("  Ana.Lima@Acme.Example ").unwrap();
        assert_eq!(email.as_str(), "Ana.Lima@Acme.Example");
        assert_eq!(email.normalized(), "ana.lima@acme.example");
        assert_eq!(email.domain(), "Acme.Example");
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        assert_eq!(Email::parse(" "), Err(EmailError::Empty));
        assert_eq!(Email::parse("ana"), Err(EmailError::Malformed));
        assert_eq!(Email::parse("@acme.example"), Err(EmailError::Malformed));
        assert_eq!(Email::parse("ana@"), Err(EmailError::Malformed));
        assert_eq!(
            Email::parse("a na@acme.example"),
            Err(EmailError::Malformed)
        );
        assert_eq!(
            Email::parse(&format!("{}@x.io", "a".repeat(260))),
            Err(EmailError::TooLong)
        );
        // Counted in characters as given, as the API's schema does: spaces around count,
        // and a long name in another script is not measured in bytes.
        let padded = format!("{}ana@x.io", " ".repeat(250));
        assert_eq!(Email::parse(&padded), Err(EmailError::TooLong));
        let wide = format!("{}@x.io", "ä".repeat(200));
        assert!(Email::parse(&wide).is_ok());
    }
}
