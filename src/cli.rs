//! The `offboard` command line. Parses arguments, loads the config, runs one command, prints
//! for people (and CSV or JSON Lines for machines), and maps results to exit codes a shell
//! script can rely on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `gate`, the user's latest request is cleared |
//! | 1 | error (bad config, database unreachable, unknown id, …), printed with its causes |
//! | 2 | bad usage (unknown command or flag) |
//! | 3 | `gate`: the request is pending or running: not yet |
//! | 4 | `gate`: the request failed: deletion blocked until an operator acts |
//! | 5 | `gate`: no request for the user, or it was cancelled |

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Config;
use crate::outcome::RequestState;
use crate::storage::{AuditRow, RequestRow, Store};

#[derive(Debug, Parser)]
#[command(
    name = "offboard",
    version,
    about = "Revoke a user's OAuth tokens at every provider before their data is deleted"
)]
pub struct Cli {
    /// Config file [default: $OFFBOARD_CONFIG, else config/offboard.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: drain on the schedule until SIGTERM or Ctrl-C
    Run,
    /// Drain once (claim and work on every due request), then exit
    Once,
    /// Queue a user for offboarding; prints the request (an open one is returned as is)
    Enqueue {
        user: String,
        /// Who asked (a person, a ticket system)
        #[arg(long)]
        requested_by: Option<String>,
        /// The caller's reference for this deletion (ticket id, GDPR case number)
        #[arg(long)]
        external_ref: Option<String>,
    },
    /// Show a request (by id) or a user's requests; with no argument, counts per state.
    /// A number is taken as a request id; write user:NAME to force a user id.
    Status { target: Option<String> },
    /// Exit 0 only when the user's latest request is cleared (see exit codes)
    Gate {
        user: String,
        /// Print nothing
        #[arg(long, short)]
        quiet: bool,
    },
    /// Put a failed request back to pending, with a fresh attempt budget
    Retry { id: i64 },
    /// Cancel a request that has not finished
    Cancel { id: i64 },
    /// Export the audit trail
    Report {
        #[arg(long, value_enum, default_value_t = ReportFormat::Csv)]
        format: ReportFormat,
        /// Only this user's rows
        #[arg(long)]
        user: Option<String>,
        /// Only this request's rows
        #[arg(long)]
        request: Option<i64>,
    },
    /// Apply database migrations and exit
    Migrate,
    /// Validate the config (and read the provider secrets), print a summary, exit
    CheckConfig,
    /// Serve simulated providers of every dialect on loopback until Ctrl-C
    Simulate {
        /// Address to serve on
        #[arg(long, default_value = "127.0.0.1:8710")]
        listen: std::net::SocketAddr,
        /// Simulated providers and their faults (see config/simulate.toml) [default: one of
        /// each dialect with demo limits]
        #[arg(long, value_name = "FILE")]
        providers: Option<PathBuf>,
    },
    /// Run the whole job on a fresh SQLite database against simulated providers, and print
    /// what happened (needs no server and no config)
    Demo {
        /// Users to offboard
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        users: u32,
        /// Folder under which each run makes its own
        #[arg(long, default_value = "offboard-demo")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Jsonl,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let explicit = cli.config.is_some() || std::env::var_os("OFFBOARD_CONFIG").is_some();
    let path = Config::locate(cli.config.as_deref());
    Config::load(&path, explicit).with_context(|| format!("invalid configuration in {}", path.display()))
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database).await.context("cannot open the database")
}

