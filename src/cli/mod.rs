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
//!
//! `audit verify` has its own: 0 intact, 1 broken (the first bad row named), 2 not checked
//! (bad usage, bad config, database unreachable).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Config;
use crate::outcome::RequestState;
use crate::storage::Store;
use tools::{demo, simulate};

mod audit;
mod bench;
mod check;
mod evidence;
mod plan;
mod providers;
mod report;
mod show;
mod status;
mod tools;

#[derive(Debug, Parser)]
#[command(
    name = "offboard",
    version,
    about = "Revoke a user's OAuth tokens at every provider before their data is deleted"
)]
pub(crate) struct Cli {
    /// Config file [default: $OFFBOARD_CONFIG, else config/offboard.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// The queue: requests by state, the oldest pending, the latest failures; or a request
    /// (by id) or a user's requests in detail, with their audit rows
    Status(status::StatusArgs),
    /// Exit 0 only when the user's latest request is cleared (see exit codes)
    Gate {
        user: String,
        /// Print nothing
        #[arg(long, short)]
        quiet: bool,
    },
    /// Put a failed request back to pending, with a fresh attempt budget (audited)
    Retry {
        id: i64,
        #[command(flatten)]
        why: OperatorArgs,
    },
    /// Cancel a request that has not finished (audited); deletion stays blocked
    Cancel {
        id: i64,
        #[command(flatten)]
        why: OperatorArgs,
    },
    /// Export the audit trail as CSV or JSON Lines, streamed (any size), with filters
    Report(report::ReportArgs),
    /// The tamper-evident audit chain: verify it, or print its head for publishing
    Audit {
        #[command(subcommand)]
        action: audit::AuditCommand,
    },
    /// Write one user's record for an auditor: requests, each token by fingerprint, every
    /// attempt, who acted, and the audit chain hashes (JSON, or an HTML page that prints)
    Evidence(evidence::EvidenceArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Validate the config (and read the provider secrets), print a summary, exit
    CheckConfig,
    /// Show what would be done with each of a user's tokens, from every token source,
    /// without calling any provider (never prints a token, ciphertext or key)
    Plan { user: String },
    /// List the built-in provider catalogue, or show one entry (needs no config)
    Providers {
        #[command(subcommand)]
        action: Option<ProvidersAction>,
    },
    /// Serve simulated providers of every dialect on loopback until Ctrl-C
    Simulate {
        /// Address to serve on
        #[arg(long, default_value = "127.0.0.1:8710")]
        listen: std::net::SocketAddr,
        /// Simulated providers and their faults (see config/simulate.toml), or `all` for one
        /// of every provider shape [default: one of each seed dialect with demo limits]
        #[arg(long, value_name = "FILE|all")]
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
        /// `all`: one simulated provider of every catalogue entry that revokes, instead of the
        /// five seed dialects
        #[arg(long, value_name = "SET", default_value = "seed", value_parser = ["seed", "all"])]
        providers: String,
    },
    /// Measure offboard against simulated providers: drain time against quotas, throughput,
    /// idle latency, worker processes sharing quotas, memory against queue length (needs no
    /// config; SQLite in a temporary folder by default)
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProvidersAction {
    /// Print one entry as TOML, with its source
    Show { name: String },
}

/// Who runs an operator command and why; both go into the audit trail.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Who is acting [default: the OS user running the command]
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Why (a ticket, a reason an auditor will read)
    #[arg(long)]
    reason: Option<String>,
}

impl OperatorArgs {
    fn by(&self) -> String {
        self.by
            .clone()
            .filter(|b| !b.trim().is_empty())
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown operator".into())
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let failure = match &cli.command {
        Command::Audit { action } => action.failure_code(),
        _ => 1,
    };
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
            ExitCode::from(failure)
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
pub(crate) async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    // The demo, the simulator and the catalogue need no config, so a broken one cannot stop
    // them.
    match cli.command {
        Command::Demo {
            users,
            ref dir,
            ref providers,
        } => return demo(users, dir, providers == "all").await,
        Command::Simulate { listen, ref providers } => return simulate(listen, providers.as_deref()).await,
        Command::Bench(ref args) => return tools::bench(&args.options()).await,
        Command::Providers { ref action } => {
            let out = &mut std::io::stdout().lock();
            return match action {
                None => providers::list(out),
                Some(ProvidersAction::Show { name }) => providers::show(out, name),
            };
        }
        _ => {}
    }
    let config = load_config(&cli)?;
    crate::telemetry::init(&config.log);
    // Errors are printed with their causes, which come from drivers and libraries; none is
    // known to quote the database URL's secrets, but none may.
    let hidden = config.database.url.secret_values();
    run(&cli, config).await.map_err(|error| {
        let text = format!("{error:#}");
        let hidden: Vec<&str> = hidden.iter().map(String::as_str).collect();
        let clean = crate::token::scrub(&text, &hidden);
        if clean == text { error } else { anyhow::anyhow!(clean) }
    })
}

/// Runs a command that needs the config.
async fn run(cli: &Cli, config: Config) -> anyhow::Result<ExitCode> {
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::CheckConfig => check::check_config(out, &config).await,
        Command::Plan { ref user } => plan::plan(out, &config, user).await,
        Command::Evidence(ref args) => evidence::evidence(out, &config, args).await,
        Command::Migrate => {
            open_store(&config).await?;
            writeln!(out, "migrations applied to {}", config.database.url.redacted())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run | Command::Once => {
            // Signals first: a SIGTERM during start-up is a clean stop, not a kill.
            let shutdown = CancellationToken::new();
            crate::drain::daemon::cancel_on_signals(shutdown.clone())
                .context("cannot listen for SIGTERM and Ctrl-C")?;
            let app = if matches!(cli.command, Command::Run) {
                match App::build_patiently(config, &shutdown).await? {
                    Some(app) => app,
                    None => return Ok(ExitCode::SUCCESS),
                }
            } else {
                App::build(config).await?
            };
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
        Command::Audit { ref action } => {
            let store = open_store(&config).await?;
            audit::audit(out, &store, action).await
        }
        Command::Status(ref args) => {
            let store = open_store(&config).await?;
            status::status(out, &store, args).await
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
        Command::Retry { id, ref why } => {
            let store = open_store(&config).await?;
            let row = store.retry(id, &why.by(), why.reason.as_deref()).await?;
            writeln!(out, "request {} for user {} is pending again", row.id, row.user_id)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, ref why } => {
            let store = open_store(&config).await?;
            let row = store.cancel(id, &why.by(), why.reason.as_deref()).await?;
            writeln!(
                out,
                "request {} for user {} is cancelled; deletion stays blocked",
                row.id, row.user_id
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { .. } | Command::Simulate { .. } | Command::Providers { .. } | Command::Bench(_) => {
            unreachable!("handled before the config is read")
        }
        Command::Report(ref args) => {
            let store = open_store(&config).await?;
            report::report(out, &store, args).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_config_flag_goes_before_the_command() {
        let cli = Cli::try_parse_from(["offboard", "--config", "x.toml", "gate", "u1"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert!(matches!(cli.command, Command::Gate { .. }));
    }
}
