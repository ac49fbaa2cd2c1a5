//! `report`: `offboard report` over a large audit trail, as a child process writing CSV to
//! `/dev/null`: rows a second and its peak resident memory (`VmHWM`, read from
//! `/proc/PID/status` every 2 ms while it runs), at 10,000 rows and at `--report-rows`
//! (default 1,000,000). Each size gets a fresh database filled in two statements
//! (`generate_series` on PostgreSQL, a recursive CTE on SQLite: `Store::fill_audit_rows`),
//! which is timed apart. A report that streams has about the same peak at both sizes; one
//! that collects its rows grows with them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::BenchOptions;
use super::database::FreshDatabase;
use super::machine::peak_rss_kib_of;
use super::procs::mib;
use crate::config::Config;
use crate::storage::Store;

const SMALL: u32 = 10_000;
/// The requests (users) the rows are spread over.
const USERS: u32 = 1_000;
/// How often the child's `VmHWM` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

struct Measured {
    rows: u32,
    ran: Duration,
    peak_kib: u64,
}

impl Measured {
    fn rows_per_sec(&self) -> f64 {
        f64::from(self.rows) / self.ran.as_secs_f64().max(1e-6)
    }
}

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    let large = options.report_rows;
    writeln!(
        out,
        "scenario report: `offboard report --format csv --output /dev/null` as a child process, over audit rows of {USERS} requests filled by bulk SQL; VmHWM sampled every {}ms",
        SAMPLE_EVERY.as_millis()
    )?;
    let small = measure(out, options, SMALL.min(large)).await?;
    let large = measure(out, options, large).await?;
    writeln!(
        out,
        "result report: {} rows {:.0} rows/s peak RSS {:.1} MiB; {} rows {:.0} rows/s peak RSS {:.1} MiB; RSS ratio {:.2}",
        small.rows,
        small.rows_per_sec(),
        mib(small.peak_kib),
        large.rows,
        large.rows_per_sec(),
        mib(large.peak_kib),
        large.peak_kib as f64 / small.peak_kib.max(1) as f64,
    )?;
    Ok(())
}

async fn measure(out: &mut impl Write, options: &BenchOptions, rows: u32) -> anyhow::Result<Measured> {
    let database = FreshDatabase::create(options.database.as_deref()).await?;
    let dir = tempfile_dir()?;
    let result = async {
        let config_text = format!("[database]\nurl = \"{}\"\n[log]\nlevel = \"warn\"\n", database.url);
        let config = Config::from_toml(&config_text, Path::new("bench"), Vec::new()).context("bench config")?;
        let store = Store::open(&config.database)
            .await
            .context("cannot open the bench database")?;
        let started = Instant::now();
        let filled = store
            .fill_audit_rows(rows, USERS)
            .await
            .context("cannot fill the audit table");
        store.close().await;
        filled?;
        let fill = started.elapsed();
        let config = dir.join("offboard.toml");
        std::fs::write(&config, config_text).with_context(|| format!("cannot write {}", config.display()))?;
        let (ran, peak_kib) = tokio::task::spawn_blocking(move || run_report(&config)).await??;
        writeln!(
            out,
            "  {rows} rows (filled in {:.1}s): report in {:.2}s, {:.0} rows/s, peak RSS {:.1} MiB",
            fill.as_secs_f64(),
            ran.as_secs_f64(),
            f64::from(rows) / ran.as_secs_f64().max(1e-6),
            mib(peak_kib)
        )?;
        out.flush()?;
        anyhow::Ok(Measured { rows, ran, peak_kib })
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    database.remove().await;
    result
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "offboard-bench-report-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Runs `offboard --config CONFIG report` to `/dev/null`, reading its `VmHWM` until it
/// exits; returns how long it ran and the highest `VmHWM` read, in KiB.
fn run_report(config: &Path) -> anyhow::Result<(Duration, u64)> {
    let exe = std::env::current_exe().context("cannot find this program to start `offboard report`")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(config)
        .args(["report", "--format", "csv", "--output", "/dev/null"]);
    // Only the bench's settings: no config override or log filter from the caller.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name == "OFFBOARD_CONFIG" || name == "RUST_LOG" || (name.starts_with("OFFBOARD_") && name.contains("__")) {
            cmd.env_remove(name);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start `offboard report`")?;
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib_of(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let ran = started.elapsed();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        }
        anyhow::bail!("`offboard report` exited with {status}: {}", err.trim());
    }
    anyhow::ensure!(
        peak_kib > 0,
        "could not read the memory of `offboard report` (Linux /proc only)"
    );
    Ok((ran, peak_kib))
}
