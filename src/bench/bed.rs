//! What every scenario stands on: simulated providers served in process, an offboard
//! config pointing at them (with each provider's rate set apart), a fresh database with a
//! backlog of users seeded with tokens (streamed in chunks, so a million tokens never sit
//! in memory at once), and a drain until no request is open.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::database::FreshDatabase;
use crate::app::App;
use crate::config::{Config, Rate};
use crate::provider::dialect::Dialect;
use crate::simulate::{Behaviour, SimProvider, Simulator, offboard_config_for};
use crate::storage::Store;
use crate::storage::seed::{self, NewToken};
use crate::token::{TokenType, TokenValue};

/// Tokens, or users, written per transaction while seeding.
const CHUNK: usize = 5_000;

/// One benchmark provider: its name, what the simulator accepts per second (`None`: no
/// limit) and the rate offboard is configured with, as a count per `per`.
pub(super) struct BenchProvider {
    pub(super) name: &'static str,
    pub(super) quota: Option<u32>,
    pub(super) rate: Rate,
}

impl BenchProvider {
    /// The configured rate per second.
    pub(super) fn rate_per_sec(&self) -> f64 {
        f64::from(self.rate.count.get()) / self.rate.per.as_secs_f64()
    }
}

pub(super) fn rate(count: u32, per: Duration) -> Rate {
    Rate {
        count: std::num::NonZeroU32::new(count).expect("a rate above zero"),
        per,
    }
}

/// A rate as the config writes it: `40/s`, `4000/m`, `1000/h`.
fn rate_text(rate: Rate) -> String {
    let unit = match rate.per.as_secs() {
        60 => "m",
        3600 => "h",
        _ => "s",
    };
    format!("{}/{unit}", rate.count)
}

pub(super) struct Bed {
    pub(super) sim: Simulator,
    pub(super) app: App,
    database: FreshDatabase,
    pub(super) tokens: usize,
    /// The offboard config of the bed, rates included, for `offboard run` children; the
    /// secrets it names are in `env`.
    pub(super) config_text: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) burst: u32,
}

impl Bed {
    /// Serves `providers`, opens a fresh database with `worker_toml` (the `[worker]` and
    /// `[retry]` tables) and `burst` for every provider, and seeds `users` users (none
    /// enqueued) with [`tokens_of`]'s tokens.
    pub(super) async fn set_up(
        server: Option<&str>,
        providers: &[BenchProvider],
        burst: u32,
        worker_toml: &str,
        users: usize,
    ) -> anyhow::Result<Bed> {
        let mut bed = Bed::open(server, providers, burst, worker_toml).await?;
        let names: Vec<&str> = providers.iter().map(|p| p.name).collect();
        let sim = bed.sim.clone();
        bed.seed((0..users).flat_map(|i| tokens_of(&sim, i, &names))).await?;
        Ok(bed)
    }

    /// As [`Bed::set_up`], with no tokens.
    pub(super) async fn open(
        server: Option<&str>,
        providers: &[BenchProvider],
        burst: u32,
        worker_toml: &str,
    ) -> anyhow::Result<Bed> {
        let served = providers
            .iter()
            .map(|p| {
                let mut sim = SimProvider::new(p.name, Dialect::Rfc7009);
                sim.behaviour = Behaviour {
                    limit_per_sec: p.quota,
                    ..Behaviour::default()
                };
                sim
            })
            .collect();
        let sim = Simulator::start(([127, 0, 0, 1], 0).into(), served).await?;
        let (mut providers_toml, env) = offboard_config_for(&sim, &format!("burst = {burst}\ntimeout = \"5s\"\n"));
        for p in providers {
            let table = format!("[providers.{}]\n", p.name);
            let with_rate = format!("{table}rate = \"{}\"\n", rate_text(p.rate));
            providers_toml = providers_toml.replace(&table, &with_rate);
        }
        let database = FreshDatabase::create(server).await?;
        let config_text = format!(
            "[database]\nurl = \"{}\"\n{worker_toml}\n{providers_toml}",
            database.url
        );
        let config = Config::from_toml(&config_text, Path::new("bench"), Vec::new()).context("bench config")?;
        for p in providers {
            let configured = config.providers.get(p.name).context("a configured provider")?.rate;
            anyhow::ensure!(
                configured == p.rate,
                "{}: rate {configured:?} written as {:?}",
                p.name,
                p.rate
            );
        }
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let app = match App::open(config, &lookup).await {
            Ok(app) => app,
            Err(e) => {
                database.remove().await;
                return Err(anyhow::Error::new(e).context("cannot set up the benchmark"));
            }
        };
        Ok(Bed {
            sim,
            app,
            database,
            tokens: 0,
            config_text,
            env,
            burst,
        })
    }

