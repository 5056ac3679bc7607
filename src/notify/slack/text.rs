//! Text as Slack reads it. Slack's mrkdwn reserves `&`, `<` and `>`: `<!channel>` pings
//! everyone and `<https://x|y>` is a link, so every text medic sends from an alert (labels,
//! annotations), a person or a setting is escaped. medic's own mentions and links, if any, are
//! added after escaping.

/// `&`, `<` and `>` as Slack's entities.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_links_from_an_alert_are_inert() {
        assert_eq!(
            escape("<!channel> <https://evil|ack> & co"),
            "&lt;!channel&gt; &lt;https://evil|ack&gt; &amp; co"
        );
    }
}
