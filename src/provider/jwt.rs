//! Client secrets that are signed JWTs, the one thing about Sign in with Apple that data
//! cannot say: the definition key `client_secret_jwt` ([`JwtSpec`]) and the signer that makes
//! the JWT from the provider's private key and keeps it until it is close to expiry
//! ([`JwtSigner`]).
//!
//! The JWT is Apple's client secret (developer.apple.com, "Creating a client secret"):
//! header `alg` = ES256 and `kid` = the key id; claims `iss` = the team id, `iat` = now,
//! `exp` = now + the lifetime (Apple refuses more than 15777000 s, six months), `aud` = the
//! audience, `sub` = the client id. It is sent wherever the definition sends a client secret.
//! Signing is `jsonwebtoken`'s, its crypto aws-lc's; nothing here encodes or signs by hand.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;

/// The longest lifetime Apple accepts: "It's an error to request an expiration time more
/// than 15777000 seconds (six months) in the future".
const MAX_LIFETIME_SECS: u64 = 15_777_000;

/// `lifetime`: five minutes (a JWT must outlive the call it is sent in) to six months.
type Lifetime = HumanDuration<{ 5 * 60 * 1000 }, { MAX_LIFETIME_SECS * 1000 }>;

/// `client_secret_jwt = { alg = "ES256", audience = "https://appleid.apple.com", lifetime = "1h" }`:
/// the client secret is a JWT signed with the provider's private key (`private_key_file` or
/// `private_key_env`, with `team_id` and `key_id`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSpec {
    alg: JwtAlg,
    /// The `aud` claim.
    pub(crate) audience: String,
    /// How long each JWT is valid; it is re-signed once three quarters of it have passed.
    #[serde(default = "default_lifetime")]
    lifetime: Lifetime,
}

fn default_lifetime() -> Lifetime {
    HumanDuration(Duration::from_secs(3600))
}

impl JwtSpec {
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime.0
    }
}

/// The signing algorithms a JWT client secret may use: ES256 alone, as Apple asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum JwtAlg {
    ES256,
}

/// Who the JWT names: the `kid` header and the `iss` and `sub` claims.
#[derive(Debug, Clone)]
pub(crate) struct JwtIds<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) team_id: &'a str,
    pub(crate) client_id: &'a str,
}

/// Signs a provider's client secret and keeps it while it has more than a quarter of its
/// lifetime left. No `Debug` of it shows the key or a JWT.
pub(crate) struct JwtSigner {
    key: EncodingKey,
    header: Header,
    team_id: String,
    client_id: String,
    audience: String,
    lifetime: Duration,
    cached: Mutex<Option<Signed>>,
}

struct Signed {
    jwt: SecretString,
    iat: u64,
    exp: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
    exp: u64,
    aud: &'a str,
    sub: &'a str,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.header.kid)
            .field("iss", &self.team_id)
            .field("sub", &self.client_id)
            .field("aud", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Why a key cannot sign: the reason in words, never any of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyError(pub(crate) String);

impl JwtSigner {
    /// A signer with the PKCS#8 private key in `pem` (a `.p8` file as Apple issues it), which
    /// it proves by signing a first JWT at once: a key that cannot sign is refused here, at
    /// start-up, and never at the first revocation.
    pub(crate) fn new(pem_text: &str, ids: &JwtIds<'_>, spec: &JwtSpec) -> Result<JwtSigner, KeyError> {
        // Some secret stores hold a PEM on one line, its line breaks written as `\n`.
        let text = if pem_text.contains('\n') {
            pem_text.to_owned()
        } else {
            pem_text.replace("\\n", "\n")
        };
        let block = pem::parse(text.trim()).map_err(|_| {
            KeyError("no PEM block -----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY----- could be read".into())
        })?;
        match block.tag() {
            "PRIVATE KEY" => {}
            "EC PRIVATE KEY" => {
                return Err(KeyError(
                    "it is a SEC1 \"EC PRIVATE KEY\"; convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError(
                    "it is encrypted; give the key unencrypted, as Apple issues it".into(),
                ));
            }
            other => return Err(KeyError(format!("it holds a \"{other}\", not a \"PRIVATE KEY\""))),
        }
        let JwtAlg::ES256 = spec.alg;
        let header = Header {
            // Apple's header is `alg` and `kid`, nothing else.
            typ: None,
            kid: Some(ids.key_id.to_owned()),
            ..Header::new(Algorithm::ES256)
        };
        let signer = JwtSigner {
            key: EncodingKey::from_ec_der(block.contents()),
            header,
            team_id: ids.team_id.to_owned(),
            client_id: ids.client_id.to_owned(),
            audience: spec.audience.clone(),
            lifetime: spec.lifetime(),
            cached: Mutex::new(None),
        };
        signer
            .client_secret_at(SystemTime::now())
            .map_err(|_| KeyError("it is not an EC key on curve P-256, or it is malformed".into()))?;
        Ok(signer)
    }

    /// The client secret to send now.
    pub(crate) fn client_secret(&self) -> Result<SecretString, jsonwebtoken::errors::Error> {
        self.client_secret_at(SystemTime::now())
    }

    /// The client secret to send at `now`: the one signed last while more than a quarter of
    /// its lifetime is left (and it was not signed after `now`, as when the clock went
    /// back), else a new one.
    fn client_secret_at(&self, now: SystemTime) -> Result<SecretString, jsonwebtoken::errors::Error> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let margin = self.lifetime.as_secs() / 4;
        let mut cached = self.cached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(signed) = cached.as_ref()
            && signed.iat <= now
            && now.saturating_add(margin) < signed.exp
        {
            return Ok(signed.jwt.clone());
        }
        let exp = now.saturating_add(self.lifetime.as_secs());
        let claims = Claims {
            iss: &self.team_id,
            iat: now,
            exp,
            aud: &self.audience,
            sub: &self.client_id,
        };
        let jwt = SecretString::from(jsonwebtoken::encode(&self.header, &claims, &self.key)?);
        *cached = Some(Signed {
            jwt: jwt.clone(),
            iat: now,
            exp,
        });
        Ok(jwt)
    }
}

#[cfg(test)]
pub(crate) mod tests;
