//! Tags agents put on conversations and customers, with LINE Official Account Manager's limits:
//! at most [`MAX_TAGS`] on one customer (and on one conversation), at most
//! [`MAX_TAGS_PER_ACCOUNT`] distinct tags in one account, [`TAG_MAX_CHARS`] characters each.
//! Routing rules test them (`conversation.tags`, `customer.tags` with `contains`) and the
//! conversation list filters by them (`?tag=`). A tag is kept as typed, trimmed and with inner
//! whitespace collapsed; tags are compared exactly.

use serde::{Deserialize, Serialize};

/// The most tags on one customer or one conversation.
pub const MAX_TAGS: usize = 10;
/// The most distinct tags of one account.
pub const MAX_TAGS_PER_ACCOUNT: usize = 200;
/// The longest tag.
pub const TAG_MAX_CHARS: usize = 20;

/// The config kind of an account's tags (id: the account id, doc
/// [`AccountTags`]): every tag its agents used, so that the account stays within
/// [`MAX_TAGS_PER_ACCOUNT`].
pub const ACCOUNT_TAGS_KIND: &str = "accountTags";

/// The distinct tags of an account, in the order they were first used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTags {
    pub tags: Vec<String>,
}

impl AccountTags {
    /// The account's tags with `wanted` added, or `None` when nothing is new; `Err` when that
    /// would pass [`MAX_TAGS_PER_ACCOUNT`].
    pub fn with(&self, wanted: &[String]) -> Result<Option<AccountTags>, String> {
        let mut tags = self.tags.clone();
        for tag in wanted {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        if tags.len() == self.tags.len() {
            return Ok(None);
        }
        if tags.len() > MAX_TAGS_PER_ACCOUNT {
            return Err(format!(
                "the account would have {} distinct tags; at most {MAX_TAGS_PER_ACCOUNT}",
                tags.len()
            ));
        }
        Ok(Some(AccountTags { tags }))
    }
}

/// One tag as kept: trimmed, inner whitespace collapsed to one space, 1 to [`TAG_MAX_CHARS`]
/// characters, no control character.
pub fn normalize(tag: &str) -> Result<String, String> {
    let tag = tag.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = tag.chars().count();
    if chars == 0 || chars > TAG_MAX_CHARS || tag.chars().any(char::is_control) {
        return Err(format!(
            "a tag is 1 to {TAG_MAX_CHARS} characters, no control character"
        ));
    }
    Ok(tag)
}

/// A list of tags as kept: each [`normalize`]d, duplicates dropped (the first kept), at most
/// [`MAX_TAGS`].
pub fn normalize_all<'a>(tags: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let mut kept: Vec<String> = Vec::new();
    for tag in tags {
        let tag = normalize(tag)?;
        if !kept.contains(&tag) {
            kept.push(tag);
        }
    }
    if kept.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_collapsed_deduplicated_and_bounded() {
        assert_eq!(normalize("  VIP   customer ").unwrap(), "VIP customer");
        assert!(normalize("   ").is_err());
        assert!(normalize(&"x".repeat(TAG_MAX_CHARS + 1)).is_err());
        assert_eq!(
            normalize(&"字".repeat(TAG_MAX_CHARS))
                .unwrap()
                .chars()
                .count(),
            20
        );
        assert!(normalize("a\u{7}b").is_err());
        assert_eq!(
            normalize_all(["vip", " vip", "返品"]).unwrap(),
            vec!["vip".to_owned(), "返品".to_owned()]
        );
        let eleven: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(normalize_all(eleven.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn an_account_keeps_at_most_200_distinct_tags() {
        let full = AccountTags {
            tags: (0..MAX_TAGS_PER_ACCOUNT).map(|i| format!("t{i}")).collect(),
        };
        assert_eq!(full.with(&["t3".to_owned()]), Ok(None), "nothing new");
        assert!(full.with(&["new".to_owned()]).is_err());
        let some = AccountTags::default();
        let added = some
            .with(&["a".to_owned(), "b".to_owned()])
            .unwrap()
            .unwrap();
        assert_eq!(added.tags, vec!["a".to_owned(), "b".to_owned()]);
    }
}
