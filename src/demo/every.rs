//! The tokens of `offboard demo --providers all`: each user gets one to six sets of tokens
//! spread over every simulated provider, each set shaped as that provider hands them out
//! (an access token and its refresh token where the provider issues pairs, an access token
//! alone where only access tokens can be revoked) and a few revoked elsewhere beforehand, so
//! each provider shows its own way of revoking, of killing a pair, and of answering a token
//! already dead.

use chrono::Utc;

use crate::provider::dialect::Dialect;
use crate::simulate::Simulator;
use crate::storage::seed::NewToken;
use crate::token::{TokenType, TokenValue};

/// The tokens for `users` users (named by `user_name`) across `providers` (name, dialect).
pub(super) fn tokens(
    sim: &Simulator,
    users: usize,
    providers: &[(String, Dialect)],
    user_name: impl Fn(usize) -> String,
) -> Vec<NewToken> {
    let mut tokens = Vec::new();
    let in_hours = |h: i64| Some(Utc::now() + chrono::Duration::hours(h));
    let mut sets = 0usize;
    for i in 0..users {
        let user = user_name(i);
        for k in 0..(1 + (i * 7) % 6) {
            let (provider, dialect) = &providers[(i * 5 + k * 3) % providers.len()];
            sets += 1;
            let grant = format!("grant-{i}-{k}");
            let mut add = |ty: TokenType, paired_with: Option<&str>, expires| {
                let value = sim.issue(provider, ty, paired_with);
                tokens.push(NewToken {
                    user_id: user.clone(),
                    provider: provider.clone(),
                    token_type: ty,
                    value: TokenValue::new(value.clone()),
                    grant_ref: Some(grant.clone()),
                    expires_at: expires,
                });
                value
            };
            let first = match shape(*dialect) {
                Set::Pair => {
                    let access = add(TokenType::AccessToken, None, in_hours(1));
                    add(TokenType::RefreshToken, Some(&access), None);
                    access
                }
                Set::Access => add(TokenType::AccessToken, None, in_hours(1)),
                Set::Refresh => add(TokenType::RefreshToken, None, None),
                // Auth0: refresh tokens are revoked; access tokens (JWTs) are not revocable
                // and, expiring within the day, settled so.
                Set::RefreshOrJwt if sets.is_multiple_of(2) => add(TokenType::AccessToken, None, in_hours(12)),
                Set::RefreshOrJwt => add(TokenType::RefreshToken, None, None),
            };
            // One set in nine was revoked elsewhere before the user left; not at HubSpot's
            // legacy call, whose answer for a dead token is undocumented and fails the
            // request (the entry's `unverified`), which would fail the user here.
            if sets.is_multiple_of(9) && *dialect != Dialect::HubspotLegacy {
                sim.revoke_out_of_band(&first);
            }
        }
    }
    tokens
}

/// How a provider hands out the tokens offboard is given to revoke.
enum Set {
    /// An access token and its refresh token, of one grant.
    Pair,
    /// An access token alone: most of these revoke no other kind (Slack, Twitch, Zoom,
    /// Notion, LinkedIn, GitHub, Zendesk).
    Access,
    /// A refresh token (HubSpot, Xero, Apple, and the seed dialects' usual case; Dropbox's is
    /// revoked through a fresh access token, refresh-then-revoke).
    Refresh,
    RefreshOrJwt,
}

fn shape(dialect: Dialect) -> Set {
    match dialect {
        Dialect::Onelogin
        | Dialect::Google
        | Dialect::Okta
        | Dialect::Keycloak
        | Dialect::Salesforce
        | Dialect::Box
        | Dialect::Intuit
        | Dialect::Discord => Set::Pair,
        Dialect::Auth0 => Set::RefreshOrJwt,
        Dialect::Slack
        | Dialect::Twitch
        | Dialect::Zoom
        | Dialect::Notion
        | Dialect::Linkedin
        | Dialect::X
        | Dialect::Github
        | Dialect::Zendesk
        | Dialect::Stitch => Set::Access,
        Dialect::Rfc7009
        | Dialect::Moov
        | Dialect::Dropbox
        | Dialect::Hubspot
        | Dialect::HubspotLegacy
        | Dialect::Xero
        | Dialect::Apple => Set::Refresh,
    }
}
