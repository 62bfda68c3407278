//! The routes of the Messaging API a stand-in may serve, and who may call them.

/// A Messaging API endpoint (`messaging-api.yml`, `channel-access-token.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v2/bot/info`
    BotInfo,
    /// `GET /v2/bot/channel/webhook/endpoint`
    GetWebhookEndpoint,
    /// `PUT /v2/bot/channel/webhook/endpoint`
    SetWebhookEndpoint,
    /// `POST /v2/bot/channel/webhook/test`
    TestWebhookEndpoint,
    /// `GET /v2/bot/profile/{userId}`
    Profile,
    /// `GET /v2/bot/group/{groupId}/member/{userId}`
    GroupMemberProfile,
    /// `GET /v2/bot/room/{roomId}/member/{userId}`
    RoomMemberProfile,
    /// `GET /v2/bot/group/{groupId}/summary`
    GroupSummary,
    /// `GET /v2/bot/message/quota`
    MessageQuota,
    /// `GET /v2/bot/message/quota/consumption`
    QuotaConsumption,
    /// `GET /v2/bot/message/{messageId}/content`
    Content,
    /// `POST /v2/bot/message/reply`
    Reply,
    /// `POST /v2/bot/message/push`
    Push,
    /// `POST /v2/bot/chat/loading/start`
    StartLoading,
    /// `POST /v2/bot/chat/markAsRead`
    MarkAsReadByToken,
    /// `POST /v2/bot/message/markAsRead` (partner docs: marking by user id)
    MarkAsRead,
    /// `POST /v2/bot/user/{userId}/linkToken`
    LinkToken,
    /// `POST /oauth2/v3/token` (stateless channel access token)
    IssueStatelessToken,
    /// `POST /bot/pnp/push` (partner docs: LINE notification messages)
    PnpPush,
    /// `GET /v2/bot/message/delivery/pnp` (partner docs)
    PnpDeliveries,
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any channel (with its access token; the token endpoint with the channel's ID and secret).
    Channel,
    /// LINE's partners only, on application: no simulated channel is one, so LINE's 403 (what
    /// an ordinary channel, the kind omniline runs on, gets).
    Partner,
}

impl Endpoint {
    pub const ALL: [Endpoint; 20] = [
        Endpoint::BotInfo,
        Endpoint::GetWebhookEndpoint,
        Endpoint::SetWebhookEndpoint,
        Endpoint::TestWebhookEndpoint,
        Endpoint::Profile,
        Endpoint::GroupMemberProfile,
        Endpoint::RoomMemberProfile,
        Endpoint::GroupSummary,
        Endpoint::MessageQuota,
        Endpoint::QuotaConsumption,
        Endpoint::Content,
        Endpoint::Reply,
        Endpoint::Push,
        Endpoint::StartLoading,
        Endpoint::MarkAsReadByToken,
        Endpoint::MarkAsRead,
        Endpoint::LinkToken,
        Endpoint::IssueStatelessToken,
        Endpoint::PnpPush,
        Endpoint::PnpDeliveries,
    ];

    pub fn access(self) -> Access {
        match self {
            Endpoint::MarkAsRead | Endpoint::PnpPush | Endpoint::PnpDeliveries => Access::Partner,
            _ => Access::Channel,
        }
    }
}

/// A routed request: the endpoint and the path's parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub endpoint: Endpoint,
    pub params: Vec<&'a str>,
}

