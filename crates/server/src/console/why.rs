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
    }
}
