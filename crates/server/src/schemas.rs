//! Schemas of the API description that state a parser's rule exactly, so that generated
//! clients and fuzzers accept what the server accepts and refuse what it refuses. Each is
//! written once here and named in `#[schema(schema_with = …)]`.
//!
//! The patterns are ECMA-262 (and Python `re`) regular expressions. Whitespace is spelled
//! out as the characters Rust's `str::trim` removes, since `\s` differs between engines.

use coachloop_core::event::{MAX_DESCRIPTION, MAX_EXTERNAL_ID, MAX_SHORT_TEXT, MAX_TYPE_NAME};
use coachloop_core::scope::Scope;
use coachloop_core::user::{DATE_FIELDS, MAX_ALIASES, MAX_COMMENT, MAX_TEXT, TEXT_FIELDS};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type,
};
use utoipa::openapi::{Array, KnownFormat, SchemaFormat};

/// What `str::trim` removes.
const WS: &str = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// A `YYYY-MM-DD` day that exists (29 February aside, which it leaves out).
const DAY: &str = "[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))";
/// What `char::is_control` is true of.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// Text that is trimmed, then must have 1 to `max` characters and no control character.
pub fn label_pattern(max: usize) -> String {
    format!(
        "^[{WS}]*[^{WS}{CONTROL}](?:[^{CONTROL}]{{0,{}}}[^{WS}{CONTROL}])?[{WS}]*$",
        max - 2
    )
}

fn string(pattern: String, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// An email address as `Email::parse` takes it: `name@domain`, trimmed, at most 254
/// characters, no whitespace, control character, `<` or `>`, the domain neither starting
/// nor ending with a dot.
pub fn email() -> Object {
    let plain = format!("{WS}{CONTROL}<>");
    let mut schema = string(
        format!("^[{WS}]*[^{plain}]+@[^{plain}@.](?:[^{plain}@]*[^{plain}@.])?[{WS}]*$"),
        "an email address",
    );
    schema.max_length = Some(254);
    schema
}

/// An email address, or blank (which clears it).
fn email_or_blank() -> Object {
    let mut schema = email();
    let pattern = schema.pattern.take().unwrap_or_default();
    let address = pattern.trim_start_matches('^').trim_end_matches('$');
    schema.pattern = Some(format!("^(?:[{WS}]*|{address})$"));
    schema
}

/// A token's name: 1 to 100 printable characters (trimmed).
pub fn token_name() -> Object {
    string(
        label_pattern(100),
        "a label, unique among the account's live tokens",
    )
}

/// An event type's name: 1 to 100 printable characters (trimmed).
pub fn event_type_name() -> Object {
    string(
        label_pattern(MAX_TYPE_NAME),
        "the event type's name, unique in the account",
    )
}

/// An event type's new name, or null to keep it.
pub fn event_type_name_or_null() -> Object {
    or_null(event_type_name())
}

/// Text that is trimmed, then must have 1 to `max` characters (any but surrounding space).
fn nonblank_pattern(max: usize) -> String {
    format!(
        "^[{WS}]*[^{WS}](?:[\\s\\S]{{0,{}}}[^{WS}])?[{WS}]*$",
        max - 2
    )
}

/// The body of `POST /api/users` (email required) or `PATCH /api/users/{id}`: the user
/// record's fields as `UserChanges::from_json` reads them; any other field is refused.
pub fn user_changes(create: bool) -> Object {
    let text = |max: usize| -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(max))
            .build()
    };
    let mut user = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("email", email());
    if create {
        user = user.required("email");
    }
    for field in TEXT_FIELDS {
        user = match *field {
            "comment" => user.property(*field, text(MAX_COMMENT)),
            "manager_email" => user.property(*field, or_null(email_or_blank())),
            _ => user.property(*field, text(MAX_TEXT)),
        };
    }
    // Empty clears a date, as null does.
    let date = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(format!("^[{WS}]*(?:{DAY})?[{WS}]*$")))
        .description(Some("`YYYY-MM-DD`; empty or null clears it"))
        .build();
    for field in DATE_FIELDS {
        user = user.property(*field, date.clone());
    }
    user.property(
        "aliases",
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .max_items(Some(MAX_ALIASES))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(nonblank_pattern(MAX_TEXT))),
            )
            .description(Some(
                "other emails and device user names; replaces the list",
            )),
    )
    .property(
        "status",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^[{WS}]*(active|archived)[{WS}]*$"))),
    )
    .build()
}

