//! What coachloop publishes about its SCIM resources, and the one table of attributes
//! that both `/Schemas` and the handlers read: an attribute is published exactly when it
//! is stored and returned as given.

use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Text,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
}

#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub kind: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub unique: bool,
    pub description: &'static str,
    pub sub: &'static [Attr],
}

const fn text(name: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        kind: Type::Text,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        unique: false,
        description,
        sub: &[],
    }
}

const fn read_only(attr: Attr) -> Attr {
    Attr {
        mutability: Mutability::ReadOnly,
        ..attr
    }
}

const fn exact(attr: Attr) -> Attr {
    Attr {
        case_exact: true,
        ..attr
    }
}

/// The core User attributes coachloop stores (`id` and `meta` aside).
pub static USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique: true,
        ..text(
            "userName",
            "The name the identity provider knows the person by; unique, case-insensitively.",
        )
    },
    exact(text(
        "externalId",
        "The identity provider's id of the person.",
    )),
    Attr {
        kind: Type::Complex,
        sub: &[
            text("formatted", "The full name, as displayed."),
            text("familyName", "The family (last) name."),
            text("givenName", "The given (first) name."),
        ],
        ..text("name", "The person's name.")
    },
    text("displayName", "The name the person is shown as."),
    text("title", "The job title."),
    text("preferredLanguage", "The preferred language, e.g. en-US."),
    Attr {
        kind: Type::Boolean,
        ..text(
            "active",
            "False archives the person (out of compliance scope and enrolment, records kept).",
        )
    },
    Attr {
        kind: Type::Complex,
        multi: true,
        sub: &[
            text(
                "value",
                "The address; the primary (or work, or first) one is the person's email.",
            ),
            text("type", "work, home or other."),
            Attr {
                kind: Type::Boolean,
                ..text("primary", "The person's main address.")
            },
            text("display", "The address as displayed."),
        ],
        ..text("emails", "Email addresses.")
    },
];

/// The enterprise extension's attributes coachloop stores.
pub static ENTERPRISE_ATTRS: &[Attr] = &[
    text("employeeNumber", "The employee number."),
    text("department", "The department."),
    text("division", "The division."),
    text("organization", "The organization."),
    Attr {
        kind: Type::Complex,
        sub: &[
            exact(text(
                "value",
                "The manager's id (a SCIM user id of this account).",
            )),
            read_only(Attr {
                kind: Type::Reference,
                ..text("$ref", "The manager's URI.")
            }),
            read_only(text("displayName", "The manager's name.")),
        ],
        ..text(
            "manager",
            "The person's manager; also accepted as a bare id.",
        )
    },
];

pub static GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique: true,
        ..text(
            "displayName",
            "The group's name; unique among the account's live groups.",
        )
    },
    exact(text(
        "externalId",
        "The identity provider's id of the group.",
    )),
    Attr {
        kind: Type::Complex,
        multi: true,
        sub: &[
            exact(Attr {
                mutability: Mutability::Immutable,
                ..text("value", "The member's user id.")
            }),
            read_only(text("display", "The member's name.")),
            Attr {
                mutability: Mutability::Immutable,
                ..text("type", "User (groups do not nest).")
            },
            read_only(Attr {
                kind: Type::Reference,
                ..text("$ref", "The member's URI.")
            }),
        ],
        ..text("members", "The group's members (users).")
    },
];

/// Attributes of RFC 7643's User schema that coachloop does not store: not published,
/// and ignored when a provider sends them (Okta and Entra ID send several by default).
pub const USER_IGNORED: &[&str] = &[
    "nickname",
    "profileurl",
    "usertype",
    "locale",
    "timezone",
    "password",
    "phonenumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509certificates",
    "costcenter",
];

/// Attributes every resource has that no client writes.
pub const SERVER_SET: &[&str] = &["id", "meta", "schemas"];

/// Looks `name` up (case-insensitively) among `attrs`.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn attr_json(attr: &Attr) -> Value {
    let mut value = json!({
        "name": attr.name,
        "type": match attr.kind {
            Type::Text => "string",
            Type::Boolean => "boolean",
            Type::DateTime => "dateTime",
            Type::Reference => "reference",
            Type::Complex => "complex",
        },
        "multiValued": attr.multi,
        "description": attr.description,
        "required": attr.required,
        "caseExact": attr.case_exact,
        "mutability": match attr.mutability {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
            Mutability::Immutable => "immutable",
        },
        "returned": "default",
        "uniqueness": if attr.unique { "server" } else { "none" },
    });
    if attr.kind == Type::Reference {
        value["referenceTypes"] = json!(["User"]);
    }
    if !attr.sub.is_empty() {
        value["subAttributes"] = attr.sub.iter().map(attr_json).collect();
    }
    value
}

fn schema_json(id: &str, name: &str, description: &str, attrs: &[Attr], base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

/// Every schema coachloop publishes.
pub fn schemas(base: &str) -> Vec<Value> {
    vec![
        schema_json(
            USER_SCHEMA,
            "User",
            "A person of the account.",
            USER_ATTRS,
            base,
        ),
        schema_json(
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "Where the person sits in the organisation.",
            ENTERPRISE_ATTRS,
            base,
        ),
        schema_json(
            GROUP_SCHEMA,
            "Group",
            "A provisioned group (adi_managed_group): campaigns and smart-group criteria can target it.",
            GROUP_ATTRS,
            base,
        ),
    ]
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A person of the account.",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A provisioned group.",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

pub fn service_provider_config(base: &str, max_results: i64) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A coachloop token with the `scim` scope, sent as `Authorization: Bearer <token>`.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}
