//! Where a provider's calls go: fixed by its config (`url`, `introspection_url`, the probe's
//! `url`), or found in its issuer's metadata (`issuer`: OIDC Discovery 1.0, or RFC 8414).
//!
//! Discovery reads `{issuer}/.well-known/openid-configuration`, and where that is not found
//! (any 4xx, or a 200 that is not a JSON object), RFC 8414's
//! `/.well-known/oauth-authorization-server{issuer path}` (§3, the well-known segment
//! inserted before the issuer's path). From the metadata it takes:
//! - `issuer`, which must be the configured issuer (RFC 8414 §3.3; compared as URLs, so
//!   `https://idp` and `https://idp/` are one): otherwise the metadata is refused;
//! - `revocation_endpoint` (required: an issuer without one cannot revoke), under the
//!   provider URL rules (https, or http to loopback);
//! - the client authentication for it: `revocation_endpoint_auth_methods_supported`, else
//!   `token_endpoint_auth_methods_supported` (servers such as oidc-provider list only that),
//!   else RFC 8414's default `client_secret_basic`. Of those, `client_secret_basic` is
//!   preferred, then `client_secret_post`; a provider that sets `auth` itself keeps it, and
//!   the issuer must list it. Definitions that do not authenticate with the client secret
//!   (`bearer`, `none`) keep their `auth`;
//! - for `verify = "introspect"` without `introspection_url`, `introspection_endpoint`
//!   (required then), with its `introspection_endpoint_auth_methods_supported` chosen alike.
//!
//! **Caching**: metadata is fetched at the first call that needs it (one fetch, however many
//! calls wait for it), kept for [`FRESH_FOR`] (an hour), then fetched again. A fetch is never
//! repeated within [`RETRY_AFTER_FAILURE`] (30 s) of a failed one: calls meanwhile get the
//! same error, or the metadata fetched before, which is kept while a refresh fails. A
//! revocation endpoint that answers 404 or 410, or refuses connections, marks the metadata
//! stale, so the next call fetches it again (the issuer may have moved it).
//!
//! **Errors** name the provider and the issuer. Metadata that cannot be fetched (no answer,
//! a broken connection, 5xx, no metadata at either place) is `transient` at run time: the
//! request is retried. Metadata that can be read but cannot be used (another issuer, no
//! revocation endpoint, no client authentication offboard can do, a URL against the rules)
//! is `failed`: retrying will not fix the config. `offboard check-config` fetches the
//! metadata of every provider with an issuer and reports either.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use serde_json::Value as Json;
use tokio::time::Instant;

use super::definition::{Auth, Definition, VerifyMode};
use super::endpoint::Endpoint;
use super::verify::Checker;
use super::{Provider, transport_verdict};
use crate::config::ProviderUrl;
use crate::config::endpoints::{Endpoints, Revocation};
use crate::outcome::{Outcome, Verdict};

/// How long fetched metadata is used before it is fetched again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(60 * 60);
/// The least time between a failed fetch and the next.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// One endpoint, with the definition its requests are built from (with an issuer, its
/// `auth` is the one chosen from the metadata).
pub(crate) struct Target {
    pub(crate) url: Endpoint,
    pub(crate) definition: Definition,
    /// The values of the URL's query, scrubbed from what comes back.
    pub(crate) query_values: Vec<String>,
}

impl Target {
    pub(crate) fn new(url: Endpoint, definition: Definition) -> Target {
        let query_values = url.query_values();
        Target {
            url,
            definition,
            query_values,
        }
    }
}

/// Where a provider's calls go: the revocation, and the check of death if it verifies.
pub(crate) struct Targets {
    pub(crate) revoke: Target,
    pub(crate) check: Option<Checker>,
}

impl Targets {
    /// `revocation at https://… (client_secret_basic); introspection at …`, for
    /// `check-config`.
    pub(crate) fn describe(&self) -> String {
        let mut out = format!(
            "revocation at {} (auth {})",
            self.revoke.url,
            self.revoke.definition.auth.describe()
        );
        if let Some(check) = &self.check {
            out.push_str("; verified by ");
            out.push_str(&check.describe());
        }
        out
    }
}

/// A provider's targets: fixed, or discovered at first use.
pub(crate) enum Source {
    Fixed(Arc<Targets>),
    Discovered(Box<Discovery>),
}

