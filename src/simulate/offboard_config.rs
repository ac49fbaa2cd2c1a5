//! The offboard config that points at a running simulator, so the demo, the tests and
//! `offboard simulate` never write one by hand: one `[providers.NAME]` table per simulated
//! provider, `dialect = "…"`, with every URL its catalogue entry could call pointed at the
//! simulator (the revocation; the introspection endpoint or the probe, for `verify`; the
//! token endpoint, for refresh-then-revoke), so that nothing a config written here sends can
//! reach a real provider. And what each entry needs besides: the client secrets (through
//! `SIM_<NAME>_SECRET` variables), the signing key of Sign in with Apple's client secret, and
//! Xero's `allow_org_wide`.

use super::Simulator;
use super::shape::Probe;
use crate::provider::catalog;
use crate::provider::dialect::{ClientAuth, Dialect};

/// The team and key ids of the simulated Apple client secrets (ten characters each, as
/// Apple's are); the simulator checks they are there, not what they are.
const APPLE_TEAM_ID: &str = "SIMTEAM001";
const APPLE_KEY_ID: &str = "SIMKEY0001";

/// Config TOML for offboard that points at `sim`'s providers, with secrets read from
/// `SIM_<NAME>_SECRET` variables; returns the text and those variables. `per_provider` is
/// added to every provider's table (`rate`, `burst`, `timeout`). Verification stays off
/// (`verify` unset), but each check the entry can make is pointed at the simulator:
/// `introspection_url` for the RFC 7009 servers (rfc7009, Okta, Keycloak) and the probe's
/// `url` for the entries with a probe (Slack, Google), so adding `verify = "…"` to a table is
/// all it takes.
pub fn offboard_config_for(sim: &Simulator, per_provider: &str) -> (String, Vec<(String, String)>) {
    let state = sim.state.lock().expect("sim lock");
    let mut text = String::new();
    let mut env = Vec::new();
    let mut names: Vec<&String> = state.providers.keys().collect();
    names.sort();
    for name in names {
        let p = &state.providers[name];
        let entry = catalog::entry(p.dialect.as_str()).expect("every dialect names a catalogue entry");
        let at = |path: &str| format!("http://{}/{name}{path}", sim.addr);
        text.push_str(&format!(
            "[providers.{name}]\ndialect = \"{}\"\nurl = \"{}\"\nclient_id = \"{}\"\n{per_provider}",
            p.dialect,
            p.url(sim.addr),
            p.client_id
        ));
        let either = matches!(
            p.dialect,
            Dialect::Rfc7009 | Dialect::Moov | Dialect::Okta | Dialect::Keycloak | Dialect::Discord | Dialect::X
        );
        if either && p.auth == ClientAuth::ClientSecretPost {
            text.push_str("auth = \"client_secret_post\"\n");
        }
        if let Some(secret) = &p.client_secret {
            let var = format!("SIM_{}_SECRET", name.to_uppercase().replace('-', "_"));
            text.push_str(&format!("client_secret_env = \"{var}\"\n"));
            env.push((var, secret.clone()));
        }
        match p.probe_path() {
            Some((Probe::Introspect, path)) => text.push_str(&format!("introspection_url = \"{}\"\n", at(&path))),
            Some((_, path)) if entry.definition.checks.probe.is_some() => {
                text.push_str(&format!("probe = {{ url = \"{}\" }}\n", at(&path)));
            }
            _ => {}
        }
        if let Some(path) = p.token_path() {
            text.push_str(&format!("refresh = {{ url = \"{}\" }}\n", at(path)));
        }
        if entry.definition.org_wide.is_some() {
            // Each simulated user's grant is their own.
            text.push_str("allow_org_wide = true\n");
        }
        if entry.definition.client_secret_jwt.is_some()
            && let Some(key) = &state.apple_key
        {
            let file = toml::Value::String(key.path().display().to_string());
            text.push_str(&format!(
                "team_id = \"{APPLE_TEAM_ID}\"\nkey_id = \"{APPLE_KEY_ID}\"\nprivate_key_file = {file}\n"
            ));
        }
        text.push('\n');
    }
    (text, env)
}
