//! The evidence as one HTML page (`templates/evidence.html`): inline CSS, no script, no
//! external fetch, laid out to print on A4 from a browser. Askama escapes every value the
//! template writes, so a user id or provider error holding markup shows as text.

use askama::Template;

use super::model::{Attempt, Evidence, Note, Request, Token};

#[derive(Template)]
#[template(path = "evidence.html")]
struct Page<'a> {
    e: &'a Evidence,
}

pub(super) fn html(evidence: &Evidence) -> askama::Result<String> {
    Page { e: evidence }.render()
}

/// An RFC 3339 UTC time as people read it: `2026-11-23 02:33:18.123 UTC`.
fn human(t: &str) -> String {
    match t.strip_suffix('Z') {
        Some(rest) => format!("{} UTC", rest.replacen('T', " ", 1)),
        None => t.to_owned(),
    }
}

/// As [`human`], without the zone, for columns headed "Time (UTC)".
fn short(t: &str) -> String {
    t.strip_suffix('Z')
        .map_or_else(|| t.to_owned(), |rest| rest.replacen('T', " ", 1))
}

/// What the page shows for an empty value.
const NONE: &str = "—";

fn or_none(v: Option<&str>) -> &str {
    v.filter(|s| !s.is_empty()).unwrap_or(NONE)
}

impl Page<'_> {
    fn generated(&self) -> String {
        human(&self.e.generated_at)
    }

    fn latest_cleared_at(&self) -> String {
        self.e.summary.cleared_at.as_deref().map(human).unwrap_or_default()
    }

    /// CSS class of an outcome, state or action badge: a fixed set, whatever the database
    /// holds.
    fn tone(&self, word: &str) -> &'static str {
        tone(word)
    }
}

impl Request {
    fn requested(&self) -> String {
        human(&self.requested_at)
    }

    fn cleared(&self) -> String {
        self.cleared_at.as_deref().map_or_else(|| NONE.to_owned(), human)
    }

    fn by(&self) -> &str {
        self.requested_by.as_deref().unwrap_or("not recorded")
    }

    fn reference(&self) -> &str {
        or_none(self.external_ref.as_deref())
    }
}

impl Token {
    fn provider_name(&self) -> &str {
        or_none(self.provider.as_deref())
    }

    fn kind(&self) -> &str {
        or_none(self.token_type.as_deref())
    }

    fn settled_when(&self) -> String {
        self.settled_at
            .as_deref()
            .map_or_else(|| "not settled".to_owned(), human)
    }
}

impl Attempt {
    fn when(&self) -> String {
        short(&self.attempted_at)
    }

    fn number(&self) -> String {
        self.attempt.map_or_else(|| NONE.to_owned(), |n| n.to_string())
    }

    fn status(&self) -> String {
        self.http_status.map_or_else(|| NONE.to_owned(), |s| s.to_string())
    }

    fn provider_id(&self) -> &str {
        or_none(self.provider_request_id.as_deref())
    }

    fn proof(&self) -> String {
        match &self.verification {
            None => "not checked".to_owned(),
            Some(v) => {
                let how = v.method.as_deref().unwrap_or("unnamed check");
                if v.dead {
                    format!("dead ({how})")
                } else {
                    format!("still active ({how})")
                }
            }
        }
    }

    fn proof_class(&self) -> &'static str {
        match &self.verification {
            None => "",
            Some(v) if v.dead => "good",
            Some(_) => "bad",
        }
    }

    fn seq(&self) -> String {
        self.chain.chain_seq.map_or_else(|| NONE.to_owned(), |n| n.to_string())
    }

    fn prev(&self) -> &str {
        or_none(self.chain.prev_hash.as_deref())
    }

    fn hash(&self) -> &str {
        or_none(self.chain.row_hash.as_deref())
    }
}

impl Note {
    fn when(&self) -> String {
        short(&self.at)
    }

    fn why(&self) -> &str {
        or_none(self.reason.as_deref())
    }

    fn hash(&self) -> &str {
        or_none(self.chain.row_hash.as_deref())
    }
}

fn tone(word: &str) -> &'static str {
    match word {
        "revoked" | "already_invalid" | "cleared" => "good",
        "not_revocable" | "refreshed" | "pending" | "running" | "retry" => "info",
        "transient" => "warn",
        "failed" | "still_active" | "cancel" | "cancelled" => "bad",
        _ => "plain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_for_people() {
        assert_eq!(human("2026-11-23T02:33:18.123Z"), "2026-11-23 02:33:18.123 UTC");
        assert_eq!(human("not a time"), "not a time");
        assert_eq!(short("2026-11-23T02:33:18.123Z"), "2026-11-23 02:33:18.123");
    }

    #[test]
    fn unknown_words_get_a_plain_badge() {
        assert_eq!(tone("revoked"), "good");
        assert_eq!(tone("\" onmouseover=\"x"), "plain");
    }
}
