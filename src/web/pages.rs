//! The pages, all `GET`, none with a side effect: the overview, a user's timeline, and the
//! confirmation page in front of each action.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::charts::{self, BUCKET_SECS, ProviderHour};
use super::view::{Common, RequestView, age, at, database_error, iso, message, render};
use super::{Access, Dashboard};
use crate::outcome::{Outcome, RequestState};
use crate::storage::{QueueSnapshot, StoreError, TimelineRow};

/// Requests listed at most per list, and timeline rows at most per user.
const LIST_LIMIT: i64 = 50;
const TIMELINE_LIMIT: i64 = 2000;

/// The queue's counts, one row per state (zeros included), and the oldest due request.
struct QueueView {
    states: Vec<(&'static str, i64)>,
    total: i64,
    due: i64,
    /// How long the oldest due request has waited: for people, in seconds, and since when.
    oldest_due: Option<(String, i64, String)>,
}

impl QueueView {
    fn new(q: &QueueSnapshot) -> QueueView {
        let states: Vec<_> = RequestState::ALL
            .iter()
            .map(|s| (s.as_str(), q.counts.get(*s)))
            .collect();
        QueueView {
            total: states.iter().map(|(_, n)| n).sum(),
            states,
            due: q.due,
            oldest_due: q.oldest_due_since.map(|since| {
                let waited = q.now - since;
                (age(waited), waited.num_seconds().max(0), iso(since))
            }),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/index.html")]
struct IndexPage {
    common: Common,
    queue: QueueView,
    failed: Vec<RequestView>,
    failed_shown: i64,
    failed_total: i64,
    open: Vec<RequestView>,
    open_shown: i64,
    open_total: i64,
    outcome_names: Vec<&'static str>,
    providers: Vec<ProviderHour>,
    window: String,
}

impl Dashboard {
    fn common(&self, now: DateTime<Utc>) -> Common {
        Common {
            backend: self.store().backend(),
            now: at(now),
            actions: self.actions_enabled(),
        }
    }
}

pub(super) async fn index(State(d): State<Dashboard>) -> Response {
    match index_page(&d).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => database_error(&e),
    }
}

async fn index_page(d: &Dashboard) -> Result<IndexPage, StoreError> {
    let store = d.store();
    let q = store.queue_snapshot().await?;
    let since = q.now - chrono::Duration::hours(1);
    let cells = store.provider_hour(since, BUCKET_SECS).await?;
    let shared = store.shared_rates().await?;
    let actions = d.actions_enabled();
    let view =
        |rows: Vec<_>| -> Vec<RequestView> { rows.iter().map(|r| RequestView::new(r, q.now, actions)).collect() };
    let failed = view(store.failed_requests(LIST_LIMIT).await?);
    let open = view(store.open_requests(LIST_LIMIT).await?);
    Ok(IndexPage {
        common: d.common(q.now),
        failed_shown: failed.len() as i64,
        failed,
        failed_total: q.counts.get(RequestState::Failed),
        open_shown: open.len() as i64,
        open,
        open_total: q.counts.open(),
        outcome_names: Outcome::ALL.iter().map(|o| o.as_str()).collect(),
        providers: charts::provider_hours(&cells, since, &d.inner.configured, &shared),
        window: format!("{} to {}", at(since), at(q.now)),
        queue: QueueView::new(&q),
    })
}

/// One entry of a user's timeline.
struct Event {
    at: String,
    iso: String,
    kind: &'static str,
    request_id: i64,
    what: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "dashboard/user.html")]
struct UserPage {
    common: Common,
    user: String,
    requests: Vec<RequestView>,
    events: Vec<Event>,
    truncated: bool,
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct UserQuery {
    id: Option<String>,
    /// After an action: which one, on which request (only these words are ever printed).
    done: Option<String>,
    request: Option<i64>,
}

pub(super) async fn user(State(d): State<Dashboard>, Query(q): Query<UserQuery>) -> Response {
    let user = q.id.unwrap_or_default();
    let done = match (q.done.as_deref(), q.request) {
        (Some("retry"), Some(id)) => Some(format!("Request {id} is pending again.")),
        (Some("cancel"), Some(id)) => Some(format!("Request {id} is cancelled; deletion stays blocked.")),
        _ => None,
    };
    match user_page(&d, user, done).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => database_error(&e),
    }
}

async fn user_page(d: &Dashboard, user: String, done: Option<String>) -> Result<UserPage, StoreError> {
    let store = d.store();
    let now = store.clock().await?;
    if user.is_empty() {
        return Ok(UserPage {
            common: d.common(now),
            user,
            requests: Vec::new(),
            events: Vec::new(),
            truncated: false,
            done,
        });
    }
    let requests = store.user_requests(&user).await?;
    let rows = store.user_timeline(&user, TIMELINE_LIMIT).await?;
    let truncated = rows.len() as i64 >= TIMELINE_LIMIT;
    let mut events: Vec<(Order, Event)> = Vec::new();
    for r in &requests {
        let by = r
            .requested_by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        let reference = r
            .external_ref
            .as_deref()
            .map(|x| format!("reference {x}"))
            .unwrap_or_default();
        events.push((
            (r.requested_at, 0, 0),
            event(r.requested_at, "enqueued", r.id, format!("enqueued{by}"), "", reference),
        ));
        if let Some(cleared) = r.cleared_at {
            events.push((
                (cleared, 2, 0),
                event(
                    cleared,
                    "cleared",
                    r.id,
                    "cleared: may be deleted".into(),
                    "",
                    String::new(),
                ),
            ));
        }
    }
    for row in &rows {
        events.push(((row.attempted_at, 1, row.id), audit_event(row)));
    }
    events.sort_by_key(|(key, _)| *key);
    let actions = d.actions_enabled();
    Ok(UserPage {
        common: d.common(now),
        requests: requests
            .iter()
            .rev()
            .map(|r| RequestView::new(r, now, actions))
            .collect(),
        events: events.into_iter().map(|(_, e)| e).collect(),
        user,
        truncated,
        done,
    })
}

/// Where an event goes in a timeline: (time, rank, audit id). A request is enqueued before
/// its attempts and cleared after the attempts of the same instant.
type Order = (DateTime<Utc>, u8, i64);

fn event(t: DateTime<Utc>, kind: &'static str, request_id: i64, what: String, outcome: &str, detail: String) -> Event {
    Event {
        at: at(t),
        iso: iso(t),
        kind,
        request_id,
        what,
        outcome: outcome.to_owned(),
        detail,
    }
}

/// An audit row as the timeline says it: an attempt, or a note (`retry`, `cancel`,
/// `no_tokens`) with who wrote it and why.
fn audit_event(row: &TimelineRow) -> Event {
    let t = row.attempted_at;
    if row.action != "revoke" {
        let what = match row.action.as_str() {
            "retry" => format!("retried by {}", row.worker),
            "cancel" => format!("cancelled by {}", row.worker),
            "no_tokens" => "no tokens: nothing to revoke".to_owned(),
            other => format!("{other} by {}", row.worker),
        };
        return event(
            t,
            "note",
            row.request_id,
            what,
            "",
            row.error.clone().unwrap_or_default(),
        );
    }
    let outcome = row.outcome.clone().unwrap_or_default();
    let provider = row.provider.as_deref().unwrap_or("?");
    let what = format!("attempt {} at {provider}: {outcome}", row.attempt.unwrap_or(0));
    let mut detail = Vec::new();
    if let Some(status) = row.http_status {
        detail.push(format!("HTTP {status}"));
    }
    detail.push(format!("{} ms", row.duration_ms));
    if let (Some(id), Some(kind)) = (row.token_id, &row.token_type) {
        detail.push(format!("token {id} ({kind})"));
    }
    if let Some(fp) = &row.token_fingerprint {
        detail.push(format!("fingerprint {fp}"));
    }
    if let Some(id) = &row.provider_request_id {
        detail.push(format!("provider request id {id}"));
    }
    match (row.verified, &row.verified_by) {
        (Some(true), by) => detail.push(format!("verified dead by {}", by.as_deref().unwrap_or("a check"))),
        (Some(false), by) => detail.push(format!("still active by {}", by.as_deref().unwrap_or("a check"))),
        _ => {}
    }
    if let Some(error) = &row.error {
        detail.push(error.clone());
    }
    detail.push(format!("worker {}", row.worker));
    event(t, "attempt", row.request_id, what, &outcome, detail.join(" · "))
}

#[derive(Template)]
#[template(path = "dashboard/confirm.html")]
struct ConfirmPage {
    common: Common,
    request: RequestView,
    action: &'static str,
    verb: &'static str,
    allowed: bool,
    token_name: String,
}

/// The form in front of an action: says what will happen; the `POST` does it.
pub(super) async fn confirm(State(d): State<Dashboard>, Path((id, action)): Path<(String, String)>) -> Response {
    let Access::Token { name, .. } = &d.inner.access else {
        return message(
            StatusCode::NOT_FOUND,
            "Actions are disabled",
            "this dashboard is read-only: set [dashboard] actions = true and a token to retry or cancel here",
        );
    };
    let (Ok(id), Some((action, verb))) = (id.parse::<i64>(), super::actions::parse(&action)) else {
        return message(StatusCode::NOT_FOUND, "Not found", "no such action");
    };
    let (now, row) = match (d.store().clock().await, d.store().request(id).await) {
        (Ok(now), Ok(Some(row))) => (now, row),
        (Ok(_), Ok(None)) => return message(StatusCode::NOT_FOUND, "Not found", format!("no request with id {id}")),
        (Err(e), _) | (_, Err(e)) => return database_error(&e),
    };
    let request = RequestView::new(&row, now, true);
    let allowed = if action == "retry" {
        request.can_retry
    } else {
        request.can_cancel
    };
    let page = ConfirmPage {
        common: d.common(now),
        request,
        action,
        verb,
        allowed,
        token_name: name.clone(),
    };
    render(StatusCode::OK, &page)
}
