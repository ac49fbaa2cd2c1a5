//! Resolving a definition: its templates filled from the provider's variables, every name a
//! template uses checked to be given (or, in `url` only, to come from a token source).

use super::read::{read, used_names};
use super::*;

/// Reads a definition from `table` (a catalogue entry with a provider's keys laid over it,
/// or a provider's keys alone). `what` names it in messages: "the rfc7009 entry".
/// `known` are keys the caller reads itself, offered as close names of a typo. The URL comes
/// back with its variables filled and `{client_id}` and `{token}` left for `Endpoint`.
#[cfg(test)]
pub(crate) fn resolve(table: toml::Table, what: &str, known: &[&str]) -> Result<Resolved, DefinitionError> {
    resolve_with(table, what, known, &[])
}

/// As [`resolve`], with `from_tokens` the variables a token source maps from its columns
/// (`[[tokens.source]] vars`): one the provider does not set may stand in `url` only, and is
/// left there as `{name}` for [`crate::provider::endpoint::Endpoint`] to fill per token.
pub(crate) fn resolve_with(
    table: toml::Table,
    what: &str,
    known: &[&str],
    from_tokens: &[String],
) -> Result<Resolved, DefinitionError> {
    let (definition, vars) = read(table, what, known)?;
    let used = used_names(&definition);
    // Where each name is used but in the url.
    let elsewhere = used_names(&Definition {
        url: None,
        ..definition.clone()
    });
    for (name, template_key) in &used {
        let runtime = RUNTIME_NAMES.contains(&name.as_str())
            || template_key.starts_with("refresh.") && REFRESH_NAMES.contains(&name.as_str());
        let other_use = elsewhere.iter().find(|(n, _)| n == name).map(|(_, k)| k);
        let template_key = other_use.unwrap_or(template_key);
        let per_token = other_use.is_none() && from_tokens.contains(name);
        if !runtime && !per_token && !vars.contains_key(name) {
            let hint = if from_tokens.contains(name) {
                " (a variable from a token source's vars may stand in url only)"
            } else {
                ""
            };
            return Err(DefinitionError::new(
                name.clone(),
                format!("must be set: {template_key} of {what} uses {{{name}}}{hint}"),
            ));
        }
    }
    if let Some(refresh) = &definition.refresh {
        for name in refresh.url.names() {
            url_safe_var(&vars, name, "the refresh URL")?;
        }
        let url = refresh.url.render(|n| vars.get(n).map(String::as_str));
        url.parse::<crate::config::ProviderUrl>()
            .map_err(|m| DefinitionError::new("refresh.url", m))?;
    }
    // A variable from the tokens stays `{name}` in the URL.
    let braces: BTreeMap<&str, String> = from_tokens.iter().map(|n| (n.as_str(), format!("{{{n}}}"))).collect();
    let url = match &definition.url {
        None => None,
        Some(template) => {
            for name in template.names() {
                // The client id (public, RFC 6749 §2.2) and the token (in the path, encoded)
                // are filled by `Endpoint`; the secret and the token type never go in a URL.
                if URL_RUNTIME_NAMES.contains(&name)
                    || !vars.contains_key(name) && from_tokens.iter().any(|n| n == name)
                {
                    continue;
                }
                if RUNTIME_NAMES.contains(&name) {
                    return Err(DefinitionError::new(
                        "url",
                        format!("'{template}' uses {{{name}}}, which cannot go in the URL"),
                    ));
                }
                url_safe_var(&vars, name, "the URL")?;
            }
            Some(template.render(|n| {
                match n {
                    "client_id" => Some("{client_id}"),
                    "token" => Some("{token}"),
                    _ => vars
                        .get(n)
                        .map(String::as_str)
                        .or_else(|| braces.get(n).map(String::as_str)),
                }
            }))
        }
    };
    Ok(Resolved { definition, url, vars })
}

/// Checks that variable `name` (given: `resolve_with` checked every name first) may go into
/// `which` URL: only characters that cannot move the request to another host or path.
fn url_safe_var(vars: &BTreeMap<String, String>, name: &str, which: &str) -> Result<(), DefinitionError> {
    let value = &vars[name];
    if url_safe(value) {
        return Ok(());
    }
    Err(DefinitionError::new(
        name,
        format!("'{value}' cannot go in {which}: letters, digits, '-', '.', '_' and '~' only"),
    ))
}
