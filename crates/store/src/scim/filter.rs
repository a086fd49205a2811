//! SCIM filters as SQL: each attribute a filter may name maps to a column (or, for the
//! multi-valued `emails` and `members`, to an `EXISTS` over their rows), and every value
//! is bound. Comparisons yield true or false, never NULL, so `not` is exact.

use crate::db::Backend;
use crate::sql::QueryBuilder;
use coachloop_core::identity::normalize_identity;
use coachloop_core::scim::{AttrPath, CompareOp, Filter, Literal};

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:user";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user";
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:group";

/// Where a filter's names are looked up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    User,
    /// One email of a person: a stored row (`e`), or the email of a person no identity
    /// provider named (their only email, primary, without a type).
    Email {
        stored: bool,
    },
    Group,
    Member,
}

#[derive(Debug, Clone, Copy)]
enum Column {
    /// Text kept trimmed and lower-cased (compared case-insensitively).
    Norm(&'static str),
    /// Text compared case-insensitively.
    Text(&'static str),
    /// Text compared exactly (`caseExact`).
    Exact(&'static str),
    /// `active`: the person's status.
    Active,
    /// Epoch milliseconds, compared with an RFC 3339 instant.
    Instant(&'static str),
    Id(&'static str),
    Flag(&'static str),
    /// An attribute this value never has.
    Absent,
}

#[derive(Debug, Clone, Copy)]
enum Multi {
    Emails,
    Members,
}

enum Named {
    Column(Column),
    Multi(Multi),
}

fn resolve(scope: Scope, path: &AttrPath) -> Result<Named, String> {
    use Column::*;
    let unknown = || {
        format!(
            "`{}` is not an attribute a filter can name here",
            path.dotted()
        )
    };
    let dotted = path.dotted();
    let column = match scope {
        Scope::User => {
            let core = matches!(path.urn.as_deref(), None | Some(CORE_USER));
            let enterprise = matches!(path.urn.as_deref(), None | Some(ENTERPRISE_USER));
            match dotted.as_str() {
                "emails" | "emails.value" | "emails.type" | "emails.primary" | "emails.display"
                    if core =>
                {
                    return Ok(Named::Multi(Multi::Emails));
                }
                "id" if core => Id("u.id"),
                "username" if core => Norm("COALESCE(u.user_name_norm, u.email_norm)"),
                "externalid" if core => Exact("u.provisioning_guid"),
                "displayname" if core => Text("u.display_name"),
                "active" if core => Active,
                "meta.lastmodified" if core => Instant("u.updated_at"),
                "meta.created" if core => Instant("u.joined_on"),
                "name.givenname" if core => Text("u.first_name"),
                "name.familyname" if core => Text("u.last_name"),
                "name.formatted" if core => Text("u.name_formatted"),
                "title" if core => Text("u.job_title"),
                "preferredlanguage" if core => Text("u.language"),
                "employeenumber" if enterprise => Text("u.employee_number"),
                "department" if enterprise => Text("u.department"),
                "division" if enterprise => Text("u.division"),
                "organization" if enterprise => Text("u.organization"),
                "manager" | "manager.value" if enterprise => Exact("u.manager_ref"),
                _ => return Err(unknown()),
            }
        }
        Scope::Email { stored } => match (dotted.as_str(), stored) {
            ("value", true) => Norm("e.value_norm"),
            ("value", false) => Norm("u.email_norm"),
            ("type", true) => Text("e.kind"),
            ("primary", true) => Flag("e.is_primary"),
            ("primary", false) => Flag("TRUE"),
            ("display", true) => Text("e.display"),
            ("type" | "display", false) => Absent,
            _ => return Err(unknown()),
        },
        Scope::Group => {
            if !matches!(path.urn.as_deref(), None | Some(CORE_GROUP)) {
                return Err(unknown());
            }
            match dotted.as_str() {
                "members" | "members.value" => return Ok(Named::Multi(Multi::Members)),
                "id" => Id("g.id"),
                "displayname" => Text("g.name"),
                "externalid" => Exact("g.provisioning_guid"),
                "meta.lastmodified" => Instant("g.updated_at"),
                "meta.created" => Instant("g.created_at"),
                _ => return Err(unknown()),
            }
        }
        Scope::Member => match dotted.as_str() {
            "value" => Id("m.user_id"),
            _ => return Err(unknown()),
        },
    };
    Ok(Named::Column(column))
}

/// Writes `filter` as a condition over `u` (users) or `g` (groups), per `scope`.
/// The error says what the filter names or compares that cannot be.
pub(crate) fn push_filter(
    query: &mut QueryBuilder<'_>,
    backend: Backend,
    scope: Scope,
    filter: &Filter,
) -> Result<(), String> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            let joiner = if matches!(filter, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            };
            query.push("(");
            push_filter(query, backend, scope, a)?;
            query.push(joiner);
            push_filter(query, backend, scope, b)?;
            query.push(")");
        }
        Filter::Not(inner) => {
            query.push("(NOT ");
            push_filter(query, backend, scope, inner)?;
            query.push(")");
        }
        Filter::Present(path) => match resolve(scope, path)? {
            Named::Column(column) => present(query, column),
            Named::Multi(multi) => {
                let inner = Filter::Present(sub_path(path));
                exists(query, backend, scope, multi, &inner)?;
            }
        },
        Filter::Compare(path, op, value) => match resolve(scope, path)? {
            Named::Column(column) => compare(query, backend, column, *op, value)?,
            Named::Multi(multi) => {
                let inner = Filter::Compare(sub_path(path), *op, value.clone());
                exists(query, backend, scope, multi, &inner)?;
            }
        },
        Filter::Has(path, inner) => match resolve(scope, path)? {
            Named::Multi(multi) if path.sub.is_none() => {
                exists(query, backend, scope, multi, inner)?;
            }
            _ => {
                return Err(format!(
                    "`{}` is not a multi-valued attribute; `[...]` filters only those",
                    path.dotted()
                ));
            }
        },
    }
    Ok(())
}

/// The sub-attribute a filter on a multi-valued attribute names (`value` by default).
fn sub_path(path: &AttrPath) -> AttrPath {
    AttrPath {
        urn: None,
        name: path.sub.clone().unwrap_or_else(|| "value".to_owned()),
        sub: None,
    }
}

fn exists(
    query: &mut QueryBuilder<'_>,
    backend: Backend,
    scope: Scope,
    multi: Multi,
    inner: &Filter,
) -> Result<(), String> {
    match (scope, multi) {
        (Scope::User, Multi::Emails) => {
            query.push(
                "(EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id \
                 AND e.account_id = u.account_id AND ",
            );
            push_filter(query, backend, Scope::Email { stored: true }, inner)?;
            query.push(") OR (u.user_name IS NULL AND ");
            push_filter(query, backend, Scope::Email { stored: false }, inner)?;
            query.push("))");
        }
        (Scope::Group, Multi::Members) => {
            query.push(
                "EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id \
                 AND m.account_id = g.account_id AND ",
            );
            push_filter(query, backend, Scope::Member, inner)?;
            query.push(")");
        }
        _ => return Err("value filters do not nest".to_owned()),
    }
    Ok(())
}

fn present(query: &mut QueryBuilder<'_>, column: Column) {
    match column {
        Column::Norm(e) | Column::Text(e) | Column::Exact(e) => {
            query.push(format!("({e} IS NOT NULL AND {e} <> '')"));
        }
        Column::Instant(e) | Column::Id(e) => {
            query.push(format!("({e} IS NOT NULL)"));
        }
        Column::Active | Column::Flag(_) => {
            query.push("TRUE");
        }
        Column::Absent => {
            query.push("FALSE");
        }
    }
}

fn boolean(value: &Literal) -> Option<bool> {
    match value {
        Literal::Bool(b) => Some(*b),
        Literal::Text(t) if t.eq_ignore_ascii_case("true") => Some(true),
        Literal::Text(t) if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn sign(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => return None,
    })
}

fn compare(
    query: &mut QueryBuilder<'_>,
    backend: Backend,
    column: Column,
    op: CompareOp,
    value: &Literal,
) -> Result<(), String> {
    match column {
        Column::Norm(e) | Column::Text(e) | Column::Exact(e) => {
            let Some(text) = value.as_text() else {
                match op {
                    CompareOp::Eq => query.push(format!("({e} IS NULL)")),
                    CompareOp::Ne => query.push(format!("({e} IS NOT NULL)")),
                    _ => return Err("null compares only with eq or ne".to_owned()),
                };
                return Ok(());
            };
            let (expr, text) = match column {
                Column::Norm(e) if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => {
                    (e.to_owned(), text.to_lowercase())
                }
                Column::Norm(e) => (e.to_owned(), normalize_identity(&text)),
                Column::Text(e) => (format!("LOWER({e})"), text.to_lowercase()),
                _ => (e.to_owned(), text),
            };
            compare_text(query, backend, &expr, op, text);
        }
        Column::Active => {
            let wanted = boolean(value).ok_or("`active` compares with true or false")?;
            let wanted = match op {
                CompareOp::Eq => wanted,
                CompareOp::Ne => !wanted,
                _ => return Err("`active` compares only with eq or ne".to_owned()),
            };
            query.push(if wanted {
                "(u.status = 'active')"
            } else {
                "(u.status <> 'active')"
            });
        }
        Column::Instant(e) => {
            let sign = sign(op).ok_or("a date compares with eq, ne, gt, ge, lt or le")?;
            let at = value
                .as_text()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .ok_or("a date is written as in RFC 3339, e.g. \"2026-11-01T12:00:00Z\"")?;
            query
                .push(format!("({e} IS NOT NULL AND {e} {sign} "))
                .push_bind(at.timestamp_millis())
                .push(")");
        }
        Column::Id(e) => {
            let sign = sign(op).ok_or("an id compares with eq, ne, gt, ge, lt or le")?;
            match value.as_text().and_then(|t| t.trim().parse::<i64>().ok()) {
                Some(id) => {
                    query.push(format!("({e} {sign} ")).push_bind(id).push(")");
                }
                // No resource has an id that is not a number.
                None => {
                    query.push(if op == CompareOp::Ne { "TRUE" } else { "FALSE" });
                }
            }
        }
        Column::Flag(e) => {
            let wanted = boolean(value).ok_or("a boolean compares with true or false")?;
            let sign = match op {
                CompareOp::Eq => "=",
                CompareOp::Ne => "<>",
                _ => return Err("a boolean compares only with eq or ne".to_owned()),
            };
            query
                .push(format!("({e} {sign} "))
                .push_bind(wanted)
                .push(")");
        }
        Column::Absent => {
            let holds = match op {
                CompareOp::Eq => *value == Literal::Null,
                CompareOp::Ne => *value != Literal::Null,
                _ => false,
            };
            query.push(if holds { "TRUE" } else { "FALSE" });
        }
    }
    Ok(())
}

fn compare_text(
    query: &mut QueryBuilder<'_>,
    backend: Backend,
    expr: &str,
    op: CompareOp,
    text: String,
) {
    // Substrings by position rather than LIKE: no pattern characters to escape, and the
    // same case rules on both engines.
    match op {
        CompareOp::Co => {
            let position = match backend {
                Backend::Sqlite => "instr",
                Backend::Postgres => "strpos",
            };
            query
                .push(format!("({expr} IS NOT NULL AND {position}({expr}, "))
                .push_bind(text)
                .push(") > 0)");
        }
        CompareOp::Sw => {
            query
                .push(format!("({expr} IS NOT NULL AND substr({expr}, 1, length("))
                .push_bind(text.clone())
                .push(")) = ")
                .push_bind(text)
                .push(")");
        }
        CompareOp::Ew => {
            query
                .push(format!("({expr} IS NOT NULL AND length({expr}) >= length("))
                .push_bind(text.clone())
                .push(format!(") AND substr({expr}, length({expr}) - length("))
                .push_bind(text.clone())
                .push(") + 1) = ")
                .push_bind(text)
                .push(")");
        }
        CompareOp::Ne => {
            query
                .push(format!("({expr} IS NULL OR {expr} <> "))
                .push_bind(text)
                .push(")");
        }
        _ => {
            let sign = sign(op).unwrap_or("=");
            query
                .push(format!("({expr} IS NOT NULL AND {expr} {sign} "))
                .push_bind(text)
                .push(")");
        }
    }
}
