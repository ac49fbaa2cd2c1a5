//! What the templates print, made from rows: times, ages, links, requests; and the
//! rendering of a page or a message into a response. Plain text only: the templates
//! escape it.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::outcome::RequestState;
use crate::storage::RequestRow;

/// What every page shows in its header.
pub(super) struct Common {
    pub(super) backend: &'static str,
    pub(super) now: String,
    pub(super) actions: bool,
}

/// A time for people: `2026-11-23 02:33:17 UTC`.
pub(super) fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time for machines (`data-at`): RFC 3339 with milliseconds.
pub(super) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A duration in its two largest units: `0s`, `42s`, `3m 12s`, `2h 5m`, `4d 1h`.
pub(super) fn age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m {seconds}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The timeline's address for `user` (any characters, percent-encoded).
pub(super) fn user_href(user: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id", user)
        .finish();
    format!("/user?{query}")
}

/// A request as the lists and the timeline show it.
pub(super) struct RequestView {
    pub(super) id: i64,
    pub(super) user: String,
    pub(super) user_href: String,
    pub(super) state: &'static str,
    pub(super) attempts: i32,
    pub(super) reason: String,
    pub(super) requested_at: String,
    pub(super) requested_by: String,
    pub(super) external_ref: String,
    /// When it is (or was) due, or whose lease runs until when.
    pub(super) due: String,
    pub(super) cleared_at: String,
    pub(super) can_retry: bool,
    pub(super) can_cancel: bool,
}

impl RequestView {
    /// `actions`: whether the dashboard offers actions at all.
    pub(super) fn new(row: &RequestRow, now: DateTime<Utc>, actions: bool) -> RequestView {
        let due = match row.state {
            RequestState::Pending => {
                let since = row.next_attempt_at.unwrap_or(row.requested_at);
                if since <= now {
                    format!("due for {}", age(now - since))
                } else {
                    format!("next attempt in {}", age(since - now))
                }
            }
            RequestState::Running => match (&row.locked_by, row.locked_until) {
                (Some(by), Some(until)) if until >= now => format!("leased by {by} for {}", age(until - now)),
                (_, Some(until)) => format!("lease expired {} ago: due", age(now - until)),
                _ => String::new(),
            },
            _ => String::new(),
        };
        RequestView {
            id: row.id,
            user: row.user_id.clone(),
            user_href: user_href(&row.user_id),
            state: row.state.as_str(),
            attempts: row.attempts,
            reason: row.last_error.clone().unwrap_or_default(),
            requested_at: at(row.requested_at),
            requested_by: row.requested_by.clone().unwrap_or_default(),
            external_ref: row.external_ref.clone().unwrap_or_default(),
            due,
            cleared_at: row.cleared_at.map(at).unwrap_or_default(),
            can_retry: actions && row.state == RequestState::Failed,
            can_cancel: actions
                && matches!(
                    row.state,
                    RequestState::Pending | RequestState::Running | RequestState::Failed
                ),
        }
    }
}

/// A page, or a plain error if the template fails (it cannot with the types it takes).
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {e}\n"),
        )
            .into_response(),
    }
}

/// A short page that says one thing: a refusal, an error, a missing request.
#[derive(Template)]
#[template(path = "dashboard/message.html")]
pub(super) struct MessagePage {
    pub(super) title: &'static str,
    pub(super) message: String,
}

pub(super) fn message(status: StatusCode, title: &'static str, message: impl Into<String>) -> Response {
    render(
        status,
        &MessagePage {
            title,
            message: message.into(),
        },
    )
}

/// A database error: logged with its causes; the page says only that the database did not
/// answer (a driver's message is no business of a browser).
pub(super) fn database_error(e: &crate::storage::StoreError) -> Response {
    tracing::warn!(error = %crate::telemetry::error_chain(e), "dashboard: database error");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Database error",
        "the database did not answer; the log of offboard run says why",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_their_two_largest_units() {
        let s = chrono::Duration::seconds;
        assert_eq!(age(s(0)), "0s");
        assert_eq!(age(s(-5)), "0s");
        assert_eq!(age(s(192)), "3m 12s");
        assert_eq!(age(s(2 * 3600 + 5 * 60 + 9)), "2h 5m");
        assert_eq!(age(s(4 * 86_400 + 3600)), "4d 1h");
    }

    #[test]
    fn a_user_id_is_percent_encoded_in_its_link() {
        assert_eq!(user_href("a&b=c d/é"), "/user?id=a%26b%3Dc+d%2F%C3%A9");
    }
}
