//! `offboard check-config`: the config read, every secret read, and the metadata of every
//! provider configured by `issuer` fetched and checked, so a wrong issuer is found before
//! the first deletion request is.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::provider::Providers;
use crate::provider::definition::{SecretUse, VerifyMode};
use crate::storage::{Sources, Store};

/// Prints what the config says, and fails (exit 1) on a secret that cannot be read or an
/// issuer whose metadata cannot be fetched or used.
pub(super) async fn check_config(out: &mut impl Write, config: &Config) -> anyhow::Result<ExitCode> {
    let secrets = config
        .resolve_secrets(&crate::config::process_env)
        .context("invalid configuration")?;
    writeln!(out, "config ok: database {}", config.database.url.redacted())?;
    writeln!(
        out,
        "worker: schedule \"{}\", lease {}, concurrency {}, max_attempts {}",
        config.worker.schedule.0,
        humantime::format_duration(config.worker.lease.0),
        config.worker.concurrency.get(),
        config.worker.max_attempts.get()
    )?;
    writeln!(out, "dashboard: {}", dashboard(config)?)?;
    if config.providers.is_empty() {
        writeln!(
            out,
            "no providers configured: every token will fail its request as 'provider not configured'"
        )?;
    }
    for (name, p) in &config.providers {
        let verify = match p.definition.checks.verify {
            VerifyMode::None => String::new(),
            mode => format!(", verify {}", mode.as_str()),
        };
        writeln!(
            out,
            "provider {name}: {} at {}, rate {}/{}s burst {}, secret {}{verify}",
            p.kind(),
            p.endpoints,
            p.rate.count,
            p.rate.per.as_secs(),
            p.burst.get(),
            match (
                secrets.get(name).is_some_and(Option::is_some),
                p.definition.secret_use()
            ) {
                (true, _) => "set",
                (false, SecretUse::Unused) => "none (none is sent)",
                (false, _) => "none (public client)",
            }
        )?;
        if let Some(why) = p.org_wide_refusal(name) {
            writeln!(
                out,
                "warning: provider {name} sends nothing, each token is not revocable: {why}"
            )?;
        }
    }
    if !config.tokens.iter().all(|s| s.is_builtin()) {
        let sources = Sources::build(&config.tokens, &crate::config::process_env).context("invalid configuration")?;
        let store = Store::connect(&config.database)
            .await
            .context("cannot open the database to check the token sources")?
            .with_sources(sources);
        let problem = store.check_sources().await.context("cannot check the token sources")?;
        store.close().await;
        if let Some(problem) = problem {
            return Err(anyhow::Error::new(problem).context("invalid configuration"));
        }
        for s in &config.tokens {
            writeln!(
                out,
                "token source {} ({}): table {}, number {}{}",
                s.name,
                s.at,
                s.table.as_written(),
                s.number,
                s.encryption
                    .as_ref()
                    .map_or(String::new(), |e| format!(", encrypted ({})", e.scheme()))
            )?;
        }
    }
    let discovered: Vec<&String> = config
        .providers
        .iter()
        .filter(|(_, p)| p.definition.checks.issuer.is_some())
        .map(|(name, _)| name)
        .collect();
    if discovered.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let providers = Providers::from_config(config, &crate::config::process_env).context("invalid configuration")?;
    let mut unusable = Vec::new();
    for name in discovered {
        let provider = providers.get(name).expect("every configured provider is built");
        match provider.targets().await {
            Ok(targets) => writeln!(out, "provider {name}: issuer metadata ok: {}", targets.describe())?,
            Err(verdict) => {
                let why = verdict.error.unwrap_or_default();
                writeln!(
                    out,
                    "provider {name}: issuer metadata unusable ({}): {why}",
                    verdict.outcome
                )?;
                unusable.push(name.as_str());
            }
        }
    }
    if unusable.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "the issuer metadata of {} cannot be used (see above)",
            unusable.join(", ")
        )
    }
}

/// Whether and where the dashboard is served, and with actions or not; reads the actions'
/// token, so one that cannot be read fails the check naming its key.
fn dashboard(config: &Config) -> anyhow::Result<String> {
    let d = &config.dashboard;
    let Some(addr) = config.server.listen.0.filter(|_| d.enabled) else {
        return Ok("off".into());
    };
    Ok(match &d.token {
        Some(source) if d.actions => {
            source
                .read(&crate::config::process_env)
                .context("invalid configuration")?;
            format!("http://{addr}/, actions enabled (token from {}: set)", source.key())
        }
        _ => format!("http://{addr}/, read-only"),
    })
}
