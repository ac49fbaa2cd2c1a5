//! What the simulator remembers between calls, behind one lock: the tokens it issued and
//! the grants they belong to (so it can answer a revoked one as the provider would, and kill
//! what the provider's revocation kills), every call (so tests can check timing and double
//! revocations) and each provider's rate window.

use std::collections::HashMap;

use tokio::time::Instant;

use super::key_file::KeyFile;
use super::shape::{Endpoint, Reach};
use super::{Fault, SimProvider};
use crate::token::{Fingerprint, TokenType};

/// One call as the simulator saw it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub provider: String,
    pub at: Instant,
    /// The status sent; for a timeout, the one that would have been.
    pub status: u16,
    pub(crate) fault: Option<Fault>,
    /// Fingerprint of the token in the request, when there was one.
    pub(crate) token: Option<Fingerprint>,
    /// The endpoint called: a revocation (also a call that reached no endpoint), a probe (is
    /// this token still alive?) or a token endpoint (refresh-then-revoke's refresh).
    pub(super) endpoint: Endpoint,
}

impl CallRecord {
    /// Fingerprint (`sha256:…`, as in the audit table) of the token the call carried, when
    /// the request was well-formed enough to name one.
    pub fn token_fingerprint(&self) -> Option<&str> {
        self.token.as_ref().map(Fingerprint::as_str)
    }

    /// The fault injected in place of an answer, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Whether the call was to a probe endpoint rather than a revocation.
    pub fn is_probe(&self) -> bool {
        matches!(self.endpoint, Endpoint::Probe(_))
    }

    /// Whether the call was to a token endpoint (a refresh token exchanged for a fresh
    /// access token) rather than a revocation.
    pub fn is_refresh(&self) -> bool {
        self.endpoint == Endpoint::Token
    }

    /// Whether the call was to the revocation endpoint (or to no endpoint at all).
    pub fn is_revocation(&self) -> bool {
        self.endpoint == Endpoint::Revoke
    }
}

#[derive(Debug, Clone)]
pub(super) struct IssuedToken {
    pub(super) provider: String,
    pub(super) token_type: TokenType,
    pub(super) revoked: bool,
    /// The tokens issued `paired_with` this one, which die with it where the provider's
    /// reach is [`Reach::Paired`] (OneLogin: an access token takes its refresh token).
    pub(super) kills: Vec<String>,
    /// The grant (authorization) it belongs to, shared with the tokens paired with it.
    pub(super) grant: Option<u64>,
}

#[derive(Debug)]
pub(super) struct SimState {
    pub(super) providers: HashMap<String, SimProvider>,
    pub(super) tokens: HashMap<String, IssuedToken>,
    /// The tokens of each grant.
    pub(super) grants: HashMap<u64, Vec<String>>,
    pub(super) calls: Vec<CallRecord>,
    /// Requests accepted (authenticated, well-formed, not throttled) per token.
    pub(super) accepted: HashMap<String, u32>,
    pub(super) window: HashMap<String, (Instant, u32)>,
    /// Echo answers sent per provider, so each one uses the next encoding.
    pub(super) echoes: HashMap<String, usize>,
    pub(super) started: Instant,
    /// The `.p8` key offboard signs Apple's client secrets with, made when the simulator
    /// serves an Apple provider.
    pub(super) apple_key: Option<KeyFile>,
}

impl SimState {
    pub(super) fn issue(&mut self, provider: &str, token_type: TokenType, paired_with: Option<&str>) -> String {
        let token = format!(
            "{provider}_{}_{:016x}{:016x}",
            &token_type.as_str()[..1],
            fastrand::u64(..),
            fastrand::u64(..)
        );
        self.adopt(provider, token_type, paired_with, token)
    }

    /// Recognises `token` as issued by `provider`.
    pub(super) fn adopt(
        &mut self,
        provider: &str,
        token_type: TokenType,
        paired_with: Option<&str>,
        token: String,
    ) -> String {
        let next_grant = self.grants.len() as u64;
        let grant = match paired_with.and_then(|a| self.tokens.get_mut(a)) {
            Some(pair) => {
                pair.kills.push(token.clone());
                let grant = *pair.grant.get_or_insert(next_grant);
                let members = self.grants.entry(grant).or_default();
                if members.is_empty() {
                    members.push(paired_with.unwrap_or_default().to_owned());
                }
                members.push(token.clone());
                Some(grant)
            }
            None => None,
        };
        let issued = IssuedToken {
            provider: provider.to_owned(),
            token_type,
            revoked: false,
            kills: Vec::new(),
            grant,
        };
        self.tokens.insert(token.clone(), issued);
        token
    }

    /// Revokes `token` and what revoking it kills at a provider of this reach.
    pub(super) fn kill(&mut self, token: &str, reach: Reach) {
        let Some(t) = self.tokens.get(token) else {
            return;
        };
        let grant = || t.grant.and_then(|g| self.grants.get(&g)).cloned().unwrap_or_default();
        let more = match reach {
            Reach::Paired => t.kills.clone(),
            Reach::Itself => Vec::new(),
            Reach::Grant => grant(),
            Reach::GrantFromRefresh if t.token_type == TokenType::RefreshToken => grant(),
            Reach::GrantFromRefresh => Vec::new(),
        };
        for dead in std::iter::once(token.to_owned()).chain(more) {
            if let Some(t) = self.tokens.get_mut(&dead) {
                t.revoked = true;
            }
        }
    }
}

/// Per-provider totals.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderStats {
    /// Revocation calls; probes and refreshes are counted apart.
    pub calls: u64,
    /// Calls answered with success (a revocation, or a token already dead).
    pub accepted: u64,
    pub rejected_429: u64,
    pub(crate) errors_5xx: u64,
    pub(crate) client_errors: u64,
    /// Calls that met an injected fault (timeout, reset, malformed, oversized, 503).
    pub faults: u64,
    /// Calls to the provider's probe endpoint, whatever their answer.
    pub probes: u64,
    /// Calls to the provider's token endpoint (refresh grants), whatever their answer.
    pub refreshes: u64,
}

pub(super) fn stats_of(state: &SimState) -> HashMap<String, ProviderStats> {
    let mut out: HashMap<String, ProviderStats> = state
        .providers
        .keys()
        .map(|k| (k.clone(), ProviderStats::default()))
        .collect();
    for call in &state.calls {
        let s = out.entry(call.provider.clone()).or_default();
        match call.endpoint {
            Endpoint::Probe(_) => s.probes += 1,
            Endpoint::Token => s.refreshes += 1,
            Endpoint::Revoke => {}
        }
        if !call.is_revocation() {
            continue;
        }
        s.calls += 1;
        match (call.fault, call.status) {
            (Some(_), _) => s.faults += 1,
            (None, 200..=299) => s.accepted += 1,
            (None, 429) => s.rejected_429 += 1,
            (None, 500..=599) => s.errors_5xx += 1,
            (None, _) => s.client_errors += 1,
        }
    }
    out
}
