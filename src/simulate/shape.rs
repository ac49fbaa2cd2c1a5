//! What each simulated provider is, written from its own documentation (PROVIDERS.md and
//! the pages cited below), never from offboard's catalogue: where its endpoints are (the
//! revocation; where the provider has one, a probe that says whether a token still works;
//! and Dropbox's token endpoint, for refresh-then-revoke), what a request to each must carry,
//! and what a revocation kills.
//!
//! What a request to each endpoint must carry is `wants`; the checks that read a request
//! (`checks`) and the answers (`answers`) follow these facts. Keeping them as data makes
//! each provider one row per question.

use axum::http::Method;

use super::SimProvider;
use super::wire::percent_decode;
use crate::provider::dialect::Dialect;
use crate::token::TokenType;

/// One endpoint of a simulated provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Revoke,
    Probe(Probe),
    /// The token endpoint's refresh grant (RFC 6749 §6): a refresh token in, a fresh access
    /// token of its grant out.
    Token,
}

/// A provider's own way of asking whether a token still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// RFC 7662 introspection: form `token`, the client authentication of the revocation;
    /// `{"active": false}` for a dead or unknown token.
    Introspect,
    /// Google's `GET /tokeninfo?access_token=…`: 400 `invalid_token` when dead.
    GoogleTokeninfo,
    /// Slack's `auth.test`: `{"ok": false, "error": "token_revoked" | "invalid_auth"}` when dead.
    SlackAuthTest,
    /// GitHub's "Check a token": `POST /applications/{client_id}/token`, 404 when dead.
    GithubCheck,
    /// Twitch's `GET /oauth2/validate` with `Authorization: OAuth <token>`: 401 when dead.
    TwitchValidate,
    /// Zendesk's `GET /api/v2/users/me.json` with the token as Bearer: 401 when dead.
    ZendeskMe,
    /// HubSpot's `GET /oauth/v1/refresh-tokens/{token}` (refresh token metadata): 404 when dead.
    HubspotRefreshToken,
    /// LinkedIn's `POST /oauth/v2/introspectToken`: `{"active": false, "status": "revoked"}`.
    LinkedinIntrospect,
    /// Notion's `POST /v1/oauth/introspect`: `{"active": false}`.
    NotionIntrospect,
    /// Dropbox's `POST /2/check/user` with the token as Bearer: 401 when dead.
    DropboxCheckUser,
}

type Route = (Verb, &'static str, Endpoint);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Delete,
}

const fn revoke(path: &'static str) -> Route {
    (Verb::Post, path, Endpoint::Revoke)
}

const fn probe(verb: Verb, path: &'static str, probe: Probe) -> Route {
    (verb, path, Endpoint::Probe(probe))
}

