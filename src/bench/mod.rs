//! `offboard bench`: named scenarios measured against simulated providers served in
//! process, on a fresh SQLite database (or a fresh database on the PostgreSQL server given
//! with `--database`), each printing its figures and the machine it ran on.
//!
//! - `machine`: cores, CPU model, memory, date, build profile; CPU time and peak RSS.
//! - `database`: a fresh database per scenario, removed afterwards.
//! - `bed`: the simulator, the offboard config pointing at it, the seeded backlog (streamed
//!   in chunks), and a drain to the end.
//! - `procs`: `offboard run` child processes on the bed's config, their peak RSS, SIGTERM.
//! - `quotas`: a backlog against providers enforcing quotas, rates configured at them
//!   (`quotas`) or 1.67× above (`overconfigured`); `workers`: the same backlog drained by
//!   several `offboard run` processes, with the busiest second seen by each provider.
//! - `unlimited`: providers that answer at once: tokens per second, CPU per 1,000 tokens.
//! - `latency`: an idle running worker, enqueue to cleared, one user at a time.
//! - `rss`: peak RSS of one `offboard run` against the queue's length and a user's tokens.
//! - `report`: `offboard report` of 10,000 and of `--report-rows` audit rows: rows a second
//!   and peak RSS (streamed, so about the same at both sizes).

mod bed;
mod database;
mod latency;
mod machine;
mod procs;
mod quotas;
mod report;
mod rss;
mod unlimited;
mod workers;

use std::io::Write;
use std::time::Duration;

/// The scenarios, in the order `offboard bench` with none named runs them.
pub(crate) const SCENARIOS: [&str; 7] = [
    "quotas",
    "overconfigured",
    "unlimited",
    "idle-latency",
    "workers",
    "rss",
    "report",
];

pub(crate) struct BenchOptions {
    pub(crate) scenarios: Vec<String>,
    pub(crate) users: usize,
    /// Enqueue-to-cleared samples of `idle-latency`.
    pub(crate) samples: usize,
    /// Multiplies the simulated quotas and the configured rates of the quota scenarios.
    pub(crate) quota_scale: f64,
    /// `offboard run` processes of `workers`.
    pub(crate) workers: usize,
    /// Tokens queued on the large side of `rss`.
    pub(crate) tokens: usize,
    /// Tokens of the large user of `rss`.
    pub(crate) user_tokens: usize,
    /// Audit rows of the large side of `report`.
    pub(crate) report_rows: u32,
    /// Longest run of each `rss` child.
    pub(crate) run_for: Duration,
    /// A PostgreSQL server URL; SQLite in a temporary folder when `None`.
    pub(crate) database: Option<String>,
}

pub(crate) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    let names: Vec<&str> = if options.scenarios.is_empty() {
        // `workers` needs PostgreSQL: left out of the default run on SQLite.
        SCENARIOS
            .into_iter()
            .filter(|s| *s != "workers" || options.database.is_some())
            .collect()
    } else {
        options.scenarios.iter().map(String::as_str).collect()
    };
    let backend = if options.database.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    if names.contains(&"workers") {
        workers::check_backend(options)?;
    }
    machine::describe(out, backend)?;
    for name in names {
        writeln!(out)?;
        match name {
            "quotas" => quotas::run(out, options, quotas::Pacing::AtQuota).await?,
            "overconfigured" => quotas::run(out, options, quotas::Pacing::Over).await?,
            "unlimited" => unlimited::run(out, options).await?,
            "idle-latency" => latency::run(out, options).await?,
            "workers" => workers::run(out, options).await?,
            "rss" => rss::run(out, options).await?,
            "report" => report::run(out, options).await?,
            other => anyhow::bail!("no scenario '{other}' (known: {})", SCENARIOS.join(", ")),
        }
        out.flush()?;
    }
    Ok(())
}
