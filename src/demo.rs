//! `offboard demo`: the whole job with nothing installed. Creates a fresh SQLite database in
//! its own folder, serves simulated providers of every dialect in process (with realistic
//! limits and a few faults), seeds users with tokens, enqueues them, runs the real worker to
//! the end, and summarises the audit trail. Each run gets its own folder, so two runs never
//! mix. `--providers all` serves one provider of every simulated catalogue entry (25)
//! instead of the five seed dialects (`every`).

mod every;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Config;
use crate::drain::Worker;
use crate::outcome::{Outcome, RequestState};
use crate::provider::dialect::Dialect;
use crate::simulate::{Simulator, demo_providers, every_entry_providers, offboard_config_for};
use crate::storage::seed::{self, NewToken};
use crate::storage::{AuditRow, Store};
use crate::token::{TokenType, TokenValue};

/// Worker settings for the demo: quick retries so faults resolve within the minute, and a
/// short timeout so a simulated hang costs two seconds.
const DEMO_WORKER: &str = "[worker]\nconcurrency = 64\nlease = \"30s\"\n\
    [retry]\nattempts = 4\nbase = \"100ms\"\ncap = \"2s\"\nretry_after_cap = \"10s\"\n\
    durable_base = \"1s\"\ndurable_cap = \"4s\"\n";
const DEMO_PROVIDER: &str = "rate = \"20/s\"\nburst = 5\ntimeout = \"2s\"\n";

/// How long the demo may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(120);

pub(crate) struct DemoOptions {
    pub(crate) users: usize,
    /// Folder under which each run makes its own.
    pub(crate) base_dir: PathBuf,
    pub(crate) progress: bool,
    /// One provider of every simulated catalogue entry, not the five seed dialects.
    pub(crate) every_provider: bool,
}

/// Per provider, how its tokens ended and what it took.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProviderSummary {
    pub(crate) dialect: String,
    pub(crate) revoked: u64,
    pub(crate) already_invalid: u64,
    pub(crate) not_revocable: u64,
    /// Tokens left unsettled (their request failed).
    pub(crate) unsettled: u64,
    /// Attempts that ended transient and were tried again.
    pub(crate) retries: u64,
    pub(crate) throttled: u64,
}

#[derive(Debug)]
pub(crate) struct DemoResult {
    pub(crate) run_dir: PathBuf,
    pub(crate) config_path: PathBuf,
    pub(crate) tokens: usize,
    /// Simulated providers served.
    pub(crate) served: usize,
    pub(crate) every_provider: bool,
    pub(crate) cleared: i64,
    pub(crate) failed: i64,
    pub(crate) providers: BTreeMap<String, ProviderSummary>,
    pub(crate) elapsed: Duration,
}

pub(crate) async fn run(options: &DemoOptions) -> anyhow::Result<DemoResult> {
    let started = Instant::now();
    let run_dir = unique_run_dir(&options.base_dir)?;
    let database = std::path::absolute(run_dir.join("offboard.db"))?;
    let db_url = format!("sqlite://{}", database.display());
    let config_path = run_dir.join("offboard.toml");
    std::fs::write(
        &config_path,
        format!(
            "# offboard demo run: the database only, for status, gate and report.\n[database]\nurl = \"{db_url}\"\n"
        ),
    )?;

    let providers = if options.every_provider {
        every_entry_providers()
    } else {
        demo_providers()
    };
    let served = providers.len();
    let names: Vec<(String, Dialect)> = providers.iter().map(|p| (p.name.clone(), p.dialect)).collect();
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), providers).await?;
    let (providers_toml, env) = offboard_config_for(&sim, DEMO_PROVIDER);
    let text = format!("[database]\nurl = \"{db_url}\"\n{DEMO_WORKER}\n{providers_toml}");
    let config = Config::from_toml(&text, Path::new("demo"), Vec::new()).context("demo config")?;
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let app = App::open(config, &lookup).await.context("cannot set up the demo")?;
    let store = app.store();
    let tokens = if options.every_provider {
        let tokens = every::tokens(&sim, options.users, &names, user_name);
        seed::insert_tokens(store, &tokens).await?;
        tokens.len()
    } else {
        seed(store, &sim, options.users).await?
    };
    for i in 0..options.users {
        store.enqueue(&user_name(i), Some("offboard demo"), None).await?;
    }
    drain_with_progress(app.worker(), store, options).await?;

    let audit = store.audit_rows(None, None).await?;
    let counts = store.state_counts().await?;
    let result = DemoResult {
        run_dir,
        config_path,
        tokens,
        served,
        every_provider: options.every_provider,
        cleared: counts.get(RequestState::Cleared),
        failed: counts.get(RequestState::Failed),
        providers: summarise(&audit, &sim),
        elapsed: started.elapsed(),
    };
    app.close().await;
    Ok(result)
}

