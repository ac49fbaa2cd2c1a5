//! Unit tests of the config value types: bounds, parsing and redaction.

use super::*;
use crate::config::tests::{ACME, parse};

#[test]
fn a_five_field_cron_line_is_explained() {
    let err = parse("[worker]\nschedule = \"*/5 * * * *\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("worker.schedule: '*/5 * * * *' has 5 fields"), "{err}");
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let text = ACME.replace("https://auth.acme.example", "http://auth.acme.example");
    let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
    assert!(err.starts_with("providers.acme.url: "), "{err}");
    assert!(err.contains("must use https://"), "{err}");
    let text = ACME.replace("https://auth.acme.example", "http://127.0.0.1:8080");
    assert!(parse(&text, &[("ACME_SECRET", "x")]).is_ok());
}

#[test]
fn rates_parse_with_their_unit() {
    assert_eq!("20/s".parse::<Rate>().unwrap().count.get(), 20);
    assert_eq!("600/m".parse::<Rate>().unwrap().per, Duration::from_secs(60));
    assert!("20 per second".parse::<Rate>().is_err());
    assert!("0/s".parse::<Rate>().is_err());
}

#[test]
fn rates_have_an_upper_bound() {
    assert_eq!("10000/s".parse::<Rate>().unwrap().count.get(), 10_000);
    assert_eq!("600000/m".parse::<Rate>().unwrap().count.get(), 600_000);
    assert_eq!(
        "10001/s".parse::<Rate>().unwrap_err(),
        "must be at most 10000/s, got 10001/s"
    );
    assert!("4000000000/h".parse::<Rate>().is_err());
    let text = format!("{ACME}\nrate = \"1000000/s\"");
    let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
    assert_eq!(err, "providers.acme.rate: must be at most 10000/s, got 1000000/s");
}

#[test]
fn a_duration_too_large_for_any_clock_is_an_error_not_a_panic() {
    let err = "99999999999999999999999s"
        .parse::<HumanDuration<0, HOUR>>()
        .unwrap_err();
    assert!(err.starts_with("'99999999999999999999999s' is not a duration"), "{err}");
    let err = "500000000y".parse::<HumanDuration<0, HOUR>>().unwrap_err();
    assert!(
        err.contains("must be at most 1h") || err.contains("is not a duration"),
        "{err}"
    );
}

#[test]
fn database_url_debug_hides_the_password() {
    let url: DatabaseUrl = "postgres://user:hunter2@db/offboard".parse().unwrap();
    assert!(!format!("{url:?}").contains("hunter2"));
}

/// A URL as written, whether or not the config would accept it: what is shown of it
/// must hide its secrets either way.
fn shown(raw: &str) -> String {
    DatabaseUrl(raw.to_owned()).redacted()
}

#[test]
fn database_url_redaction_hides_passwords_in_user_info_and_query() {
    for (raw, want) in [
        (
            "postgres://user:hunter2@db/offboard",
            "postgres://user:REDACTED@db/offboard",
        ),
        (
            "postgres://user@db/offboard?password=hunter2",
            "postgres://user@db/offboard?password=REDACTED",
        ),
        (
            "postgresql://user:hunter2@db:5432/offboard?sslmode=require&password=hunter2",
            "postgresql://user:REDACTED@db:5432/offboard?sslmode=require&password=REDACTED",
        ),
        (
            "postgres:///offboard?host=/run/pg&user=u&password=hunter2",
            "postgres:///offboard?host=/run/pg&user=u&password=REDACTED",
        ),
        (
            "postgres://u@db/o?sslpassword=hunter2",
            "postgres://u@db/o?sslpassword=REDACTED",
        ),
        (
            "postgres://u@db/o?PassWord=hunter2",
            "postgres://u@db/o?PassWord=REDACTED",
        ),
        (
            "postgres://u@db/o?api_token=hunter2",
            "postgres://u@db/o?api_token=REDACTED",
        ),
        (
            "postgres://u@db/o?client_secret=hunter2",
            "postgres://u@db/o?client_secret=REDACTED",
        ),
        ("postgres://u@db/o?sslkey=hunter2", "postgres://u@db/o?sslkey=REDACTED"),
        (
            "postgres://u@db/o?passfile=hunter2",
            "postgres://u@db/o?passfile=REDACTED",
        ),
        (
            "postgres://u@db/o?pass%77ord=hunter2",
            "postgres://u@db/o?pass%77ord=REDACTED",
        ),
        ("sqlite://offboard.db?key=hunter2", "sqlite://offboard.db?key=REDACTED"),
        ("sqlite://offboard.db?mode=rwc", "sqlite://offboard.db?mode=rwc"),
        ("sqlite://my data/offboard.db", "sqlite://my data/offboard.db"),
        ("sqlite::memory:", "sqlite::memory:"),
        ("postgres://user@db/offboard", "postgres://user@db/offboard"),
    ] {
        assert_eq!(shown(raw), want, "{raw}");
    }
}

#[test]
fn database_url_redaction_hides_percent_encoded_and_odd_passwords() {
    for raw in [
        "postgres://user:hunter%32@db/offboard",
        "postgres://user:hunter2@db/offboard?password=hunter%32",
        "postgres://user@db/o?password=hunter2&password=hunter2",
        "postgres://user@db/o#hunter2",
        "postgres://us:er:hunter2@db/o",
        "postgres://user:hun@ter2@db/o",
    ] {
        let out = shown(raw);
        assert!(!out.contains("hunter"), "{raw} shown as {out}");
        assert!(out.starts_with("postgres"), "{raw} shown as {out}");
    }
}

#[test]
fn an_unparseable_database_url_is_hidden_not_shown_raw() {
    for raw in [
        "postgres://u:hun/ter2@h/db",
        "postgres://u:hun?ter2@h/db",
        "postgres://u:hun#ter2@h/db",
        "postgres://u:hunter2@h1:5432,h2:5433/db",
        "postgres://u:hunter2@[::1/db",
        "postgresql://u:hunter2@h:99999/db",
    ] {
        let out = shown(raw);
        assert!(!out.contains("ter2"), "{raw} shown as {out}");
        assert!(out.ends_with("[unparseable URL hidden]"), "{raw} shown as {out}");
    }
}

#[test]
fn database_url_redaction_never_panics() {
    let odd = [
        "",
        "postgres:",
        "postgres://",
        "postgres://@",
        "postgres://:@/",
        "postgres://:hunter2@/",
        "postgres://%zz:%zz@h/%zz?%zz=%zz",
        "postgres://ü:ß@høst/db?pässword=ß",
        "sqlite:",
        "sqlite://",
        "sqlite://?",
        "sqlite://?&&=&",
        "sqlite://x?password",
        "sqlite://x?=hunter2&key",
        "postgres:?password=hunter2",
        "postgres://h/db?password",
        "postgres://h/db?&=&password=&",
        "postgres://[::1]:5432/db?password=hunter2",
    ];
    for raw in odd {
        let out = shown(raw);
        assert!(!out.contains("hunter2"), "{raw} shown as {out}");
        assert!(!out.contains("ß"), "{raw} shown as {out}");
    }
}

#[test]
fn database_urls_with_unknown_or_unparseable_parts_are_refused_without_echoing_them() {
    for raw in [
        "postgres://u@h/db?sslpassword=hunter2",
        "postgres://u@h/db?connect_timeout=hunter2",
        "postgres://u:hun/ter2@h/db",
        "sqlite://offboard.db?key=hunter2",
    ] {
        let err = raw.parse::<DatabaseUrl>().unwrap_err();
        assert!(!err.contains("ter2"), "{raw}: {err}");
    }
    let err = "postgres://u@h/db?sslpassword=x".parse::<DatabaseUrl>().unwrap_err();
    assert!(err.contains("`sslpassword`"), "{err}");
    for ok in [
        "postgres://u:p@h:5432/db?sslmode=require&password=p&application_name=x&options[search_path]=a",
        "postgresql:///db?host=/run/postgresql&user=u",
        "sqlite://offboard.db?mode=rwc",
        "sqlite::memory:",
        "sqlite://offboard.db",
    ] {
        assert!(ok.parse::<DatabaseUrl>().is_ok(), "{ok}");
    }
}

#[test]
fn provider_url_debug_hides_query_values() {
    let url: ProviderUrl = "https://auth.acme.example/revoke?api_key=hunter2&v=2".parse().unwrap();
    let debug = format!("{url:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("https://auth.acme.example/revoke"), "{debug}");
}

#[test]
fn provider_url_with_user_info_is_refused_and_not_echoed() {
    for raw in [
        "https://user:hunter2@auth.acme.example/revoke",
        "https://hunter2@auth.acme.example/revoke",
        "http://user:hunter2@auth.acme.example/revoke?key=hunter2",
        "http://127.0.0.1:8080/revoke?key=hunter2#x",
        "ftp://auth.acme.example/revoke?key=hunter2",
        "not a url hunter2",
    ] {
        match raw.parse::<ProviderUrl>() {
            Ok(url) => assert!(!format!("{url:?}").contains("hunter2"), "{raw}"),
            Err(err) => assert!(!err.contains("hunter2"), "{raw}: {err}"),
        }
    }
    let err = "https://user:hunter2@auth.acme.example/revoke"
        .parse::<ProviderUrl>()
        .unwrap_err();
    assert!(err.contains("user name or password"), "{err}");
}
