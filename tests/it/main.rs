//! The integration tests, one binary: the `offboard` binary from outside, the dialects' wire
//! format, the provider catalogue and inline definitions (Sign in with Apple's signed client
//! secret included), the simulated providers (every catalogue entry; proof of death and
//! refresh-then-revoke against them on both backends; the wide demo from the binary), the storage contract and end to end on both backends, issue 7's defects end
//! to end, `offboard evidence` (JSON against its schema, HTML in headless Chromium: `browser.rs`),
//! and the daemon under chaos (SIGKILLs, faults) and across a PostgreSQL restart.
//! One binary links the crate once and shares one log capture (`helpers::captured_logs`).

mod audit_chain;
mod bench_cli;
mod browser;
mod catalog;
mod catalog_not_revocable;
mod catalog_wire;
mod catalog_wire_apple;
mod catalog_wire_apps;
mod catalog_wire_more;
mod catalog_wire_org;
mod chaos;
mod cli;
mod dashboard;
mod defects;
mod dialects;
mod discovery;
mod end_to_end;
mod evidence;
mod group_commit;
mod head_of_line;
mod helpers;
mod idle_poll;
mod many_tokens;
mod metrics_scrape;
mod oidc;
mod pacing;
mod pg_restart;
mod plan;
mod provider_faults;
mod refresh_then_revoke;
mod report;
mod secrets;
mod simulator;
mod simulator_catalog;
mod simulator_catalog_more;
mod simulator_cli;
mod simulator_verify;
mod source_vars;
mod storage_contract;
mod token_sources;
mod token_sources_decrypt;
mod verify;
mod young_tables;
