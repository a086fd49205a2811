//! A group change's recorded reason (the JSON the engine and the APIs write) in words.

use serde_json::Value;

/// One line per part of the reason: "3 × dashlane_compromised_password", "department is
/// Sales", "added by an administrator".
pub fn words(reason: &str) -> Vec<String> {
    let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(reason) else {
        return vec![reason.to_owned()];
    };
    parts.iter().map(part).collect()
}

/// Why an enrolment was made (its recorded cause) in words; `group_name` names a group by
/// its id.
pub fn cause(cause: &str, group_name: impl Fn(i64) -> Option<String>) -> String {
    let Ok(value) = serde_json::from_str::<Value>(cause) else {
        return cause.replace('_', " ");
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "group_joined" => {
            let id = value.get("group_id").and_then(Value::as_i64).unwrap_or(0);
            let group = group_name(id).unwrap_or_else(|| format!("group {id}"));
            let evidence: Vec<String> = value
                .get("evidence")
                .and_then(Value::as_array)
                .map(|parts| parts.iter().map(part).collect())
                .unwrap_or_default();
            if evidence.is_empty() {
                format!("joined {group}")
            } else {
                format!("joined {group}: {}", evidence.join("; "))
            }
        }
        "" => cause.to_owned(),
        other => other.replace('_', " "),
    }
}

fn part(part: &Value) -> String {
    let text = |key: &str| part.get(key).and_then(Value::as_str).unwrap_or_default();
    match text("kind") {
        "events" => {
            let count = part.get("count").and_then(Value::as_u64).unwrap_or(0);
            let noun = if count == 1 { "event" } else { "events" };
            format!("{count} {noun} of type {}", text("event_type"))
        }
        "attribute" => format!("{} is {}", text("attribute"), text("value")),
        "member" => format!(
            "a member of group {}",
            part.get("group").and_then(Value::as_i64).unwrap_or(0)
        ),
        "not" => format!("the part at {} does not hold", text("path")),
        "criteria_no_longer_hold" => "the criteria no longer hold".to_owned(),
        "archived" => "the person was archived".to_owned(),
        "added_by_admin" => "added by an administrator".to_owned(),
        "removed_by_admin" => "removed by an administrator".to_owned(),
        "added_by_identity_provider" => "added by the identity provider".to_owned(),
        "removed_by_identity_provider" => "removed by the identity provider".to_owned(),
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_words() {
        assert_eq!(
            words(
                r#"[{"kind":"events","path":"$","event_type":"x_y","count":3,"events":[]},
                      {"kind":"attribute","path":"$","attribute":"department","value":"Sales"}]"#
            ),
            ["3 events of type x_y", "department is Sales"]
        );
        assert_eq!(
            words(r#"[{"kind":"added_by_admin"}]"#),
            ["added by an administrator"]
        );
        assert_eq!(words("not json"), ["not json"]);
        let joined = r#"{"at":"2026-11-01T12:00:00.000Z","evidence":[{"count":1,"event_type":"t",
            "events":[],"kind":"events","path":"$.event"}],"group_id":1,"kind":"group_joined","version":1}"#;
        assert_eq!(
            cause(joined, |id| (id == 1).then(|| "Typed".to_owned())),
            "joined Typed: 1 event of type t"
        );
        assert_eq!(cause("all_users", |_| None), "all users");
    }
}
