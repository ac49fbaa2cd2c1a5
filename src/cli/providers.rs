//! `offboard providers`: the built-in provider catalogue, listed or one entry shown. Needs
//! no config, so it answers "does it handle my providers?" before anything is set up.

use std::io::Write;
use std::process::ExitCode;

use crate::provider::catalog;

/// One line per entry: name, title, what it revokes, where it was written from.
pub(super) fn list(out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let rows: Vec<[String; 4]> = catalog::entries()
        .map(|e| {
            let d = &e.definition;
            [
                e.name.to_owned(),
                d.title.clone().unwrap_or_default(),
                d.revokes(),
                d.source.as_ref().map(|s| s.url.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["dialect", "provider", "revokes", "source"].map(str::to_owned);
    let mut widths = [0; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Use one with dialect = \"NAME\" under [providers.YOURS]; `offboard providers show NAME` prints it."
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The entry as written (TOML, comments included), then its source again in a few words.
pub(super) fn show(out: &mut dyn Write, name: &str) -> anyhow::Result<ExitCode> {
    let entry = catalog::entry(name).ok_or_else(|| anyhow::anyhow!("{}", catalog::unknown(name)))?;
    writeln!(
        out,
        "# The built-in entry `{}`: dialect = \"{}\" under [providers.NAME] starts from it,",
        entry.name, entry.name
    )?;
    writeln!(out, "# and any key below can be overridden there.")?;
    writeln!(out)?;
    write!(out, "{}", entry.text)?;
    if let Some(source) = &entry.definition.source {
        writeln!(out)?;
        writeln!(out, "# Written from: {}", source.url)?;
        if let Some(unverified) = &source.unverified {
            writeln!(out, "# Unverified: {unverified}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_a_line_per_entry_with_what_it_revokes() {
        let mut out = Vec::new();
        list(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let auth0 = text.lines().find(|l| l.starts_with("auth0 ")).expect("auth0 line");
        assert!(auth0.contains("refresh_token (access_token: not revocable)"), "{auth0}");
        let onelogin = text
            .lines()
            .find(|l| l.starts_with("onelogin "))
            .expect("onelogin line");
        assert!(
            onelogin.contains("access_token (refresh_token: with its paired access token)"),
            "{onelogin}"
        );
        assert!(text.contains("https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke"));
    }

    #[test]
    fn show_prints_the_entry_as_toml_that_parses() {
        let mut out = Vec::new();
        show(&mut out, "google").unwrap();
        let text = String::from_utf8(out).unwrap();
        let table: toml::Table = text.parse().expect("the output is TOML");
        assert_eq!(table["url"].as_str(), Some("https://oauth2.googleapis.com/revoke"));
        assert!(
            text.contains("# Written from: https://developers.google.com/"),
            "{text}"
        );
        let err = show(&mut Vec::new(), "gogle").unwrap_err().to_string();
        assert!(err.contains("did you mean google?"), "{err}");
    }
}
