//! `offboard bench` from the real binary: the scenarios run to the end and print well-formed
//! figures. No assertion on how fast: only that the numbers are there and sane (a drain
//! cannot beat the providers' quotas, so `T / T_min` is at least about 1).

use std::process::{Command, Output, Stdio};

use crate::helpers::PG_URL_VAR;

/// Runs `offboard bench ARGS` with no config or log filter from the caller.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("bench")
        .args(args)
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Stdout, after checking that the command succeeded.
fn succeeded(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

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

/// `--quota-scale` multiplies the quotas and rates; `idle-latency` runs on a daily
/// schedule (the idle poll wakes the worker on SQLite); `rss` measures `offboard run`
/// children at a tiny size.
#[test]
fn bench_scaled_quotas_idle_latency_and_rss_print_well_formed_figures() {
    let text = succeeded(&bench(&[
        "quotas",
        "idle-latency",
        "rss",
        "--users",
        "20",
        "--quota-scale",
        "5",
        "--samples",
        "3",
        "--tokens",
        "1000",
        "--user-tokens",
        "1000",
        "--run-seconds",
        "2",
    ]));
    assert!(text.contains("quota scale 5"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("q20: quota 100/s, configured 100.0/s")),
        "{text}"
    );
    let quotas = result_line(&text, "quotas");
    assert!(number_after(quotas, "T/T_min ").is_some_and(|r| r >= 0.9), "{quotas}");
    assert!(text.contains("  requests: 20 cleared, 0 failed"), "{text}");

    assert!(text.contains("schedule once a day"), "{text}");
    let latency = result_line(&text, "idle-latency");
    for key in ["p50 ", "p99 ", "max "] {
        assert!(number_after(latency, key).is_some_and(|ms| ms > 0.0), "{latency}");
    }
    assert_eq!(number_after(latency, "n "), Some(3.0), "{latency}");

    let rss = result_line(&text, "rss");
    for key in ["queue 1000 tokens ", "one user of 1000 tokens "] {
        assert!(number_after(rss, key).is_some_and(|mib| mib > 1.0), "{rss}");
    }
    assert!(number_after(rss, "ratio ").is_some_and(|r| r > 0.0), "{rss}");
    assert!(number_after(rss, "kept at 1000 tokens for ").is_some(), "{rss}");
    assert!(text.contains("  queue kept at 250 users × 4 tokens, "), "{text}");
    assert_eq!(text.matches("peak RSS ").count(), 5, "{text}");
}

/// `workers` needs PostgreSQL: on SQLite it says so and fails before doing anything.
#[test]
fn bench_workers_on_sqlite_is_refused_clearly() {
    let out = bench(&["workers", "--users", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scenario workers needs PostgreSQL"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

/// `workers` with two `offboard run` processes on PostgreSQL (only when the test server is
/// given): drain figures, the busiest second of every provider, each process's peak RSS.
#[test]
fn bench_workers_on_postgres_prints_well_formed_figures() {
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("{PG_URL_VAR} is not set: bench workers (PostgreSQL only) not run");
        return;
    };
    let text = succeeded(&bench(&[
        "workers",
        "--users",
        "20",
        "--workers",
        "2",
        "--database",
        &server,
    ]));
    assert!(text.lines().next().unwrap().contains(" build, postgres"), "{text}");
    assert!(text.contains("2 `offboard run` processes"), "{text}");
    for provider in ["q40", "q80", "q20", "q30"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{provider}: quota ")))
            .unwrap_or_else(|| panic!("no line for {provider} in:\n{text}"));
        assert!(
            number_after(line, "most calls in one second ").is_some_and(|n| n >= 1.0),
            "{line}"
        );
    }
    assert!(text.contains("  requests: 20 cleared, 0 failed"), "{text}");
    let rss_line = text
        .lines()
        .find(|l| l.contains("peak RSS of each process: "))
        .expect("peak RSS");
    assert!(
        number_after(rss_line, "process: ").is_some_and(|mib| mib > 1.0),
        "{rss_line}"
    );
    let workers = result_line(&text, "workers");
    assert!(number_after(workers, "T/T_min ").is_some_and(|r| r >= 0.9), "{workers}");
    assert!(number_after(workers, "429s ").is_some(), "{workers}");
    assert!(number_after(workers, "at most ").is_some_and(|r| r > 0.0), "{workers}");
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

/// `report` at a tiny size: both sides measured (the small side is capped at the large),
/// rows a second and peak RSS well-formed, on SQLite and (when the test server is given)
/// PostgreSQL.
#[test]
fn bench_report_prints_rows_per_second_and_peak_rss() {
    let mut runs = vec![vec!["report", "--report-rows", "3000"]];
    let server = std::env::var(PG_URL_VAR).ok();
    if let Some(server) = &server {
        runs.push(vec!["report", "--report-rows", "3000", "--database", server]);
    }
    for args in runs {
        let text = succeeded(&bench(&args));
        assert!(text.contains("scenario report: "), "{text}");
        let line = result_line(&text, "report");
        assert_eq!(number_after(line, "report: "), Some(3000.0), "{line}");
        assert!(number_after(line, "3000 rows ").is_some_and(|r| r > 0.0), "{line}");
        assert!(number_after(line, "peak RSS ").is_some_and(|mib| mib > 1.0), "{line}");
        assert!(number_after(line, "RSS ratio ").is_some_and(|r| r > 0.0), "{line}");
        assert_eq!(text.matches(" rows (filled in ").count(), 2, "{text}");
    }
}
