//! `offboard bench`'s arguments, and the [`BenchOptions`] they make.

use crate::bench::BenchOptions;

// The command's description is on `Command::Bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Scenarios to run: quotas, overconfigured, unlimited, idle-latency, workers (PostgreSQL
    /// only), rss, report [default: all but workers, and workers too with --database]
    #[arg(value_name = "SCENARIO", value_parser = crate::bench::SCENARIOS)]
    scenarios: Vec<String>,
    /// Users in each scenario's backlog (each with four or five tokens)
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: u32,
    /// Enqueue-to-cleared samples taken by idle-latency
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    samples: u32,
    /// Multiplies the simulated quotas of quotas, overconfigured and workers, and the rates
    /// configured for them (10: 400, 800, 200 and 300 calls a second)
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = quota_scale)]
    quota_scale: f64,
    /// `offboard run` processes sharing the backlog in `workers`
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Tokens queued on the large side of `rss` (4 per user); the small side is 1,000
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
    tokens: u32,
    /// Tokens of the one large user of `rss` (against a user with 1,000)
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
    user_tokens: u32,
    /// Audit rows `offboard report` exports on the large side of `report` (the small side is
    /// 10,000, or this if fewer)
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    report_rows: u32,
    /// Seconds each `rss` child runs at most (it is stopped sooner once drained)
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    run_seconds: u32,
    /// A PostgreSQL server (postgres://…) to create each scenario's database on, and drop
    /// it afterwards [default: SQLite in a temporary folder]
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

fn quota_scale(raw: &str) -> Result<f64, String> {
    let f: f64 = raw.parse().map_err(|_| format!("'{raw}' is not a number"))?;
    if (0.05..=100.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("must be from 0.05 to 100, got {raw}"))
    }
}

impl BenchArgs {
    pub(super) fn options(&self) -> BenchOptions {
        BenchOptions {
            scenarios: self.scenarios.clone(),
            users: self.users as usize,
            samples: self.samples as usize,
            quota_scale: self.quota_scale,
            workers: self.workers as usize,
            tokens: self.tokens as usize,
            user_tokens: self.user_tokens as usize,
            report_rows: self.report_rows,
            run_for: std::time::Duration::from_secs(u64::from(self.run_seconds)),
            database: self.database.clone(),
        }
    }
}
