//! The catalogue entries of providers with no per-token revocation (Microsoft Entra ID,
//! Atlassian, Spotify): configured by `dialect` alone, every token is `not_revocable` with
//! the documented reason in its audit row, and no request is ever sent.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use offboard::config::Config;
use offboard::outcome::{Outcome, RequestState};
use offboard::provider::Providers;
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestDb, app_for, on_both_backends};

/// Each provider and a phrase its documented reason must hold.
const NOT_REVOCABLE: [(&str, &str); 3] = [
    ("entra", "revokeSignInSessions"),
    ("atlassian", "Connected apps"),
    ("spotify", "spotify.com/account/apps"),
];

/// A provider with nothing to revoke needs no URL, client id or secret, and refuses a secret.
#[test]
fn not_revocable_entries_need_nothing_and_refuse_a_secret() {
    for (name, _) in NOT_REVOCABLE {
        let text = format!("[providers.p]\ndialect = \"{name}\"\n");
        let config = Config::from_toml(&text, Path::new("test"), Vec::new()).unwrap();
        assert!(Providers::from_config(&config, &|_| None).is_ok(), "{name}");
        let err = Config::from_toml(
            &format!("{text}client_secret_env = \"S\"\n"),
            Path::new("test"),
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sends no client secret"), "{name}: {err}");
    }
}

#[test]
fn offboard_providers_says_they_revoke_nothing() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["--config", "/nonexistent/offboard.toml", "providers"])
        .env_remove("OFFBOARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for (name, _) in NOT_REVOCABLE {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        assert!(
            line.contains("nothing (access_token: not revocable) (refresh_token: not revocable)"),
            "{line}"
        );
    }
}

/// A user with tokens at all three clears without a call: each token's audit row is
/// not_revocable with its provider's reason, and, expiring within the policy's bound, it
/// settles so.
async fn tokens_at_providers_without_revocation_settle_with_the_reason(db: TestDb) {
    let mut text = format!("[database]\nurl = \"{}\"\n", db.url);
    for (name, _) in NOT_REVOCABLE {
        text.push_str(&format!("[providers.{name}]\ndialect = \"{name}\"\n"));
    }
    let app = app_for(&db.store, &text, &[]);
    let soon = Some(Utc::now() + chrono::Duration::hours(1));
    let tokens: Vec<NewToken> = NOT_REVOCABLE
        .iter()
        .flat_map(|(name, _)| {
            [TokenType::AccessToken, TokenType::RefreshToken].map(|token_type| NewToken {
                user_id: "u1".into(),
                provider: (*name).into(),
                token_type,
                value: TokenValue::new(format!("{name}-{token_type:?}-value")),
                grant_ref: None,
                expires_at: soon,
            })
        })
        .collect();
    insert_tokens(&db.store, &tokens).await.unwrap();
    db.store.enqueue("u1", None, None).await.unwrap();
    for _ in 0..50 {
        app.worker().drain(&CancellationToken::new()).await.unwrap();
        let state = db.store.clearance("u1").await.unwrap().unwrap().state;
        if !matches!(state, RequestState::Pending | RequestState::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let request = db.store.clearance("u1").await.unwrap().unwrap();
    assert_eq!(request.state, RequestState::Cleared, "{:?}", request.last_error);
    let rows = db.store.audit_rows(None, Some("u1")).await.unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    for (name, phrase) in NOT_REVOCABLE {
        let theirs: Vec<_> = rows.iter().filter(|r| r.provider == name).collect();
        assert_eq!(theirs.len(), 2, "{name}");
        for row in theirs {
            assert_eq!(row.outcome, Outcome::NotRevocable, "{row:?}");
            assert_eq!(row.http_status, None, "{row:?}");
            let error = row.error.as_deref().unwrap_or_default();
            assert!(error.contains(phrase), "{name}: {error}");
        }
    }
}

on_both_backends!(tokens_at_providers_without_revocation_settle_with_the_reason);
