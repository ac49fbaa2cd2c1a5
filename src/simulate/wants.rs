//! What a request to each endpoint of each simulated provider must carry: the body's
//! media type, the client's credentials and where the token travels, as the provider's
//! documentation says. `checks` reads requests against these.

use super::shape::{Endpoint, Probe};
use crate::provider::dialect::Dialect;
use crate::token::TokenType;

/// What a request to an endpoint must carry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wants {
    pub(super) body: BodyRule,
    pub(super) auth: AuthRule,
    pub(super) token: TokenAt,
    /// A header the provider refuses a request without (Notion's `Notion-Version`).
    pub(super) header: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyRule {
    Form,
    Json,
    FormOrJson,
    /// Dropbox's RPC endpoints: no `Content-Type` at all, or JSON.
    JsonOrAbsent,
    /// Not looked at.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthRule {
    /// No client authentication: whoever holds the token may use it.
    None,
    /// HTTP Basic, form-decoded first when `form_decode` (RFC 6749 §2.3.1).
    Basic { form_decode: bool },
    /// Basic or the credentials in the body, as the provider's `auth` says.
    Configured { form_decode: bool },
    /// `client_id` and `client_secret` in the body (no secret for a public client).
    Post,
    /// Twitch: `client_id` in the body, no secret.
    PostIdOnly,
    /// OneLogin's `Authorization: client_id:…, client_secret:…`.
    Onelogin,
    /// Apple: `client_id` in the body and `client_secret` an ES256 JWT.
    AppleJwt,
    /// HTTP Basic (as is) when the request has it, else `client_id` and `client_secret` in
    /// the body (Dropbox's token endpoint takes either).
    BasicOrPost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenAt {
    Field(&'static str),
    /// `Authorization: <scheme> <token>`.
    Authorization(&'static str),
    /// Slack: a Bearer token, or else a `token` form field.
    BearerOrField,
    /// In the path (`{token}`).
    Path,
    Query(&'static str),
}

impl TokenAt {
    /// The one token type a provider knows at this place: a token used as a credential is
    /// an access token, HubSpot's refresh-token path holds refresh tokens. Another type there
    /// is a token the provider does not know.
    pub(super) fn only(self) -> Option<TokenType> {
        match self {
            TokenAt::Authorization(_) | TokenAt::BearerOrField => Some(TokenType::AccessToken),
            TokenAt::Field("access_token") | TokenAt::Query("access_token") => Some(TokenType::AccessToken),
            TokenAt::Path | TokenAt::Field("refresh_token") => Some(TokenType::RefreshToken),
            TokenAt::Field(_) | TokenAt::Query(_) => None,
        }
    }
}

const fn wants(body: BodyRule, auth: AuthRule, token: TokenAt) -> Wants {
    Wants {
        body,
        auth,
        token,
        header: None,
    }
}

const TOKEN: TokenAt = TokenAt::Field("token");
const BEARER: TokenAt = TokenAt::Authorization("Bearer");
const RFC6749: AuthRule = AuthRule::Configured { form_decode: true };
const BASIC: AuthRule = AuthRule::Basic { form_decode: true };
const BASIC_AS_IS: AuthRule = AuthRule::Basic { form_decode: false };

/// What a request to `endpoint` of `dialect` must carry.
pub(super) fn wants_of(dialect: Dialect, endpoint: Endpoint) -> Wants {
    use AuthRule as A;
    use BodyRule as B;
    match endpoint {
        Endpoint::Revoke => match dialect {
            Dialect::Rfc7009 | Dialect::Okta | Dialect::Keycloak | Dialect::Discord | Dialect::X => {
                wants(B::Form, RFC6749, TOKEN)
            }
            Dialect::Moov => wants(B::FormOrJson, A::Configured { form_decode: false }, TOKEN),
            Dialect::Stitch | Dialect::Box | Dialect::Linkedin | Dialect::Hubspot => wants(B::Form, A::Post, TOKEN),
            Dialect::Onelogin => wants(B::Json, A::Onelogin, TokenAt::Field("access_token")),
            Dialect::Auth0 => wants(B::Json, A::Post, TOKEN),
            Dialect::Google | Dialect::Salesforce => wants(B::Form, A::None, TOKEN),
            Dialect::Slack => wants(B::Any, A::None, TokenAt::BearerOrField),
            Dialect::Twitch => wants(B::Form, A::PostIdOnly, TOKEN),
            Dialect::Zoom | Dialect::Xero => wants(B::Form, BASIC, TOKEN),
            // Intuit's SDK sends JSON; other clients send a form, which Intuit takes too.
            Dialect::Intuit => wants(B::FormOrJson, BASIC, TOKEN),
            Dialect::Dropbox => wants(B::JsonOrAbsent, A::None, BEARER),
            Dialect::Notion => Wants {
                header: Some("notion-version"),
                ..wants(B::Json, BASIC_AS_IS, TOKEN)
            },
            Dialect::Github => wants(B::Json, BASIC_AS_IS, TokenAt::Field("access_token")),
            Dialect::HubspotLegacy => wants(B::Any, A::None, TokenAt::Path),
            Dialect::Zendesk => wants(B::Any, A::None, BEARER),
            Dialect::Apple => wants(B::Form, A::AppleJwt, TOKEN),
        },
        Endpoint::Probe(probe) => match probe {
            Probe::Introspect => wants(B::Form, wants_of(dialect, Endpoint::Revoke).auth, TOKEN),
            Probe::GoogleTokeninfo => wants(B::Any, A::None, TokenAt::Query("access_token")),
            Probe::SlackAuthTest => wants(B::Any, A::None, TokenAt::BearerOrField),
            Probe::GithubCheck => wants(B::Json, BASIC_AS_IS, TokenAt::Field("access_token")),
            Probe::TwitchValidate => wants(B::Any, A::None, TokenAt::Authorization("OAuth")),
            Probe::ZendeskMe | Probe::DropboxCheckUser => wants(B::Any, A::None, BEARER),
            Probe::HubspotRefreshToken => wants(B::Any, A::None, TokenAt::Path),
            Probe::LinkedinIntrospect => wants(B::Form, A::Post, TOKEN),
            Probe::NotionIntrospect => wants(B::Json, BASIC_AS_IS, TOKEN),
        },
        // Dropbox's `oauth2/token`: "POST parameters" (a form), the app key and secret as
        // parameters or HTTP Basic, and the refresh token (`grant_type` is `token`'s check).
        Endpoint::Token => wants(B::Form, A::BasicOrPost, TokenAt::Field("refresh_token")),
    }
}
