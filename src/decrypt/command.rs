//! `scheme = "command"`: the escape hatch. An external program reads stored values on its
//! stdin, one a line, and writes each plaintext on its stdout, one a line, in order. It is
//! one long-lived process per decryptor: started at the first value, restarted when it dies,
//! killed when the decryptor is dropped.
//!
//! - Requests are serialized: one value in, one line out, then the next.
//! - An empty answer line means "I cannot decrypt this value": that value fails, the process
//!   stays.
//! - Each value has a deadline (`timeout`); a process that misses it is killed and restarted.
//! - A process that dies, answers with bytes that are not UTF-8 or with an overlong line, or
//!   writes more than one line for one value, is killed and restarted. A process that was
//!   reused and turns out to have died while idle is replaced and the value sent again, once.
//! - After [`MAX_FAILURES`] failures in a row, values fail at once with a clear error until
//!   [`COOL_DOWN`] has passed; then one more start is tried.
//! - Its stderr is read and thrown away unread (it may echo a secret); only its size is logged.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use super::{DecryptError, MAX_VALUE_LEN, into_token};
use crate::config::ConfigError;
use crate::token::TokenValue;

/// Failures in a row after which the command is not restarted until [`COOL_DOWN`] passes.
pub(super) const MAX_FAILURES: u32 = 3;
pub(super) const COOL_DOWN: Duration = Duration::from_secs(30);

/// Why the command gave no plaintext. Holds no answer, no input and no stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("cannot start {program}: {kind}")]
    Spawn { program: String, kind: std::io::ErrorKind },
    #[error("it exited ({status}) before answering")]
    Exited { status: String },
    #[error("it did not answer within {after}; it was killed and will be restarted")]
    TimedOut { after: String },
    #[error("it answered with {what}; it was killed and will be restarted")]
    Garbage { what: &'static str },
    #[error("it answered with an empty line: it cannot decrypt this value")]
    Refused,
    #[error("it failed {failures} times in a row; not restarted for another {retry_in}")]
    GaveUp { failures: u32, retry_in: String },
}

pub(super) struct CommandDecryptor {
    program: String,
    args: Vec<String>,
    timeout: Duration,
    pub(super) cool_down: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    failures: u32,
    last_failure: Option<Instant>,
}

/// One started process and its pipes. Dropping it kills the process.
struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: JoinHandle<()>,
    /// A value was sent and its answer not read: the caller gave up midway (its future was
    /// dropped), so the next line out would be that value's. The process must go.
    in_flight: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stderr.abort();
        // `kill_on_drop` kills it when `child` drops; this makes it so even if that changes.
        let _ = self.child.start_kill();
    }
}

/// How one exchange failed.
enum Failure {
    /// No answer: the process closed its output or its input.
    Gone,
    Garbage(&'static str),
}

impl CommandDecryptor {
    /// `key` is the config key of the command (for errors); the program must exist.
    pub(super) fn new(key: &str, argv: &[String], timeout: Duration) -> Result<Self, ConfigError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| ConfigError::key(key, "the command is empty"))?;
        find_program(program).map_err(|problem| ConfigError::key(key, problem))?;
        Ok(CommandDecryptor {
            program: program.clone(),
            args: args.to_vec(),
            timeout,
            cool_down: COOL_DOWN,
            state: Mutex::new(State::default()),
        })
    }

    pub(super) fn program(&self) -> &str {
        &self.program
    }

    pub(super) async fn decrypt(&self, value: &str) -> Result<TokenValue, DecryptError> {
        if value.contains(['\n', '\r']) {
            return Err(DecryptError::Format(
                "the stored value holds a line break, which the command's one-value-per-line protocol cannot carry",
            ));
        }
        let mut state = self.state.lock().await;
        if state.failures >= MAX_FAILURES
            && let Some(at) = state.last_failure
            && at.elapsed() < self.cool_down
        {
            let left = self.cool_down.saturating_sub(at.elapsed());
            return Err(CommandError::GaveUp {
                failures: state.failures,
                retry_in: humantime::format_duration(Duration::from_secs(left.as_secs().max(1))).to_string(),
            }
            .into());
        }
        let mut retried = false;
        loop {
            let healthy = state.running.as_mut().map(Running::is_healthy);
            let reused = match healthy {
                Some(true) => true,
                Some(false) => {
                    tracing::warn!(
                        program = %self.program,
                        "decrypt command died while idle, or is out of step with its answers; restarting it"
                    );
                    state.running = None;
                    false
                }
                None => false,
            };
            if !reused {
                match self.spawn() {
                    Ok(running) => state.running = Some(running),
                    Err(e) => return Err(state.failed(e)),
                }
            }
            let running = state.running.as_mut().expect("a process was just made sure of");
            let answer = tokio::time::timeout(self.timeout, running.exchange(value)).await;
            match answer {
                Ok(Ok(line)) if line.is_empty() => {
                    state.failures = 0;
                    return Err(CommandError::Refused.into());
                }
                Ok(Ok(line)) => {
                    state.failures = 0;
                    return into_token(line);
                }
                Ok(Err(Failure::Gone)) if reused && !retried => {
                    // It died since its last answer, not over this value: try a new one, once.
                    retried = true;
                    state.running = None;
                }
                Ok(Err(Failure::Gone)) => {
                    let mut running = state.running.take().expect("it was running");
                    let status = running.exit_status().await;
                    return Err(state.failed(CommandError::Exited { status }));
                }
                Ok(Err(Failure::Garbage(what))) => {
                    state.running = None;
                    return Err(state.failed(CommandError::Garbage { what }));
                }
                Err(_elapsed) => {
                    state.running = None;
                    let after = humantime::format_duration(self.timeout).to_string();
                    return Err(state.failed(CommandError::TimedOut { after }));
                }
            }
        }
    }

    fn spawn(&self) -> Result<Running, CommandError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| CommandError::Spawn {
                program: self.program.clone(),
                kind: e.kind(),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(CommandError::Spawn {
                program: self.program.clone(),
                kind: std::io::ErrorKind::BrokenPipe,
            });
        };
        tracing::debug!(program = %self.program, pid = child.id(), "decrypt command started");
        Ok(Running {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tokio::spawn(drain_stderr(self.program.clone(), stderr)),
            in_flight: false,
        })
    }
}

