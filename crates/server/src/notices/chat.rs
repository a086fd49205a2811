//! Notices in chat: the body a Slack or Microsoft Teams incoming webhook takes, carrying
//! the notice's subject and text (never the learner's own link: a channel is shared).

use coachloop_core::notice::template::Rendered;
use coachloop_store::notices::FORMAT_TEAMS;
use serde_json::{Value, json};

/// The JSON body for a chat webhook of `format` (`slack` or `teams`).
pub fn body(format: &str, rendered: &Rendered) -> Value {
    let text = rendered.text.trim_end();
    if format == FORMAT_TEAMS {
        // A Teams workflow ("When a Teams webhook request is received") takes a message
        // with an Adaptive Card; its TextBlocks read Markdown.
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": rendered.subject, "weight": "Bolder",
                         "size": "Medium", "wrap": true},
                        {"type": "TextBlock", "text": text, "wrap": true},
                    ],
                },
            }],
        })
    } else {
        // Slack: `text` is the message and its notification; mrkdwn bolds with `*`.
        json!({
            "text": format!("*{}*\n\n{}", rendered.subject, text.replace("**", "*")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered {
            subject: "Training for you".into(),
            text: "Hello **Ana**,\n\nPlease finish it.\n".into(),
            html: String::new(),
        }
    }

    #[test]
    fn slack_gets_text_in_its_own_bold() {
        assert_eq!(
            body("slack", &rendered()),
            json!({"text": "*Training for you*\n\nHello *Ana*,\n\nPlease finish it."})
        );
    }

    #[test]
    fn teams_gets_an_adaptive_card() {
        let body = body(FORMAT_TEAMS, &rendered());
        assert_eq!(body["type"], "message");
        let card = &body["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["text"], "Training for you");
        assert_eq!(
            card["content"]["body"][1]["text"],
            "Hello **Ana**,\n\nPlease finish it."
        );
    }
}
