//! A fresh, empty database for each scenario, removed afterwards: a SQLite file in its own
//! temporary folder, or, given a PostgreSQL URL, a new database `offboard_bench_…` created
//! on that server (the URL's user needs `CREATEDB`) and dropped at the end.

use std::path::PathBuf;

use anyhow::Context;
use sqlx::Connection;

pub(super) struct FreshDatabase {
    pub(super) url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl FreshDatabase {
    /// `server`: a PostgreSQL URL to create the database on; `None` for SQLite.
    pub(super) async fn create(server: Option<&str>) -> anyhow::Result<FreshDatabase> {
        let tag = format!("{}_{:08x}", std::process::id(), fastrand::u32(..));
        match server {
            None => {
                let dir = std::env::temp_dir().join(format!("offboard-bench-{tag}"));
                std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let url = format!("sqlite://{}", dir.join("bench.db").display());
                Ok(FreshDatabase {
                    url,
                    cleanup: Cleanup::Folder(dir),
                })
            }
            Some(admin_url) => {
                let name = format!("offboard_bench_{tag}");
                let mut url = url::Url::parse(admin_url).context("--database is not a URL")?;
                anyhow::ensure!(
                    matches!(url.scheme(), "postgres" | "postgresql"),
                    "--database must be a postgres:// URL (SQLite is the default)"
                );
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .context("cannot connect to --database")?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .context("cannot create a database for the benchmark")?;
                let _ = admin.close().await;
                url.set_path(&format!("/{name}"));
                Ok(FreshDatabase {
                    url: url.to_string(),
                    cleanup: Cleanup::Postgres {
                        admin_url: admin_url.to_owned(),
                        name,
                    },
                })
            }
        }
    }

    /// Removes the database; failures are only reported.
    pub(super) async fn remove(self) {
        match self.cleanup {
            Cleanup::Folder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let dropped = async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                };
                if let Err(e) = dropped.await {
                    eprintln!("warning: could not drop the benchmark database {name}: {e}");
                }
            }
        }
    }
}
