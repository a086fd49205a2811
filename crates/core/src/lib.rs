//! coachloop-core: the domain types and pure logic of coachloop.
//!
//! Nothing here performs I/O, spawns tasks or reads the wall clock; time arrives through
//! [`clock::Clock`]. Everything that parses outside input returns a typed value or an
//! error that names the bad part.

pub mod catalog;
pub mod clock;
pub mod compliance;
pub mod content;
pub mod criteria;
pub mod destination;
pub mod duration;
pub mod enrolment;
pub mod event;
pub mod event_id;
pub mod html;
pub mod identity;
pub mod ids;
pub mod notice;
pub mod risk;
pub mod scim;
pub mod scope;
pub mod success;
pub mod time;
pub mod user;
pub mod xapi;

/// One problem with one field of an input, as reported to the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
