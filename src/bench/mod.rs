//! `offboard bench`: named scenarios measured against simulated providers served in
//! process, on a fresh SQLite database (or a fresh database on the PostgreSQL server given
//! with `--database`), each printing its figures and the machine it ran on.
//!
//! - `machine`: cores, CPU model, memory, date, build profile; CPU time and peak RSS.
//! - `database`: a fresh database per scenario, removed afterwards.
//! - `bed`: the simulator, the offboard config pointing at it, the seeded backlog, and a
//!   drain to the end.
//! - `quotas`: a backlog against providers enforcing quotas, rates configured at them
//!   (`quotas`) or 1.67× above (`overconfigured`).
//! - `unlimited`: providers that answer at once: tokens per second, CPU per 1,000 tokens.
//! - `latency`: an idle running worker, enqueue to cleared, one user at a time.

mod bed;
mod database;
mod latency;
mod machine;
mod quotas;
mod unlimited;

use std::io::Write;

/// The scenarios, in the order `offboard bench` with none named runs them.
pub(crate) const SCENARIOS: [&str; 4] = ["quotas", "overconfigured", "unlimited", "idle-latency"];

pub(crate) struct BenchOptions {
    pub(crate) scenarios: Vec<String>,
    pub(crate) users: usize,
    /// Enqueue-to-cleared samples of `idle-latency`.
    pub(crate) samples: usize,
    /// A PostgreSQL server URL; SQLite in a temporary folder when `None`.
    pub(crate) database: Option<String>,
}

pub(crate) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    let names: Vec<&str> = if options.scenarios.is_empty() {
        SCENARIOS.to_vec()
    } else {
        options.scenarios.iter().map(String::as_str).collect()
    };
    let backend = if options.database.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    machine::describe(out, backend)?;
    for name in names {
        writeln!(out)?;
        match name {
            "quotas" => quotas::run(out, options, quotas::Pacing::AtQuota).await?,
            "overconfigured" => quotas::run(out, options, quotas::Pacing::Over).await?,
            "unlimited" => unlimited::run(out, options).await?,
            "idle-latency" => latency::run(out, options).await?,
            other => anyhow::bail!("no scenario '{other}' (known: {})", SCENARIOS.join(", ")),
        }
        out.flush()?;
    }
    Ok(())
}
