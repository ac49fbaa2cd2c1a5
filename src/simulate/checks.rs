//! Reading one request as its provider would: a required header, the content type, the
//! client's credentials and the token, in that order, each as the endpoint's [`Wants`]
//! (from `shape`) says. The first thing missing or wrong decides the refusal; the wording of
//! each refusal is `answers`'.

use axum::http::HeaderMap;

use super::SimProvider;
use super::apple::check_client_secret;
use super::wants::{AuthRule, BodyRule, TokenAt, Wants};
use super::wire::{Body, Kind, authorization, basic_credentials, content_kind, header_value, parse_body, parse_query};
use crate::provider::dialect::ClientAuth;

/// What a provider refuses a request for before it looks at the token's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejection {
    BadCredentials,
    MissingCredentials,
    WrongContentType,
    MissingToken,
    /// A header the provider requires (Notion's `Notion-Version`).
    MissingHeader(&'static str),
}

/// A request as the checks see it.
pub(super) struct Request<'a> {
    pub(super) headers: &'a HeaderMap,
    pub(super) bytes: &'a [u8],
    pub(super) query: Option<&'a str>,
    /// The token in the path, for an endpoint that takes it there.
    pub(super) path_token: Option<String>,
}

/// Checks a request against what the endpoint wants; returns the token it carries.
pub(super) fn check_request(p: &SimProvider, wants: Wants, request: &Request<'_>) -> Result<String, Rejection> {
    let headers = request.headers;
    if let Some(name) = wants.header
        && header_value(headers, name).is_none()
    {
        return Err(Rejection::MissingHeader(name));
    }
    let kind = content_kind(headers);
    let allowed = match wants.body {
        BodyRule::Form => kind == Kind::Form,
        BodyRule::Json => kind == Kind::Json,
        BodyRule::FormOrJson => matches!(kind, Kind::Form | Kind::Json),
        BodyRule::JsonOrAbsent => matches!(kind, Kind::Json | Kind::Absent),
        BodyRule::Any => true,
    };
    if !allowed {
        return Err(Rejection::WrongContentType);
    }
    let body = match wants.body {
        BodyRule::Form | BodyRule::Json | BodyRule::FormOrJson => {
            parse_body(kind, request.bytes).ok_or(Rejection::WrongContentType)?
        }
        // Fields are looked for only where a form may carry them (Slack's `token`).
        BodyRule::JsonOrAbsent | BodyRule::Any => {
            parse_body(Kind::Form, request.bytes).ok_or(Rejection::MissingToken)?
        }
    };
    check_credentials(p, wants.auth, headers, &body)?;
    let token = match wants.token {
        TokenAt::Field(name) => body.get(name).map(str::to_owned),
        TokenAt::Authorization(scheme) => authorization(headers, scheme),
        TokenAt::BearerOrField => authorization(headers, "Bearer").or_else(|| body.get("token").map(str::to_owned)),
        TokenAt::Path => request.path_token.clone(),
        TokenAt::Query(name) => parse_query(request.query).get(name).map(str::to_owned),
    };
    token.filter(|t| !t.is_empty()).ok_or(Rejection::MissingToken)
}

fn check_credentials(p: &SimProvider, auth: AuthRule, headers: &HeaderMap, body: &Body) -> Result<(), Rejection> {
    let from_body = || {
        body.get("client_id")
            .map(|id| (id.to_owned(), body.get("client_secret").map(str::to_owned)))
    };
    let from_basic = |form_decode| basic_credentials(headers, form_decode).map(|(id, secret)| (id, Some(secret)));
    let creds: Option<(String, Option<String>)> = match auth {
        AuthRule::None => return Ok(()),
        AuthRule::Basic { form_decode } => from_basic(form_decode),
        AuthRule::Configured { form_decode } => match p.auth {
            ClientAuth::ClientSecretBasic => from_basic(form_decode),
            ClientAuth::ClientSecretPost => from_body(),
        },
        AuthRule::Post => from_body(),
        AuthRule::BasicOrPost if header_value(headers, "authorization").is_some() => from_basic(false),
        AuthRule::BasicOrPost => from_body(),
        AuthRule::PostIdOnly => {
            let id = body.get("client_id").ok_or(Rejection::MissingCredentials)?;
            return if id == p.client_id {
                Ok(())
            } else {
                Err(Rejection::BadCredentials)
            };
        }
        AuthRule::Onelogin => onelogin_credentials(headers),
        AuthRule::AppleJwt => {
            let (Some(id), Some(secret)) = (body.get("client_id"), body.get("client_secret")) else {
                return Err(Rejection::MissingCredentials);
            };
            let now = chrono::Utc::now().timestamp();
            return if id == p.client_id && check_client_secret(secret, id, now).is_ok() {
                Ok(())
            } else {
                Err(Rejection::BadCredentials)
            };
        }
    };
    let (id, secret) = creds.ok_or(Rejection::MissingCredentials)?;
    if id != p.client_id || secret.as_deref() != p.client_secret.as_deref() {
        return Err(Rejection::BadCredentials);
    }
    Ok(())
}

/// OneLogin's `Authorization: client_id:<id>, client_secret:<secret>`.
fn onelogin_credentials(headers: &HeaderMap) -> Option<(String, Option<String>)> {
    let raw = header_value(headers, "authorization").unwrap_or("");
    let mut id = None;
    let mut secret = None;
    for part in raw.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("client_id:") {
            id = Some(v.to_owned());
        } else if let Some(v) = part.strip_prefix("client_secret:") {
            secret = Some(v.to_owned());
        }
    }
    id.map(|id| (id, secret))
}
