//! Reading a definition: merging a provider's keys over its catalogue entry and checking the
//! rules between keys, every error naming its key (`resolve.rs` fills the templates).

use super::*;

/// Overlays `over` on `base`: tables are merged key by key, anything else is replaced.
pub(crate) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Reads the definition in `table` without filling its templates: the definition, and its
/// template variables (the keys that are not definition keys, each used by a template;
/// [`super::resolve_with`] checks that every name a template uses is given).
pub(crate) fn read(
    mut table: toml::Table,
    what: &str,
    known: &[&str],
) -> Result<(Definition, BTreeMap<String, String>), DefinitionError> {
    let var_keys: Vec<String> = table.keys().filter(|k| !KEYS.contains(&k.as_str())).cloned().collect();
    let mut raw_vars = toml::Table::new();
    for key in var_keys {
        if let Some(value) = table.remove(&key) {
            raw_vars.insert(key, value);
        }
    }
    let file: DefinitionFile = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        DefinitionError::new(key, message.lines().next().unwrap_or_default().trim())
    })?;
    // Unknown keys first: a typo is the likeliest cause of any other error.
    let used = file_template_names(&file);
    let mut vars = BTreeMap::new();
    for (key, value) in raw_vars {
        if RUNTIME_NAMES.contains(&key.as_str()) {
            return Err(DefinitionError::new(
                key,
                "is filled for each request (client_id, client_secret, token, token_type), not from the config",
            ));
        }
        if !used.contains(&key) {
            let mut candidates: Vec<&str> = KEYS.iter().copied().chain(known.iter().copied()).collect();
            candidates.extend(used.iter().map(String::as_str));
            let close = close_names(&key, &candidates);
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", close.join(" or "))
            };
            return Err(DefinitionError::new(
                key.clone(),
                format!("unknown field `{key}`: not a provider key, and no template of {what} uses {{{key}}}{hint}"),
            ));
        }
        let toml::Value::String(text) = value else {
            return Err(DefinitionError::new(key, "a template variable must be a string"));
        };
        vars.insert(key, text);
    }
    Ok((check(file, what)?, vars))
}

/// The names the templates of a definition as written use; a template that does not parse
/// uses none here (`check` reports it).
fn file_template_names(f: &DefinitionFile) -> Vec<String> {
    let parsed = f
        .url
        .iter()
        .chain(f.extra_headers.values())
        .filter_map(|raw| Template::parse(raw).ok());
    let mut names: Vec<String> = Vec::new();
    let auth = match &f.auth {
        Some(Auth::Authorization(t)) => Some(t.clone()),
        _ => None,
    };
    for template in parsed.chain(auth) {
        names.extend(template.names().into_iter().map(str::to_owned));
    }
    if let Some(refresh) = &f.refresh {
        names.extend(refresh.names());
    }
    names.extend(checks::file_names(f.introspection_url.as_ref(), f.probe.as_ref()));
    names
}

/// Every name the definition's templates use, with the key of the template.
pub(super) fn used_names(d: &Definition) -> Vec<(String, String)> {
    let mut used = Vec::new();
    let mut add = |t: &Template, key: String| {
        for n in t.names() {
            if !used.iter().any(|(u, _): &(String, String)| u == n) {
                used.push((n.to_owned(), key.clone()));
            }
        }
    };
    if let Some(url) = &d.url {
        add(url, "the url".into());
    }
    if let Auth::Authorization(t) = &d.auth {
        add(t, "auth.authorization".into());
    }
    for (name, t) in &d.extra_headers {
        add(t, format!("extra_headers.{name}"));
    }
    for (t, key) in d.refresh.iter().flat_map(Refresh::templates) {
        add(t, key);
    }
    used
}

