//! Shared by the integration tests: a fresh database per test on either backend, simulated
//! providers, config building, and a log capture.

use std::io::Write;
use std::path::Path;
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
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
        let store = open(&url).await;
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
        let store = open(&url).await;
        TestDb { store, url, _dir: None }
    }
}

async fn open(url: &str) -> Store {
    let config =
        Config::from_toml(&format!("[database]\nurl = \"{url}\""), Path::new("test"), Vec::new()).expect("test config");
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

/// Runs one raw query that returns a single count or number.
pub async fn scalar(store: &Store, sql: &'static str) -> i64 {
    offboard::storage::seed::scalar(store, sql).await.expect(sql)
}
