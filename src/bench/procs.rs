//! `offboard run` as child processes of the benchmark: the bed's config written to a
//! temporary file (operations endpoint off, secrets passed as the variables it names), one
//! child per worker started as `CURRENT_EXE --config FILE run`, each one's peak resident
//! memory (`VmHWM` in `/proc/PID/status`) sampled while it runs and just before it is
//! stopped with SIGTERM (sent with `kill`, as the tests do: no libc binding needed).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::bed::Bed;
use crate::storage::Store;

/// How often the bench looks at the queue and the children's memory.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

struct Worker {
    child: Child,
    log: PathBuf,
    /// Highest `VmHWM` read so far, in KiB.
    peak_kib: u64,
}

/// Running `offboard run` children; killed (SIGKILL) and their folder removed on drop.
pub(super) struct Workers {
    dir: PathBuf,
    children: Vec<Worker>,
}

impl Workers {
    /// Writes the bed's config and starts `n` children on it; returns once each has logged
    /// that its worker started (it then drains what is due, or idles).
    pub(super) async fn start(bed: &Bed, n: usize) -> anyhow::Result<Workers> {
        let dir = std::env::temp_dir().join(format!(
            "offboard-bench-run-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut workers = Workers {
            dir,
            children: Vec::new(),
        };
        let config = workers.dir.join("offboard.toml");
        // The daemon's start and stop at info, everything else from warnings up.
        let text = format!(
            "{}\n[server]\nlisten = \"off\"\n[log]\nlevel = \"warn,offboard::drain::daemon=info\"\n",
            bed.config_text
        );
        std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
        let exe = std::env::current_exe().context("cannot find this program to start `offboard run`")?;
        for k in 0..n {
            let log = workers.dir.join(format!("worker-{k}.log"));
            let stderr = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("--config").arg(&config).arg("run");
            // Only the bench's settings: no config override or log filter from the caller.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy().into_owned();
                if name == "OFFBOARD_CONFIG"
                    || name == "RUST_LOG"
                    || (name.starts_with("OFFBOARD_") && name.contains("__"))
                {
                    cmd.env_remove(name);
                }
            }
            let child = cmd
                .envs(bed.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .context("cannot start `offboard run`")?;
            workers.children.push(Worker {
                child,
                log,
                peak_kib: 0,
            });
        }
        let started = Instant::now();
        for k in 0..n {
            while !workers.log_of(k).contains("offboard worker started") {
                workers.check_alive()?;
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "`offboard run` did not start within 60s: {}",
                    last_lines(&workers.log_of(k))
                );
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }
        Ok(workers)
    }

    fn log_of(&self, k: usize) -> String {
        std::fs::read_to_string(&self.children[k].log).unwrap_or_default()
    }

    /// Fails if a child has exited (the benchmark stops it, it never stops alone).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for k in 0..self.children.len() {
            if let Some(status) = self.children[k].child.try_wait()? {
                anyhow::bail!("`offboard run` exited with {status}: {}", last_lines(&self.log_of(k)));
            }
        }
        Ok(())
    }

    /// Samples memory and fails if a child has exited: one look while the caller drives the
    /// queue itself.
    pub(super) fn watch(&mut self) -> anyhow::Result<()> {
        self.sample();
        self.check_alive()
    }

    /// Reads each child's `VmHWM`, keeping the highest.
    pub(super) fn sample(&mut self) {
        for w in &mut self.children {
            if let Some(kib) = super::machine::peak_rss_kib_of(w.child.id()) {
                w.peak_kib = w.peak_kib.max(kib);
            }
        }
    }

    /// Waits until no request is open in `store` (asked every `look_every`) or `limit` has
    /// passed, sampling memory all along; returns the time waited and whether the queue was
    /// drained.
    pub(super) async fn wait_drained(
        &mut self,
        store: &Store,
        limit: Duration,
        look_every: Duration,
    ) -> anyhow::Result<(Duration, bool)> {
        let started = Instant::now();
        let mut looked: Option<Instant> = None;
        loop {
            self.sample();
            self.check_alive()?;
            if looked.is_none_or(|at| at.elapsed() >= look_every) {
                looked = Some(Instant::now());
                if store.state_counts().await?.open() == 0 {
                    return Ok((started.elapsed(), true));
                }
            }
            if started.elapsed() >= limit {
                return Ok((started.elapsed(), false));
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }

    /// Samples memory one last time, sends each child SIGTERM and waits for it to exit
    /// (SIGKILL after a minute); returns each child's peak RSS in KiB.
    pub(super) async fn stop(mut self) -> anyhow::Result<Vec<u64>> {
        self.sample();
        for w in &self.children {
            let sent = Command::new("kill")
                .args(["-TERM", &w.child.id().to_string()])
                .status()
                .context("cannot run `kill` to stop `offboard run`")?;
            anyhow::ensure!(sent.success(), "`kill -TERM {}` failed", w.child.id());
        }
        let started = Instant::now();
        for w in &mut self.children {
            while w.child.try_wait()?.is_none() {
                if started.elapsed() > Duration::from_secs(60) {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }
        Ok(self.children.iter().map(|w| w.peak_kib).collect())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.children {
            if let Ok(None) = w.child.try_wait() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last lines of a child's log, for an error message.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// KiB as MiB, for printing.
pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
