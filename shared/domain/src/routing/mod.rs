//! Routing ("work classification"): ordered rules that pick a queue, priority, skills and bot for
//! an incoming conversation. Pure domain code: no AWS, no I/O.
//!
//! [`rules`] holds the wire form ([`rules::RuleDef`]), validation ([`rules::validate_rules`]) and
//! the compiled, thread-safe evaluator ([`rules::CompiledRules`]). [`routing_context`] turns an
//! event into the facts rules test: the router and the admin dry run use the same function.

pub mod rules;

use crate::conversation::Customer;
use crate::line::events::{Event, MessageContent};
use crate::workstream::Workstream;
use rules::RoutingContext;

/// The facts of `event` (from `customer`, at `at` epoch ms in the workstream's timezone) that
/// routing rules test.
pub fn routing_context(
    event: &Event,
    customer: Option<&Customer>,
    ws: &Workstream,
    at: i64,
) -> RoutingContext {
    let local = ws.local_time(at);
    let (message_type, message_text) = match event {
        Event::Message(m) => (
            Some(m.message.message_type().to_owned()),
            match &m.message {
                MessageContent::Text(t) => Some(t.text.clone()),
                _ => None,
            },
        ),
        _ => (None, None),
    };
    RoutingContext {
        // Filled by the caller where it has them (the conversation's context and tags, the
        // customer's attributes and tags).
        context: Default::default(),
        attributes: Default::default(),
        conversation_tags: Vec::new(),
        customer_tags: Vec::new(),
        message_type,
        message_text,
        source_type: event.source().map(|s| s.source_type().to_owned()),
        customer_language: customer.and_then(|c| c.language.clone()),
        customer_linked: customer.map(|c| c.linked_contact_id.is_some()),
        customer_name: customer
            .filter(|c| c.profile_found)
            .map(|c| c.display_name.clone()),
        postback_data: match event {
            Event::Postback(p) => Some(p.postback.data.clone()),
            _ => None,
        },
        event_type: Some(event.event_type().to_owned()),
        hour: Some(local.hour),
        weekday: Some(local.weekday),
        business_hours: Some(ws.is_business_hours(at)),
    }
}
