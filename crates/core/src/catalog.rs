//! The built-in event types every account starts with: the credential-risk events a
//! password manager sends (shared/reference/dashlane-events.md).

/// One built-in event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// The risk level the source suggests for this behaviour.
    pub suggested_risk: i64,
    /// The `description` values a sender distinguishes variants with.
    pub variants: &'static [&'static str],
}

const LOGIN_STATES: &[&str] = &[
    "logged in to Dashlane",
    "not logged in to Dashlane",
    "no Dashlane account",
];

pub const DASHLANE: &[CatalogEntry] = &[
    CatalogEntry {
        name: "dashlane_user_received_vault_phishing_alert",
        description: "A vault phishing alert was shown to the person.",
        suggested_risk: 0,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_dismissed_vault_phishing_alert",
        description: "The person entered a stored password on a site not tied to it after a vault phishing alert.",
        suggested_risk: 7,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_entered_password_risky_site",
        description: "A password was entered on a risky site.",
        suggested_risk: 6,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_typed_compromised_password",
        description: "A login used a known-compromised password.",
        suggested_risk: 8,
        variants: LOGIN_STATES,
    },
    CatalogEntry {
        name: "dashlane_user_typed_weak_password",
        description: "A login used a weak password.",
        suggested_risk: 4,
        variants: LOGIN_STATES,
    },
    CatalogEntry {
        name: "dashlane_user_dismissed_ai_phishing_alert",
        description: "The person dismissed an AI phishing alert.",
        suggested_risk: 5,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_accepted_ai_phishing_alert",
        description: "The person heeded an AI phishing alert.",
        suggested_risk: -2,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_entered_credential_phishing_website_ai",
        description: "A credential was typed on a site the AI model flagged as phishing.",
        suggested_risk: 9,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_received_credential_risk_alert",
        description: "An in-browser alert asked the person to change an at-risk password.",
        suggested_risk: 0,
        variants: &[],
    },
    CatalogEntry {
        name: "dashlane_user_changed_at_risk_password",
        description: "The person changed an at-risk password after an alert.",
        suggested_risk: -5,
        variants: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = DASHLANE.iter().map(|e| e.name).collect();
        assert!(names.iter().all(|n| n.starts_with("dashlane_user_")));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10);
    }
}

/// A starter play of the source: a behaviour, the smart group that catches it and the
/// training it calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarterPlay {
    /// The smart group's name.
    pub group: &'static str,
    /// The event type that shows the behaviour.
    pub event_type: &'static str,
    /// The training the play assigns.
    pub training: &'static str,
}

/// The three starter plays (shared/reference/dashlane-events.md). Each smart group holds
/// a person who showed the behaviour twice in the last three months: see
/// [`StarterPlay::criteria`].
pub const STARTER_PLAYS: &[StarterPlay] = &[
    StarterPlay {
        group: "Using compromised credentials",
        event_type: "dashlane_user_typed_compromised_password",
        training: "Cyber Hygiene: Password Management",
    },
    StarterPlay {
        group: "AI phishing alerts",
        event_type: "dashlane_user_entered_credential_phishing_website_ai",
        training: "Identifying Phishing Red Flags",
    },
    StarterPlay {
        group: "Vault phishing alerts",
        event_type: "dashlane_user_dismissed_vault_phishing_alert",
        training: "Cybersecurity Essentials: Social Engineering",
    },
];

/// How far back a starter play looks.
pub const STARTER_WINDOW: &str = "P3M";

impl StarterPlay {
    /// "The behaviour twice in the last three months", in the criteria language.
    pub fn criteria(&self) -> serde_json::Value {
        serde_json::json!({"event": {
            "type": self.event_type,
            "count": {"at_least": 2},
            "within": STARTER_WINDOW,
        }})
    }
}