/// A content's title: not blank, at most 200 characters.
pub fn content_title() -> Object {
    let mut schema = string(format!("[^{WS}]"), "shown to learners");
    schema.max_length = Some(coachloop_core::content::MAX_TITLE);
    schema
}

/// A group's (or campaign's) name: 1 to 255 characters, trimmed.
pub fn name() -> Object {
    string(
        nonblank_pattern(255),
        "1 to 255 characters; a group's is unique among the account's active groups",
    )
}

/// A remote sync connection's name: 1 to 255 characters, trimmed.
pub fn connection_name() -> Object {
    string(
        nonblank_pattern(255),
        "1 to 255 characters, unique among the account's connections",
    )
}

/// The body of `POST /api/groups` (`create`) or `PATCH /api/groups/{id}`. What criteria
/// may say is the criteria language (README, "Smart groups"); a bad node is a 422 naming
/// its path.
pub fn group_input(create: bool) -> Object {
    let criteria = ObjectBuilder::new()
        .schema_type(if create {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        })
        .description(Some(
            "smart-group criteria: one of `all`, `any`, `not`, `event`, `user`, `group`, \
             `training`",
        ));
    let description = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(2000));
    let mut group = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("name", name())
        .property("description", description)
        .property("criteria", criteria);
    if create {
        group = group.required("name").property(
            "group_type",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .enum_values(Some([
                    serde_json::json!("console_group"),
                    serde_json::json!("smart_group"),
                    serde_json::Value::Null,
                ]))
                .description(Some(
                    "`smart_group` with criteria, `console_group` without; may be left out",
                )),
        );
    }
    group.build()
}

/// A list of one or more of `names`.
fn one_or_more_of<'a>(names: impl IntoIterator<Item = &'a str>) -> ArrayBuilder {
    ArrayBuilder::new().min_items(Some(1)).items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names)),
    )
}

/// Notice names (`enrolled`, `reminder`, …), none or more.
pub fn notice_names() -> Array {
    one_or_more_of(coachloop_core::notice::Notice::ALL.map(|n| n.as_str()))
        .min_items(None)
        .build()
}

/// A webhook's events: one or more of the names notices are sent for.
pub fn webhook_events() -> Array {
    one_or_more_of(
        (coachloop_store::notices::WEBHOOK_EVENTS.iter().copied())
            .chain(coachloop_core::notice::Notice::ALL.map(|n| n.as_str())),
    )
    .description(Some(
        "format `json`: the facts to send (`enrollment.created`, …); `slack` or `teams`: \
         the notices whose text to post (`enrolled`, `reminder`, `past_due`, \
         `past_due_manager`, `completed`)",
    ))
    .build()
}

/// A token's scopes: one or more of the known names.
pub fn scopes() -> Array {
    one_or_more_of(Scope::ALL.iter().map(|s| s.as_str()))
        .description(Some(
            "e.g. `[\"events:write\"]`; `admin` grants every other",
        ))
        .build()
}

/// A calendar date, `YYYY-MM-DD`.
fn date() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .pattern(Some(format!("^[{WS}]*{DAY}[{WS}]*$")))
        .build()
}

/// A calendar date, `YYYY-MM-DD`, or null.
pub fn date_or_null() -> Object {
    or_null(date())
}