impl Source {
    /// The source of a provider configured with `endpoints` and `definition`.
    pub(crate) fn new(endpoints: &Endpoints, definition: &Definition) -> Source {
        match &endpoints.revocation {
            Revocation::Url(url) => {
                let check = match definition.checks.verify {
                    VerifyMode::None => None,
                    VerifyMode::Introspect => endpoints
                        .introspection
                        .clone()
                        .map(|url| Checker::introspection(url, definition, definition.auth.clone())),
                    VerifyMode::Probe => probe_checker(endpoints.probe.as_ref(), definition),
                };
                Source::Fixed(Arc::new(Targets {
                    revoke: Target::new(url.clone(), definition.clone()),
                    check,
                }))
            }
            Revocation::Issuer { issuer, auth_set } => Source::Discovered(Box::new(Discovery {
                issuer: issuer.clone(),
                auth_set: *auth_set,
                introspection: endpoints.introspection.clone(),
                probe: endpoints.probe.clone(),
                state: tokio::sync::Mutex::new(State::default()),
            })),
        }
    }
}

/// The probe of `definition` at `url` (`config` made sure both are there with `verify =
/// "probe"`).
fn probe_checker(url: Option<&ProviderUrl>, definition: &Definition) -> Option<Checker> {
    let probe = definition.checks.probe.as_ref()?;
    Some(Checker::probe(url?.clone(), definition, probe))
}

/// An issuer's metadata, fetched when first needed and cached (see the module doc).
pub(crate) struct Discovery {
    issuer: ProviderUrl,
    auth_set: bool,
    /// `introspection_url`, when the provider set one.
    introspection: Option<ProviderUrl>,
    probe: Option<ProviderUrl>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The last metadata read, as targets, and when.
    found: Option<(Arc<Targets>, Instant)>,
    /// The last failed fetch: its verdict, and when.
    failure: Option<(Verdict, Instant)>,
    stale: bool,
}

impl Discovery {
    /// `/.well-known/openid-configuration` appended to the issuer, then RFC 8414's
    /// `/.well-known/oauth-authorization-server` inserted before its path.
    pub(crate) fn metadata_urls(issuer: &ProviderUrl) -> Vec<reqwest::Url> {
        let path = issuer.0.path().trim_end_matches('/');
        let mut oidc = issuer.0.clone();
        oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
        let mut rfc8414 = issuer.0.clone();
        rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        vec![oidc, rfc8414]
    }
}

fn failed(text: String) -> Verdict {
    Verdict::new(Outcome::Failed).with_error(crate::token::redact(&text, &[]))
}

fn transient(text: String) -> Verdict {
    Verdict::new(Outcome::Transient).with_error(crate::token::redact(&text, &[]))
}

impl Provider {
    /// Where this provider's calls go now: fixed, or from its issuer's metadata (fetched
    /// if not cached; see the module doc). The error is the verdict of a call that could
    /// not be made.
    pub(crate) async fn targets(&self) -> Result<Arc<Targets>, Verdict> {
        let discovery = match &self.source {
            Source::Fixed(targets) => return Ok(targets.clone()),
            Source::Discovered(d) => d,
        };
        let mut state = discovery.state.lock().await;
        let now = Instant::now();
        if let Some((targets, at)) = &state.found
            && !state.stale
            && now.duration_since(*at) < FRESH_FOR
        {
            return Ok(targets.clone());
        }
        if let Some((verdict, at)) = &state.failure
            && now.duration_since(*at) < RETRY_AFTER_FAILURE
        {
            return match &state.found {
                Some((targets, _)) => Ok(targets.clone()),
                None => Err(verdict.clone()),
            };
        }
        match self.discover(discovery).await {
            Ok(targets) => {
                let targets = Arc::new(targets);
                *state = State {
                    found: Some((targets.clone(), now)),
                    failure: None,
                    stale: false,
                };
                Ok(targets)
            }
            Err(verdict) => {
                state.failure = Some((verdict.clone(), now));
                match &state.found {
                    Some((targets, _)) => {
                        tracing::warn!(provider = %self.name, error = ?verdict.error, "issuer metadata could not be refreshed; the metadata fetched before is kept");
                        Ok(targets.clone())
                    }
                    None => Err(verdict),
                }
            }
        }
    }

    /// Marks discovered metadata stale, so the next call fetches it again.
    pub(super) async fn suspect_targets(&self) {
        if let Source::Discovered(d) = &self.source {
            d.state.lock().await.stale = true;
        }
    }

