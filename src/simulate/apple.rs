//! Sign in with Apple's client secret, checked for its form: a JWT whose header says
//! `alg: ES256` and names its key (`kid`), whose claims carry `iss` (the team id), `sub` (the
//! client id), `aud` (`https://appleid.apple.com`) and an `exp` still to come, no more than
//! six months after `iat` (developer.apple.com, "Creating a client secret").
//!
//! The signature is not checked: the simulator holds no developer's public key, and what it
//! is for is catching a secret offboard built wrongly (another algorithm, a claim missing or
//! misspelt, an expired one). Apple's own check of the signature is Apple's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Apple's `aud` for client secrets.
const AUDIENCE: &str = "https://appleid.apple.com";
/// "exp … must not be greater than 15777000 (6 months in seconds) from the Current UNIX Time".
const MAX_LIFETIME_SECS: i64 = 15_777_000;

/// Why a client secret is not one Apple would take; Apple answers each `invalid_client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadSecret(pub(super) &'static str);

/// Checks `secret` is a well-formed ES256 client secret for `client_id`, at `now` (seconds
/// since the epoch).
pub(super) fn check_client_secret(secret: &str, client_id: &str, now: i64) -> Result<(), BadSecret> {
    let mut parts = secret.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadSecret("not a JWT of three parts"));
    };
    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(BadSecret("no base64url signature"));
    }
    let header = decode(header).ok_or(BadSecret("header is not base64url JSON"))?;
    let claims = decode(claims).ok_or(BadSecret("claims are not base64url JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(BadSecret("alg is not ES256"));
    }
    if header.get("kid").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(BadSecret("no kid"));
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    if text("iss").is_none() {
        return Err(BadSecret("no iss (team id)"));
    }
    if text("sub") != Some(client_id) {
        return Err(BadSecret("sub is not the client id"));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    if !audience_ok {
        return Err(BadSecret("aud is not https://appleid.apple.com"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(BadSecret("no exp"))?;
    if exp <= now {
        return Err(BadSecret("expired"));
    }
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
    if exp - iat.min(now) > MAX_LIFETIME_SECS {
        return Err(BadSecret("exp is more than six months away"));
    }
    Ok(())
}

fn decode(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
}

/// A client secret of Apple's form with a signature of the right length and no meaning, for
/// the tests and for driving the simulator by hand.
pub fn unsigned_client_secret(team_id: &str, client_id: &str, key_id: &str, now: i64, lifetime_secs: i64) -> String {
    let header = serde_json::json!({ "alg": "ES256", "kid": key_id });
    let claims = serde_json::json!({
        "iss": team_id,
        "iat": now,
        "exp": now + lifetime_secs,
        "aud": AUDIENCE,
        "sub": client_id,
    });
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(&header),
        part(&claims),
        URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn with(header: Value, claims: Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.{}",
            part(&header),
            part(&claims),
            URL_SAFE_NO_PAD.encode([1u8; 64])
        )
    }

    fn claims() -> Value {
        serde_json::json!({ "iss": "TEAM123456", "iat": NOW, "exp": NOW + 3600, "aud": AUDIENCE, "sub": "com.example.app" })
    }

    #[test]
    fn a_well_formed_secret_passes() {
        let secret = unsigned_client_secret("TEAM123456", "com.example.app", "KEY1234567", NOW, 3600);
        assert_eq!(check_client_secret(&secret, "com.example.app", NOW), Ok(()));
    }

    #[test]
    fn each_broken_part_is_named() {
        let es256 = serde_json::json!({ "alg": "ES256", "kid": "K" });
        let mut cases = vec![
            ("plain-secret".to_owned(), "not a JWT of three parts"),
            (
                with(serde_json::json!({ "alg": "RS256", "kid": "K" }), claims()),
                "alg is not ES256",
            ),
            (with(serde_json::json!({ "alg": "ES256" }), claims()), "no kid"),
            (
                format!("{}.bm90IGpzb24.c2ln", URL_SAFE_NO_PAD.encode(es256.to_string())),
                "claims are not base64url JSON",
            ),
        ];
        for (claim, value, why) in [
            ("iss", Value::Null, "no iss (team id)"),
            ("sub", Value::from("com.other.app"), "sub is not the client id"),
            (
                "aud",
                Value::from("https://apple.com"),
                "aud is not https://appleid.apple.com",
            ),
            ("exp", Value::from(NOW - 1), "expired"),
            (
                "exp",
                Value::from(NOW + MAX_LIFETIME_SECS + 10),
                "exp is more than six months away",
            ),
            ("exp", Value::from("soon"), "no exp"),
        ] {
            let mut c = claims();
            c[claim] = value;
            cases.push((with(es256.clone(), c), why));
        }
        let unsigned = with(es256.clone(), claims());
        cases.push((
            format!("{}.", unsigned.rsplit_once('.').unwrap().0),
            "no base64url signature",
        ));
        for (secret, why) in cases {
            assert_eq!(
                check_client_secret(&secret, "com.example.app", NOW),
                Err(BadSecret(why)),
                "{why}"
            );
        }
    }
}
