//! Message templates: LINE messages an admin writes once and agents send by id, with variables
//! (`{{orderId}}`) the agent fills in when sending and two the stack fills: `{{customerName}}`
//! and `{{agentName}}`. Stored as config documents ([`MESSAGE_TEMPLATE_KIND`]); each message is
//! checked with LINE's rules ([`crate::line::message_rules`]) when the template is saved, and
//! again once filled in, so neither a template nor what it becomes is something LINE refuses.

use crate::line::message_rules::{check_message, UrlPolicy, MAX_MESSAGES};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Config document kind of message templates (id: the template's).
pub const MESSAGE_TEMPLATE_KIND: &str = "messageTemplate";
/// Variables the stack fills in.
pub const BUILT_IN_VARIABLES: [&str; 2] = ["customerName", "agentName"];
/// Declared variables per template.
pub const MAX_VARIABLES: usize = 20;
/// Longest value an agent gives a variable.
pub const MAX_VALUE_LENGTH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageTemplate {
    pub id: String,
    pub name: String,
    /// LINE message objects, 1 to 5, sent in one call.
    pub messages: Vec<Value>,
    /// The variables agents fill in (the built-ins need no declaration).
    #[serde(default)]
    pub variables: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

/// The property at fault and the problem.
pub type Problem = (String, String);

fn valid_name(name: &str) -> bool {
    (1..=30).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `{{name}}` placeholders in the strings of `value`, in order.
fn placeholders(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                match after.find("}}") {
                    Some(end) => {
                        out.push(after[..end].to_owned());
                        rest = &after[end + 2..];
                    }
                    None => break,
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| placeholders(v, out)),
        Value::Object(map) => map.values().for_each(|v| placeholders(v, out)),
        _ => {}
    }
}

/// Checks a template's messages and variables: 1 to 5 messages LINE takes, variables named
/// with letters, digits and `_`, every placeholder declared (or built in).
pub fn check(messages: &[Value], variables: &[String]) -> Result<(), Problem> {
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err((
            "messages".into(),
            format!("must be 1 to {MAX_MESSAGES} messages"),
        ));
    }
    if variables.len() > MAX_VARIABLES {
        return Err((
            "variables".into(),
            format!("at most {MAX_VARIABLES} variables"),
        ));
    }
    for (i, name) in variables.iter().enumerate() {
        if !valid_name(name) || BUILT_IN_VARIABLES.contains(&name.as_str()) {
            return Err((
                format!("variables[{i}]"),
                "a name of 1 to 30 letters, digits or _, not customerName or agentName".into(),
            ));
        }
    }
    for (i, message) in messages.iter().enumerate() {
        check_message(message, UrlPolicy::HttpsOnly).map_err(|(property, problem)| {
            let at = if property.is_empty() {
                format!("messages[{i}]")
            } else {
                format!("messages[{i}].{property}")
            };
            (at, problem)
        })?;
        let mut used = Vec::new();
        placeholders(message, &mut used);
        if let Some(unknown) = used
            .iter()
            .find(|u| !variables.contains(u) && !BUILT_IN_VARIABLES.contains(&u.as_str()))
        {
            return Err((
                format!("messages[{i}]"),
                format!("{{{{{unknown}}}}} is not a declared variable"),
            ));
        }
    }
    Ok(())
}

/// The template's messages with every `{{name}}` replaced by `values` (the agent's and the
/// built-ins), checked again with LINE's rules. `Err` names the missing variable
/// (`variables.{name}`) or the message LINE would refuse once filled in.
pub fn fill(
    template: &MessageTemplate,
    values: &BTreeMap<String, String>,
) -> Result<Vec<Value>, Problem> {
    for name in template
        .variables
        .iter()
        .map(String::as_str)
        .chain(BUILT_IN_VARIABLES)
    {
        if !values.contains_key(name) {
            return Err((format!("variables.{name}"), "must be given".into()));
        }
    }
    if let Some((name, _)) = values
        .iter()
        .find(|(_, v)| v.chars().count() > MAX_VALUE_LENGTH)
    {
        return Err((
            format!("variables.{name}"),
            format!("at most {MAX_VALUE_LENGTH} characters"),
        ));
    }
    let filled: Vec<Value> = template
        .messages
        .iter()
        .map(|m| replace(m, values))
        .collect();
    for (i, message) in filled.iter().enumerate() {
        check_message(message, UrlPolicy::HttpsOnly).map_err(|(property, problem)| {
            (
                format!("messages[{i}].{property}"),
                format!("once filled in: {problem}"),
            )
        })?;
    }
    Ok(filled)
}

fn replace(value: &Value, values: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => {
            let mut out = s.clone();
            for (name, v) in values {
                out = out.replace(&format!("{{{{{name}}}}}"), v);
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| replace(v, values)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> MessageTemplate {
        MessageTemplate {
            id: "t1".into(),
            name: "Shipped".into(),
            messages: vec![
                json!({"type": "text", "text": "{{customerName}}様、ご注文 {{orderId}} を発送しました（{{agentName}}）"}),
                json!({"type": "template", "altText": "Track {{orderId}}", "template": {"type": "buttons", "text": "Track it",
                    "actions": [{"type": "uri", "label": "Track", "uri": "https://shop.example/t/{{orderId}}"}]}}),
            ],
            variables: vec!["orderId".into()],
            created_at: "2026-12-07T00:00:00.000Z".into(),
            updated_at: "2026-12-07T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn templates_are_checked_when_saved() {
        let t = template();
        assert_eq!(check(&t.messages, &t.variables), Ok(()));
        assert_eq!(check(&[], &[]).unwrap_err().0, "messages");
        assert_eq!(
            check(&t.messages, &[]).unwrap_err().0,
            "messages[0]",
            "orderId undeclared"
        );
        assert_eq!(
            check(&[json!({"type": "text", "text": ""})], &[])
                .unwrap_err()
                .0,
            "messages[0].text"
        );
        assert_eq!(
            check(&t.messages, &["customerName".into()]).unwrap_err().0,
            "variables[0]"
        );
        assert_eq!(
            check(&t.messages, &["order id".into()]).unwrap_err().0,
            "variables[0]"
        );
    }

    #[test]
    fn templates_are_filled_in_and_checked_again() {
        let t = template();
        let values: BTreeMap<String, String> = [
            ("orderId", "A-17"),
            ("customerName", "山田"),
            ("agentName", "Hanako"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let filled = fill(&t, &values).unwrap();
        assert_eq!(
            filled[0]["text"],
            "山田様、ご注文 A-17 を発送しました（Hanako）"
        );
        assert_eq!(
            filled[1]["template"]["actions"][0]["uri"],
            "https://shop.example/t/A-17"
        );
        let mut missing = values.clone();
        missing.remove("orderId");
        assert_eq!(fill(&t, &missing).unwrap_err().0, "variables.orderId");
        // A value that makes a message too long for LINE.
        let mut long = values;
        long.insert("orderId".into(), "x".repeat(999));
        assert_eq!(
            fill(&t, &long).unwrap_err().0,
            "messages[1].altText",
            "400 characters at most"
        );
    }
}
