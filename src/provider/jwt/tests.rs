//! The signed client secret: an ES256 JWT of Apple's shape that verifies with the public key
//! of a key pair made for each test (with aws-lc-rs: no key is committed), kept until a
//! quarter of its lifetime is left, and a key that cannot sign refused with a reason that
//! holds none of the key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, Validation};
use secrecy::ExposeSecret;

use super::*;

/// A key pair made for one test: the private key as a `.p8` (PKCS#8 PEM), the public key
/// to verify with.
pub(crate) struct TestKey {
    pub(crate) pem: String,
    pub(crate) public: DecodingKey,
}

impl TestKey {
    pub(crate) fn p256() -> TestKey {
        Self::on(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
    }

    fn on(curve: &'static EcdsaSigningAlgorithm) -> TestKey {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(curve, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(curve, pkcs8.as_ref()).unwrap();
        // The uncompressed point: 0x04, then x and y of equal length.
        let point = &pair.public_key().as_ref()[1..];
        let (x, y) = point.split_at(point.len() / 2);
        let public = DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y)).unwrap();
        TestKey {
            pem: pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec())),
            public,
        }
    }
}

const IDS: JwtIds<'static> = JwtIds {
    key_id: "ABC123DEFG",
    team_id: "DEF123GHIJ",
    client_id: "com.example.app",
};

fn spec(lifetime: &str) -> Result<JwtSpec, toml::de::Error> {
    toml::from_str(&format!(
        "alg = \"ES256\"\naudience = \"https://appleid.apple.com\"\nlifetime = \"{lifetime}\""
    ))
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Verifies `jwt` as Apple would: its ES256 signature with `key`, and `iss`, `sub`, `aud`
/// and `exp` (against the clock, unless `at_any_time`).
fn verified(jwt: &str, key: &DecodingKey, at_any_time: bool) -> Result<Claims, jsonwebtoken::errors::Error> {
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&["https://appleid.apple.com"]);
    v.set_issuer(&["DEF123GHIJ"]);
    v.sub = Some("com.example.app".into());
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    v.validate_exp = !at_any_time;
    Ok(jsonwebtoken::decode::<Claims>(jwt, key, &v)?.claims)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_client_secret_is_an_es256_jwt_of_apples_shape_that_verifies_with_the_public_key() {
    let key = TestKey::p256();
    let signer = JwtSigner::new(&key.pem, &IDS, &spec("1h").unwrap()).unwrap();
    let before = unix(SystemTime::now());
    let jwt = signer.client_secret().unwrap();
    let jwt = jwt.expose_secret();
    let after = unix(SystemTime::now());
    let claims = verified(jwt, &key.public, false).unwrap();
    assert_eq!(claims.iss, "DEF123GHIJ");
    assert_eq!(claims.sub, "com.example.app");
    assert_eq!(claims.aud, "https://appleid.apple.com");
    assert!(claims.iat <= after && claims.iat + 1 >= before, "{claims:?}");
    assert!(claims.iat <= after && after <= claims.exp, "{claims:?}");
    assert_eq!(claims.exp - claims.iat, 3600);
    // The header is Apple's, `alg` and `kid` and nothing else.
    let header = URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header, serde_json::json!({"alg": "ES256", "kid": "ABC123DEFG"}));
    // Another key's public key does not verify it.
    let err = verified(jwt, &TestKey::p256().public, false).unwrap_err();
    assert_eq!(err.kind(), &jsonwebtoken::errors::ErrorKind::InvalidSignature);
}

#[test]
fn the_lifetime_is_at_most_apples_six_months() {
    let key = TestKey::p256();
    let signer = JwtSigner::new(&key.pem, &IDS, &spec("15777000s").unwrap()).unwrap();
    let claims = verified(signer.client_secret().unwrap().expose_secret(), &key.public, false).unwrap();
    assert_eq!(claims.exp - claims.iat, MAX_LIFETIME_SECS);
    let err = spec("15777001s").unwrap_err().to_string();
    assert!(err.contains("must be at most "), "{err}");
    let err = spec("1m").unwrap_err().to_string();
    assert!(err.contains("must be at least 5m"), "{err}");
    assert_eq!(
        spec("1h").unwrap(),
        toml::from_str("alg = \"ES256\"\naudience = \"https://appleid.apple.com\"").unwrap()
    );
}

