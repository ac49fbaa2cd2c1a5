//! The wider provider mix from outside, through the real binary: `offboard demo --providers
//! all` settles every token at every simulated catalogue entry, and `offboard simulate
//! --providers all` serves every provider shape with an offboard config that revokes at each.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use offboard::config::Config;
use offboard::outcome::Outcome;
use offboard::provider::Providers;
use offboard::provider::dialect::Dialect;
use offboard::token::{TokenType, TokenValue};

/// The provider each dialect runs as in the wide mix: the seed dialects keep the names of
/// `config/simulate.toml` (rfc7009 is `acme`), the others are named after their dialect.
fn provider_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Rfc7009 => "acme",
        d => d.as_str(),
    }
}

#[test]
fn the_demo_with_every_provider_settles_every_token_at_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["demo", "--providers", "all", "--users", "60", "--dir"])
        .arg(dir.path())
        .env_remove("OFFBOARD_CONFIG")
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
    let served = Dialect::SIMULATED.len();
    let head = text.lines().next().unwrap();
    assert!(head.starts_with("offboard demo: 60 users, "), "{text}");
    assert!(
        head.ends_with(&format!(" tokens, {served} simulated providers")),
        "{text}"
    );
    let tokens: u64 = head
        .split(", ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" tokens")
        .parse()
        .unwrap();
    assert!(text.contains("\nrequests: 60 cleared, 0 failed, in "), "{text}");
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "wider than 80 columns: {text}"
    );

    // provider -> (dialect, revoked, invalid, not revocable, failed)
    let rows: BTreeMap<&str, (&str, u64, u64, u64, u64)> = text
        .lines()
        .skip_while(|l| !l.starts_with("provider"))
        .skip(1)
        .take_while(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            (f[0], (f[1], n(2), n(3), n(4), n(5)))
        })
        .collect();
    assert_eq!(rows.len(), served, "{text}");
    let mut settled = 0;
    for d in Dialect::SIMULATED {
        let name = provider_name(d);
        let &(dialect, revoked, invalid, not_revocable, failed) =
            rows.get(name).unwrap_or_else(|| panic!("no row for {name}: {text}"));
        assert_eq!(dialect, d.as_str(), "{text}");
        assert_eq!(failed, 0, "{name}: {text}");
        assert!(revoked > 0, "{name} revoked nothing: {text}");
        if d != Dialect::Auth0 {
            assert_eq!(not_revocable, 0, "{name}: {text}");
        }
        settled += revoked + invalid + not_revocable;
    }
    assert_eq!(settled, tokens, "every token settled: {text}");
    // Providers that say a token is dead say so here: revoked elsewhere, or killed with its pair.
    for name in ["google", "salesforce"] {
        assert!(rows[name].2 > 0, "{name} answered no token already invalid: {text}");
    }
}

#[test]
fn simulate_all_serves_every_provider_with_a_config_that_revokes_at_each() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["simulate", "--listen", "127.0.0.1:0", "--providers", "all"])
        .env_remove("OFFBOARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let end = line == "# (end of the offboard config)";
        printed.push_str(&line);
        printed.push('\n');
        if end {
            break;
        }
    }
    let result = std::panic::catch_unwind(|| revoke_at_every_provider(&printed));
    // Ctrl-C (SIGINT) stops it, and it takes the Apple signing key it wrote with it.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let stopped = (0..100).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        child.try_wait().unwrap()
    });
    if stopped.is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(interrupted.success());
    assert_eq!(stopped.map(|s| s.code()), Some(Some(0)), "not stopped by Ctrl-C");
    let key = apple_key_file(&printed);
    assert!(!key.exists(), "{} left behind", key.display());
    assert!(!key.parent().unwrap().exists());
}

/// The `.p8` file the printed config's Apple provider signs with.
fn apple_key_file(printed: &str) -> std::path::PathBuf {
    let line = printed
        .lines()
        .find(|l| l.starts_with("private_key_file = "))
        .expect("no private_key_file in the printed config");
    let value: toml::Table = toml::from_str(line).unwrap();
    value["private_key_file"].as_str().unwrap().into()
}

/// Reads what `offboard simulate --providers all` printed, and revokes a token it issues at
/// each provider through the printed config.
fn revoke_at_every_provider(printed: &str) {
    // What a failure may show: the output without the (simulated) secrets' values.
    let shown: String = printed
        .lines()
        .map(|l| match l.split_once('=') {
            Some((var, _)) if l.starts_with("#   export ") => format!("{var}=[REDACTED]\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let addr = printed
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("simulated providers on http://"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{shown}"))
        .to_owned();
    assert!(!printed.contains("served at"), "a provider left out: {shown}");
    for probe in [
        "okta: http://",
        "github: http://",
        "zendesk: http://",
        "hubspot_legacy: http://",
    ] {
        assert!(printed.contains(probe), "{probe} missing from {shown}");
    }
    let env: Vec<(String, String)> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("#   export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let config_text = printed
        .split_once("# offboard config for these providers")
        .map(|(_, rest)| rest.split_once('\n').unwrap().1)
        .unwrap_or_else(|| panic!("{shown}"));
    let config = Config::from_toml(config_text, Path::new("printed"), Vec::new()).unwrap();
    // The Apple provider signs with a key the simulator made, readable by this user alone.
    let key = apple_key_file(printed);
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", key.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let providers = Providers::from_config(&config, &lookup).unwrap();
        let client = reqwest::Client::new();
        for d in Dialect::SIMULATED {
            let name = provider_name(d);
            let ty = match d {
                Dialect::Slack
                | Dialect::Twitch
                | Dialect::Zoom
                | Dialect::Notion
                | Dialect::Linkedin
                | Dialect::Dropbox
                | Dialect::Onelogin
                | Dialect::Stitch
                | Dialect::Github
                | Dialect::Zendesk => TokenType::AccessToken,
                _ => TokenType::RefreshToken,
            };
            let ty_name = if ty == TokenType::AccessToken {
                "access_token"
            } else {
                "refresh_token"
            };
            let issued: serde_json::Value = client
                .post(format!("http://{addr}/_issue"))
                .json(&serde_json::json!({ "provider": name, "token_type": ty_name }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = TokenValue::new(issued["token"].as_str().unwrap().to_owned());
            // The shipped limits and faults apply: a transient answer is tried again.
            let mut outcomes = Vec::new();
            for _ in 0..20 {
                let call = providers.get(name).unwrap().revoke(&token, ty).await;
                outcomes.push(call.verdict.outcome);
                if call.verdict.outcome != Outcome::Transient {
                    break;
                }
                let wait = call.verdict.retry_after.unwrap_or_default();
                tokio::time::sleep(wait.max(std::time::Duration::from_millis(50))).await;
            }
            assert_eq!(outcomes.last(), Some(&Outcome::Revoked), "{name}: {outcomes:?}");
        }
        let stats: serde_json::Value = client
            .get(format!("http://{addr}/_stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for d in Dialect::SIMULATED {
            let name = provider_name(d);
            let accepted = stats["providers"][name]["accepted"].as_u64();
            assert_eq!(accepted, Some(1), "{name}: {stats}");
        }
        assert_eq!(
            stats["providers"].as_object().map(serde_json::Map::len),
            Some(Dialect::SIMULATED.len()),
            "{stats}"
        );
    });
}