/// The endpoint `method` `path` names (a path without its query), or `None` (LINE's 404).
/// Parameters are non-empty path segments.
pub fn route<'a>(method: &str, path: &'a str) -> Option<Route<'a>> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (endpoint, params) = match (method, segments.as_slice()) {
        ("GET", ["v2", "bot", "info"]) => (Endpoint::BotInfo, vec![]),
        ("GET", ["v2", "bot", "channel", "webhook", "endpoint"]) => {
            (Endpoint::GetWebhookEndpoint, vec![])
        }
        ("PUT", ["v2", "bot", "channel", "webhook", "endpoint"]) => {
            (Endpoint::SetWebhookEndpoint, vec![])
        }
        ("POST", ["v2", "bot", "channel", "webhook", "test"]) => {
            (Endpoint::TestWebhookEndpoint, vec![])
        }
        ("GET", ["v2", "bot", "profile", user]) => (Endpoint::Profile, vec![*user]),
        ("GET", ["v2", "bot", "group", group, "member", user]) => {
            (Endpoint::GroupMemberProfile, vec![*group, *user])
        }
        ("GET", ["v2", "bot", "room", room, "member", user]) => {
            (Endpoint::RoomMemberProfile, vec![*room, *user])
        }
        ("GET", ["v2", "bot", "group", group, "summary"]) => (Endpoint::GroupSummary, vec![*group]),
        ("GET", ["v2", "bot", "message", "quota"]) => (Endpoint::MessageQuota, vec![]),
        ("GET", ["v2", "bot", "message", "quota", "consumption"]) => {
            (Endpoint::QuotaConsumption, vec![])
        }
        ("GET", ["v2", "bot", "message", "delivery", "pnp"]) => (Endpoint::PnpDeliveries, vec![]),
        ("GET", ["v2", "bot", "message", id, "content"]) => (Endpoint::Content, vec![*id]),
        ("POST", ["v2", "bot", "message", "reply"]) => (Endpoint::Reply, vec![]),
        ("POST", ["v2", "bot", "message", "push"]) => (Endpoint::Push, vec![]),
        ("POST", ["v2", "bot", "message", "markAsRead"]) => (Endpoint::MarkAsRead, vec![]),
        ("POST", ["v2", "bot", "chat", "loading", "start"]) => (Endpoint::StartLoading, vec![]),
        ("POST", ["v2", "bot", "chat", "markAsRead"]) => (Endpoint::MarkAsReadByToken, vec![]),
        ("POST", ["v2", "bot", "user", user, "linkToken"]) => (Endpoint::LinkToken, vec![*user]),
        ("POST", ["oauth2", "v3", "token"]) => (Endpoint::IssueStatelessToken, vec![]),
        ("POST", ["bot", "pnp", "push"]) => (Endpoint::PnpPush, vec![]),
        _ => return None,
    };
    Some(Route { endpoint, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_endpoints_and_their_parameters() {
        let r = route("GET", "/v2/bot/profile/U1").expect("routed");
        assert_eq!((r.endpoint, r.params), (Endpoint::Profile, vec!["U1"]));
        let r = route("GET", "/v2/bot/group/C1/member/U1").expect("routed");
        assert_eq!(
            (r.endpoint, r.params),
            (Endpoint::GroupMemberProfile, vec!["C1", "U1"])
        );
        let r = route("GET", "/v2/bot/message/42/content").expect("routed");
        assert_eq!((r.endpoint, r.params), (Endpoint::Content, vec!["42"]));
        assert_eq!(
            route("GET", "/v2/bot/message/delivery/pnp").map(|r| r.endpoint),
            Some(Endpoint::PnpDeliveries)
        );
        assert_eq!(
            route("POST", "/v2/bot/user/U1/linkToken").map(|r| r.endpoint),
            Some(Endpoint::LinkToken)
        );
    }

    #[test]
    fn unknown_routes_methods_and_empty_parameters_are_not_found() {
        for (method, path) in [
            ("GET", "/v2/bot/profile/"),
            ("GET", "/v2/bot/profile"),
            ("GET", "v2/bot/info"),
            ("POST", "/v2/bot/info"),
            ("GET", "/v2/bot/message/reply"),
            ("POST", "/v2/bot/chat/anything"),
            ("DELETE", "/v2/bot/channel/webhook/endpoint"),
            ("GET", "/v2/bot/message//content"),
            ("GET", "/"),
            ("GET", ""),
        ] {
            assert_eq!(route(method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn partner_endpoints_are_marked() {
        let partner: Vec<Endpoint> = Endpoint::ALL
            .into_iter()
            .filter(|e| e.access() == Access::Partner)
            .collect();
        assert_eq!(
            partner,
            [
                Endpoint::MarkAsRead,
                Endpoint::PnpPush,
                Endpoint::PnpDeliveries
            ]
        );
    }
}
