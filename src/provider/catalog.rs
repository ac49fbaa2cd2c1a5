//! The built-in provider catalogue: one definition per file under `catalog/`, embedded in
//! the binary, named by its file name. `dialect = "NAME"` in `[providers.NAME]` starts from
//! an entry; `offboard providers` lists them.
//!
//! Entries are parsed when first asked for; a unit test reads every one, so a broken entry
//! never ships.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::definition::{self, Definition};

/// Every entry: name and text. Kept in order of name; `every_file_is_listed` checks that
/// each file of `catalog/` is here.
const ENTRIES: [(&str, &str); 28] = [
    ("apple", include_str!("catalog/apple.toml")),
    ("atlassian", include_str!("catalog/atlassian.toml")),
    ("auth0", include_str!("catalog/auth0.toml")),
    ("box", include_str!("catalog/box.toml")),
    ("discord", include_str!("catalog/discord.toml")),
    ("dropbox", include_str!("catalog/dropbox.toml")),
    ("entra", include_str!("catalog/entra.toml")),
    ("github", include_str!("catalog/github.toml")),
    ("google", include_str!("catalog/google.toml")),
    ("hubspot", include_str!("catalog/hubspot.toml")),
    ("hubspot_legacy", include_str!("catalog/hubspot_legacy.toml")),
    ("intuit", include_str!("catalog/intuit.toml")),
    ("keycloak", include_str!("catalog/keycloak.toml")),
    ("linkedin", include_str!("catalog/linkedin.toml")),
    ("moov", include_str!("catalog/moov.toml")),
    ("notion", include_str!("catalog/notion.toml")),
    ("okta", include_str!("catalog/okta.toml")),
    ("onelogin", include_str!("catalog/onelogin.toml")),
    ("rfc7009", include_str!("catalog/rfc7009.toml")),
    ("salesforce", include_str!("catalog/salesforce.toml")),
    ("slack", include_str!("catalog/slack.toml")),
    ("spotify", include_str!("catalog/spotify.toml")),
    ("stitch", include_str!("catalog/stitch.toml")),
    ("twitch", include_str!("catalog/twitch.toml")),
    ("x", include_str!("catalog/x.toml")),
    ("xero", include_str!("catalog/xero.toml")),
    ("zendesk", include_str!("catalog/zendesk.toml")),
    ("zoom", include_str!("catalog/zoom.toml")),
];

/// One catalogue entry.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: &'static str,
    /// The entry's file as written, comments included: what `offboard providers show` prints.
    pub(crate) text: &'static str,
    pub(crate) table: toml::Table,
    /// The definition, read without its template variables filled.
    pub(crate) definition: Definition,
}

static CATALOG: LazyLock<BTreeMap<&'static str, Entry>> = LazyLock::new(|| {
    ENTRIES
        .iter()
        .map(|&(name, text)| {
            let table: toml::Table = text
                .parse()
                .unwrap_or_else(|e| panic!("catalogue entry {name} is not TOML: {e}"));
            let (definition, _) = definition::read(table.clone(), name, &[])
                .unwrap_or_else(|e| panic!("catalogue entry {name}: {}: {}", e.key, e.message));
            let entry = Entry {
                name,
                text,
                table,
                definition,
            };
            (name, entry)
        })
        .collect()
});

/// The entry called `name`.
pub(crate) fn entry(name: &str) -> Option<&'static Entry> {
    CATALOG.get(name)
}

/// Every entry, by name.
pub(crate) fn entries() -> impl Iterator<Item = &'static Entry> {
    CATALOG.values()
}

/// Why `name` is not an entry: close names if there are any, else every name.
pub(crate) fn unknown(name: &str) -> String {
    let names: Vec<&str> = ENTRIES.iter().map(|(n, _)| *n).collect();
    let close = close_names(name, &names);
    if close.is_empty() {
        format!(
            "unknown variant `{name}`: the catalogue has no such entry; it has {} (offboard providers lists them)",
            names.join(", ")
        )
    } else {
        format!(
            "unknown variant `{name}`: the catalogue has no such entry; did you mean {}? (offboard providers lists them)",
            close.join(" or ")
        )
    }
}

/// The candidates within a small edit distance of `word` (a third of its length, at least
/// one), closest first, or those `word` is a prefix of.
pub(crate) fn close_names<'a>(word: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    let mut close: Vec<(usize, &str)> = candidates
        .iter()
        .filter_map(|&c| {
            let d = edit_distance(&word, c);
            (d <= limit || (word.len() >= 3 && c.starts_with(&word))).then_some((d, c))
        })
        .collect();
    close.sort();
    close.dedup_by(|a, b| a.1 == b.1);
    close.into_iter().map(|(_, c)| c).collect()
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_listed_in_name_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/provider/catalog");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = ENTRIES.iter().map(|(n, _)| format!("{n}.toml")).collect();
        assert_eq!(files, listed);
    }

    /// Every entry reads, names its source, and resolves once its URL variables are given.
    #[test]
    fn every_entry_reads_and_resolves_with_its_variables() {
        for entry in entries() {
            let source = entry.definition.source.as_ref().expect("every entry names its source");
            assert!(!source.url.is_empty(), "{}", entry.name);
            let mut table = entry.table.clone();
            if let Some(url) = &entry.definition.url {
                for name in url.names().into_iter().filter(|n| !matches!(*n, "client_id" | "token")) {
                    table.insert(name.to_owned(), toml::Value::String("tenant".into()));
                }
            } else {
                table.insert("url".into(), toml::Value::String("https://auth.example/revoke".into()));
            }
            let resolved = definition::resolve(table, entry.name, &[])
                .unwrap_or_else(|e| panic!("{}: {}: {}", entry.name, e.key, e.message));
            let endpoint = super::super::endpoint::Endpoint::new(&resolved.url.unwrap(), "client")
                .unwrap_or_else(|e| panic!("{}: {}: {}", entry.name, e.key, e.message));
            assert!(endpoint.to_string().starts_with("https://"), "{}", entry.name);
        }
    }

    /// Every entry says where it was written from: a non-empty `[source] url`, a web page or
    /// a seed document's copy.
    #[test]
    fn every_entry_has_a_source_url() {
        assert_eq!(entries().count(), ENTRIES.len());
        for entry in entries() {
            let source = entry.definition.source.as_ref();
            let url = source.map(|s| s.url.trim()).unwrap_or_default();
            assert!(!url.is_empty(), "{} has no [source] url", entry.name);
            assert!(
                url.starts_with("https://") || url.starts_with("shared/seeds/"),
                "{}: {url}",
                entry.name
            );
        }
    }

    #[test]
    fn close_names_catch_typos_and_prefixes() {
        let names = ["rfc7009", "stitch", "moov", "onelogin", "auth0", "google", "slack"];
        assert_eq!(close_names("rfc7090", &names), ["rfc7009"]);
        assert_eq!(close_names("Stich", &names), ["stitch"]);
        assert_eq!(close_names("one", &names), ["onelogin"]);
        assert_eq!(close_names("carrier-pigeon", &names), Vec::<&str>::new());
        assert!(unknown("carrier-pigeon").contains("it has apple, atlassian, auth0, box,"));
        assert!(unknown("mov").contains("did you mean moov?"));
    }
}