fn user_name(i: usize) -> String {
    format!("user-{:03}", i + 1)
}

fn unique_run_dir(base: &Path) -> anyhow::Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%d-%H%M%S");
    let dir = base.join(format!("{stamp}-{:04x}", fastrand::u16(..)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Gives each user one to six tokens across the providers: some already revoked elsewhere,
/// OneLogin access and refresh pairs, and Auth0 access tokens that cannot be revoked but
/// expire within the day. Returns how many tokens were stored.
async fn seed(store: &Store, sim: &Simulator, users: usize) -> anyhow::Result<usize> {
    let mut tokens = Vec::new();
    let in_hours = |h: i64| Some(Utc::now() + chrono::Duration::hours(h));
    for i in 0..users {
        let user = user_name(i);
        let mut add = |provider: &str, ty: TokenType, grant: Option<String>, paired_with: Option<&str>, expires| {
            let value = sim.issue(provider, ty, paired_with);
            tokens.push(NewToken {
                user_id: user.clone(),
                provider: provider.into(),
                token_type: ty,
                value: TokenValue::new(value.clone()),
                grant_ref: grant,
                expires_at: expires,
            });
            value
        };
        for k in 0..(1 + (i * 7) % 6) {
            match (i + k) % 8 {
                0 => drop(add("acme", TokenType::AccessToken, None, None, in_hours(1))),
                1 => sim.revoke_out_of_band(&add("acme", TokenType::RefreshToken, None, None, None)),
                2 => drop(add("stitch", TokenType::AccessToken, None, None, in_hours(1))),
                3 => drop(add("moov", TokenType::RefreshToken, None, None, None)),
                4 => {
                    let grant = format!("grant-{i}-{k}");
                    let access = add(
                        "onelogin",
                        TokenType::AccessToken,
                        Some(grant.clone()),
                        None,
                        in_hours(1),
                    );
                    add("onelogin", TokenType::RefreshToken, Some(grant), Some(&access), None);
                }
                5 => drop(add("auth0", TokenType::RefreshToken, None, None, None)),
                6 => drop(add("auth0", TokenType::AccessToken, None, None, in_hours(12))),
                _ => drop(add("moov", TokenType::AccessToken, None, None, in_hours(1))),
            }
        }
    }
    seed::insert_tokens(store, &tokens).await?;
    Ok(tokens.len())
}

/// Drains until no request is open, showing settled requests on a progress bar.
async fn drain_with_progress(worker: &Worker, store: &Store, options: &DemoOptions) -> anyhow::Result<()> {
    let bar = if options.progress {
        indicatif::ProgressBar::new(options.users as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} revoking [{bar:30}] {pos}/{len} users settled {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let never = CancellationToken::new();
    let deadline = Instant::now() + DEADLINE;
    let open = || async { anyhow::Ok(store.state_counts().await?.open()) };
    let drains = async {
        loop {
            worker.drain(&never).await?;
            if open().await? == 0 {
                return anyhow::Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the demo did not finish within {}s",
                DEADLINE.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ticker = async {
        loop {
            if let Ok(n) = open().await {
                bar.set_position((options.users as i64 - n).max(0) as u64);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        result = drains => result?,
        () = ticker => {}
    }
    bar.finish_and_clear();
    Ok(())
}

fn summarise(audit: &[AuditRow], sim: &Simulator) -> BTreeMap<String, ProviderSummary> {
    let mut out: BTreeMap<String, ProviderSummary> = BTreeMap::new();
    let mut last: BTreeMap<i64, &AuditRow> = BTreeMap::new();
    for row in audit {
        let s = out.entry(row.provider.clone()).or_default();
        if row.outcome == Outcome::Transient {
            s.retries += 1;
        }
        if matches!(row.http_status, Some(429)) {
            s.throttled += 1;
        }
        last.insert(row.token_id, row);
    }
    for row in last.values() {
        let s = out.entry(row.provider.clone()).or_default();
        match (row.settled, row.outcome) {
            (true, Outcome::Revoked) => s.revoked += 1,
            (true, Outcome::AlreadyInvalid) => s.already_invalid += 1,
            (true, Outcome::NotRevocable) => s.not_revocable += 1,
            _ => s.unsettled += 1,
        }
    }
    for (name, s) in &mut out {
        s.dialect = sim.provider(name).map(|p| p.dialect.to_string()).unwrap_or_default();
    }
    out
}

/// The summary table and what to do next, in 80 columns (wider only for names that need it).
pub(crate) fn print_summary(out: &mut impl Write, r: &DemoResult, command: &str) -> std::io::Result<()> {
    let users = r.cleared + r.failed;
    writeln!(
        out,
        "offboard demo: {users} users, {} tokens, {} simulated providers",
        r.tokens, r.served
    )?;
    writeln!(out)?;
    // Ten columns each, as the five seed providers always had; more for longer names, with
    // one space after the longest (hubspot_legacy's table is 80 columns wide).
    let width = |len: usize| (len + 1).max(10);
    let name_w = width(r.providers.keys().map(String::len).max().unwrap_or(0));
    let dialect_w = width(r.providers.values().map(|s| s.dialect.len()).max().unwrap_or(0));
    writeln!(
        out,
        "{:<name_w$}{:<dialect_w$}{:>8}{:>9}{:>9}{:>8}{:>9}{:>7}",
        "provider", "dialect", "revoked", "invalid", "not rev.", "failed", "retries", "429s"
    )?;
    let mut total = ProviderSummary::default();
    for (name, s) in &r.providers {
        writeln!(
            out,
            "{:<name_w$}{:<dialect_w$}{:>8}{:>9}{:>9}{:>8}{:>9}{:>7}",
            name, s.dialect, s.revoked, s.already_invalid, s.not_revocable, s.unsettled, s.retries, s.throttled
        )?;
        total.revoked += s.revoked;
        total.already_invalid += s.already_invalid;
        total.not_revocable += s.not_revocable;
        total.unsettled += s.unsettled;
        total.retries += s.retries;
        total.throttled += s.throttled;
    }
    let total_w = name_w + dialect_w;
    writeln!(
        out,
        "{:<total_w$}{:>8}{:>9}{:>9}{:>8}{:>9}{:>7}",
        "total",
        total.revoked,
        total.already_invalid,
        total.not_revocable,
        total.unsettled,
        total.retries,
        total.throttled
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "requests: {} cleared, {} failed, in {:.1}s",
        r.cleared,
        r.failed,
        r.elapsed.as_secs_f64()
    )?;
    if r.every_provider {
        for line in [
            "invalid: revoked elsewhere, or killed with its pair (Google, Salesforce, Twitch,",
            "Dropbox, GitHub and Zendesk say so; RFC 7009 servers and Apple answer 200 either",
            "way). not rev.: Auth0 access tokens (JWTs), settled because they expire within",
            "a day. Retries: simulated faults, and 429s (Notion allows 3 requests a second).",
            "Dropbox refresh tokens: revoked through a fresh access token from each one.",
        ] {
            writeln!(out, "{line}")?;
        }
    } else {
        writeln!(
            out,
            "invalid: already revoked elsewhere; not rev.: Auth0 access tokens (JWTs),"
        )?;
        writeln!(
            out,
            "settled because they expire within a day. Retries: 503s, timeouts, broken"
        )?;
        writeln!(out, "connections and HTML pages from the simulated faults, and 429s.")?;
    }
    writeln!(out)?;
    writeln!(out, "The audit database is {}", r.run_dir.join("offboard.db").display())?;
    writeln!(out, "Look inside:")?;
    writeln!(out, "  export OFFBOARD_CONFIG={}", r.config_path.display())?;
    writeln!(out, "  {command} status")?;
    writeln!(out, "  {command} status user-001")?;
    writeln!(out, "  {command} gate user-001")?;
    writeln!(out, "  {command} report --user user-001")?;
    Ok(())
}
