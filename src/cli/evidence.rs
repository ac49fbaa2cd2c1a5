//! `offboard evidence USER`: the record an auditor asks for, of one user's offboarding: the
//! requests (who asked, when, when cleared), each token by fingerprint with every attempt at
//! it (outcome, HTTP status, the provider's request id, time, proof of death where the
//! provider allows one), who retried or cancelled and why, and the chain hashes of every
//! audit row with how to re-check them. As JSON for machines (`schemas/evidence.schema.json`)
//! or as one self-contained HTML page for people (no external fetches, prints to PDF).
//!
//! Read only, from the requests and the audit: never from the token store, so no token
//! value can reach it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use crate::config::Config;
use model::Evidence;

mod model;
mod page;

/// Arguments of `offboard evidence`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvidenceArgs {
    /// The user whose record to write
    user: String,
    #[arg(long, value_enum, default_value_t = EvidenceFormat::Json)]
    format: EvidenceFormat,
    /// Write to this file instead of standard output
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EvidenceFormat {
    /// One JSON document (schemas/evidence.schema.json)
    Json,
    /// A self-contained HTML page that prints to PDF
    Html,
}

pub(super) async fn evidence(out: &mut impl Write, config: &Config, args: &EvidenceArgs) -> anyhow::Result<ExitCode> {
    let user = args.user.trim();
    anyhow::ensure!(!user.is_empty(), "the user id must not be empty");
    let store = super::open_store(config).await?;
    let record = store
        .user_record(user)
        .await
        .with_context(|| format!("cannot read the record of user '{user}'"))?;
    let evidence = Evidence::build(user, record, store.backend(), chrono::Utc::now())
        .with_context(|| format!("no offboarding request for user '{user}': there is nothing to give evidence of"))?;
    let text = render(&evidence, args.format)?;
    match &args.output {
        Some(path) => write_file(path, &text)?,
        None => out.write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn render(evidence: &Evidence, format: EvidenceFormat) -> anyhow::Result<String> {
    Ok(match format {
        EvidenceFormat::Json => {
            let mut text = serde_json::to_string_pretty(evidence).context("cannot encode the evidence as JSON")?;
            text.push('\n');
            text
        }
        EvidenceFormat::Html => page::html(evidence).context("cannot render the evidence page")?,
    })
}

/// Writes the whole document, or nothing: into a temporary file beside `path`, renamed
/// over it, so a reader never finds half a record.
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--output {} names no file", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".partial");
    let temp = path.with_file_name(temp_name);
    std::fs::write(&temp, text).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}
