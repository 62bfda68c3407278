//! Routing ("work classification"): ordered rules that pick a queue, priority, skills and bot for
//! an incoming conversation. Pure domain code: no AWS, no I/O.
//!
//! [`rules`] holds the wire form ([`rules::RuleDef`]), validation ([`rules::validate_rules`]) and
//! the compiled, thread-safe evaluator ([`rules::CompiledRules`]).

pub mod rules;
