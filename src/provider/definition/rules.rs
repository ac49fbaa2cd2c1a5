//! The rules of a definition that read a provider's answers: status patterns, conditions on
//! a JSON body, the success rule and the rules for documented answers (already invalid,
//! errors), each with the form it is written in and the checks that name a bad key.

use serde::Deserialize;
use serde_json::Value as Json;

use super::DefinitionError;
use crate::outcome::Outcome;

/// A status, or a class of them (`"2xx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusPattern {
    Exact(u16),
    Class(u16),
}

impl StatusPattern {
    pub(super) fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Exact(s) => s == status,
            StatusPattern::Class(c) => status / 100 == c,
        }
    }

    /// Whether every status this pattern matches is a 2xx.
    pub(super) fn within_2xx(self) -> bool {
        match self {
            StatusPattern::Exact(s) => (200..=299).contains(&s),
            StatusPattern::Class(c) => c == 2,
        }
    }
}

impl std::fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusPattern::Exact(s) => write!(f, "{s}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let bad =
            |shown: String| D::Error::custom(format!("{shown} is not an HTTP status (100 to 599) or class (\"2xx\")"));
        match toml::Value::deserialize(d)? {
            toml::Value::Integer(i) => u16::try_from(i)
                .ok()
                .filter(|s| (100..=599).contains(s))
                .map(StatusPattern::Exact)
                .ok_or_else(|| bad(i.to_string())),
            toml::Value::String(s) => match s.as_bytes() {
                [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Ok(StatusPattern::Class(u16::from(c - b'0'))),
                _ => Err(bad(format!("'{s}'"))),
            },
            other => Err(bad(other.to_string())),
        }
    }
}

/// A condition on a JSON body: the value at `pointer` (RFC 6901) equals `equals`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BodyCondition {
    pub(crate) pointer: String,
    pub(crate) equals: Json,
    /// What the pointer points into, for messages ("OneLogin's status object").
    pub(crate) label: Option<String>,
}

/// What a body says about a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Test {
    Holds,
    /// The body has a value of the same kind at the pointer, and it differs: the body
    /// answers the question, and says no.
    Contradicted,
    /// Not JSON, nothing at the pointer, or a value of another kind.
    Absent,
}

impl BodyCondition {
    pub(crate) fn test(&self, json: Option<&Json>) -> Test {
        let Some(found) = json.and_then(|j| j.pointer(&self.pointer)) else {
            return Test::Absent;
        };
        let same_kind = std::mem::discriminant(found) == std::mem::discriminant(&self.equals);
        match (found == &self.equals, same_kind) {
            (true, _) => Test::Holds,
            (false, true) => Test::Contradicted,
            (false, false) => Test::Absent,
        }
    }

    pub(crate) fn describe(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format!("{} = {} in the body", self.pointer, self.equals))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BodyConditionFile {
    pointer: String,
    equals: toml::Value,
    label: Option<String>,
}

impl BodyConditionFile {
    pub(super) fn check(self, key: &str) -> Result<BodyCondition, DefinitionError> {
        if !(self.pointer.is_empty() || self.pointer.starts_with('/')) {
            return Err(DefinitionError::new(
                format!("{key}.pointer"),
                format!(
                    "'{}' is not a JSON pointer (RFC 6901: empty, or starting with /)",
                    self.pointer
                ),
            ));
        }
        let equals = serde_json::to_value(&self.equals)
            .map_err(|e| DefinitionError::new(format!("{key}.equals"), format!("cannot be compared with JSON: {e}")))?;
        Ok(BodyCondition {
            pointer: self.pointer,
            equals,
            label: self.label,
        })
    }
}

/// When an answer counts as a revocation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Success {
    /// Statuses (all 2xx) that may say success.
    pub(crate) status: Vec<StatusPattern>,
    /// A condition the body must meet besides.
    pub(crate) body: Option<BodyCondition>,
    /// Where the body carries the status the answer really has (OneLogin's `/status/code`):
    /// a success status whose body contradicts the condition is classified as that status.
    pub(crate) status_in_body: Option<String>,
}

impl Success {
    pub(crate) fn status_matches(&self, status: u16) -> bool {
        self.status.iter().any(|p| p.matches(status))
    }
}

impl Default for Success {
    fn default() -> Self {
        Success {
            status: vec![StatusPattern::Class(2)],
            body: None,
            status_in_body: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SuccessFile {
    pub(super) status: Option<Vec<StatusPattern>>,
    pub(super) body: Option<BodyConditionFile>,
    pub(super) status_in_body: Option<String>,
}

/// An answer the provider documents, and what it means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    /// Statuses it applies to; empty, any.
    pub(crate) status: Vec<StatusPattern>,
    pub(crate) body: Option<BodyCondition>,
    pub(crate) outcome: Outcome,
}

impl Rule {
    pub(crate) fn matches(&self, status: u16, json: Option<&Json>) -> bool {
        answer_matches(&self.status, self.body.as_ref(), status, json)
    }
}

/// Whether an answer (`status`, its body as `json`) is one a rule or a check describes: a
/// status among `statuses` (any, if none listed) and a body meeting `body`, if given.
pub(super) fn answer_matches(
    statuses: &[StatusPattern],
    body: Option<&BodyCondition>,
    status: u16,
    json: Option<&Json>,
) -> bool {
    (statuses.is_empty() || statuses.iter().any(|p| p.matches(status)))
        && body.is_none_or(|c| c.test(json) == Test::Holds)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    #[serde(default)]
    pub(super) status: Vec<StatusPattern>,
    pub(super) body: Option<BodyConditionFile>,
    pub(super) outcome: Option<String>,
}

impl RuleFile {
    /// `list` is `already_invalid` or `errors`; `i` the rule's place in it.
    pub(super) fn check(self, list: &str, i: usize) -> Result<Rule, DefinitionError> {
        let key = format!("{list}[{i}]");
        if self.status.is_empty() && self.body.is_none() {
            return Err(DefinitionError::new(
                key,
                "a rule needs a status, a body condition, or both",
            ));
        }
        let outcome = match (list, self.outcome.as_deref()) {
            ("already_invalid", None) => Outcome::AlreadyInvalid,
            ("already_invalid", Some(_)) => {
                return Err(DefinitionError::new(
                    format!("{key}.outcome"),
                    "already_invalid rules have no outcome key: their outcome is already_invalid",
                ));
            }
            (_, Some(raw)) => match Outcome::parse(raw) {
                Some(o @ (Outcome::Failed | Outcome::Transient | Outcome::NotRevocable)) => o,
                _ => {
                    return Err(DefinitionError::new(
                        format!("{key}.outcome"),
                        format!("'{raw}' is not one of failed, transient, not_revocable"),
                    ));
                }
            },
            (_, None) => {
                return Err(DefinitionError::new(
                    format!("{key}.outcome"),
                    "must be set: failed, transient or not_revocable",
                ));
            }
        };
        let body = self.body.map(|b| b.check(&format!("{key}.body"))).transpose()?;
        Ok(Rule {
            status: self.status,
            body,
            outcome,
        })
    }
}
