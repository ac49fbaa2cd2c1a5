//! The keys of a provider that signs its client secret: each missing, doubled or misplaced
//! one named, a key that cannot sign named with its source (and none of the key), and the
//! `client_secret_jwt` entry overridable key by key.

use secrecy::ExposeSecret;

use crate::config::ClientSecret;
use crate::config::tests::parse;
use crate::provider::jwt::tests::TestKey;

/// An `apple` provider with the key in `APPLE_KEY`, `extra` keys added.
fn apple(extra: &str) -> String {
    format!(
        "[providers.apple]\ndialect = \"apple\"\nclient_id = \"com.example.app\"\nteam_id = \"DEF123GHIJ\"\n\
         key_id = \"ABC123DEFG\"\nprivate_key_env = \"APPLE_KEY\"\n{extra}"
    )
}

fn error(text: &str, env: &[(&str, &str)]) -> String {
    parse(text, env).unwrap_err().to_string()
}

#[test]
fn an_apple_provider_reads_and_proves_its_key_and_shows_none_of_it() {
    let key = TestKey::p256();
    let config = parse(&apple(""), &[("APPLE_KEY", &key.pem)]).unwrap();
    let apple = &config.providers["apple"];
    assert_eq!(apple.endpoints.to_string(), "https://appleid.apple.com/auth/revoke");
    let secrets = config
        .resolve_secrets(&|n| (n == "APPLE_KEY").then(|| key.pem.clone()))
        .unwrap();
    let Some(ClientSecret::Jwt(signer)) = &secrets["apple"] else {
        panic!("{secrets:?}")
    };
    let jwt = signer.client_secret().unwrap().expose_secret().to_owned();
    for shown in [format!("{config:?}"), format!("{secrets:?}")] {
        assert!(!shown.contains(&jwt), "{shown}");
        for line in key.pem.lines().filter(|l| !l.is_empty() && !l.starts_with("-----")) {
            assert!(!shown.contains(line), "{shown}");
        }
    }
}

