//! Search over customers and their messages (`GET /agent/v1/search?q=`): what a text's search
//! terms are, the same for what is indexed and for what is asked, so that both stores (SQLite's
//! FTS5, DynamoDB's term items) find the same customers.
//!
//! A term is a lowercase word of letters and digits, at least two characters long and not one
//! of the commonest English words ([`STOP_WORDS`]: every indexed term is a write on AWS, and
//! these find everyone). Scripts written without spaces (Japanese,
//! Chinese, Korean, Thai) give their runs as overlapping pairs of characters (bigrams; a run of
//! one character is itself): `返金したい` gives `返金`, `金し`, `した`, `たい`, so asking for
//! `返金` finds it. A customer matches a query when every term of the query is among the terms
//! of their name, tags or messages (not necessarily one message).

use serde::{Deserialize, Serialize};

/// The most terms one indexed text keeps (the first ones): a long message's index writes stay
/// bounded.
pub const INDEX_TERMS_MAX: usize = 48;
/// The most terms a query may have.
pub const QUERY_TERMS_MAX: usize = 5;
/// The longest term kept (characters); a longer word is cut to it, in the index and the query
/// alike.
pub const TERM_CHARS_MAX: usize = 32;
/// The most customers a search returns.
pub const SEARCH_RESULTS_MAX: usize = 20;

/// Words too common to find anyone by (left out of the index and of queries alike).
pub const STOP_WORDS: &[&str] = &[
    "am", "an", "and", "are", "as", "at", "be", "but", "by", "do", "for", "from", "has", "have",
    "he", "her", "him", "his", "if", "in", "is", "it", "its", "me", "my", "no", "not", "of", "on",
    "or", "our", "she", "so", "that", "the", "their", "them", "they", "this", "to", "us", "was",
    "we", "were", "will", "with", "you", "your",
];

/// Characters of scripts written without spaces between words.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0E7F      // Thai
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK extensions B…
}

/// The distinct terms of `text`, in order of first appearance, at most `max`.
pub fn terms(text: &str, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut run: Vec<char> = Vec::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if unspaced(c) {
            end_word(&mut word, &mut out, max);
            run.push(c);
        } else {
            end_run(&mut run, &mut out, max);
            if c.is_alphanumeric() {
                word.push(c);
            } else {
                end_word(&mut word, &mut out, max);
            }
        }
    }
    end_run(&mut run, &mut out, max);
    end_word(&mut word, &mut out, max);
    out
}

fn add(out: &mut Vec<String>, term: String, max: usize) {
    if out.len() < max && !term.is_empty() && !out.contains(&term) {
        out.push(term);
    }
}

fn end_word(word: &mut String, out: &mut Vec<String>, max: usize) {
    if word.chars().nth(1).is_some() && !STOP_WORDS.contains(&word.as_str()) {
        add(out, cut(word), max);
    }
    word.clear();
}

fn end_run(run: &mut Vec<char>, out: &mut Vec<String>, max: usize) {
    if run.len() == 1 {
        add(out, run[0].to_string(), max);
    }
    for pair in run.windows(2) {
        add(out, pair.iter().collect(), max);
    }
    run.clear();
}

/// The form in which a store keyed by terms keeps one (DynamoDB's term items): the first 12
/// bytes of its SHA-256, in hex, so that the index's keys hold no customer's word in the clear.
pub fn term_digest(term: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(term.as_bytes());
    hex::encode(&digest[..12])
}

fn cut(word: &str) -> String {
    word.chars().take(TERM_CHARS_MAX).collect()
}

/// What one indexing adds for a customer: their terms (from a message, their name, their tags),
/// and the conversation a hit opens (the latest one indexed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchEntry {
    pub account_id: String,
    pub user_id: String,
    pub conversation_id: String,
    /// Epoch ms.
    pub at: i64,
    pub terms: Vec<String>,
}

impl SearchEntry {
    /// The entry for a customer's text, their name and tags, or `None` when none has a term.
    pub fn of(
        account_id: &str,
        user_id: &str,
        conversation_id: &str,
        at: i64,
        texts: &[&str],
    ) -> Option<SearchEntry> {
        let mut all: Vec<String> = Vec::new();
        for text in texts {
            for t in terms(text, INDEX_TERMS_MAX) {
                if all.len() < INDEX_TERMS_MAX && !all.contains(&t) {
                    all.push(t);
                }
            }
        }
        (!all.is_empty()).then(|| SearchEntry {
            account_id: account_id.to_owned(),
            user_id: user_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
            at,
            terms: all,
        })
    }
}

/// The customer and terms a stored customer message gave the index (its `source.userId` and
/// the terms of its text), or `None` (not a text, not a 1:1 chat): what an unsend takes back.
pub fn message_terms(event: &serde_json::Value) -> Option<(String, Vec<String>)> {
    let message = event.get("message")?;
    if !matches!(message.get("type")?.as_str()?, "text" | "textV2") {
        return None;
    }
    let user = one_to_one_user(event)?;
    let found = terms(message.get("text")?.as_str()?, INDEX_TERMS_MAX);
    (!found.is_empty()).then(|| (user.to_owned(), found))
}

/// The customer of a LINE event from a 1:1 chat (`source.type` `user`), the only chats whose
/// words are indexed: a customer's erasure finds their words through their own conversations'
/// transcripts, which hold no group or room chat (those are the group's conversations), so words
/// said in a group would outlive the erasure of the customer who said them.
pub fn one_to_one_user(event: &serde_json::Value) -> Option<&str> {
    let source = event.get("source")?;
    if source.get("type")?.as_str()? != "user" {
        return None;
    }
    source.get("userId")?.as_str()
}