/// Every endpoint of a dialect, the revocation first. `{client_id}` stands for the
/// provider's client id, `{token}` for a token in the path; Keycloak's realm is `offboard`.
fn routes(dialect: Dialect) -> &'static [Route] {
    use Probe::*;
    use Verb::*;
    match dialect {
        Dialect::Rfc7009 => const { &[revoke("/oauth2/revoke"), probe(Post, "/oauth2/introspect", Introspect)] },
        Dialect::Stitch => const { &[revoke("/connect/token/revoke")] },
        Dialect::Moov => const { &[revoke("/oauth2/revoke")] },
        Dialect::Onelogin => const { &[revoke("/auth/oauth2/revoke")] },
        Dialect::Auth0 => const { &[revoke("/oauth/revoke")] },
        Dialect::Google => const { &[revoke("/revoke"), probe(Get, "/tokeninfo", GoogleTokeninfo)] },
        Dialect::Slack => const { &[revoke("/api/auth.revoke"), probe(Post, "/api/auth.test", SlackAuthTest)] },
        Dialect::Okta => {
            const {
                &[
                    revoke("/oauth2/v1/revoke"),
                    probe(Post, "/oauth2/v1/introspect", Introspect),
                ]
            }
        }
        Dialect::Keycloak => {
            const {
                &[
                    revoke("/realms/offboard/protocol/openid-connect/revoke"),
                    probe(
                        Post,
                        "/realms/offboard/protocol/openid-connect/token/introspect",
                        Introspect,
                    ),
                ]
            }
        }
        Dialect::X => const { &[revoke("/2/oauth2/revoke")] },
        Dialect::Salesforce => const { &[revoke("/services/oauth2/revoke")] },
        Dialect::Box => const { &[revoke("/oauth2/revoke")] },
        Dialect::Twitch => const { &[revoke("/oauth2/revoke"), probe(Get, "/oauth2/validate", TwitchValidate)] },
        Dialect::Zoom => const { &[revoke("/oauth/revoke")] },
        Dialect::Intuit => const { &[revoke("/v2/oauth2/tokens/revoke")] },
        // dropbox.com/developers/documentation/http/documentation#oauth2-token.
        Dialect::Dropbox => {
            const {
                &[
                    revoke("/2/auth/token/revoke"),
                    probe(Post, "/2/check/user", DropboxCheckUser),
                    (Post, "/oauth2/token", Endpoint::Token),
                ]
            }
        }
        Dialect::Notion => {
            const {
                &[
                    revoke("/v1/oauth/revoke"),
                    probe(Post, "/v1/oauth/introspect", NotionIntrospect),
                ]
            }
        }
        Dialect::Discord => const { &[revoke("/api/oauth2/token/revoke")] },
        Dialect::Linkedin => {
            const {
                &[
                    revoke("/oauth/v2/revoke"),
                    probe(Post, "/oauth/v2/introspectToken", LinkedinIntrospect),
                ]
            }
        }
        Dialect::Github => {
            const {
                &[
                    (Delete, "/applications/{client_id}/token", Endpoint::Revoke),
                    probe(Post, "/applications/{client_id}/token", GithubCheck),
                ]
            }
        }
        Dialect::Hubspot => const { &[revoke("/oauth/2026-03/token/revoke")] },
        Dialect::HubspotLegacy => {
            const {
                &[
                    (Delete, "/oauth/v1/refresh-tokens/{token}", Endpoint::Revoke),
                    probe(Get, "/oauth/v1/refresh-tokens/{token}", HubspotRefreshToken),
                ]
            }
        }
        Dialect::Zendesk => {
            const {
                &[
                    (Delete, "/api/v2/oauth/tokens/current.json", Endpoint::Revoke),
                    probe(Get, "/api/v2/users/me.json", ZendeskMe),
                ]
            }
        }
        Dialect::Xero => const { &[revoke("/connect/revocation")] },
        Dialect::Apple => const { &[revoke("/auth/revoke")] },
    }
}

/// Why a request matched no endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoRoute {
    NotFound,
    /// The path is an endpoint's, the method is not.
    WrongMethod,
}

impl SimProvider {
    /// The documented path of the revocation endpoint (`{token}`, for HubSpot's legacy
    /// call, stays to be filled).
    pub(crate) fn path(&self) -> String {
        routes(self.dialect)[0].1.replace("{client_id}", &self.client_id)
    }

    /// The path of the probe endpoint, with what it is, where the provider has one.
    pub(super) fn probe_path(&self) -> Option<(Probe, String)> {
        routes(self.dialect)
            .iter()
            .find_map(|&(_, path, endpoint)| match endpoint {
                Endpoint::Probe(probe) => Some((probe, path.replace("{client_id}", &self.client_id))),
                Endpoint::Revoke | Endpoint::Token => None,
            })
    }

