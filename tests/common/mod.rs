//! Shared by the integration tests: a fresh database per test on either backend, simulated
//! providers, config building, and a log capture.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use offboard::config::Config;
use offboard::provider::Providers;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{SimProvider, Simulator};
use offboard::storage::Store;
use offboard::worker::{Worker, WorkerSettings};
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
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestDb::postgres().await).await
                }
            )*
        }
    };
}

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

/// Parses the config (secrets from `env`) and builds a worker on `store`.
pub fn worker_for(store: &Store, text: &str, env: &[(String, String)]) -> (Worker, Config) {
    let config = Config::from_toml(text, Path::new("test"), Vec::new()).expect("config parses");
    let providers = Providers::from_config(&config, &|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("secrets and http client");
    let worker = Worker::new(store.clone(), providers, WorkerSettings::from_config(&config));
    (worker, config)
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
pub async fn exec(store: &Store, sql: &'static str) -> Result<u64, sqlx::Error> {
    match (store.pg_pool(), store.sqlite_pool()) {
        (Some(pg), _) => sqlx::query(sql).execute(pg).await.map(|r| r.rows_affected()),
        (_, Some(lite)) => sqlx::query(sql).execute(lite).await.map(|r| r.rows_affected()),
        _ => unreachable!("a store has one pool"),
    }
}

/// Runs one raw query that returns a single count or number.
pub async fn scalar(store: &Store, sql: &'static str) -> i64 {
    match (store.pg_pool(), store.sqlite_pool()) {
        (Some(pg), _) => sqlx::query_scalar(sql).fetch_one(pg).await.expect(sql),
        (_, Some(lite)) => sqlx::query_scalar(sql).fetch_one(lite).await.expect(sql),
        _ => unreachable!("a store has one pool"),
    }
}