#[test]
fn a_missing_team_id_key_id_or_key_is_named() {
    let key = TestKey::p256();
    let env = [("APPLE_KEY", key.pem.as_str())];
    let without = |k: &str| {
        apple("")
            .lines()
            .filter(|l| !l.starts_with(&format!("{k} =")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        error(&without("team_id"), &env),
        "providers.apple.team_id: must be set: the apple dialect signs its client secret as a JWT \
         (client_secret_jwt), whose iss is the team id"
    );
    assert_eq!(
        error(&without("key_id"), &env),
        "providers.apple.key_id: must be set: the apple dialect signs its client secret as a JWT \
         (client_secret_jwt), whose kid is the id of its key"
    );
    assert!(
        error(&without("private_key_env"), &env)
            .starts_with("providers.apple.private_key_file: must be set: the apple dialect signs its client secret"),
        "{}",
        error(&without("private_key_env"), &env)
    );
    assert_eq!(
        error(
            &without("team_id").replace("client_id", "team_id = \" \"\nclient_id"),
            &env
        ),
        "providers.apple.team_id: must not be empty"
    );
    assert_eq!(
        error(&apple(""), &[]),
        "providers.apple.private_key_env: environment variable APPLE_KEY is not set"
    );
}

#[test]
fn a_client_secret_is_refused_beside_a_signed_one_and_the_key_beside_a_stored_one() {
    let key = TestKey::p256();
    let env = [("APPLE_KEY", key.pem.as_str()), ("S", "s3cret")];
    for (extra, named) in [
        ("client_secret_env = \"S\"", "client_secret_env"),
        ("client_secret_file = \"/run/secrets/apple\"", "client_secret_file"),
    ] {
        assert_eq!(
            error(&apple(extra), &env),
            format!(
                "providers.apple.{named}: the apple dialect signs its client secret as a JWT (client_secret_jwt); \
                 remove this key and set private_key_file or private_key_env"
            )
        );
    }
    assert_eq!(
        error(&apple("private_key_file = \"/run/secrets/apple.p8\""), &env),
        "providers.apple.private_key_file: set private_key_env or private_key_file, not both"
    );
    let acme = "[providers.acme]\ndialect = \"rfc7009\"\nurl = \"https://auth.acme.example/revoke\"\n\
                client_id = \"c\"\nclient_secret_env = \"S\"\n";
    assert_eq!(
        error(&format!("{acme}key_id = \"ABC123DEFG\""), &env),
        "providers.acme.key_id: the rfc7009 dialect has no signed client secret (client_secret_jwt); remove this key"
    );
    let typo = error(&format!("{acme}team_di = \"X\""), &env);
    assert!(typo.ends_with("(did you mean team_id?)"), "{typo}");
}

#[test]
fn a_key_that_is_not_a_p8_is_named_with_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("AuthKey_ABC123DEFG.p8");
    let fake = "-----BEGIN PRIVATE KEY-----\nTk9UQUtFWU5PVEFLRVlOT1RBS0VZ\n-----END PRIVATE KEY-----\n";
    std::fs::write(&path, fake).unwrap();
    let text = apple("").replace(
        "private_key_env = \"APPLE_KEY\"",
        &format!("private_key_file = \"{}\"", path.display()),
    );
    let err = error(&text, &[]);
    assert_eq!(
        err,
        format!(
            "providers.apple.private_key_file: {} is not a PKCS#8 EC P-256 private key (.p8): \
             it is not an EC key on curve P-256, or it is malformed",
            path.display()
        )
    );
    assert!(!err.contains("Tk9UQUtFWU5PVEFLRVlOT1RBS0VZ"), "{err}");
    std::fs::write(&path, "\n").unwrap();
    assert_eq!(
        error(&text, &[]),
        format!("providers.apple.private_key_file: {} is empty", path.display())
    );
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nTk9UQUtFWQ==\n-----END EC PRIVATE KEY-----\n";
    assert!(error(&apple(""), &[("APPLE_KEY", sec1)]).starts_with(
        "providers.apple.private_key_env: environment variable APPLE_KEY is not a PKCS#8 EC P-256 private key \
             (.p8): it is a SEC1"
    ));
}

#[test]
fn the_entry_s_client_secret_jwt_is_overridden_key_by_key_with_errors_named() {
    let key = TestKey::p256();
    let env = [("APPLE_KEY", key.pem.as_str())];
    let config = parse(&apple("client_secret_jwt = { lifetime = \"2h\" }"), &env).unwrap();
    let jwt = config.providers["apple"].definition.client_secret_jwt.clone().unwrap();
    assert_eq!(jwt.lifetime().as_secs(), 7200);
    assert_eq!(jwt.audience, "https://appleid.apple.com");
    for (extra, starts) in [
        (
            "client_secret_jwt = { alg = \"RS256\" }",
            "providers.apple.client_secret_jwt.alg: unknown variant `RS256`, expected `ES256`",
        ),
        (
            "client_secret_jwt = { lifetime = \"7months\" }",
            "providers.apple.client_secret_jwt.lifetime: must be at most ",
        ),
        (
            "client_secret_jwt = { audience = \"\" }",
            "providers.apple.client_secret_jwt.audience: must not be empty",
        ),
        (
            "client_secret_jwt = { expiry = \"1h\" }",
            "providers.apple.client_secret_jwt.expiry: unknown field `expiry`, expected one of `alg`, `audience`, `lifetime`",
        ),
        (
            "auth = \"none\"",
            "providers.apple.client_secret_jwt: is sent as the client secret, so auth must be \
             client_secret_post or client_secret_basic, not none",
        ),
        (
            "public_clients = true",
            "providers.apple.public_clients: a client whose secret is a signed JWT always sends one",
        ),
    ] {
        let err = error(&apple(extra), &env);
        assert!(err.starts_with(starts), "{extra}: {err}");
    }
}