impl State {
    /// Counts a failure of the process and passes its error on.
    fn failed(&mut self, error: CommandError) -> DecryptError {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(Instant::now());
        error.into()
    }
}

impl Running {
    /// Still running, with no half-finished exchange and no unread output (an extra line
    /// would be taken for the next value's answer).
    fn is_healthy(&mut self) -> bool {
        if self.in_flight || !matches!(self.child.try_wait(), Ok(None)) {
            return false;
        }
        if !self.stdout.buffer().is_empty() {
            return false;
        }
        // Output that has already arrived, or end of file, is ready at once.
        self.stdout.fill_buf().now_or_never().is_none()
    }

    /// Sends one value and reads one line back, without its line ending.
    async fn exchange(&mut self, value: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
        self.in_flight = true;
        let mut request = Zeroizing::new(Vec::with_capacity(value.len() + 1));
        request.extend_from_slice(value.as_bytes());
        request.push(b'\n');
        if self.stdin.write_all(&request).await.is_err() || self.stdin.flush().await.is_err() {
            return Err(Failure::Gone);
        }
        let mut line = Zeroizing::new(Vec::new());
        let limit = MAX_VALUE_LEN as u64 + 2;
        let read = (&mut self.stdout).take(limit).read_until(b'\n', &mut line).await;
        match read {
            Err(_) | Ok(0) => return Err(Failure::Gone),
            Ok(_) if line.last() != Some(&b'\n') => {
                return Err(if line.len() as u64 >= limit {
                    Failure::Garbage("a line longer than 64 KiB")
                } else {
                    Failure::Gone
                });
            }
            Ok(_) => {}
        }
        self.in_flight = false;
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if std::str::from_utf8(&line).is_err() {
            return Err(Failure::Garbage("bytes that are not UTF-8 text"));
        }
        Ok(line)
    }

    /// How the process ended, waiting briefly; killed if it has not.
    async fn exit_status(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => {
                let _ = self.child.kill().await;
                "closed its output but did not exit; killed".to_owned()
            }
        }
    }
}

/// Reads the command's stderr to its end and drops it: it may echo a ciphertext or a key.
async fn drain_stderr(program: String, mut stderr: tokio::process::ChildStderr) {
    let mut buf = Zeroizing::new(vec![0u8; 4096]);
    let mut total = 0usize;
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        if total == 0 {
            tracing::warn!(
                program = %program,
                "decrypt command writes to its stderr; the text is discarded unread, as it may hold secrets"
            );
        }
        total = total.saturating_add(n);
    }
    tracing::debug!(program = %program, bytes = total, "decrypt command closed its stderr");
}

/// Checks that `program` is an executable file: a path as given, or a name found on `PATH`.
fn find_program(program: &str) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        let Ok(meta) = std::fs::metadata(p) else { return false };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            meta.is_file() && meta.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        {
            meta.is_file()
        }
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!("{program} is not an executable file"))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| format!("{program} is not found on PATH"))
}
