//! PostgreSQL: the production backend, shared by many workers on many hosts.
//!
//! Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers pass over
//! each other's rows instead of waiting, and commit at once.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Result, StoreError};
use crate::config::DatabaseConfig;

pub(super) const CLAIM_SQL: &str = claim_sql!("FOR UPDATE SKIP LOCKED");

pub(super) const BEGIN_WRITE: &str = "BEGIN";

pub(super) async fn connect(config: &DatabaseConfig) -> Result<sqlx::PgPool> {
    let fail = |source| StoreError::Connect {
        url: config.url.redacted(),
        source,
    };
    let options: PgConnectOptions = config.url.as_str().parse().map_err(fail)?;
    let options = options.application_name("offboard");
    PgPoolOptions::new()
        .max_connections(config.max_connections.get())
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(fail)
}
