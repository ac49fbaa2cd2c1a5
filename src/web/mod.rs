//! The operator's dashboard, served by `offboard run` beside `/healthz`, `/readyz` and
//! `/metrics` on `server.listen` (loopback by default): the queue by state with the age of
//! the oldest due request, failed requests with their reasons, the requests waiting, the
//! last hour per provider as charts, and one user's timeline. With `[dashboard] actions =
//! true`, an operator may also retry a failed request or cancel an open one.
//!
//! Decisions:
//! - Server-rendered HTML from `askama` templates (`templates/dashboard/`), which escape
//!   everything they print: user ids, reasons and provider answers come from outside. Charts
//!   are inline SVG built from the database's aggregates (`charts.rs`). No JavaScript, no
//!   external fetch; a Content-Security-Policy forbids both.
//! - Actions (`actions.rs`) are `POST` only, behind a confirmation page, and each needs the
//!   token from the config's secret source in the form (or an `X-Offboard-Token` or
//!   `Authorization: Bearer` header). The token never sits in a cookie, so another site
//!   cannot make a browser send it (no CSRF), and it is compared in constant time against
//!   its SHA-256 digest, the only form kept in memory. `GET` changes nothing.
//! - Every action goes through the same operator commands as `offboard retry` and
//!   `offboard cancel` (`Store::retry`, `Store::cancel`), which write the state change and
//!   an audit note naming who acted in one transaction.

mod actions;
mod charts;
mod pages;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use secrecy::ExposeSecret;
use sha2::Digest;

use crate::config::{Config, ConfigError};
use crate::storage::Store;

/// The dashboard's state: cheap to clone, shared by every request.
#[derive(Clone)]
pub(crate) struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    access: Access,
    /// Each configured provider's rate, in calls a second.
    configured: BTreeMap<String, f64>,
}

/// Whether actions are offered, and what unlocks them.
enum Access {
    ReadOnly,
    Token {
        /// SHA-256 of the token: compared in constant time, and no copy of the token stays
        /// in memory to leak.
        digest: [u8; 32],
        /// Who acted, in the audit, when the form names no one.
        name: String,
    },
}

impl Dashboard {
    /// The dashboard the config asks for, on `store`; `None` when `dashboard.enabled` is
    /// false. With actions enabled, reads the token (variables looked up with `env`): a
    /// missing or short one is an error naming its key.
    pub(crate) fn from_config(
        config: &Config,
        store: Store,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Dashboard>, ConfigError> {
        let settings = &config.dashboard;
        if !settings.enabled {
            return Ok(None);
        }
        let access = match (&settings.token, settings.actions) {
            (Some(source), true) => {
                let token = source.read(env)?;
                Access::Token {
                    digest: sha2::Sha256::digest(token.expose_secret().as_bytes()).into(),
                    name: settings.token_name.clone(),
                }
            }
            _ => Access::ReadOnly,
        };
        let configured = config
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), f64::from(p.rate.count.get()) / p.rate.per.as_secs_f64()))
            .collect();
        Ok(Some(Dashboard {
            inner: Arc::new(Inner {
                store,
                access,
                configured,
            }),
        }))
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn actions_enabled(&self) -> bool {
        matches!(self.inner.access, Access::Token { .. })
    }
}

/// The dashboard's routes, to merge into the operations router.
pub(crate) fn routes(dashboard: Dashboard) -> Router {
    use axum::routing::get;
    Router::new()
        .route("/", get(pages::index))
        .route("/user", get(pages::user))
        .route("/requests/{id}/{action}", get(pages::confirm).post(actions::act))
        .layer(axum::middleware::map_response(protect))
        .with_state(dashboard)
}

/// Headers on every dashboard answer: no script, no plugin, no fetch elsewhere, no framing
/// (clickjacking), forms only to this origin, nothing cached, and no referrer (a user id in
/// an address) to another site. Not `no-referrer`: with it a browser sends `Origin: null`
/// on the page's own forms, which the actions' origin check must refuse.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
