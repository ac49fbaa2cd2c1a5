//! What the simulator remembers between calls, behind one lock: the tokens it issued (so it
//! can answer a revoked one as the provider would), every call (so tests can check timing and
//! double revocations) and each provider's rate window.

use std::collections::HashMap;

use tokio::time::Instant;

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
}

#[derive(Debug, Clone)]
pub(super) struct IssuedToken {
    pub(super) provider: String,
    pub(super) token_type: TokenType,
    pub(super) revoked: bool,
    /// OneLogin: revoking this access token also kills these refresh tokens.
    pub(super) kills: Vec<String>,
}

#[derive(Debug)]
pub(super) struct SimState {
    pub(super) providers: HashMap<String, SimProvider>,
    pub(super) tokens: HashMap<String, IssuedToken>,
    pub(super) calls: Vec<CallRecord>,
    /// Requests accepted (authenticated, well-formed, not throttled) per token.
    pub(super) accepted: HashMap<String, u32>,
    pub(super) window: HashMap<String, (Instant, u32)>,
    /// Echo answers sent per provider, so each one uses the next encoding.
    pub(super) echoes: HashMap<String, usize>,
    pub(super) started: Instant,
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
        let issued = IssuedToken {
            provider: provider.to_owned(),
            token_type,
            revoked: false,
            kills: Vec::new(),
        };
        self.tokens.insert(token.clone(), issued);
        if let Some(access) = paired_with.and_then(|a| self.tokens.get_mut(a)) {
            access.kills.push(token.clone());
        }
        token
    }
}

/// Per-provider totals.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderStats {
    pub calls: u64,
    /// Calls answered with success (a revocation, or a token already dead).
    pub accepted: u64,
    pub rejected_429: u64,
    pub(crate) errors_5xx: u64,
    pub(crate) client_errors: u64,
    /// Calls that met an injected fault (timeout, reset, malformed, oversized, 503).
    pub faults: u64,
}

pub(super) fn stats_of(state: &SimState) -> HashMap<String, ProviderStats> {
    let mut out: HashMap<String, ProviderStats> = state
        .providers
        .keys()
        .map(|k| (k.clone(), ProviderStats::default()))
        .collect();
    for call in &state.calls {
        let s = out.entry(call.provider.clone()).or_default();
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
