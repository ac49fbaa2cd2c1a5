//! The external command, run for real: `tests/fixtures/decrypt/decrypt-command.sh` decodes
//! base64, one value a line, and misbehaves on purpose for some values (see its header).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{env_of, fixture, plain};
use crate::decrypt::command::{CommandDecryptor, MAX_FAILURES};
use crate::decrypt::{CommandError, DecryptError, Decryptor};

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

/// A decryptor running the fixture with `args`, and the file it writes its pid to.
fn command(args: &[&str], timeout: &str, dir: &Path) -> (Decryptor, std::path::PathBuf) {
    let pidfile = dir.join("pid");
    let mut argv = vec![fixture("decrypt-command.sh").display().to_string()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv.extend(["--pidfile".to_owned(), pidfile.display().to_string()]);
    let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    let table = format!(
        r#"{{ scheme = "command", command = [{}], timeout = "{timeout}" }}"#,
        quoted.join(", ")
    );
    let config = super::config(&table).unwrap();
    (Decryptor::new(&config, &env_of(&[])).unwrap(), pidfile)
}

fn pid(pidfile: &Path) -> u32 {
    std::fs::read_to_string(pidfile).unwrap().trim().parse().unwrap()
}

/// Whether process `pid` is gone (or a zombie awaiting its parent's wait).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn one_process_answers_every_value_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pidfile) = command(&[], "5s", dir.path());
    assert_eq!(plain(&d, &b64("first-token")).await.unwrap(), "first-token");
    let first = pid(&pidfile);
    for i in 0..20 {
        let token = format!("token-{i} ✓");
        assert_eq!(plain(&d, &b64(&token)).await.unwrap(), token);
    }
    assert_eq!(pid(&pidfile), first, "one long-lived process, not one per value");
}

#[tokio::test]
async fn a_process_that_died_while_idle_is_replaced_and_the_value_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pidfile) = command(&["--die-after", "2"], "5s", dir.path());
    assert_eq!(plain(&d, &b64("one")).await.unwrap(), "one");
    assert_eq!(plain(&d, &b64("two")).await.unwrap(), "two");
    let first = pid(&pidfile);
    // The third value makes it exit unanswered; a new process answers it.
    assert_eq!(plain(&d, &b64("three")).await.unwrap(), "three");
    assert_ne!(pid(&pidfile), first);
    assert_eq!(plain(&d, &b64("four")).await.unwrap(), "four");
}

#[tokio::test]
async fn a_value_that_kills_a_fresh_process_fails_and_the_next_gets_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = command(&[], "5s", dir.path());
    // First value: the process is fresh, so its death is this value's failure.
    assert_eq!(
        plain(&d, "crash").await,
        Err(DecryptError::Command(CommandError::Exited {
            status: "exit status: 4".into()
        }))
    );
    assert_eq!(plain(&d, &b64("after-crash")).await.unwrap(), "after-crash");
}

#[tokio::test]
async fn a_hung_process_times_out_is_killed_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pidfile) = command(&[], "300ms", dir.path());
    assert_eq!(plain(&d, &b64("warm-up")).await.unwrap(), "warm-up");
    let hung = pid(&pidfile);
    let started = Instant::now();
    assert_eq!(
        plain(&d, "hang").await,
        Err(DecryptError::Command(CommandError::TimedOut { after: "300ms".into() }))
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(plain(&d, &b64("after-hang")).await.unwrap(), "after-hang");
    assert_ne!(pid(&pidfile), hung);
    wait_until_dead(hung).await;
}

#[tokio::test]
async fn garbage_answers_fail_their_value_and_never_shift_answers_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = command(&[], "5s", dir.path());
    let garbage = |what| Err(DecryptError::Command(CommandError::Garbage { what }));
    assert_eq!(plain(&d, "garbage").await, garbage("bytes that are not UTF-8 text"));
    assert_eq!(plain(&d, &b64("after-garbage")).await.unwrap(), "after-garbage");
    assert_eq!(plain(&d, "long").await, garbage("a line longer than 64 KiB"));
    assert_eq!(plain(&d, &b64("after-long")).await.unwrap(), "after-long");
    // Two lines for one value: the first is taken; the second must not become the next
    // value's answer, so the process is replaced before the next value.
    assert_eq!(plain(&d, "twice").await.unwrap(), "one");
    assert_eq!(plain(&d, &b64("after-twice")).await.unwrap(), "after-twice");
    assert_eq!(
        plain(&d, "noeol").await,
        Err(DecryptError::Command(CommandError::Exited {
            status: "exit status: 0".into()
        }))
    );
}

