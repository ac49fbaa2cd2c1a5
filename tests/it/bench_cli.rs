//! `offboard bench` from the real binary: the scenarios run to the end and print well-formed
//! figures. No assertion on how fast: only that the numbers are there and sane (a drain
//! cannot beat the providers' quotas, so `T / T_min` is at least about 1).

use std::process::{Command, Stdio};

/// The number after `key` (up to the next space, comma or unit) in `line`.
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn result_line<'a>(text: &'a str, scenario: &str) -> &'a str {
    let prefix = format!("result {scenario}: ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{text}"))
}

#[test]
fn bench_quotas_and_unlimited_print_well_formed_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["bench", "quotas", "unlimited", "--users", "30"])
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let machine = text.lines().next().unwrap();
    assert!(machine.starts_with("machine: "), "{text}");
    assert!(
        number_after(machine, "machine: ").is_some_and(|cores| cores >= 1.0),
        "{machine}"
    );
    assert!(machine.contains(" build, sqlite"), "{machine}");

    let quotas = result_line(&text, "quotas");
    let t_min = number_after(quotas, "T_min ").expect("T_min");
    let t = number_after(quotas, "T ").expect("T");
    let ratio = number_after(quotas, "T/T_min ").expect("T/T_min");
    assert!(t_min > 0.0 && t > 0.0, "{quotas}");
    assert!(ratio >= 0.9, "a drain faster than the quotas allow: {quotas}");
    assert!(number_after(quotas, "calls ").is_some_and(|n| n >= 135.0), "{quotas}");
    assert!(number_after(quotas, "429s ").is_some(), "{quotas}");
    for provider in ["q40", "q80", "q20", "q30"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{provider}: quota ")))
            .unwrap_or_else(|| panic!("no line for {provider} in:\n{text}"));
        assert!(number_after(line, "tokens ").is_some_and(|n| n >= 30.0), "{line}");
    }
    assert!(text.contains("  requests: 30 cleared, 0 failed"), "{text}");

    let unlimited = result_line(&text, "unlimited");
    assert_eq!(number_after(unlimited, "unlimited: "), Some(135.0), "{unlimited}");
    assert!(
        number_after(unlimited, "s, ").is_some_and(|n| n > 0.0),
        "tokens/s: {unlimited}"
    );
    assert!(
        number_after(unlimited, "tokens/s, ").is_some_and(|n| n >= 0.0),
        "CPU per 1000 tokens: {unlimited}"
    );
}

#[test]
fn bench_refuses_an_unknown_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["bench", "fastest"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quotas"));
}
