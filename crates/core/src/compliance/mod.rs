//! Compliance: which controls of which frameworks training satisfies ([`catalog`]), what
//! an account requires of its people for each ([`requirement`]), and whether a person
//! meets a requirement at an instant ([`evaluate`]).
//!
//! Controls map to requirements: most controls of every framework ask for the same
//! yearly awareness training, so a person is evaluated once per requirement, not once per
//! control, and a control's status is its requirement's.

pub mod catalog;
pub mod evaluate;
pub mod evidence;
pub mod remote;
pub mod requirement;

pub use catalog::{CONTROLS, Control, FRAMEWORKS, Framework};
pub use evaluate::{Evaluation, Person, Record, Status, Verdict, evaluate};
pub use requirement::{Recurrence, Requirement, RequirementKind, Scope};