    /// The path of the token endpoint, where the provider has one the simulator serves.
    pub(super) fn token_path(&self) -> Option<&'static str> {
        routes(self.dialect)
            .iter()
            .find_map(|&(_, path, endpoint)| (endpoint == Endpoint::Token).then_some(path))
    }

    /// The endpoint `method` and `path` reach, and the token the path carries, if any.
    pub(super) fn route(&self, method: &Method, path: &str) -> Result<(Endpoint, Option<String>), NoRoute> {
        let mut found = NoRoute::NotFound;
        for &(verb, pattern, endpoint) in routes(self.dialect) {
            let Some(token) = self.matches(pattern, path) else {
                continue;
            };
            let wanted = match verb {
                Verb::Get => Method::GET,
                Verb::Post => Method::POST,
                Verb::Delete => Method::DELETE,
            };
            if *method == wanted {
                return Ok((endpoint, token));
            }
            found = NoRoute::WrongMethod;
        }
        Err(found)
    }

    /// `Some(token in the path)` when `path` (as sent, escapes and all) fits `pattern`.
    fn matches(&self, pattern: &str, path: &str) -> Option<Option<String>> {
        let pattern: Vec<&str> = pattern.split('/').collect();
        let path: Vec<&str> = path.split('/').collect();
        if pattern.len() != path.len() {
            return None;
        }
        let mut token = None;
        for (want, got) in pattern.iter().zip(&path) {
            match *want {
                "{client_id}" if *got == self.client_id => {}
                "{token}" if !got.is_empty() => token = Some(percent_decode(got)?),
                literal if literal == *got => {}
                _ => return None,
            }
        }
        Some(token)
    }
}

/// What revoking a token kills besides itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// The tokens issued `paired_with` it (OneLogin, Google, and the seed dialects as the
    /// simulator always served them).
    Paired,
    Itself,
    /// Every token of its grant, whichever token is sent.
    Grant,
    /// A refresh token takes its grant's access tokens (RFC 7009 §2.1's SHOULD); an access
    /// token only itself.
    GrantFromRefresh,
}

pub(super) fn reach(dialect: Dialect) -> Reach {
    match dialect {
        Dialect::Rfc7009 | Dialect::Stitch | Dialect::Moov | Dialect::Onelogin | Dialect::Auth0 | Dialect::Google => {
            Reach::Paired
        }
        // Okta: "Revoked tokens are considered inactive at the introspection endpoint";
        // Keycloak ends the client session with its refresh token; Salesforce: "refresh →
        // itself and its access tokens".
        Dialect::Okta | Dialect::Keycloak | Dialect::Salesforce => Reach::GrantFromRefresh,
        // Box: "either revokes the pair"; Dropbox: "that refresh token, as well as any other
        // access tokens for that refresh token"; Discord: "any active access or refresh tokens
        // associated with that authorization"; Xero: the refresh token and the connections of
        // its grant; Apple: "the tokens and associated user authorizations"; Intuit:
        // reportedly disconnects the app.
        Dialect::Box | Dialect::Dropbox | Dialect::Discord | Dialect::Xero | Dialect::Apple | Dialect::Intuit => {
            Reach::Grant
        }
        // HubSpot legacy: "This will only delete the refresh token. Access tokens generated
        // with the refresh token will not be affected."
        Dialect::Slack
        | Dialect::X
        | Dialect::Twitch
        | Dialect::Zoom
        | Dialect::Notion
        | Dialect::Linkedin
        | Dialect::Github
        | Dialect::Hubspot
        | Dialect::HubspotLegacy
        | Dialect::Zendesk => Reach::Itself,
    }
}

/// Whether a provider of this dialect has a client secret of its own. Google and
/// Salesforce take no client authentication, Slack and Zendesk the token itself, Twitch only
/// a client id, HubSpot's legacy call nothing; Apple's client secret is a JWT the client
/// signs, checked for its form instead. Dropbox's revocation takes the token itself, but its
/// token endpoint the app's key and secret (a PKCE app has none: `public_client`).
pub(super) fn takes_secret(dialect: Dialect) -> bool {
    !matches!(
        dialect,
        Dialect::Google
            | Dialect::Slack
            | Dialect::Salesforce
            | Dialect::Twitch
            | Dialect::HubspotLegacy
            | Dialect::Zendesk
            | Dialect::Apple
    )
}

/// A token type the revocation endpoint refuses with `unsupported_token_type`: Auth0's access
/// tokens (JWTs), and Xero's (JWTs; its revocation takes the refresh token).
pub(super) fn refuses(dialect: Dialect, token_type: TokenType) -> bool {
    matches!(dialect, Dialect::Auth0 | Dialect::Xero) && token_type == TokenType::AccessToken
}