#[test]
fn the_jwt_is_kept_until_a_quarter_of_its_lifetime_is_left() {
    let key = TestKey::p256();
    let signer = JwtSigner::new(&key.pem, &IDS, &spec("1h").unwrap()).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let at = |secs: u64| {
        let jwt = signer.client_secret_at(t0 + Duration::from_secs(secs)).unwrap();
        jwt.expose_secret().to_owned()
    };
    let iat = |jwt: &str| verified(jwt, &key.public, true).unwrap().iat;
    let first = at(0);
    assert_eq!(iat(&first), unix(t0));
    assert_eq!(at(10), first);
    assert_eq!(at(2699), first, "45 minutes less a second into an hour: kept");
    let second = at(2700);
    assert_ne!(second, first, "15 minutes left of an hour: signed anew");
    assert_eq!(iat(&second), unix(t0) + 2700);
    assert_eq!(at(2705), second);
    // A clock that went back gets a JWT not issued in its future.
    let third = at(100);
    assert_ne!(third, second);
    assert_eq!(iat(&third), unix(t0) + 100);
}

#[test]
fn a_key_that_cannot_sign_is_refused_with_a_reason_and_none_of_the_key() {
    let good = TestKey::p256();
    let der = pem::parse(&good.pem).unwrap().contents().to_vec();
    let armour = |tag: &str, der: &[u8]| pem::encode(&pem::Pem::new(tag, der.to_vec()));
    let ed25519 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    for (text, says) in [
        (
            "not a key at all".to_owned(),
            "no PEM block -----BEGIN PRIVATE KEY-----",
        ),
        (good.pem.replace("-----END PRIVATE KEY-----", ""), "no PEM block"),
        (
            armour("EC PRIVATE KEY", &der),
            "SEC1 \"EC PRIVATE KEY\"; convert it with `openssl pkcs8 -topk8 -nocrypt`",
        ),
        (armour("ENCRYPTED PRIVATE KEY", &der), "it is encrypted"),
        (
            armour("PUBLIC KEY", &der),
            "it holds a \"PUBLIC KEY\", not a \"PRIVATE KEY\"",
        ),
        (
            TestKey::on(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).pem,
            "not an EC key on curve P-256",
        ),
        (armour("PRIVATE KEY", ed25519.as_ref()), "not an EC key on curve P-256"),
        (
            armour("PRIVATE KEY", &der[..der.len() - 3]),
            "not an EC key on curve P-256",
        ),
    ] {
        let KeyError(reason) = JwtSigner::new(&text, &IDS, &spec("1h").unwrap()).unwrap_err();
        assert!(reason.contains(says), "{says}: {reason}");
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with("-----")) {
            assert!(!reason.contains(line), "{reason}");
        }
    }
}

#[test]
fn a_pem_on_one_line_with_escaped_line_breaks_is_read() {
    let key = TestKey::p256();
    let one_line = key.pem.trim().replace('\n', "\\n");
    let signer = JwtSigner::new(&one_line, &IDS, &spec("1h").unwrap()).unwrap();
    assert!(verified(signer.client_secret().unwrap().expose_secret(), &key.public, false).is_ok());
}

#[test]
fn debug_shows_the_ids_but_neither_the_key_nor_the_jwt() {
    let key = TestKey::p256();
    let signer = JwtSigner::new(&key.pem, &IDS, &spec("1h").unwrap()).unwrap();
    let jwt = signer.client_secret().unwrap().expose_secret().to_owned();
    let shown = format!("{signer:?}");
    assert!(shown.contains("ABC123DEFG") && shown.contains("DEF123GHIJ"), "{shown}");
    assert!(!shown.contains(&jwt), "{shown}");
    assert!(!shown.contains(jwt.rsplit('.').next().unwrap()), "{shown}");
    for line in key.pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "{shown}");
    }
}