    async fn discover(&self, d: &Discovery) -> Result<Targets, Verdict> {
        let issuer = &d.issuer;
        let name = &self.name;
        let mut tried = Vec::new();
        for url in Discovery::metadata_urls(issuer) {
            let request = self
                .client
                .get(url.clone())
                .header(ACCEPT, "application/json")
                .timeout(self.timeout);
            let cannot = |why: String| {
                transient(format!(
                    "provider {name}: cannot fetch the metadata of issuer {issuer} from {url}: {why}"
                ))
            };
            let (response, cut) = match tokio::time::timeout(self.timeout, self.send(request)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => {
                    return Err(cannot(
                        transport_verdict(&error, self.timeout, &[]).error.unwrap_or_default(),
                    ));
                }
                Err(_) => {
                    return Err(cannot(format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    )));
                }
            };
            let status = response.status;
            if matches!(status, 408 | 425 | 429) || status >= 500 {
                return Err(cannot(format!("HTTP {status}")));
            }
            match response.json().filter(Json::is_object) {
                Some(json) if status == 200 && !cut => return self.read_metadata(d, &url, &json),
                _ if status == 200 => tried.push(format!("{url}: HTTP 200, not a JSON object")),
                _ => tried.push(format!("{url}: HTTP {status}")),
            }
        }
        Err(transient(format!(
            "provider {name}: issuer {issuer} publishes no metadata ({})",
            tried.join("; ")
        )))
    }

    fn read_metadata(&self, d: &Discovery, at: &reqwest::Url, json: &Json) -> Result<Targets, Verdict> {
        let (name, issuer) = (&self.name, &d.issuer);
        let text = |key: &str| json.get(key).and_then(Json::as_str);
        let named = text("issuer").unwrap_or_default();
        if reqwest::Url::parse(named).ok().as_ref() != Some(&issuer.0) {
            return Err(failed(format!(
                "provider {name}: the metadata at {at} names issuer '{named}', not the configured {issuer} \
                 (RFC 8414 §3.3: they must be identical); not used"
            )));
        }
        let Some(revocation) = text("revocation_endpoint") else {
            return Err(failed(format!(
                "provider {name}: issuer {issuer} has no revocation endpoint (no revocation_endpoint in {at}); \
                 set url to revoke elsewhere"
            )));
        };
        let endpoint = |raw: &str, key: &str| -> Result<ProviderUrl, Verdict> {
            raw.parse()
                .map_err(|e: String| failed(format!("provider {name}: issuer {issuer}: {key} {e}")))
        };
        let revocation = endpoint(revocation, "revocation_endpoint")?;
        let methods = |key: &str| {
            json.get(key)
                .or_else(|| json.get("token_endpoint_auth_methods_supported"))
                .and_then(Json::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
        };
        let wanted = &self.definition.auth;
        let choose_for = |key: &str, what: &str| {
            choose(methods(key).as_deref(), wanted, d.auth_set).map_err(|why| {
                failed(format!(
                    "provider {name}: issuer {issuer}: no client authentication for its {what} endpoint: {why}"
                ))
            })
        };
        let auth = choose_for("revocation_endpoint_auth_methods_supported", "revocation")?;
        let check = match self.definition.checks.verify {
            VerifyMode::None => None,
            VerifyMode::Probe => probe_checker(d.probe.as_ref(), &self.definition),
            VerifyMode::Introspect => {
                let url = match (&d.introspection, text("introspection_endpoint")) {
                    (Some(url), _) => url.clone(),
                    (None, Some(raw)) => endpoint(raw, "introspection_endpoint")?,
                    (None, None) => {
                        return Err(failed(format!(
                            "provider {name}: issuer {issuer} has no introspection endpoint (no \
                             introspection_endpoint in {at}); set introspection_url, or verify = \"none\""
                        )));
                    }
                };
                let auth = choose_for("introspection_endpoint_auth_methods_supported", "introspection")?;
                Some(Checker::introspection(url, &self.definition, auth))
            }
        };
        let definition = Definition {
            auth,
            ..self.definition.clone()
        };
        Ok(Targets {
            revoke: Target::new(Endpoint::fixed(revocation), definition),
            check,
        })
    }
}

/// The client authentication to use where the issuer lists `supported` (RFC 8414's default
/// when it lists nothing): see the module doc.
pub(crate) fn choose(supported: Option<&[String]>, wanted: &Auth, keep: bool) -> Result<Auth, String> {
    if !matches!(wanted, Auth::ClientSecretBasic | Auth::ClientSecretPost) {
        return Ok(wanted.clone());
    }
    let default = ["client_secret_basic".to_owned()];
    let supported = supported.unwrap_or(&default);
    let listed = |auth: &Auth| supported.iter().any(|m| *m == auth.describe());
    if keep {
        return if listed(wanted) {
            Ok(wanted.clone())
        } else {
            Err(format!(
                "auth = {} is set, and the issuer lists only {}",
                wanted.describe(),
                supported.join(", ")
            ))
        };
    }
    [Auth::ClientSecretBasic, Auth::ClientSecretPost]
        .into_iter()
        .find(listed)
        .ok_or_else(|| {
            format!(
                "the issuer lists {}, and offboard can do client_secret_basic or client_secret_post",
                if supported.is_empty() {
                    "none".to_owned()
                } else {
                    supported.join(", ")
                }
            )
        })
}
