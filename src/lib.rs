//! offboard: before a user's data is deleted, revoke every OAuth token the application
//! holds for them at the provider that issued it, audit each attempt, and only then mark the
//! deletion request cleared.
//!
//! Map of the modules, from the outside in:
//! - [`cli`]: the `offboard` command line; the only place that prints or picks exit codes.
//! - [`app`]: the composition root: config in, store, providers, metrics and worker out.
//! - [`config`]: the TOML file and its environment overrides, parsed once into typed values;
//!   provider secrets are read where they are used, when [`provider::Providers`] is built.
//! - [`drain`]: claim, revoke, decide, write, fenced by the lease; pure settlement rules;
//!   the lease renewer; and `offboard run`'s daemon loop.
//! - [`provider`]: providers as data (the definition format and the built-in catalogue), the
//!   shared HTTP client and classifier, per-provider pacing.
//! - [`retry`]: backoff maths as plain data.
//! - [`storage`]: the queue, token and audit tables on PostgreSQL or SQLite.
//! - [`decrypt`]: encrypted token values (Fernet, AES-256-GCM, Rails Active Record
//!   Encryption, an external command), decrypted in memory with keys read once.
//! - [`simulate`]: local providers of every dialect for the demo and the tests.
//! - `bench`: `offboard bench`, named scenarios measured against simulated providers.
//! - [`demo`]: `offboard demo`, the whole job on SQLite against simulated providers.
//! - [`outcome`], [`token`]: the vocabulary: outcomes, decisions, states, secret tokens.
//! - [`server`], [`metrics`]: `/healthz`, `/readyz` and Prometheus `/metrics` for `run`.
//! - `web`: the operator's dashboard, served by `run` beside them.
//! - [`telemetry`]: tracing set-up.

pub mod app;
pub(crate) mod bench;
pub mod cli;
pub mod config;
pub(crate) mod decrypt;
pub(crate) mod demo;
pub mod drain;
pub mod metrics;
pub mod outcome;
pub mod provider;
pub(crate) mod retry;
pub mod server;
pub mod simulate;
pub mod storage;
pub mod telemetry;
pub mod token;
pub(crate) mod web;
