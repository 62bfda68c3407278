//! omniline's HTTP clients: the LINE Messaging API ([`api::HttpLineApi`]), bot hooks
//! ([`bot::HttpBotHook`]) and an OpenID Connect issuer ([`oidc::HttpIdentityProvider`]), on
//! reqwest with rustls. They implement `omniline_ports::LineApi`, `omniline_ports::BotHook` and
//! `omniline_ports::IdentityProvider`.

pub mod api;
pub mod bot;
mod http;
pub mod oidc;

pub use api::{HttpLineApi, LineApiConfig, DEFAULT_MAX_CONTENT_BYTES};
pub use bot::HttpBotHook;
pub use oidc::HttpIdentityProvider;
