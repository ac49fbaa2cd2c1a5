//! Reading a provider's answer with its definition: the shared classifier (`classify.rs`)
//! decides by status and RFC 6749 error code, and the definition refines it.
//!
//! In order:
//! 1. A success status with an HTML page is transient, whatever the definition says (a proxy
//!    or portal answered, not the provider).
//! 2. The definition's `already_invalid`, then `errors` rules: the first that matches decides.
//! 3. What the shared classifier decided, unless it was a revocation.
//! 4. A revocation only if the status is one of `success.status` and the body meets
//!    `success.body`. A body that contradicts the condition is an error answer, classified
//!    as the status it carries (`success.status_in_body`) or as a 400; a body without the
//!    value at all (not JSON, nothing there) is a glitch: transient, never success.

use std::time::Duration;

use super::classify::{RawResponse, classify, describe, is_portal_page};
use super::definition::{Definition, Test};
use crate::outcome::{Outcome, Verdict};

impl Definition {
    /// Classifies `response` (see the module doc). `secrets` are scrubbed from any text
    /// kept; a wait the provider asks for is clamped to `max_wait`.
    pub(crate) fn classify(&self, response: &RawResponse, secrets: &[&str], max_wait: Duration) -> Verdict {
        let mut verdict = classify(response, secrets, max_wait);
        if let Some(name) = &self.request_id_header
            && let Some(id) = response
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 200)
        {
            verdict.provider_request_id = Some(id.to_owned());
        }
        if is_portal_page(response) {
            return verdict;
        }
        let json = response.json();
        let status = response.status;
        let ruled = self
            .already_invalid
            .iter()
            .chain(&self.errors)
            .find(|rule| rule.matches(status, json.as_ref()));
        if let Some(rule) = ruled {
            return Verdict {
                outcome: rule.outcome,
                error: Some(describe(response, secrets)),
                ..verdict
            };
        }
        if verdict.outcome != Outcome::Revoked {
            return verdict;
        }
        let success = &self.success;
        if !success.status_matches(status) {
            let expected: Vec<String> = success.status.iter().map(ToString::to_string).collect();
            return Verdict {
                outcome: Outcome::Transient,
                error: Some(format!(
                    "HTTP {status} is not this provider's success answer ({}); not taken as a revocation",
                    expected.join(", ")
                )),
                ..verdict
            };
        }
        let Some(condition) = &success.body else {
            return verdict;
        };
        match condition.test(json.as_ref()) {
            Test::Holds => verdict,
            Test::Contradicted => {
                // The status the body carries; a success one (or none) is taken as a 400, so
                // an answer that says error can never come out as a revocation.
                let inner = success
                    .status_in_body
                    .as_deref()
                    .and_then(|p| json.as_ref()?.pointer(p)?.as_u64())
                    .and_then(|c| u16::try_from(c).ok())
                    .filter(|c| !(200..300).contains(c))
                    .unwrap_or(400);
                let inner = RawResponse {
                    status: inner,
                    ..response.clone()
                };
                Verdict {
                    http_status: verdict.http_status,
                    provider_request_id: verdict.provider_request_id,
                    ..classify(&inner, secrets, max_wait)
                }
            }
            Test::Absent => Verdict {
                outcome: Outcome::Transient,
                error: Some(format!(
                    "HTTP {status} without {}; not taken as success",
                    condition.describe()
                )),
                ..verdict
            },
        }
    }
}