    /// Inserts `tokens` in chunks of [`CHUNK`], one transaction each.
    pub(super) async fn seed(&mut self, tokens: impl Iterator<Item = NewToken>) -> anyhow::Result<()> {
        let mut chunk = Vec::with_capacity(CHUNK);
        for token in tokens {
            chunk.push(token);
            if chunk.len() == CHUNK {
                seed::insert_tokens_fast(self.store(), &chunk).await?;
                self.tokens += chunk.len();
                chunk.clear();
            }
        }
        seed::insert_tokens_fast(self.store(), &chunk).await?;
        self.tokens += chunk.len();
        Ok(())
    }

    pub(super) fn store(&self) -> &Store {
        self.app.store()
    }

    /// Enqueues users `0..users`.
    pub(super) async fn enqueue_all(&self, users: usize) -> anyhow::Result<()> {
        self.enqueue(0..users).await
    }

    /// Enqueues the users numbered in `users`.
    pub(super) async fn enqueue(&self, users: std::ops::Range<usize>) -> anyhow::Result<()> {
        for first in users.clone().step_by(CHUNK) {
            let names: Vec<String> = (first..users.end.min(first + CHUNK)).map(user_name).collect();
            seed::enqueue_fast(self.store(), &names, "offboard bench").await?;
        }
        Ok(())
    }

    /// Drains until no request is open (requests waiting on a durable backoff included);
    /// returns how long it took. Fails after `deadline`.
    pub(super) async fn drain_all(&self, deadline: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let never = CancellationToken::new();
        loop {
            self.app.worker().drain(&never).await?;
            if self.store().state_counts().await?.open() == 0 {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < deadline,
                "the backlog was not drained within {}s",
                deadline.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn tear_down(self) {
        self.app.close().await;
        self.database.remove().await;
    }
}

pub(super) fn user_name(i: usize) -> String {
    format!("bench-{i:06}")
}

/// User `i`'s tokens: one refresh token at each provider, and a second one at the second
/// provider for every other user, so that providers get different numbers of calls.
pub(super) fn tokens_of(sim: &Simulator, i: usize, providers: &[&str]) -> Vec<NewToken> {
    let mut at: Vec<&str> = providers.to_vec();
    if i.is_multiple_of(2)
        && let Some(second) = providers.get(1)
    {
        at.push(second);
    }
    at.into_iter()
        .map(|provider| NewToken {
            user_id: user_name(i),
            provider: provider.to_owned(),
            token_type: TokenType::RefreshToken,
            value: TokenValue::new(sim.issue(provider, TokenType::RefreshToken, None)),
            grant_ref: None,
            expires_at: None,
        })
        .collect()
}

/// A token the simulator never issued (RFC 7009 servers answer such a revocation with
/// success): for backlogs too large to keep every token in the simulator's memory.
pub(super) fn unissued_token(user: usize, provider: &str, n: usize) -> NewToken {
    NewToken {
        user_id: user_name(user),
        provider: provider.to_owned(),
        token_type: TokenType::RefreshToken,
        value: TokenValue::new(format!("{provider}_r_{user:08x}{n:08x}{:016x}", fastrand::u64(..))),
        grant_ref: None,
        expires_at: None,
    }
}
