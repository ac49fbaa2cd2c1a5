//! Shared by the integration tests: a fresh database per test on either backend, simulated
//! providers, config building, and a log capture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use offboard::app::App;
use offboard::config::Config;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{SimProvider, Simulator};
use offboard::storage::Store;
use sqlx::Connection;

pub const PG_URL_VAR: &str = "OFFBOARD_TEST_PG_URL";

/// A fresh database; the SQLite file lives in a temporary directory kept alive here.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb::sqlite_with("").await
    }

    /// A fresh SQLite database opened with `database_keys` added to its `[database]` table
    /// (`busy_timeout = "50ms"`).
    pub async fn sqlite_with(database_keys: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
        let store = open_store_with(&url, database_keys).await;
        TestDb {
            store,
            url,
            _dir: Some(dir),
        }
    }

    /// A new database on the server named by `OFFBOARD_TEST_PG_URL` (scripts/test sets it).
    pub async fn postgres() -> TestDb {
        let admin = std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
            panic!("{PG_URL_VAR} is not set: run the tests with scripts/test, which starts PostgreSQL")
        });
        let name = format!("offboard_test_{:016x}", fastrand::u64(..));
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the test server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = reqwest::Url::parse(&admin).expect("admin url");
        url.set_path(&name);
        let url = url.to_string();
        let store = open_store(&url).await;
        TestDb { store, url, _dir: None }
    }
}

/// Opens (and migrates) the database at `url`.
/// A connection of its own to the SQLite file at `url`, waiting up to 5 s for a lock:
/// for tests that take the write lock (`BEGIN IMMEDIATE`) while a worker runs.
pub async fn sqlite_connection(url: &str) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .unwrap()
        .busy_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

pub async fn open_store(url: &str) -> Store {
    open_store_with(url, "").await
}

/// Opens (and migrates) the database at `url` with `database_keys` added to `[database]`.
pub async fn open_store_with(url: &str, database_keys: &str) -> Store {
    let text = format!("[database]\nurl = \"{url}\"\n{database_keys}");
    let config = Config::from_toml(&text, Path::new("test"), Vec::new()).expect("test config");
    Store::open(&config.database).await.expect("open test store")
}

/// Expands to one test per backend for each named `async fn name(db: TestDb)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::postgres().await).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// One simulated provider of each dialect, named after it.
pub fn one_of_each() -> Vec<SimProvider> {
    Dialect::ALL.iter().map(|d| SimProvider::new(d.as_str(), *d)).collect()
}

/// Config TOML for a database and every provider of the simulator (rate 1000/s, burst 50),
/// with `extra` keys. Secrets go through `SIM_<NAME>_SECRET` variables, returned alongside.
pub fn config_toml(db_url: &str, sim: &Simulator, extra: &str) -> (String, Vec<(String, String)>) {
    let (providers, env) = offboard::simulate::offboard_config_for(sim, "rate = \"1000/s\"\nburst = 50\n");
    (format!("[database]\nurl = \"{db_url}\"\n{extra}\n{providers}"), env)
}

/// Parses the config (secrets from `env`) and builds the app on `store`.
pub fn app_for(store: &Store, text: &str, env: &[(String, String)]) -> App {
    let config = Config::from_toml(text, Path::new("test"), Vec::new()).expect("config parses");
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    App::with_store(config, store.clone(), &lookup).expect("secrets and http client")
}

/// Everything logged by this test binary, at every level. Installed once.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || SharedWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one raw statement on either backend; returns rows affected.
/// The error is the whole cause chain, so a test can look for the database's own words.
pub async fn exec(store: &Store, sql: &'static str) -> Result<u64, String> {
    offboard::storage::seed::execute(store, sql)
        .await
        .map_err(|e| offboard::telemetry::error_chain(&e))
}

/// As [`exec`], for a statement built at run time (a value a test chose). The text is
/// leaked, as the driver wants a `'static` query; tests run a handful.
pub async fn exec_built(store: &Store, sql: String) -> Result<u64, String> {
    exec(store, Box::leak(sql.into_boxed_str())).await
}

/// Runs one raw query that returns a single count or number.
pub async fn scalar(store: &Store, sql: &'static str) -> i64 {
    offboard::storage::seed::scalar(store, sql).await.expect(sql)
}

/// An `offboard run` child process, its stderr written to a file. Killed (SIGKILL) and
/// reaped on drop, so a failing test leaves no daemon behind.
pub struct Daemon {
    child: std::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `offboard --config CONFIG run` with `env` added (the provider secrets).
    pub fn spawn(config: &Path, env: &[(String, String)], log: PathBuf) -> Daemon {
        let stderr = std::fs::File::create(&log).expect("daemon log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
        cmd.arg("--config").arg(config).arg("run");
        // Only this test's settings: no config override or log filter from the caller.
        for (name, _) in std::env::vars() {
            if name == "OFFBOARD_CONFIG" || name == "RUST_LOG" || (name.starts_with("OFFBOARD_") && name.contains("__"))
            {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start offboard run");
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while the process runs; its exit status once it has ended on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll the daemon")
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of `text`, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A throwaway PostgreSQL cluster of its own, in a temporary directory on a free port, that a
/// test may stop, start and restart (the shared test server must never be restarted). Run as
/// the `postgres` user when the tests run as root, since initdb refuses root. Stopped
/// (`-m immediate`) and removed on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// initdb and start. Panics with the tool's output when the server binaries are missing
    /// or a step fails.
    pub fn start() -> PgCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new()
            .prefix("offboard-pg-")
            .tempdir()
            .expect("cluster dir");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "cannot give {} to postgres", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = PgCluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            cluster
                .tool("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "--no-sync"]),
            "initdb",
        );
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's own log.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// An admin URL on the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until the server accepts connections. Commits are durable
    /// across a server crash (`synchronous_commit` on): an immediate shutdown must not take
    /// back a transaction the server acknowledged, or the test would see the database, not
    /// offboard, lose audit rows. `fsync` stays off: it guards only against the machine
    /// crashing, which no test does.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on",
            self.port,
            self.dir.path().display()
        );
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        self.run(&mut cmd, "pg_ctl start");
    }

    /// `pg_ctl stop -m MODE` (`smart`, `fast` or `immediate`), waiting until it is down.
    pub fn stop_server(&self, mode: &str) {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        self.run(&mut cmd, "pg_ctl stop");
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
                .arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn run(&self, cmd: &mut Command, what: &str) {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.server_log(), 20)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Audit notes as (action, who, why), for comparing with what a test expects.
pub fn notes_said(notes: &[offboard::storage::AuditNote]) -> Vec<(offboard::storage::AuditAction, &str, Option<&str>)> {
    notes
        .iter()
        .map(|n| (n.action, n.worker.as_str(), n.error.as_deref()))
        .collect()
}
