//! Unit tests of the issue 11 metrics' encodings: the gates' pauses and waits, the queue's
//! age and the lease takeovers.

use std::time::Duration;

use super::*;

fn providers() -> Providers {
    let toml = "[providers.acme]\ndialect = \"rfc7009\"\nurl = \"http://127.0.0.1:9/revoke\"\n\
                client_id = \"c\"\nclient_secret_env = \"ACME_SECRET\"\nrate = \"10/s\"\n\
                [providers.zeta]\ndialect = \"rfc7009\"\nurl = \"http://127.0.0.1:9/revoke\"\n\
                client_id = \"c\"\nclient_secret_env = \"ZETA_SECRET\"\n";
    let config = crate::config::Config::from_toml(toml, std::path::Path::new("test"), Vec::new()).unwrap();
    Providers::from_config(&config, &|_| Some("s3cret-value".into())).unwrap()
}

/// The gates' pauses and waits are encoded per provider, read when scraped: a pause
/// counts as it passes, and a call let through after one is observed in the histogram.
#[tokio::test(start_paused = true)]
async fn gate_pauses_and_waits_are_encoded_per_provider() {
    let m = Metrics::default();
    let providers = providers();
    let before = m.render();
    assert!(
        !before.contains("provider_paused"),
        "nothing before the gates are watched: {before}"
    );
    m.watch_gates(&providers);
    let acme = &providers.get("acme").unwrap().gate;
    acme.pause(Duration::from_secs(4));
    tokio::time::advance(Duration::from_secs(1)).await;
    let text = m.render();
    assert!(
        text.contains("# TYPE offboard_provider_paused_seconds counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_provider_paused_seconds_total{provider="acme"} 1.0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_provider_paused_seconds_total{provider="zeta"} 0.0"#),
        "{text}"
    );
    acme.ready().await.unwrap();
    let text = m.render();
    assert!(
        text.contains(r#"offboard_provider_paused_seconds_total{provider="acme"} 4.0"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE offboard_rate_limit_wait_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_rate_limit_wait_seconds_count{provider="acme"} 1"#),
        "{text}"
    );
    // It waited the 3 s left of the pause: above the 1.53 s bound, within 3.81 s.
    assert!(
        text.contains(r#"offboard_rate_limit_wait_seconds_bucket{le="1.52587890625",provider="acme"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_rate_limit_wait_seconds_bucket{le="3.814697265625",provider="acme"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_rate_limit_wait_seconds_count{provider="zeta"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_rate_limit_wait_seconds_sum{provider="acme"} 3.0"#),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    let slot = acme.slot(Duration::ZERO).await.unwrap();
    let text = m.render();
    assert!(
        text.contains("# TYPE offboard_provider_calls_in_flight gauge"),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_provider_calls_in_flight{provider="acme"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"offboard_provider_calls_in_flight{provider="zeta"} 0"#),
        "{text}"
    );
    drop(slot);
    assert!(
        m.render()
            .contains(r#"offboard_provider_calls_in_flight{provider="acme"} 0"#),
        "a call answered leaves"
    );
    assert!(
        text.ends_with("# EOF\n"),
        "the collector's families come before the end: {text}"
    );
}

#[test]
fn queue_age_and_takeovers_are_encoded() {
    let m = Metrics::default();
    let text = m.render();
    assert!(text.contains("offboard_oldest_due_request_age_seconds 0.0"), "{text}");
    assert!(text.contains("offboard_lease_takeovers_total 0"), "{text}");
    m.set_oldest_due(Duration::from_millis(12_500));
    m.record_lease_takeovers(2);
    m.record_lease_takeovers(0);
    let text = m.render();
    assert!(
        text.contains("# TYPE offboard_oldest_due_request_age_seconds gauge"),
        "{text}"
    );
    assert!(text.contains("offboard_oldest_due_request_age_seconds 12.5"), "{text}");
    assert!(text.contains("# TYPE offboard_lease_takeovers counter"), "{text}");
    assert!(text.contains("offboard_lease_takeovers_total 2"), "{text}");
    m.set_oldest_due(Duration::ZERO);
    assert!(m.render().contains("offboard_oldest_due_request_age_seconds 0.0"));
}
