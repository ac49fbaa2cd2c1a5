//! The commands that need no config: `offboard demo`, `offboard simulate` and `offboard bench`, so that a
//! newcomer can see the whole job with nothing set up, and a broken config cannot stop them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

pub(super) async fn demo(users: u32, dir: &std::path::Path, every_provider: bool) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&crate::config::LogConfig {
        level: "warn".into(),
        ..Default::default()
    });
    let options = crate::demo::DemoOptions {
        users: users as usize,
        base_dir: dir.to_owned(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        every_provider,
    };
    let result = crate::demo::run(&options).await.context("the demo failed")?;
    crate::demo::print_summary(&mut std::io::stdout().lock(), &result, &this_command())?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn bench(options: &crate::bench::BenchOptions) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&crate::config::LogConfig {
        level: "error".into(),
        ..Default::default()
    });
    crate::bench::run(&mut std::io::stdout().lock(), options)
        .await
        .context("the benchmark failed")?;
    Ok(ExitCode::SUCCESS)
}

/// How to run this binary again from the current folder, for printed hints.
fn this_command() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => match exe.strip_prefix(&cwd) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => "offboard".into(),
        },
        _ => "offboard".into(),
    }
}

pub(super) async fn simulate(listen: std::net::SocketAddr, file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&crate::config::LogConfig::default());
    let providers = match file {
        // A file called `all` is still read as `./all`.
        Some(path) if path.as_os_str() == "all" => crate::simulate::every_entry_providers(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            crate::simulate::providers_from_toml(&text)
                .with_context(|| format!("invalid simulator file {}", path.display()))?
        }
        None => crate::simulate::demo_providers(),
    };
    let mut names: Vec<String> = providers.iter().map(|p| p.name.clone()).collect();
    names.sort();
    let sim = crate::simulate::Simulator::start(listen, providers)
        .await
        .with_context(|| format!("cannot serve on {listen}"))?;
    let addr = sim.addr();
    let (config, env) = crate::simulate::offboard_config_for(&sim, "rate = \"20/s\"\nburst = 5\n");
    let out = &mut std::io::stdout().lock();
    writeln!(out, "simulated providers on http://{addr} (Ctrl-C to stop)")?;
    writeln!(out, "  issue a token: curl -s -X POST http://{addr}/_issue \\")?;
    writeln!(
        out,
        "                  -d '{{\"provider\": \"acme\", \"token_type\": \"access_token\"}}'"
    )?;
    writeln!(out, "  call counts:   curl -s http://{addr}/_stats")?;
    writeln!(out, "  probes (is a token still alive? README, Simulated providers):")?;
    for name in &names {
        if let Some(url) = sim.probe_url(name) {
            writeln!(out, "    {name}: {url}")?;
        }
    }
    writeln!(out)?;
    writeln!(out, "# offboard config for these providers; their (simulated) secrets:")?;
    for (var, value) in &env {
        writeln!(out, "#   export {var}={value}")?;
    }
    writeln!(out, "{config}")?;
    writeln!(out, "# (end of the offboard config)")?;
    out.flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}
