//! Building one revocation request from a definition: method and URL, headers, client
//! authentication and body, in that order, so that a provider's request is the same bytes
//! whichever way its definition came (catalogue or inline).
//!
//! The secret and the token are exposed only here, while the request is built.

use std::collections::BTreeMap;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Client, RequestBuilder, Url};
use serde_json::Value as Json;

use super::definition::{Auth, BodyEncoding, Definition};
use crate::token::{TokenType, TokenValue};

/// The client's credentials, exposed only while a request is built.
pub(crate) struct Credentials<'a> {
    pub(crate) client_id: &'a str,
    /// `None` for a public client.
    pub(crate) client_secret: Option<&'a str>,
}

impl Definition {
    /// The request revoking `token` (of `token_type`) at `url`. `vars` fill the templates of
    /// headers besides the names filled per request (`client_id`, `client_secret`, `token`,
    /// `token_type`).
    pub(crate) fn request(
        &self,
        client: &Client,
        url: Url,
        vars: &BTreeMap<String, String>,
        creds: &Credentials<'_>,
        token: &TokenValue,
        token_type: TokenType,
    ) -> RequestBuilder {
        let secret = creds.client_secret.unwrap_or_default();
        let value = |name: &str| -> Option<&str> {
            match name {
                "client_id" => Some(creds.client_id),
                "client_secret" => Some(secret),
                "token" => Some(token.expose()),
                "token_type" => Some(token_type.as_str()),
                other => vars.get(other).map(String::as_str),
            }
        };
        let mut request = client.request(self.method.clone(), url);
        // An entry's own Accept (GitHub's `application/vnd.github+json`) replaces the default.
        if !self.extra_headers.iter().any(|(name, _)| name == ACCEPT) {
            request = request.header(ACCEPT, "application/json");
        }
        for (name, template) in &self.extra_headers {
            request = request.header(name, template.render(value));
        }
        let mut credentials: Vec<(&str, &str)> = Vec::new();
        request = match &self.auth {
            // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
            Auth::ClientSecretBasic if self.basic_form_encoded => {
                request.header(AUTHORIZATION, form_encoded_basic(creds.client_id, secret))
            }
            Auth::ClientSecretBasic => request.basic_auth(creds.client_id, Some(secret)),
            Auth::ClientSecretPost => {
                credentials.push((&self.client_id_field, creds.client_id));
                // A public client sends no secret at all.
                if let Some(secret) = creds.client_secret {
                    credentials.push((&self.client_secret_field, secret));
                }
                request
            }
            Auth::Bearer => request.bearer_auth(token.expose()),
            Auth::None => request,
            Auth::Authorization(template) => request.header(AUTHORIZATION, template.render(value)),
        };
        let mut fields: Vec<(&str, &str)> = Vec::new();
        if let Some(name) = &self.token_field {
            fields.push((name, token.expose()));
        }
        if let Some(name) = &self.token_type_hint_field {
            fields.push((name, token_type.as_str()));
        }
        if self.credentials_first {
            credentials.extend(fields);
            fields = credentials;
        } else {
            fields.extend(credentials);
        }
        match self.body {
            BodyEncoding::Form => request.form(&fields),
            BodyEncoding::Json => {
                let body: serde_json::Map<String, Json> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Json::String(v.to_owned())))
                    .collect();
                request.json(&body)
            }
            BodyEncoding::None => request,
        }
    }
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 asks: id and secret form-encoded first.
pub(super) fn form_encoded_basic(client_id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(client_id), form_encode(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
