//! What a revocation (or a refresh-then-revoke's refresh) request would carry, in names only:
//! its encoding, the names of its body fields, its client authentication and its extra
//! headers. Never a value: not the token, not the client id or secret, not a header's
//! content.

use crate::config::{ProviderConfig, SecretSource};
use crate::provider::definition::{Auth, BodyEncoding, Definition, Refresh};

/// `form body fields token, token_type_hint; client authentication client_secret_basic
/// (…); headers x-moov-version`, for the revocation call of `provider`.
pub(super) fn revocation(provider: &ProviderConfig) -> String {
    let d = &provider.definition;
    let public = matches!(provider.secret, SecretSource::None);
    let mut tokens: Vec<&str> = Vec::new();
    if let Some(f) = &d.token_field {
        tokens.push(f);
    }
    if let Some(f) = &d.token_type_hint_field {
        tokens.push(f);
    }
    let mut credentials: Vec<&str> = Vec::new();
    if d.auth == Auth::ClientSecretPost {
        credentials.push(&d.client_id_field);
        if !public {
            credentials.push(&d.client_secret_field);
        }
    }
    let fields = if d.credentials_first {
        [credentials, tokens].concat()
    } else {
        [tokens, credentials].concat()
    };
    let mut parts = vec![body(d.body, &fields)];
    if d.url.as_ref().is_some_and(|t| t.names().contains(&"token")) {
        parts.push("the token percent-encoded in the URL path".to_owned());
    }
    parts.push(format!("client authentication {}", auth(&d.auth, public)));
    if let Some(jwt) = &d.client_secret_jwt {
        parts.push(format!(
            "the client secret is a JWT signed with the provider's key for audience {}",
            jwt.audience
        ));
    }
    parts.push(headers(d));
    parts.join("; ")
}

/// The same for the refresh call of refresh-then-revoke.
pub(super) fn refresh(refresh: &Refresh, public: bool) -> String {
    let names: Vec<&str> = refresh.fields.iter().map(|(n, _)| n.as_str()).collect();
    let mut fields = names.clone();
    if refresh.auth == Auth::ClientSecretPost {
        fields.push("client_id");
        if !public {
            fields.push("client_secret");
        }
    }
    format!(
        "{}; client authentication {}",
        body(refresh.body, &fields),
        auth(&refresh.auth, public)
    )
}

fn body(encoding: BodyEncoding, fields: &[&str]) -> String {
    let kind = match encoding {
        BodyEncoding::Form => "form body",
        BodyEncoding::Json => "JSON body",
        BodyEncoding::None => return "no body".to_owned(),
    };
    if fields.is_empty() {
        format!("{kind}, no fields")
    } else {
        format!("{kind} with fields {}", fields.join(", "))
    }
}

fn auth(auth: &Auth, public: bool) -> String {
    match auth {
        Auth::ClientSecretBasic => "client_secret_basic (Authorization: Basic, the client id and secret)".to_owned(),
        Auth::ClientSecretPost if public => "client_secret_post, a public client: the client id alone".to_owned(),
        Auth::ClientSecretPost => "client_secret_post (the client id and secret in the body)".to_owned(),
        Auth::Bearer => "bearer (Authorization: Bearer, the token being revoked)".to_owned(),
        Auth::None => "none".to_owned(),
        Auth::Authorization(t) => {
            let names = t.names();
            if names.is_empty() {
                "an Authorization header of the provider's own".to_owned()
            } else {
                format!(
                    "an Authorization header of the provider's own, with {}",
                    names.join(", ")
                )
            }
        }
    }
}

fn headers(d: &Definition) -> String {
    let names: Vec<&str> = d.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
    if names.is_empty() {
        "no extra headers".to_owned()
    } else {
        format!("headers {}", names.join(", "))
    }
}