/// A customer every term of a query found: the latest conversation where one of the terms was
/// said, and every conversation where one was (an agent may be shown the customer only if it
/// may see all of them: otherwise the result would tell it what was said where it may not look).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub account_id: String,
    pub user_id: String,
    pub conversation_id: String,
    /// Epoch ms of the latest indexed text.
    pub at: i64,
    /// The conversations the terms were found in (distinct; `conversation_id` among them).
    pub conversation_ids: Vec<String>,
}

/// One term's customers in an account: per user, the conversation of their latest indexed text
/// holding the term, and its time (epoch ms).
pub type TermMatches = std::collections::HashMap<String, (String, i64)>;

/// The customers who match every term so far: per user, each matched term's conversation and
/// time.
pub type QueryMatches = std::collections::HashMap<String, Vec<(String, i64)>>;

/// Records that `user`'s text in `conversation` at `at` holds the term, keeping their latest.
pub fn keep_latest(found: &mut TermMatches, user: String, conversation: String, at: i64) {
    match found.get(&user) {
        Some((_, kept)) if *kept >= at => {}
        _ => {
            found.insert(user, (conversation, at));
        }
    }
}

/// The customers of `before` (the query's terms so far; `None` before the first) who are also
/// in `these` (the next term's), with where each term was found.
pub fn intersect(before: Option<QueryMatches>, these: TermMatches) -> QueryMatches {
    match before {
        None => these
            .into_iter()
            .map(|(user, found)| (user, vec![found]))
            .collect(),
        Some(before) => before
            .into_iter()
            .filter_map(|(user, mut found)| {
                these.get(&user).map(|more| {
                    found.push(more.clone());
                    (user, found)
                })
            })
            .collect(),
    }
}

/// The hits of `found`, latest first (then by user id), at most `limit`.
pub fn ranked(account_id: &str, found: QueryMatches, limit: usize) -> Vec<SearchHit> {
    let mut hits: Vec<SearchHit> = found
        .into_iter()
        .filter_map(|(user_id, matches)| {
            let (conversation_id, at) = matches.iter().max_by_key(|(_, at)| *at)?.clone();
            let mut conversation_ids: Vec<String> = Vec::new();
            for (c, _) in &matches {
                if !conversation_ids.contains(c) {
                    conversation_ids.push(c.clone());
                }
            }
            Some(SearchHit {
                account_id: account_id.to_owned(),
                user_id,
                conversation_id,
                at,
                conversation_ids,
            })
        })
        .collect();
    hits.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.user_id.cmp(&b.user_id)));
    hits.truncate(limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_to_one_chats_give_terms() {
        let event = |source: serde_json::Value| {
            serde_json::json!({
                "type": "message",
                "source": source,
                "message": {"type": "text", "id": "1", "text": "parcel refund"}
            })
        };
        let user = event(serde_json::json!({"type": "user", "userId": "U1"}));
        assert_eq!(
            message_terms(&user),
            Some((
                "U1".to_owned(),
                vec!["parcel".to_owned(), "refund".to_owned()]
            ))
        );
        let group = event(serde_json::json!({"type": "group", "groupId": "C1", "userId": "U1"}));
        assert_eq!(message_terms(&group), None);
        let room = event(serde_json::json!({"type": "room", "roomId": "R1", "userId": "U1"}));
        assert_eq!(one_to_one_user(&room), None);
    }

    #[test]
    fn words_are_lowercase_and_distinct() {
        assert_eq!(
            terms("Refund my ORDER, please: order #A-12!", 10),
            ["refund", "order", "please", "12"],
            "no stop word, no single letter"
        );
        assert_eq!(terms("Crème brûlée", 10), ["crème", "brûlée"]);
        assert_eq!(terms("one two three", 2), ["one", "two"], "bounded");
        assert!(terms("  !? …", 10).is_empty());
    }

    #[test]
    fn unspaced_scripts_give_bigrams() {
        assert_eq!(terms("返金したい", 10), ["返金", "金し", "した", "たい"]);
        assert_eq!(terms("返金", 10), ["返金"], "a query of two finds it");
        assert_eq!(terms("金", 10), ["金"]);
        assert_eq!(terms("I", 10), Vec::<String>::new());
        assert_eq!(
            terms("注文ABC123の件", 10),
            ["注文", "abc123", "の件"],
            "words between runs"
        );
        assert_eq!(terms("คืนเงิน", 10).first().map(String::as_str), Some("คื"));
    }

    #[test]
    fn a_digest_is_fixed_and_hides_the_word() {
        assert_eq!(term_digest("refund"), term_digest("refund"));
        assert_ne!(term_digest("refund"), term_digest("refunds"));
        assert_eq!(term_digest("返金").len(), 24);
        assert!(!term_digest("refund").contains("refund"));
    }

    #[test]
    fn long_words_are_cut_alike() {
        let long = "a".repeat(100);
        assert_eq!(terms(&long, 1), ["a".repeat(TERM_CHARS_MAX)]);
    }

    #[test]
    fn an_entry_joins_texts_and_needs_a_term() {
        let e =
            SearchEntry::of("acc", "U1", "c1", 5, &["Hello world", "Sato", "vip hello"]).unwrap();
        assert_eq!(e.terms, ["hello", "world", "sato", "vip"]);
        assert!(SearchEntry::of("acc", "U1", "c1", 5, &["it is a"]).is_none());
        assert!(SearchEntry::of("acc", "U1", "c1", 5, &["…", ""]).is_none());
    }
}