/// Runs one command and returns its exit code.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    // The demo and the simulator need no config, so a broken one cannot stop them.
    match cli.command {
        Command::Demo { users, ref dir } => return demo(users, dir).await,
        Command::Simulate { listen, ref providers } => return simulate(listen, providers.as_deref()).await,
        _ => {}
    }
    let config = load_config(&cli)?;
    crate::telemetry::init(&config.log);
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::CheckConfig => {
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
            if config.providers.is_empty() {
                writeln!(
                    out,
                    "no providers configured: every token will fail its request as 'provider not configured'"
                )?;
            }
            for (name, p) in &config.providers {
                writeln!(
                    out,
                    "provider {name}: {} at {}, rate {}/{}s burst {}, secret {}",
                    p.dialect,
                    p.url.0,
                    p.rate.count,
                    p.rate.per.as_secs(),
                    p.burst.get(),
                    if secrets.get(name).is_some_and(Option::is_some) {
                        "set"
                    } else {
                        "none (public client)"
                    }
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open_store(&config).await?;
            writeln!(out, "migrations applied to {}", config.database.url.redacted())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run | Command::Once => {
            let app = App::build(config).await?;
            let shutdown = CancellationToken::new();
            crate::drain::daemon::cancel_on_signals(shutdown.clone())
                .context("cannot listen for SIGTERM and Ctrl-C")?;
            if matches!(cli.command, Command::Run) {
                app.run(shutdown).await?;
            } else {
                let report = app.worker().drain(&shutdown).await.context("drain failed")?;
                writeln!(
                    out,
                    "claimed {}, cleared {}, failed {}, retrying later {}, released {}, lease lost {}",
                    report.claimed, report.cleared, report.failed, report.retrying, report.released, report.lease_lost
                )?;
            }
            app.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Enqueue {
            ref user,
            ref requested_by,
            ref external_ref,
        } => {
            let user = user.trim();
            anyhow::ensure!(!user.is_empty(), "the user id must not be empty");
            let store = open_store(&config).await?;
            let done = store
                .enqueue(user, requested_by.as_deref(), external_ref.as_deref())
                .await?;
            let verb = if done.created { "queued" } else { "already open" };
            writeln!(
                out,
                "{verb}: request {} for user {} is {}",
                done.request.id, done.request.user_id, done.request.state
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { ref target } => {
            let store = open_store(&config).await?;
            status(&store, target.as_deref(), out).await
        }
        Command::Gate { ref user, quiet } => {
            let store = open_store(&config).await?;
            let latest = store.clearance(user).await?;
            let (code, text) = match &latest {
                Some(r) if r.state == RequestState::Cleared => {
                    (0, format!("cleared: user {user} (request {}) may be deleted", r.id))
                }
                Some(r) if matches!(r.state, RequestState::Pending | RequestState::Running) => {
                    (3, format!("not yet: request {} for user {user} is {}", r.id, r.state))
                }
                Some(r) if r.state == RequestState::Failed => (
                    4,
                    format!(
                        "blocked: request {} for user {user} failed: {}",
                        r.id,
                        r.last_error.as_deref().unwrap_or("no reason recorded")
                    ),
                ),
                Some(r) => (
                    5,
                    format!("no clearance: request {} for user {user} was cancelled", r.id),
                ),
                None => (5, format!("no clearance: no request for user {user}")),
            };
            if !quiet {
                writeln!(out, "{text}")?;
            }
            Ok(ExitCode::from(code))
        }
        Command::Retry { id } => {
            let store = open_store(&config).await?;
            let row = store.retry(id).await?;
            writeln!(out, "request {} for user {} is pending again", row.id, row.user_id)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id } => {
            let store = open_store(&config).await?;
            let row = store.cancel(id).await?;
            writeln!(
                out,
                "request {} for user {} is cancelled; deletion stays blocked",
                row.id, row.user_id
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { .. } | Command::Simulate { .. } => unreachable!("handled before the config is read"),
        Command::Report {
            format,
            ref user,
            request,
        } => {
            let store = open_store(&config).await?;
            let rows = store.audit_rows(request, user.as_deref()).await?;
            write_report(out, format, &rows)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn demo(users: u32, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&crate::config::LogConfig {
        level: "warn".into(),
        ..Default::default()
    });
    let options = crate::demo::DemoOptions {
        users: users as usize,
        base_dir: dir.to_owned(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let result = crate::demo::run(&options).await.context("the demo failed")?;
    crate::demo::print_summary(&mut std::io::stdout().lock(), &result, &this_command())?;
    Ok(ExitCode::SUCCESS)
}

/// How to run this binary again from the current folder, for printed hints.
fn this_command() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => match exe.strip_prefix(&cwd) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => "offboard".into(),
        },
        _ => "offboard".into(),
    }
}

async fn simulate(listen: std::net::SocketAddr, file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&crate::config::LogConfig::default());
    let providers = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            crate::simulate::providers_from_toml(&text)
                .with_context(|| format!("invalid simulator file {}", path.display()))?
        }
        None => crate::simulate::demo_providers(),
    };
    let sim = crate::simulate::Simulator::start(listen, providers)
        .await
        .with_context(|| format!("cannot serve on {listen}"))?;
    let addr = sim.addr();
    let (config, env) = crate::simulate::offboard_config_for(&sim, "rate = \"20/s\"\nburst = 5\n");
    let out = &mut std::io::stdout().lock();
    writeln!(out, "simulated providers on http://{addr} (Ctrl-C to stop)")?;
    writeln!(out, "  issue a token: curl -s -X POST http://{addr}/_issue \\")?;
    writeln!(
        out,
        "                  -d '{{\"provider\": \"acme\", \"token_type\": \"access_token\"}}'"
    )?;
    writeln!(out, "  call counts:   curl -s http://{addr}/_stats")?;
    writeln!(out)?;
    writeln!(out, "# offboard config for these providers; their (simulated) secrets:")?;
    for (var, value) in &env {
        writeln!(out, "#   export {var}={value}")?;
    }
    writeln!(out, "{config}")?;
    out.flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}

async fn status(store: &Store, target: Option<&str>, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let Some(target) = target else {
        let counts = store.state_counts().await?;
        if counts.is_empty() {
            writeln!(out, "no requests")?;
        }
        for (state, n) in counts.iter() {
            writeln!(out, "{:<10} {n}", state.as_str())?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rows = if let Some(user) = target.strip_prefix("user:") {
        store.requests_for_user(user).await?
    } else if let Ok(id) = target.trim_start_matches("id:").parse::<i64>() {
        match store.request(id).await? {
            Some(row) => vec![row],
            None => store.requests_for_user(target).await?,
        }
    } else {
        store.requests_for_user(target).await?
    };
    anyhow::ensure!(!rows.is_empty(), "no request or user matches '{target}'");
    for row in &rows {
        print_request(out, row)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_request(out: &mut impl Write, r: &RequestRow) -> std::io::Result<()> {
    let ts = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    writeln!(
        out,
        "request {}  user {}  {}  attempts {}",
        r.id, r.user_id, r.state, r.attempts
    )?;
    writeln!(
        out,
        "  requested {}{}{}",
        ts(&r.requested_at),
        r.requested_by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
        r.external_ref
            .as_ref()
            .map(|x| format!(" (ref {x})"))
            .unwrap_or_default()
    )?;
    if let Some(at) = &r.cleared_at {
        writeln!(out, "  cleared {}", ts(at))?;
    }
    if let Some(at) = &r.next_attempt_at {
        writeln!(out, "  next attempt {}", ts(at))?;
    }
    if let (Some(by), Some(until)) = (&r.locked_by, &r.locked_until) {
        writeln!(out, "  leased by {by} until {}", ts(until))?;
    }
    if let Some(e) = &r.last_error {
        writeln!(out, "  last error: {e}")?;
    }
    Ok(())
}

const REPORT_COLUMNS: [&str; 15] = [
    "request_id",
    "user_id",
    "token_id",
    "provider",
    "token_type",
    "token_fingerprint",
    "attempt",
    "outcome",
    "settled",
    "http_status",
    "provider_request_id",
    "error",
    "duration_ms",
    "worker",
    "attempted_at",
];

fn report_fields(r: &AuditRow) -> [String; 15] {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        r.request_id.to_string(),
        r.user_id.clone(),
        r.token_id.to_string(),
        r.provider.clone(),
        r.token_type.clone(),
        r.token_fingerprint.clone(),
        r.attempt.to_string(),
        r.outcome.to_string(),
        r.settled.to_string(),
        opt(r.http_status.map(|s| s.to_string())),
        opt(r.provider_request_id.clone()),
        opt(r.error.clone()),
        r.duration_ms.to_string(),
        r.worker.clone(),
        r.attempted_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    ]
}

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

pub fn write_report(out: &mut impl Write, format: ReportFormat, rows: &[AuditRow]) -> std::io::Result<()> {
    match format {
        ReportFormat::Csv => {
            writeln!(out, "{}", REPORT_COLUMNS.join(","))?;
            for r in rows {
                let fields = report_fields(r);
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        ReportFormat::Jsonl => {
            for r in rows {
                let mut object = serde_json::Map::new();
                for (name, value) in REPORT_COLUMNS.iter().zip(report_fields(r)) {
                    object.insert((*name).to_owned(), serde_json::Value::String(value));
                }
                object.insert(
                    "http_status".into(),
                    r.http_status.map_or(serde_json::Value::Null, Into::into),
                );
                object.insert("settled".into(), r.settled.into());
                for (name, n) in [
                    ("request_id", r.request_id),
                    ("token_id", r.token_id),
                    ("duration_ms", r.duration_ms),
                ] {
                    object.insert(name.into(), n.into());
                }
                object.insert("attempt".into(), r.attempt.into());
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn the_global_config_flag_goes_before_the_command() {
        let cli = Cli::try_parse_from(["offboard", "--config", "x.toml", "gate", "u1"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert!(matches!(cli.command, Command::Gate { .. }));
    }
}