/// One event of the User Event API (`POST /events` takes one, or an array of them).
/// Rules between fields (an expiry before the event, a time in the future, metadata
/// over its size) are 422s naming the field.
pub fn event() -> Object {
    let text = |max: usize| {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(max))
    };
    let integer = |min: i64, max: i64| {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .minimum(Some(min))
            .maximum(Some(max))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "target_user",
            string(
                nonblank_pattern(MAX_SHORT_TEXT),
                "the person's email or another identity",
            ),
        )
        .required("target_user")
        .property(
            "event_type",
            string(label_pattern(MAX_TYPE_NAME), "created on first use"),
        )
        .required("event_type")
        .property("external_id", text(MAX_EXTERNAL_ID))
        .property("source", text(MAX_SHORT_TEXT))
        .property("description", text(MAX_DESCRIPTION))
        .property(
            "occurred_date",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("RFC 3339 or `YYYY-MM-DD`; default: now")),
        )
        .property("risk_level", integer(-10, 10))
        .property("risk_decay_mode", integer(0, 1))
        .property("risk_expire_date", date_or_null())
        .property(
            "metadata",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                .description(Some("any JSON object of at most 4,096 bytes")),
        )
        .build()
}

/// `POST /events`: one event, or an array of them.
fn events() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(event())
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue))
                .description(Some(
                    "bulk: each item is checked alone; bad ones are listed in the \
                     request's status and the rest are stored",
                )),
        )
        .build()
        .into()
}

/// The same schema, with null allowed too (the value is optional).
fn or_null(mut schema: Object) -> Object {
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    schema
}

/// A request body named in the document whose schema a function here builds.
macro_rules! body {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

body!(
    /// `POST /api/users`: the user record's fields, `email` required.
    NewUserInput => user_changes(true)
);
body!(
    /// `PATCH /api/users/{id}`: the fields to change; null clears one.
    UserChangesInput => user_changes(false)
);
body!(
    /// `POST /events`: one event, or an array of them (bulk).
    EventsInput => events()
);
body!(
    /// `POST /api/groups`: `name`, and `criteria` for a smart group.
    NewGroupInput => group_input(true)
);
body!(
    /// `PATCH /api/groups/{id}`: the fields to change.
    GroupChangesInput => group_input(false)
);

/// Ids of a remote Reporting API's campaigns: positive integers, at most
/// `coachloop_core::compliance::remote::MAX_CAMPAIGNS`.
pub fn remote_campaign_ids() -> Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .max_items(Some(coachloop_core::compliance::remote::MAX_CAMPAIGNS))
        .description(Some("remote campaign ids (`campaign_id`)"))
        .build()
}

/// A Reporting API key: one word.
pub fn api_key() -> Object {
    string(
        format!("^[{WS}]*[^{WS}{CONTROL}]{{1,4096}}[{WS}]*$"),
        "the Reporting API key, as the remote gave it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use coachloop_core::event::parse_type_name;
    use coachloop_core::identity::Email;
    use regex::Regex;

    /// The pattern accepts exactly what the parser accepts, on the edges that matter.
    fn agrees(pattern: &str, parses: impl Fn(&str) -> bool, samples: &[&str]) {
        let re = Regex::new(pattern).expect("the pattern compiles");
        for sample in samples {
            assert_eq!(
                re.is_match(sample),
                parses(sample),
                "pattern and parser disagree on {sample:?}"
            );
        }
    }

    #[test]
    fn label_pattern_is_the_type_name_rule() {
        let long = "x".repeat(MAX_TYPE_NAME);
        let longer = "x".repeat(MAX_TYPE_NAME + 1);
        agrees(
            &event_type_name().pattern.expect("a pattern"),
            |s| parse_type_name(s).is_ok(),
            &[
                "a",
                " a ",
                "a b",
                "",
                "  ",
                "\t",
                "a\u{7}b",
                "\u{85}a",
                "ab\u{85}c",
                &long,
                &longer,
                " \u{3000}x\u{3000} ",
                "é",
            ],
        );
    }

    #[test]
    fn email_pattern_is_the_email_rule() {
        agrees(
            &email().pattern.expect("a pattern"),
            |s| Email::parse(s).is_ok(),
            &[
                "a@b", " a@b.c ", "a@b@c", "@b", "a@", "a@.b", "a@b.", "a b@c", "<a>@b",
                "a@b\u{7}", "a.b@c.d", "", "a",
            ],
        );
    }
}