#[tokio::test]
async fn a_caller_that_gives_up_midway_does_not_shift_answers_either() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = command(&[], "5s", dir.path());
    // "slow" is answered after a second; the caller stops waiting long before.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), d.decrypt("slow"))
            .await
            .is_err()
    );
    assert_eq!(plain(&d, &b64("next-value")).await.unwrap(), "next-value");
}

#[tokio::test]
async fn an_empty_answer_refuses_one_value_and_keeps_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pidfile) = command(&[], "5s", dir.path());
    assert_eq!(plain(&d, &b64("before")).await.unwrap(), "before");
    let first = pid(&pidfile);
    assert_eq!(
        plain(&d, "refuse").await,
        Err(DecryptError::Command(CommandError::Refused))
    );
    assert_eq!(plain(&d, &b64("after")).await.unwrap(), "after");
    assert_eq!(pid(&pidfile), first);
}

#[tokio::test]
async fn a_value_with_a_line_break_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pidfile) = command(&[], "5s", dir.path());
    let err = plain(&d, "line\nbreak").await.unwrap_err();
    assert!(matches!(err, DecryptError::Format(_)), "{err:?}");
    assert!(!pidfile.exists(), "nothing was started for it");
}

#[tokio::test]
async fn repeated_failures_stop_restarts_until_the_cool_down_passes() {
    let program = fixture("decrypt-command.sh").display().to_string();
    let argv = [program.clone(), "--die-after".into(), "0".into()];
    let mut d = CommandDecryptor::new("cmd", &argv, Duration::from_secs(5)).unwrap();
    d.cool_down = Duration::from_millis(500);
    for _ in 0..MAX_FAILURES {
        let err = d.decrypt(&b64("x")).await.unwrap_err();
        assert_eq!(
            err,
            DecryptError::Command(CommandError::Exited {
                status: "exit status: 3".into()
            })
        );
    }
    let started = Instant::now();
    let err = d.decrypt(&b64("x")).await.unwrap_err();
    assert_eq!(
        err,
        DecryptError::Command(CommandError::GaveUp {
            failures: MAX_FAILURES,
            retry_in: "1s".into()
        })
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "fails at once, starting nothing"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let err = d.decrypt(&b64("x")).await.unwrap_err();
    assert!(
        matches!(err, DecryptError::Command(CommandError::Exited { .. })),
        "tried again: {err:?}"
    );
}

#[tokio::test]
async fn a_program_that_vanished_after_start_up_cannot_be_started() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("decrypt");
    std::fs::copy(fixture("decrypt-command.sh"), &copy).unwrap();
    let argv = [copy.display().to_string()];
    let d = CommandDecryptor::new("cmd", &argv, Duration::from_secs(5)).unwrap();
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(
        d.decrypt(&b64("x")).await.unwrap_err(),
        DecryptError::Command(CommandError::Spawn {
            program: copy.display().to_string(),
            kind: std::io::ErrorKind::NotFound
        })
    );
}

#[tokio::test]
async fn dropping_the_decryptor_kills_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pidfile) = command(&[], "5s", dir.path());
    assert_eq!(plain(&d, &b64("alive")).await.unwrap(), "alive");
    let child = pid(&pidfile);
    // Leave it busy ("hang" makes it sleep), so closing its stdin alone would not end it.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), d.decrypt("hang"))
            .await
            .is_err()
    );
    assert!(!is_dead(child));
    drop(d);
    wait_until_dead(child).await;
}

#[tokio::test]
async fn a_command_that_writes_much_to_stderr_is_not_blocked_by_it() {
    let dir = tempfile::tempdir().unwrap();
    // 200,000 bytes fill a pipe three times over: unread, they would stall the command.
    let (d, _) = command(&[], "5s", dir.path());
    assert_eq!(plain(&d, "chatty").await.unwrap(), "chatty-answer");
}

async fn wait_until_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_dead(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
