//! Where a provider's calls go, as configured: the revocation endpoint (`url`) or the issuer
//! whose metadata gives it (`issuer`), and the endpoint of its check of death
//! (`introspection_url`, or the probe's `url`). Every URL follows the provider URL rules
//! (`https://`, `http://` to loopback only, no user info), and each error names its key.

use std::fmt;

use super::{ConfigError, ProviderUrl};
use crate::provider::definition::{Resolved, VerifyMode, checks};
use crate::provider::endpoint::Endpoint;

/// Where revocations go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// `url`: the endpoint itself, with the token's place in its path if it has one.
    Url(Endpoint),
    /// `issuer`: found in the issuer's metadata at first use (`provider::discovery`).
    Issuer {
        issuer: ProviderUrl,
        /// The provider set `auth` itself: discovery keeps it (if the issuer lists it)
        /// rather than choosing.
        auth_set: bool,
    },
}

/// A provider's endpoints, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) revocation: Revocation,
    /// `introspection_url`, filled, when `verify = "introspect"`; with an issuer and none
    /// set, the issuer's metadata gives it.
    pub(crate) introspection: Option<ProviderUrl>,
    /// The probe's URL, filled, when `verify = "probe"`.
    pub(crate) probe: Option<ProviderUrl>,
}

impl Endpoints {
    /// The endpoints of `resolved`; `key` makes a full key of a definition key, `what` names
    /// the definition in messages, `auth_set` says whether the provider set `auth` itself.
    pub(super) fn of(
        resolved: &Resolved,
        key: &dyn Fn(&str) -> String,
        what: &str,
        auth_set: bool,
        client_id: &str,
    ) -> Result<Endpoints, ConfigError> {
        let checks = &resolved.definition.checks;
        let revocation = match (&checks.issuer, &resolved.url) {
            (Some(raw), _) => {
                let issuer: ProviderUrl = raw.parse().map_err(|e: String| ConfigError::key(key("issuer"), e))?;
                if issuer.0.query().is_some() || issuer.0.fragment().is_some() {
                    return Err(ConfigError::key(
                        key("issuer"),
                        format!("'{issuer}' has a query or fragment, which an issuer never has (RFC 8414 §2)"),
                    ));
                }
                Revocation::Issuer { issuer, auth_set }
            }
            (None, Some(url)) => {
                Revocation::Url(Endpoint::new(url, client_id).map_err(|e| ConfigError::key(key(e.key), e.message))?)
            }
            (None, None) => {
                return Err(ConfigError::key(
                    key("url"),
                    format!("must be set, as {what} has none (or set issuer, for OIDC discovery)"),
                ));
            }
        };
        let (introspection, probe) = checks::fill_urls(checks, &resolved.vars, what, client_id)
            .map_err(|e| ConfigError::key(key(&e.key), e.message))?;
        let parse = |raw: Option<String>, name: &str| -> Result<Option<ProviderUrl>, ConfigError> {
            raw.map(|r| r.parse().map_err(|e: String| ConfigError::key(key(name), e)))
                .transpose()
        };
        let introspection = parse(introspection, "introspection_url")?;
        let probe = parse(probe, "probe.url")?;
        if checks.verify == VerifyMode::Introspect
            && introspection.is_none()
            && matches!(revocation, Revocation::Url(_))
        {
            return Err(ConfigError::key(
                key("introspection_url"),
                format!(
                    "must be set for verify = \"introspect\", as {what} has none (or set issuer, whose metadata \
                     gives it)"
                ),
            ));
        }
        Ok(Endpoints {
            revocation,
            introspection,
            probe,
        })
    }
}

impl fmt::Display for Endpoints {
    /// `https://…/revoke`, or `issuer https://… (discovered at first use)`, with the check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.revocation {
            Revocation::Url(url) => write!(f, "{url}")?,
            Revocation::Issuer { issuer, .. } => write!(f, "issuer {issuer}")?,
        }
        if let Some(url) = &self.introspection {
            write!(f, ", introspection at {url}")?;
        }
        if let Some(url) = &self.probe {
            write!(f, ", checked at {url}")?;
        }
        Ok(())
    }
}
