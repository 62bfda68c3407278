//! The LINE Messaging API as a state machine: LINE's rules, kept once for every stand-in.
//!
//! Two stand-ins for LINE use it: the sandbox's simulated platform (`omniline-local`, axum,
//! persisted in `sandbox.db`) and the load test's stand-in (`omniline-loadtest`, hyper, with
//! fault injection). Each is a thin HTTP adapter: it turns an HTTP request into a [`Request`],
//! passes it to [`Simulator::call`] with the time, carries out the [`Call`] it gets back
//! (recording a delivery, reading a profile or content it keeps itself) and writes the
//! [`Answer`] as HTTP.
//!
//! The rules kept here:
//! - the routes of the Messaging API a stand-in serves ([`route`], [`Endpoint`]); an unknown
//!   route is LINE's 404, a partner-only endpoint (marking read by user id, LINE notification
//!   messages) is LINE's 403, as for every channel that is not a partner ([`Access::Partner`]);
//! - the channel access token on every call (LINE's 401), and stateless tokens from the channel
//!   ID and secret (`/oauth2/v3/token`);
//! - request bodies: 1 to 5 message objects, each as LINE validates it ([`messages`]);
//! - reply tokens: issued for a chat, accepted once, for a limited time
//!   ([`Config::reply_token_lifetime`]);
//! - `X-Line-Retry-Key`: a UUID; a key accepted before is LINE's 409 with
//!   `x-line-accepted-request-id` and the first request's `sentMessages`, never a second delivery
//!   ([`Config::retry_key_window`]);
//! - pushes, loading animations, profiles and link tokens for users who are friends only;
//!   content only for messages a user sent; `markAsReadToken`s as issued;
//! - the loading animation ends when a message from the account arrives.
//!
//! No HTTP server, no I/O, no wall clock: the time is passed in as [`Millis`]; ids come from a
//! seeded generator ([`Config::seed`]).

#![forbid(unsafe_code)]

pub mod endpoint;
pub mod error;
mod ids;
pub mod messages;
mod sim;

pub use endpoint::{route, Access, Endpoint, Route};
pub use error::{Answer, ErrorDetail, LineError, SentMessage};
pub use messages::UrlPolicy;
pub use sim::{
    Call, Channel, ClientCredentials, Config, Delivery, Group, Pushed, ReadMark, ReplyTarget,
    Request, Simulator, Stats, Via,
};

use std::time::Duration;

/// A point in time in milliseconds (epoch milliseconds by convention), as the adapter reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    /// `self` plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// How long after `earlier` this is (zero when it is not after).
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_arithmetic_saturates() {
        assert_eq!(Millis(10).plus(Duration::from_secs(1)), Millis(1010));
        assert_eq!(
            Millis(i64::MAX).plus(Duration::from_secs(1)),
            Millis(i64::MAX)
        );
        assert_eq!(Millis(5).since(Millis(10)), Duration::ZERO);
        assert_eq!(Millis(1500).since(Millis(500)), Duration::from_secs(1));
    }
}
