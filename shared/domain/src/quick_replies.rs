//! Quick replies: texts an admin writes once, per language, that agents insert by typing their
//! shortcut (`/refund`). The slugs `{customerName}` and `{agentName}` are filled in when one is
//! inserted. Stored as config documents ([`QUICK_REPLY_KIND`]); a quick reply may be limited to
//! some queues (an agent sees those of its queues and the unlimited ones).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Config document kind of quick replies (id: the quick reply's).
pub const QUICK_REPLY_KIND: &str = "quickReply";
/// The longest text (LINE's text message limit).
pub const MAX_TEXT_CHARS: usize = 5000;
/// Languages per quick reply, and queues it is limited to.
pub const MAX_LANGUAGES: usize = 20;
pub const MAX_QUEUES: usize = 50;
/// How many quick replies an account's admins may keep (they are listed whole).
pub const MAX_QUICK_REPLIES: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuickReply {
    pub id: String,
    /// `/` then 1 to 30 lowercase letters, digits, `-` or `_`: unique.
    pub shortcut: String,
    pub title: String,
    /// The text per language tag (`en`, `ja`, `zh-Hant` …), at least one.
    pub texts: BTreeMap<String, String>,
    /// The queues whose agents see it; empty: every agent.
    #[serde(default)]
    pub queue_ids: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

/// Whether `shortcut` is a usable shortcut: `/` then 1 to 30 of `a-z 0-9 - _`.
pub fn is_shortcut(shortcut: &str) -> bool {
    shortcut.strip_prefix('/').is_some_and(|rest| {
        (1..=30).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    })
}

impl QuickReply {
    /// Whether an agent serving `queues` sees it.
    pub fn visible_to(&self, queues: &[String]) -> bool {
        self.queue_ids.is_empty() || self.queue_ids.iter().any(|q| queues.contains(q))
    }

    /// Whether it matches the search `q` (case-insensitive): its shortcut starts with it (with
    /// or without the `/`), or its title or a text contains it. An empty `q` matches all.
    pub fn matches(&self, q: &str) -> bool {
        let q = q.trim().to_lowercase();
        if q.is_empty() {
            return true;
        }
        let bare = q.strip_prefix('/').unwrap_or(&q);
        self.shortcut[1..].starts_with(bare)
            || self.title.to_lowercase().contains(&q)
            || self.texts.values().any(|t| t.to_lowercase().contains(&q))
    }

    /// The language of its text for a customer speaking `language` (`None`: unknown): the
    /// exact tag, then the same primary subtag (`zh` for `zh-Hant`, `en-GB` for `en-US`), else
    /// its first language.
    pub fn language_for(&self, language: Option<&str>) -> Option<&str> {
        let first = self.texts.keys().next().map(String::as_str);
        let Some(wanted) = language.map(str::trim).filter(|l| !l.is_empty()) else {
            return first;
        };
        let primary = |tag: &str| tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
        let keys = || self.texts.keys().map(String::as_str);
        keys()
            .find(|k| k.eq_ignore_ascii_case(wanted))
            .or_else(|| keys().find(|k| primary(k) == primary(wanted)))
            .or(first)
    }
}

/// `text` with `{customerName}` and `{agentName}` filled in.
pub fn fill(text: &str, customer_name: &str, agent_name: &str) -> String {
    text.replace("{customerName}", customer_name)
        .replace("{agentName}", agent_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> QuickReply {
        QuickReply {
            id: "r1".into(),
            shortcut: "/refund".into(),
            title: "Refund policy".into(),
            texts: [
                (
                    "en".to_owned(),
                    "Hello {customerName}, I am {agentName}.".to_owned(),
                ),
                (
                    "ja".to_owned(),
                    "{customerName}様、{agentName}です。".to_owned(),
                ),
            ]
            .into_iter()
            .collect(),
            queue_ids: vec!["q1".into()],
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn shortcuts_are_slash_and_lowercase_words() {
        for ok in ["/refund", "/a", "/late-order_2"] {
            assert!(is_shortcut(ok), "{ok}");
        }
        for bad in [
            "refund",
            "/",
            "/Refund",
            "/with space",
            "/日本",
            &format!("/{}", "a".repeat(31)),
        ] {
            assert!(!is_shortcut(bad), "{bad}");
        }
    }

    #[test]
    fn search_language_queues_and_slugs() {
        let r = reply();
        for (q, want) in [
            ("", true),
            ("/ref", true),
            ("ref", true),
            ("POLICY", true),
            ("様", true),
            ("/policy", false),
            ("shipping", false),
        ] {
            assert_eq!(r.matches(q), want, "{q:?}");
        }
        assert_eq!(r.language_for(Some("ja")), Some("ja"));
        assert_eq!(r.language_for(Some("en-GB")), Some("en"));
        assert_eq!(r.language_for(Some("th")), Some("en"), "its first language");
        assert_eq!(r.language_for(None), Some("en"));
        assert!(r.visible_to(&["q1".into(), "q2".into()]));
        assert!(!r.visible_to(&["q2".into()]));
        let everyone = QuickReply {
            queue_ids: vec![],
            ..reply()
        };
        assert!(everyone.visible_to(&[]));
        assert_eq!(
            fill(&r.texts["ja"], "山田", "Hanako"),
            "山田様、Hanakoです。"
        );
    }
}
