//! The `offboard` binary as a deletion job and an operator use it: exit codes, messages,
//! config errors that name the key, audited operator commands, and shutdown on SIGTERM
//! (once, twice, and during start-up).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use offboard::outcome::RequestState;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, SimProvider, Simulator, offboard_config_for};
use offboard::storage::AuditAction;
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};

use crate::helpers::{Daemon, open_store};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("offboard.db").display())
    }

    /// Writes a config with the database and `extra`, returns its path.
    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("[database]\nurl = \"{}\"\n{extra}", self.db_url())).unwrap();
        path
    }

    fn run(&self, config: &Path, args: &[&str]) -> Output {
        offboard(config).args(args).output().unwrap()
    }
}

fn offboard(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
    cmd.arg("--config")
        .arg(config)
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_bad_value_stops_start_up_with_the_key_named() {
    let env = Env::new();
    let config = env.config("bad.toml", "[worker]\nconcurrency = \"lots\"\n");
    let out = env.run(&config, &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: invalid configuration in "), "{err}");
    assert!(
        err.contains("worker.concurrency: 'lots' is not a whole number"),
        "{err}"
    );
}

#[test]
fn a_missing_secret_names_the_key_and_the_variable() {
    let env = Env::new();
    let extra = "[providers.acme]\ndialect = \"rfc7009\"\nurl = \"https://auth.acme.example/revoke\"\nclient_id = \"c\"\nclient_secret_env = \"OFFBOARD_TEST_UNSET_SECRET\"\n";
    let config = env.config("c.toml", extra);
    let out = env.run(&config, &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("providers.acme.client_secret_env: environment variable OFFBOARD_TEST_UNSET_SECRET is not set"),
        "{}",
        stderr(&out)
    );
    let out = offboard(&config)
        .env("OFFBOARD_TEST_UNSET_SECRET", "hunter2-secret")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("provider acme: rfc7009 at https://auth.acme.example/revoke"));
    assert!(!stdout(&out).contains("hunter2-secret") && !stderr(&out).contains("hunter2-secret"));
}

#[test]
fn the_gate_needs_no_provider_secret_but_a_drain_does() {
    let env = Env::new();
    let extra = "[providers.acme]\ndialect = \"rfc7009\"\nurl = \"https://auth.acme.example/revoke\"\nclient_id = \"c\"\nclient_secret_env = \"OFFBOARD_TEST_UNSET_SECRET\"\n";
    let config = env.config("c.toml", extra);
    // The deletion job's environment has no provider secrets.
    let out = env.run(&config, &["gate", "u1"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let out = env.run(&config, &["once"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: invalid configuration: providers.acme.client_secret_env: \
         environment variable OFFBOARD_TEST_UNSET_SECRET is not set\n"
    );
}

#[test]
fn an_unknown_key_and_a_missing_file_are_reported() {
    let env = Env::new();
    let config = env.config("typo.toml", "[worker]\nconcurency = 4\n");
    let err = stderr(&env.run(&config, &["check-config"]));
    assert!(
        err.contains("worker.concurency: unknown field `concurency`, expected one of"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = env.run(&env.dir.path().join("absent.toml"), &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read config file"), "{}", stderr(&out));
}

#[test]
fn a_start_that_fails_on_config_loses_no_request() {
    let env = Env::new();
    let good = env.config("good.toml", "");
    assert!(env.run(&good, &["enqueue", "u1"]).status.success());
    let bad = env.config("bad.toml", "[providers.x]\ndialect = \"carrier-pigeon\"\n");
    let out = env.run(&bad, &["once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("providers.x.dialect: unknown variant `carrier-pigeon`"),
        "{}",
        stderr(&out)
    );
    let status = stdout(&env.run(&good, &["status", "user:u1"]));
    assert!(
        status.starts_with("request 1  user u1  pending  attempts 0"),
        "{status}"
    );
}

#[test]
fn the_deletion_job_enqueues_waits_on_the_gate_and_reads_the_status() {
    let env = Env::new();
    let config = env.config("c.toml", "");
    let out = env.run(
        &config,
        &[
            "enqueue",
            "u1",
            "--requested-by",
            "gdpr-job",
            "--external-ref",
            "case-7",
        ],
    );
    assert_eq!(stdout(&out), "queued: request 1 for user u1 is pending\n");
    let out = env.run(&config, &["enqueue", "u1"]);
    assert_eq!(stdout(&out), "already open: request 1 for user u1 is pending\n");

    let out = env.run(&config, &["gate", "u1"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "not yet: request 1 for user u1 is pending\n");

    // A user with no tokens has nothing to revoke: the drain clears them.
    let out = env.run(&config, &["once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("claimed 1, cleared 1, failed 0"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&config, &["gate", "--quiet", "u1"]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), ""));

    let status = stdout(&env.run(&config, &["status", "1"]));
    assert!(status.contains("request 1  user u1  cleared  attempts 1"), "{status}");
    assert!(status.contains("by gdpr-job (ref case-7)"), "{status}");
    let counts = stdout(&env.run(&config, &["status"]));
    assert_eq!(counts, "cleared    1\n");
    let report = stdout(&env.run(&config, &["report"]));
    assert!(report.starts_with("request_id,user_id,token_id,provider,token_type,token_fingerprint,attempt,outcome"));

    let out = env.run(&config, &["retry", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: request 1 is cleared; retry needs a request that is failed\n"
    );
    let out = env.run(&config, &["gate", "nobody"]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn the_demo_runs_twice_without_mixing_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["demo", "--users", "25", "--dir"])
            .arg(dir.path())
            .env_remove("OFFBOARD_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let first = demo();
    let second = demo();
    for out in [&first, &second] {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
        let text = stdout(out);
        assert!(text.starts_with("offboard demo: 25 users, "), "{text}");
        assert!(text.contains("\nrequests: 25 cleared, 0 failed, in "), "{text}");
        for name in ["acme", "auth0", "moov", "onelogin", "stitch"] {
            assert!(text.lines().any(|l| l.starts_with(name)), "no row for {name}: {text}");
        }
        assert!(
            text.lines().all(|l| l.chars().count() <= 80),
            "a line is wider than 80 columns: {text}"
        );
    }
    let runs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    // The printed config reaches the run's own database.
    let config = stdout(&second)
        .lines()
        .find_map(|l| l.trim().strip_prefix("export OFFBOARD_CONFIG=").map(PathBuf::from))
        .unwrap();
    assert!(runs.iter().any(|r| config.starts_with(r)));
    let gate = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["gate", "user-001"])
        .env("OFFBOARD_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(gate.status.code(), Some(0), "{}", stdout(&gate));
    let counts = stdout(&offboard(&config).arg("status").output().unwrap());
    assert_eq!(counts, "cleared    25\n");
}

#[test]
fn the_daemon_stops_cleanly_on_sigterm() {
    let env = Env::new();
    let config = env.config(
        "c.toml",
        "[worker]\nschedule = \"0 0 * * * *\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut child = offboard(&config).arg("run").stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("daemon exited early").unwrap();
        if let Some((_, addr)) = line.split_once("serving /healthz, /readyz and /metrics address=") {
            let (status, body) = http_get(addr.trim(), "/readyz");
            assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ready\n"));
        }
        if line.contains("offboard worker started") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "daemon did not start");
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Bounded wait: a daemon that ignores SIGTERM fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon did not stop within 30s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("offboard worker stopped")), "{rest:?}");
}

/// A bare HTTP/1.1 GET: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Runs `args` with a config whose database URL is `url`; returns stdout and stderr together.
fn run_with_database(url: &str, extra: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{url}\"\n{extra}")).unwrap();
    let out = offboard(&config)
        .env("OFFBOARD_TEST_ACME_SECRET", "s3cr3t-value")
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), format!("{}{}", stdout(&out), stderr(&out)))
}

const LEAKY_DB_URL: &str = "postgres://user:hunter2@127.0.0.1:1/db?password=hunter2";

#[test]
fn check_config_never_prints_a_database_password() {
    for url in [
        LEAKY_DB_URL,
        "postgres://user@127.0.0.1:1/db?sslpassword=hunter2",
        "postgres://user:hun/ter2@127.0.0.1:1/db",
        "sqlite://offboard.db?key=hunter2",
    ] {
        let (_, text) = run_with_database(url, "", &["check-config"]);
        assert!(!text.contains("ter2"), "{url}: {text}");
    }
    let (code, text) = run_with_database(LEAKY_DB_URL, "", &["check-config"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("config ok: database postgres://user:REDACTED@127.0.0.1:1/db?password=REDACTED\n"),
        "{text}"
    );
}

// Each waits for the pool's connect timeout, so they run as separate tests, in parallel.
#[test]
fn migrate_never_prints_a_database_password() {
    let (code, text) = run_with_database(LEAKY_DB_URL, "", &["migrate"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("error: cannot open the database: "), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn migrate_never_logs_a_database_password() {
    let url = "postgres://user@127.0.0.1:1/db?sslpassword=hunter2";
    let (code, text) = run_with_database(url, "[log]\nlevel = \"trace\"\n", &["migrate"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn check_config_never_prints_a_secret_in_a_provider_url() {
    let provider = |url: &str| {
        format!(
            "[providers.acme]\ndialect = \"rfc7009\"\nurl = \"{url}\"\nclient_id = \"c\"\n\
             client_secret_env = \"OFFBOARD_TEST_ACME_SECRET\"\n"
        )
    };
    let db = "sqlite://offboard.db";
    for url in [
        "https://user:hunter2@auth.acme.example/revoke",
        "https://auth.acme.example/revoke?api_key=hunter2",
        "http://user:hunter2@auth.acme.example/revoke?key=hunter2",
        "https://auth.acme.example/revoke#hunter2",
    ] {
        let (_, text) = run_with_database(db, &provider(url), &["check-config"]);
        assert!(!text.contains("hunter2"), "{url}: {text}");
    }
    let (code, text) = run_with_database(
        db,
        &provider("https://u:hunter2@auth.acme.example/revoke"),
        &["check-config"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("providers.acme.url: "), "{text}");
    let (code, text) = run_with_database(
        db,
        &provider("https://auth.acme.example/revoke?api_key=hunter2"),
        &["check-config"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("provider acme: rfc7009 at https://auth.acme.example/revoke?[query hidden],"),
        "{text}"
    );
}

/// Operators' commands are audited with who acted and why: `--by` and `--reason` when
/// given, else the OS user running the command (`$USER`).
#[test]
fn retry_and_cancel_are_audited_with_who_and_why() {
    let env = Env::new();
    let config = env.config("c.toml", "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(open_store(&env.db_url()));
    // A token at a provider the config does not name: the drain fails the request.
    let stray = NewToken {
        user_id: "u1".into(),
        provider: "legacy-idp".into(),
        token_type: TokenType::RefreshToken,
        value: TokenValue::new("legacy-token-value-123".into()),
        grant_ref: None,
        expires_at: None,
    };
    rt.block_on(insert_tokens(&store, &[stray])).unwrap();
    assert!(env.run(&config, &["enqueue", "u1"]).status.success());
    let out = env.run(&config, &["once"]);
    assert!(
        stdout(&out).starts_with("claimed 1, cleared 0, failed 1"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = offboard(&config)
        .args(["retry", "1", "--by", "alice", "--reason", "rotated secret"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "request 1 for user u1 is pending again\n");
    let out = offboard(&config)
        .args(["cancel", "1"])
        .env("USER", "bob")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "request 1 for user u1 is cancelled; deletion stays blocked\n"
    );

    let notes = rt.block_on(store.audit_notes(Some(1))).unwrap();
    assert_eq!(
        crate::helpers::notes_said(&notes),
        [
            (AuditAction::Retry, "alice", Some("rotated secret")),
            (AuditAction::Cancel, "bob", None)
        ]
    );
}

/// A config for `offboard run` against a PostgreSQL server that refuses connections.
const UNREACHABLE_POSTGRES: &str =
    "[database]\nurl = \"postgres://postgres@127.0.0.1:1/x\"\n[server]\nlisten = \"off\"\n";

/// What the daemon logs each time a start-up connection attempt fails.
const START_UP_RETRY: &str = "database unavailable at start-up; retrying";

/// Waits until the daemon's log holds `line`; panics with the log if the daemon exits first
/// or after `guard` (which only keeps a broken daemon from hanging the test).
fn wait_for_log(daemon: &mut Daemon, line: &str, guard: Duration) {
    let deadline = Instant::now() + guard;
    while !daemon.log_text().contains(line) {
        if let Some(status) = daemon.exited() {
            panic!(
                "the daemon exited ({status}) before logging {line:?}:\n{}",
                daemon.log_text()
            );
        }
        assert!(Instant::now() < deadline, "no {line:?} in:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the daemon to exit; after `guard` it is killed and the test fails.
fn wait_for_exit(daemon: &mut Daemon, guard: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + guard;
    loop {
        if let Some(status) = daemon.exited() {
            return status;
        }
        if Instant::now() > deadline {
            daemon.kill();
            panic!("the daemon was still running {guard:?} later:\n{}", daemon.log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(pid: u32) {
    let kill = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(kill.success());
}

/// `offboard run` outlives a database that refuses connections at start-up: it logs each
/// failed attempt and tries again, rather than exiting with an error; a SIGTERM while it
/// waits between attempts is a clean stop (exit 0) before the worker ever started. Each
/// attempt lasts the pool's connect timeout (30 s), so the test takes that long.
#[test]
fn run_keeps_trying_an_unreachable_database_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, UNREACHABLE_POSTGRES).unwrap();
    let mut daemon = Daemon::spawn(&config, &[], dir.path().join("daemon.log"));

    wait_for_log(&mut daemon, START_UP_RETRY, Duration::from_secs(120));
    sigterm(daemon.pid());
    let status = wait_for_exit(&mut daemon, Duration::from_secs(120));

    let log = daemon.log_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(!log.contains("offboard worker started"), "{log}");
}

/// A SIGTERM that arrives during a start-up connection attempt (not between two) stops the
/// daemon without waiting for that attempt to end: no attempt is logged after the signal.
///
/// One attempt against a refusing server lasts the pool's 30 s acquire timeout (sqlx
/// retries a refused connection until then); a SIGTERM during it must not wait for it to
/// end (it did, once: shutdown was watched only between attempts).
#[test]
fn a_sigterm_during_a_start_up_connection_attempt_does_not_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, UNREACHABLE_POSTGRES).unwrap();
    let mut daemon = Daemon::spawn(&config, &[], dir.path().join("daemon.log"));
    wait_for_log(&mut daemon, START_UP_RETRY, Duration::from_secs(120));
    // Past the first backoff (1 s): inside the second attempt.
    std::thread::sleep(Duration::from_millis(1500));
    let attempts_before = daemon.log_text().matches(START_UP_RETRY).count();

    sigterm(daemon.pid());
    let status = wait_for_exit(&mut daemon, Duration::from_secs(120));

    let log = daemon.log_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        log.matches(START_UP_RETRY).count(),
        attempts_before,
        "the daemon finished a connection attempt after SIGTERM before stopping:\n{log}"
    );
}

/// The first SIGTERM starts a graceful shutdown that waits (up to `shutdown_grace`, here
/// 60 s) for the call in flight, which the provider answers only after 30 s; a second
/// SIGTERM exits at once with status 130: before the call was answered, leaving the
/// request to lease expiry.
#[test]
fn a_second_sigterm_exits_at_once_with_130_while_a_call_is_in_flight() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slow = SimProvider {
        behaviour: Behaviour {
            latency: Duration::from_secs(30),
            ..Behaviour::default()
        },
        ..SimProvider::new("slow", Dialect::Rfc7009)
    };
    let sim = rt
        .block_on(Simulator::start("127.0.0.1:0".parse().unwrap(), vec![slow]))
        .unwrap();
    let env = Env::new();
    let (providers, secrets) = offboard_config_for(&sim, "timeout = \"60s\"\n");
    let config = env.config(
        "c.toml",
        &format!("[worker]\nshutdown_grace = \"60s\"\n[server]\nlisten = \"off\"\n{providers}"),
    );
    let store = rt.block_on(open_store(&env.db_url()));
    let token = NewToken {
        user_id: "u1".into(),
        provider: "slow".into(),
        token_type: TokenType::AccessToken,
        value: TokenValue::new(sim.issue("slow", TokenType::AccessToken, None)),
        grant_ref: None,
        expires_at: None,
    };
    rt.block_on(insert_tokens(&store, &[token])).unwrap();
    let id = rt.block_on(store.enqueue("u1", None, None)).unwrap().request.id;
    let state = || rt.block_on(store.request(id)).unwrap().unwrap().state;
    let mut daemon = Daemon::spawn(&config, &secrets, env.dir.path().join("daemon.log"));

    let deadline = Instant::now() + Duration::from_secs(60);
    while state() != RequestState::Running {
        assert!(Instant::now() < deadline, "never claimed:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The call is sent a moment after the claim.
    std::thread::sleep(Duration::from_millis(300));
    sigterm(daemon.pid());
    wait_for_log(
        &mut daemon,
        "shutting down: waiting for in-flight requests",
        Duration::from_secs(20),
    );
    sigterm(daemon.pid());
    let status = wait_for_exit(&mut daemon, Duration::from_secs(120));

    let log = daemon.log_text();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("second signal: exiting at once"), "{log}");
    assert!(sim.calls().is_empty(), "the process waited for the provider's answer");
    assert_eq!(state(), RequestState::Running, "left to lease expiry");
    assert!(rt.block_on(store.audit_rows(Some(id), None)).unwrap().is_empty());
}
