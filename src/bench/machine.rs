//! The machine a benchmark ran on, and what the process itself used: CPU time from
//! `/proc/self/stat` (no libc binding needed) and peak resident memory from
//! `/proc/self/status`. Linux only; elsewhere the figures read "unknown".

use std::io::Write;

/// Cores, CPU model, memory, date and build profile, on one line.
pub(super) fn describe(out: &mut impl Write, backend: &str) -> std::io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let memory = meminfo_kib("MemTotal:").map_or("unknown".to_owned(), |k| {
        format!("{:.1} GiB", k as f64 / (1024.0 * 1024.0))
    });
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    writeln!(
        out,
        "machine: {cores} cores, {model}, {memory} memory, {}, {profile} build, {backend}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

fn meminfo_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    field_kib(&text, key)
}

fn field_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU seconds this process (every thread) has used so far, from the
/// `utime` and `stime` fields of `/proc/self/stat`, in clock ticks of 1/100 s (Linux's
/// `USER_HZ` on every common architecture).
pub(super) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Peak resident set size of this process so far (`VmHWM`), in KiB.
pub(super) fn peak_rss_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    field_kib(&text, "VmHWM:")
}

/// Peak resident set size of process `pid` so far (`VmHWM`), in KiB.
pub(super) fn peak_rss_kib_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_kib(&text, "VmHWM:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kib_field() {
        let text = "Name:\tx\nVmHWM:\t  12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(field_kib(text, "VmHWM:"), Some(12345));
        assert_eq!(field_kib(text, "VmPeak:"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu_and_memory() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds().is_some());
            assert!(peak_rss_kib().unwrap_or(0) > 0);
        }
    }
}