/// The rules between keys.
fn check(f: DefinitionFile, what: &str) -> Result<Definition, DefinitionError> {
    fn err(key: impl Into<String>, message: impl Into<String>) -> DefinitionError {
        DefinitionError::new(key, message)
    }
    let revocable: Vec<TokenType> = match f.revocable {
        Some(list) => list.into_iter().map(|t| t.0).collect(),
        None => vec![TokenType::AccessToken, TokenType::RefreshToken],
    };
    let required = |key: &str, value: bool| {
        if value {
            Ok(())
        } else {
            Err(err(key, format!("must be set, as {what} has none")))
        }
    };
    required("method", f.method.is_some())?;
    required("body", f.body.is_some())?;
    required("auth", f.auth.is_some())?;
    let raw_method = f.method.unwrap_or_default();
    let method = match raw_method.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => {
            reqwest::Method::from_bytes(raw_method.as_bytes()).expect("a standard method")
        }
        other => {
            return Err(err(
                "method",
                format!("'{other}' is not one of GET, POST, PUT, PATCH, DELETE"),
            ));
        }
    };
    let body = f.body.unwrap_or(BodyEncoding::None);
    let auth = f.auth.unwrap_or(Auth::None);
    let checks = checks::read(f.issuer, f.verify, f.introspection_url, f.probe, &auth)?;
    let url = f
        .url
        .map(|raw| Template::parse(&raw).map_err(|m| err("url", m)))
        .transpose()?;
    let field = |key: &str, value: Option<String>| -> Result<Option<String>, DefinitionError> {
        match value {
            // An empty name turns a field of the entry off (`token_type_hint_field = ""`).
            Some(v) if v.is_empty() => Ok(None),
            Some(_) if body == BodyEncoding::None => Err(err(key, "body = \"none\" carries no fields")),
            other => Ok(other),
        }
    };
    let token_field = field("token_field", f.token_field)?;
    let token_type_hint_field = field("token_type_hint_field", f.token_type_hint_field)?;
    if auth == Auth::ClientSecretPost && body == BodyEncoding::None {
        return Err(err(
            "auth",
            "client_secret_post puts the credentials in the body, and body = \"none\"",
        ));
    }
    let mut extra_headers = Vec::new();
    for (name, value) in f.extra_headers {
        let key = format!("extra_headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| err(key.clone(), "is not a header name"))?;
        extra_headers.push((header, Template::parse(&value).map_err(|m| err(key, m))?));
    }
    let token_travels = token_field.is_some()
        || auth.uses("token")
        || extra_headers.iter().any(|(_, t)| t.names().contains(&"token"))
        || url.as_ref().is_some_and(|u| u.names().contains(&"token"));
    if !revocable.is_empty() && !token_travels {
        return Err(err(
            "token_field",
            "must be set: the token goes nowhere (no token_field, no auth = \"bearer\", no {token} in a header or \
             the URL's path)",
        ));
    }
    if let Some(why) = &f.org_wide
        && why.trim().is_empty()
    {
        return Err(err("org_wide", "must say why the call acts on a whole organisation"));
    }
    let request_id_header = f
        .request_id_header
        .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|_| err("request_id_header", "is not a header name")))
        .transpose()?;
    if let Some(pairing) = f.pairing {
        let Pairing::RefreshTokenDiesWithAccessToken = pairing;
        if !revocable.contains(&TokenType::AccessToken) || revocable.contains(&TokenType::RefreshToken) {
            return Err(err(
                "pairing",
                "refresh_token_dies_with_access_token needs revocable = [\"access_token\"]",
            ));
        }
        if f.unpaired_reason.is_none() {
            return Err(err(
                "unpaired_reason",
                "must be set with pairing: why a refresh token with no pair cannot be revoked",
            ));
        }
    }
    let refresh = f.refresh.map(RefreshFile::check).transpose()?.flatten();
    if refresh.is_some() && !revocable.contains(&TokenType::AccessToken) {
        return Err(err(
            "refresh",
            "refresh-then-revoke revokes a fresh access token, so revocable must include access_token",
        ));
    }
    let unplanned = [TokenType::AccessToken, TokenType::RefreshToken].into_iter().any(|t| {
        !(revocable.contains(&t) || t == TokenType::RefreshToken && (f.pairing.is_some() || refresh.is_some()))
    });
    if unplanned && f.not_revocable_reason.is_none() {
        return Err(err(
            "not_revocable_reason",
            "must be set: some token types are not revocable, and the audit needs the reason",
        ));
    }
    let success = match f.success {
        None => Success::default(),
        Some(s) => {
            let status = s.status.unwrap_or_else(|| Success::default().status);
            if let Some(bad) = status.iter().find(|p| !p.within_2xx()) {
                return Err(err(
                    "success.status",
                    format!("{bad} is not a success status; only 2xx may be"),
                ));
            }
            if status.is_empty() {
                return Err(err("success.status", "must list at least one 2xx status"));
            }
            if let Some(p) = &s.status_in_body
                && !p.starts_with('/')
            {
                return Err(err("success.status_in_body", format!("'{p}' is not a JSON pointer")));
            }
            Success {
                status,
                body: s.body.map(|b| b.check("success.body")).transpose()?,
                status_in_body: s.status_in_body,
            }
        }
    };
    let already_invalid = f
        .already_invalid
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.check("already_invalid", i))
        .collect::<Result<_, _>>()?;
    let errors = f
        .errors
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.check("errors", i))
        .collect::<Result<_, _>>()?;
    let definition = Definition {
        title: f.title,
        method,
        url,
        body,
        auth,
        basic_form_encoded: f.basic_form_encoded.unwrap_or(true),
        token_field,
        token_type_hint_field,
        client_id_field: f.client_id_field.unwrap_or_else(|| "client_id".into()),
        client_secret_field: f.client_secret_field.unwrap_or_else(|| "client_secret".into()),
        credentials_first: f.credentials_first.unwrap_or(false),
        public_clients: f.public_clients.unwrap_or(false),
        client_secret_jwt: f.client_secret_jwt,
        extra_headers,
        request_id_header,
        revocable,
        not_revocable_reason: f.not_revocable_reason,
        pairing: f.pairing,
        unpaired_reason: f.unpaired_reason,
        success,
        already_invalid,
        errors,
        rate_limit_headers: f.rate_limit_headers,
        refresh,
        org_wide: f.org_wide,
        checks,
        source: f.source,
    };
    check_jwt(&definition)?;
    Ok(definition)
}

/// A signed client secret is sent as any client secret is, always.
fn check_jwt(d: &Definition) -> Result<(), DefinitionError> {
    let Some(jwt) = &d.client_secret_jwt else {
        return Ok(());
    };
    if jwt.audience.trim().is_empty() {
        return Err(DefinitionError::new("client_secret_jwt.audience", "must not be empty"));
    }
    if !matches!(d.auth, Auth::ClientSecretPost | Auth::ClientSecretBasic) {
        return Err(DefinitionError::new(
            "client_secret_jwt",
            format!(
                "is sent as the client secret, so auth must be client_secret_post or client_secret_basic, not {}",
                d.auth.describe()
            ),
        ));
    }
    if d.public_clients {
        return Err(DefinitionError::new(
            "public_clients",
            "a client whose secret is a signed JWT always sends one; remove public_clients",
        ));
    }
    Ok(())
}
