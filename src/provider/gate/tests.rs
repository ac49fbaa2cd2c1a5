use reqwest::header::HeaderMap;

use super::*;

fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> RawResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    RawResponse {
        status,
        headers: map,
        body: Vec::new(),
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const SLOTS: NonZeroUsize = NonZeroUsize::new(16).unwrap();

fn gate() -> Gate {
    Gate::new(
        "100/s".parse().unwrap(),
        NonZeroU32::new(1).unwrap(),
        SLOTS,
        HOUR,
        Duration::from_secs(60),
    )
}

#[test]
fn a_pause_never_shrinks() {
    let gate = gate();
    gate.pause(Duration::from_secs(5));
    gate.pause(Duration::from_secs(1));
    assert!(gate.pause_left().unwrap() > Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn ready_waits_out_the_pause() {
    let gate = gate();
    gate.pause(Duration::from_secs(2));
    let start = Instant::now();
    assert_eq!(gate.ready().await, Ok(()));
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(gate.pause_left().is_none());
}

/// Issue 7: `Retry-After: 31536000` (a year) and a 20-digit value once paused the
/// provider for a year or panicked in `Instant + Duration`.
#[test]
fn a_pause_is_clamped_to_the_cap_and_never_overflows() {
    for wait in [
        Duration::from_secs(31_536_000),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        let gate = gate();
        gate.pause(wait);
        let left = gate.pause_left().expect("paused");
        assert!(
            left <= HOUR && left > HOUR - Duration::from_secs(5),
            "{wait:?}: {left:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ready_does_not_wait_out_a_pause_longer_than_its_callers_wait() {
    let gate = gate();
    gate.pause(Duration::from_secs(600));
    let start = Instant::now();
    let Err(Paused(left)) = gate.ready().await else {
        panic!("ready waited out a 10 minute pause");
    };
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(
        left > Duration::from_secs(599) && left <= Duration::from_secs(600),
        "{left:?}"
    );
}

/// A caller already waiting for the limiter when a long pause begins gives up then,
/// instead of sleeping through the pause.
#[tokio::test]
async fn a_caller_waiting_for_the_limiter_gives_up_when_a_long_pause_begins() {
    let gate = std::sync::Arc::new(Gate::new(
        "1/s".parse().unwrap(),
        NonZeroU32::new(1).unwrap(),
        SLOTS,
        HOUR,
        Duration::from_secs(60),
    ));
    assert_eq!(gate.ready().await, Ok(()));
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move { gate.ready().await }
    });
    // The limiter lets the next call through a second after the first one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    gate.pause(Duration::from_secs(31_536_000));
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting caller slept through the pause")
        .unwrap();
    assert!(matches!(result, Err(Paused(left)) if left <= HOUR), "{result:?}");
}

/// Issue 10: a 429 after 60 accepted answers in the last second sets the rate just under
/// 60 a second.
#[test]
fn a_throttle_lowers_the_rate_to_what_was_accepted() {
    let g = gate();
    for _ in 0..60 {
        g.answered(&answer(200, &[]), &[]);
    }
    let throttle = answer(429, &[("retry-after", "1")]);
    g.answered(&throttle, &[]);
    assert!((g.effective_rate() - 58.2).abs() < 1e-9, "{}", g.effective_rate());
    // A flurry of 429s within the second does not cut again.
    g.answered(&throttle, &[]);
    assert!((g.effective_rate() - 58.2).abs() < 1e-9);
    // A 503 without Retry-After is an outage, not a throttle.
    let other = gate();
    other.answered(&answer(503, &[]), &[]);
    assert_eq!(other.effective_rate(), 100.0);
}

/// Headers saying nothing is left until the reset pause the provider until then.
#[test]
fn an_empty_window_pauses_until_its_reset() {
    let gate = gate();
    gate.answered(
        &answer(200, &[("ratelimit-remaining", "0"), ("ratelimit-reset", "30")]),
        &[],
    );
    let left = gate.pause_left().expect("paused");
    assert!(
        left > Duration::from_secs(29) && left <= Duration::from_secs(30),
        "{left:?}"
    );
}

/// A worker without a share (a newcomer waiting for the others to shrink theirs) calls
/// nothing until it is given one.
#[tokio::test]
async fn no_call_goes_out_without_a_share() {
    let gate = std::sync::Arc::new(gate());
    gate.set_share(0.0);
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move { gate.ready().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    gate.set_share(0.5);
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("given a share")
        .unwrap();
    assert_eq!(result, Ok(()));
}

/// n workers with a burst smaller than n: each gets a burst of one and gives up the excess
/// from its rate, so together they stay within rate + burst over a second.
#[test]
fn shares_split_rate_and_burst() {
    assert_eq!(local(30.0, 6, 1.0 / 3.0), (10.0, 2));
    let (rate, burst) = local(20.0, 1, 1.0 / 3.0);
    assert_eq!(burst, 1);
    assert!((3.0 * (rate + 1.0) - 21.0).abs() < 1e-9, "{rate}");
    assert_eq!(local(20.0, 5, 1.0), (20.0, 5));
}

/// A worker alone that closes its gate between drains takes its limiter back as it was:
/// its next drain's first call does not wait a period, and no burst comes afresh.
#[tokio::test]
async fn reopening_with_the_same_share_takes_the_parked_limiter_back() {
    let gate = Gate::new(
        "1/s".parse().unwrap(),
        NonZeroU32::new(1).unwrap(),
        SLOTS,
        HOUR,
        Duration::from_secs(60),
    );
    gate.set_share(0.0);
    gate.set_share(1.0);
    let first = tokio::time::timeout(Duration::from_millis(500), gate.ready()).await;
    assert_eq!(first, Ok(Ok(())), "the first call waited for a rebuilt limiter");
    gate.set_share(0.0);
    gate.set_share(1.0);
    let second = tokio::time::timeout(Duration::from_millis(300), gate.ready()).await;
    assert!(second.is_err(), "reopening gave a burst afresh");
}

/// Issue 10: the backlog a newcomer would wait behind: a pause's rest, plus the callers
/// already waiting at the rate; callers that leave (here, aborted) leave the queue.
#[tokio::test(start_paused = true)]
async fn the_backlog_counts_the_pause_and_the_callers_waiting() {
    let gate = std::sync::Arc::new(Gate::new(
        "2/s".parse().unwrap(),
        NonZeroU32::new(1).unwrap(),
        SLOTS,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    ));
    assert_eq!(gate.backlog(), Duration::ZERO);
    assert_eq!(gate.ready().await, Ok(()));
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.ready().await })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(gate.backlog(), Duration::from_secs(2), "4 callers at 2/s");
    gate.pause(Duration::from_secs(10));
    assert!(gate.backlog() > Duration::from_secs(11), "{:?}", gate.backlog());
    for w in waiters {
        w.abort();
    }
    tokio::task::yield_now().await;
    assert!(
        gate.backlog() <= Duration::from_secs(10),
        "dropped callers leave the queue"
    );
}

/// Issue 10: a provider's calls in flight stay within its slots; a caller waits for a slot
/// no longer than it said, counted in the backlog meanwhile, and a slot given back is free
/// for the next caller.
#[tokio::test(start_paused = true)]
async fn a_caller_waits_for_a_call_slot_no_longer_than_it_said() {
    let gate = std::sync::Arc::new(Gate::new(
        "2/s".parse().unwrap(),
        NonZeroU32::new(1).unwrap(),
        NonZeroUsize::new(1).unwrap(),
        HOUR,
        Duration::from_secs(60),
    ));
    let held = gate.slot(Duration::ZERO).await.expect("a free slot");
    assert_eq!(gate.calls_in_flight(), 1);
    assert_eq!(gate.slot(Duration::ZERO).await.err(), Some(Busy(Duration::ZERO)));
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move { gate.slot(Duration::from_secs(5)).await.map(drop) }
    });
    tokio::task::yield_now().await;
    assert_eq!(gate.backlog(), Duration::from_millis(500), "1 caller at 2/s");
    assert_eq!(waiter.await.unwrap(), Err(Busy(Duration::from_secs(5))));
    assert_eq!(gate.backlog(), Duration::ZERO, "a caller out of time leaves the queue");
    drop(held);
    assert_eq!(gate.calls_in_flight(), 0);
    let next = gate.slot(Duration::ZERO).await;
    assert!(next.is_ok(), "the slot given back is free");
}
