//! `offboard plan USER`: what offboard would do with each of the user's tokens, from every
//! token source, without calling any provider (issue 9 point 4, issue 11 point 5). For each
//! token: its source, id, provider, type and fingerprint; whether its value decrypted (and
//! why not); the provider's plan (the call's method, host and path, never a token or a
//! query); what the call would carry, by name only (body encoding and field names, client
//! authentication kind, extra headers: `sends.rs`); what is not revocable and why, and
//! what `policy.not_revocable` would make of it; and whether it is already settled. No
//! value, ciphertext or key is ever printed, and nothing is sent: not to a provider, not to
//! an issuer's discovery document.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use crate::config::endpoints::Revocation;
use crate::config::sources::ID_SPACE;
use crate::config::{Config, ProviderConfig};
use crate::drain::{NotRevocablePolicy, Policy, WorkerSettings, pair_of, settles};
use crate::outcome::Outcome;
use crate::provider::definition::Plan;
use crate::provider::endpoint::host_and_path;
use crate::storage::{BadToken, Sources, Store, StoredToken};

mod sends;

/// Prints the plan for `user`'s tokens; exit 0, also when the user has none.
pub(super) async fn plan(out: &mut impl Write, config: &Config, user: &str) -> anyhow::Result<ExitCode> {
    let user = user.trim();
    anyhow::ensure!(!user.is_empty(), "the user id must not be empty");
    let sources = Sources::build(&config.tokens, &crate::config::process_env).context("invalid configuration")?;
    let store = Store::open(&config.database)
        .await
        .context("cannot open the database")?
        .with_sources(sources);
    if let Some(problem) = store.check_sources().await.context("cannot check the token sources")? {
        return Err(anyhow::Error::new(problem).context("invalid configuration"));
    }
    let read = store.planned_tokens(user).await;
    store.close().await;
    let (tokens, bad) = read.with_context(|| format!("cannot read the tokens of user {user}"))?;
    let names: Vec<&str> = config.tokens.iter().map(|s| s.name.as_str()).collect();
    if tokens.is_empty() && bad.is_empty() {
        writeln!(
            out,
            "no tokens found for user {user} in any token source ({}): nothing would be sent",
            names.join(", ")
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let policy = WorkerSettings::from_config(config).policy;
    let all: Vec<StoredToken> = tokens.iter().map(|(t, _)| t.clone()).collect();
    let (mut to_send, mut settled, mut failing) = (0, 0, 0);
    writeln!(out, "plan for user {user} (no provider is called):")?;
    for (token, undecrypted) in &tokens {
        let value = match (encrypted(config, token.id), undecrypted) {
            (_, Some(why)) => format!("value NOT decrypted: {why}"),
            (Some(scheme), None) => format!("value decrypted ({scheme})"),
            (None, None) => "value stored in plaintext".to_owned(),
        };
        writeln!(
            out,
            "token {} from source {}: provider {}, {}, fingerprint {}, {value}",
            token.id,
            source_name(config, token.id),
            token.provider,
            token.token_type_raw,
            token.fingerprint()
        )?;
        let state = match (&token.settled_as, token.revoked_by_application) {
            (Some(outcome), _) => format!("already settled ({outcome}): nothing would be sent"),
            (None, true) => "already settled (revoked_at set by the application): nothing would be sent".to_owned(),
            (None, false) => "not settled".to_owned(),
        };
        writeln!(out, "  plan: {}", describe(config, token, &all, policy))?;
        if let Some(sends) = carries(config, token).filter(|_| !token.is_settled()) {
            writeln!(out, "  sends: {sends} (names only, never a value)")?;
        }
        writeln!(out, "  state: {state}")?;
        if token.is_settled() {
            settled += 1;
        } else if undecrypted.is_some() {
            failing += 1;
            writeln!(
                out,
                "  would fail: its request fails naming token {} until the value decrypts",
                token.id
            )?;
        } else {
            to_send += 1;
        }
    }
    for row in &bad {
        failing += 1;
        write_bad(out, config, row)?;
    }
    writeln!(
        out,
        "{} token(s) from {} source(s): {to_send} to work on, {settled} already settled, {failing} that would fail the request",
        tokens.len() + bad.len(),
        names.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn write_bad(out: &mut impl Write, config: &Config, row: &BadToken) -> std::io::Result<()> {
    let fingerprint = row
        .fingerprint
        .as_ref()
        .map_or(String::new(), |f| format!(", fingerprint {f}"));
    writeln!(
        out,
        "token {} from source {}: unreadable{fingerprint}: column {}: {}",
        row.id,
        source_name(config, row.id),
        row.column,
        row.reason
    )?;
    writeln!(out, "  would fail: its request fails naming token {}", row.id)
}

fn source_name(config: &Config, token_id: i64) -> &str {
    let number = token_id.div_euclid(ID_SPACE);
    config
        .tokens
        .iter()
        .find(|s| s.number == number)
        .map_or("(unknown)", |s| s.name.as_str())
}

fn encrypted(config: &Config, token_id: i64) -> Option<&'static str> {
    let number = token_id.div_euclid(ID_SPACE);
    let source = config.tokens.iter().find(|s| s.number == number)?;
    source.encryption.as_ref().map(|e| e.scheme())
}

/// The provider's plan for `token`, in words, as the worker would carry it out.
fn describe(config: &Config, token: &StoredToken, all: &[StoredToken], policy: Policy) -> String {
    let Some(provider) = config.providers.get(&token.provider) else {
        return format!(
            "would fail: provider '{}' is not configured (add [providers.{}] to the config)",
            token.provider, token.provider
        );
    };
    let Some(token_type) = token.token_type() else {
        return format!(
            "would fail: token_type '{}' is neither access_token nor refresh_token",
            token.token_type_raw
        );
    };
    if let Some(why) = provider.org_wide_refusal(&token.provider) {
        return format!(
            "refused org-wide: nothing is sent: {why}; {}",
            policy_says(token, policy)
        );
    }
    match provider.definition.plan(token_type) {
        Plan::Call => match call(provider, token) {
            Ok(call) => format!("would call {call}"),
            Err(why) => format!("would fail: {why}"),
        },
        Plan::NotRevocable(why) => format!("not revocable: {why}; {}", policy_says(token, policy)),
        Plan::ViaPairedAccessToken => match pair_of(token, all) {
            Some(pair) => format!(
                "through its paired access token {} (grant_ref): settled when the provider revokes that one",
                pair.id
            ),
            None => format!(
                "not revocable: {}; {}",
                provider.definition.unpaired_reason.as_deref().unwrap_or(
                    "this refresh token is revoked only through its paired access token (grant_ref), and it has \
                     no pair"
                ),
                policy_says(token, policy)
            ),
        },
        Plan::RefreshThenRevoke => {
            let refresh = provider
                .definition
                .refresh
                .as_ref()
                .expect("a refresh-then-revoke plan has a [refresh]");
            let url = refresh.url.render(|n| provider.vars.get(n).map(String::as_str));
            let token_endpoint = match url.parse::<reqwest::Url>() {
                Ok(url) => host_and_path(&url),
                Err(_) => "its token endpoint".to_owned(),
            };
            match call(provider, token) {
                Ok(call) => format!(
                    "refresh-then-revoke: would call POST {token_endpoint} for a fresh access token, then {call} with it"
                ),
                Err(why) => format!("would fail: {why}"),
            }
        }
    }
}

/// What the calls of `token`'s plan would carry, by name; `None` when its plan sends nothing.
fn carries(config: &Config, token: &StoredToken) -> Option<String> {
    let provider = config.providers.get(&token.provider)?;
    if provider.org_wide_refusal(&token.provider).is_some() {
        return None;
    }
    let public = matches!(provider.secret, crate::config::SecretSource::None);
    match provider.definition.plan(token.token_type()?) {
        Plan::Call => Some(sends::revocation(provider)),
        Plan::RefreshThenRevoke => {
            let refresh = provider.definition.refresh.as_ref()?;
            Some(format!(
                "refresh: {}; then revocation: {}",
                sends::refresh(refresh, public),
                sends::revocation(provider)
            ))
        }
        Plan::NotRevocable(_) | Plan::ViaPairedAccessToken => None,
    }
}

/// `METHOD host/path` of the provider's revocation call for `token` (with its source's URL
/// variables filled), or why it would not be sent.
fn call(provider: &ProviderConfig, token: &StoredToken) -> Result<String, String> {
    let method = &provider.definition.method;
    Ok(match &provider.endpoints.revocation {
        Revocation::Url(endpoint) => format!("{method} {}", endpoint.for_token(&token.vars)?.host_and_path()),
        Revocation::Issuer { issuer, .. } => format!(
            "{method} the revocation endpoint in the metadata of {} (not fetched by plan)",
            host_and_path(&issuer.0)
        ),
    })
}

/// What `policy.not_revocable` would make of a token nothing revokes.
fn policy_says(token: &StoredToken, policy: Policy) -> String {
    let name = match policy.not_revocable {
        NotRevocablePolicy::Expiring => "expiring",
        NotRevocablePolicy::Settle => "settle",
        NotRevocablePolicy::Block => "block",
    };
    let expiry = match (policy.not_revocable, token.expires_at) {
        (NotRevocablePolicy::Expiring, Some(at)) => format!(
            " (expires {}; the bound is {})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            humantime::format_duration(policy.within)
        ),
        (NotRevocablePolicy::Expiring, None) => " (no expiry recorded)".to_owned(),
        _ => String::new(),
    };
    if settles(Outcome::NotRevocable, token.expires_at, policy, Utc::now()) {
        format!("policy not_revocable = {name} settles it{expiry}")
    } else {
        format!(
            "policy not_revocable = {name} does not settle it{expiry}: the request would fail, deletion stays blocked"
        )
    }
}
