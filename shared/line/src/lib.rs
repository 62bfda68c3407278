//! omniline's HTTP clients: the LINE Messaging API ([`api::HttpLineApi`]) and bot hooks
//! ([`bot::HttpBotHook`]), both on reqwest with rustls. They implement `omniline_ports::LineApi`
//! and `omniline_ports::BotHook`.

pub mod api;
pub mod bot;
mod http;

pub use api::{HttpLineApi, LineApiConfig, DEFAULT_MAX_CONTENT_BYTES};
pub use bot::HttpBotHook;
