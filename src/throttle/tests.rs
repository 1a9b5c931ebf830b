use super::*;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A clock that moves only when told to.
struct ManualClock {
    start: Instant,
    offset_ms: AtomicU64,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            offset_ms: AtomicU64::new(0),
        })
    }

    fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).expect("test durations are small");
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

fn throttle(limits: Limits) -> (Throttle, Arc<ManualClock>) {
    let clock = ManualClock::new();
    (Throttle::with_clock(limits, clock.clone()), clock)
}

fn limits(per_user: u32, per_ip: u32) -> Limits {
    Limits {
        per_user,
        per_ip,
        ..Limits::default()
    }
}

const IP: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
const OTHER_IP: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
const SECOND: Duration = Duration::from_secs(1);

/// [`Throttle::check`]'s verdict as the wait alone.
fn wait(t: &Throttle, username: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
    t.check(username, ip).map_err(|e| e.retry_after)
}

/// The 429 of a refusal; panics on a 503.
fn throttled_by(refusal: Refusal) -> Throttled {
    match refusal {
        Refusal::Throttled(throttled) => throttled,
        Refusal::Busy => panic!("a wait, not a 429"),
    }
}

fn fail(t: &Throttle, username: &str, ip: Option<IpAddr>, times: u32) {
    for _ in 0..times {
        t.record_failure(username, ip);
    }
}

#[test]
fn defaults_are_the_contracts() {
    let l = Limits::default();
    assert_eq!((l.per_user, l.per_ip), (10, 100));
    assert_eq!(l.window, Duration::from_secs(60));
    assert_eq!(l.max_entries, 100_000);
}

#[test]
fn the_nth_failure_throttles_the_username() {
    let (t, _) = throttle(limits(3, 0));
    fail(&t, "johndoe", IP, 2);
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    fail(&t, "johndoe", IP, 1);
    assert!(wait(&t, "johndoe", IP).is_err());
    // From any address: the count is the username's.
    assert!(wait(&t, "johndoe", OTHER_IP).is_err());
    assert!(wait(&t, "johndoe", None).is_err());
}

#[test]
fn other_usernames_are_unaffected() {
    let (t, _) = throttle(limits(3, 0));
    fail(&t, "johndoe", IP, 10);
    assert!(wait(&t, "johndoe", IP).is_err());
    assert_eq!(wait(&t, "alice", IP), Ok(()));
    assert_eq!(wait(&t, "johndoe2", IP), Ok(()));
    assert_eq!(wait(&t, "JohnDoe", IP), Ok(()));
}

#[test]
fn a_success_resets_the_username_only() {
    let (t, _) = throttle(limits(3, 5));
    fail(&t, "johndoe", IP, 3);
    fail(&t, "mallory", IP, 2);
    assert!(wait(&t, "johndoe", None).is_err());
    t.record_success("johndoe");
    assert_eq!(wait(&t, "johndoe", None), Ok(()));
    // The address has 5 failures and stays throttled.
    assert!(wait(&t, "johndoe", IP).is_err());
    assert!(wait(&t, "alice", IP).is_err());
    assert_eq!(wait(&t, "alice", OTHER_IP), Ok(()));
    // The count starts again from zero.
    fail(&t, "johndoe", OTHER_IP, 2);
    assert_eq!(wait(&t, "johndoe", None), Ok(()));
}

#[test]
fn the_address_dimension_is_independent() {
    let (t, _) = throttle(limits(0, 4));
    // Four usernames, one failure each, from one address.
    for name in ["a", "b", "c"] {
        t.record_failure(name, IP);
    }
    assert_eq!(wait(&t, "d", IP), Ok(()));
    t.record_failure("d", IP);
    assert!(wait(&t, "e", IP).is_err());
    assert!(wait(&t, "a", IP).is_err());
    assert_eq!(wait(&t, "a", OTHER_IP), Ok(()));
    assert_eq!(wait(&t, "a", None), Ok(()));
}

#[test]
fn zero_disables_a_dimension_and_holds_nothing() {
    let (t, _) = throttle(limits(0, 0));
    fail(&t, "johndoe", IP, 1000);
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    assert_eq!(t.len(), (0, 0));
    assert!(t.is_empty());

    let (t, _) = throttle(Limits {
        max_entries: 0,
        ..limits(1, 1)
    });
    fail(&t, "johndoe", IP, 5);
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    assert_eq!(t.len(), (0, 0));
}

#[test]
fn failures_leave_the_window() {
    let (t, clock) = throttle(limits(3, 0));
    t.record_failure("johndoe", IP); // t = 0
    clock.advance(20 * SECOND);
    t.record_failure("johndoe", IP); // t = 20
    clock.advance(20 * SECOND);
    t.record_failure("johndoe", IP); // t = 40
    assert!(wait(&t, "johndoe", IP).is_err());
    clock.advance(20 * SECOND - Duration::from_millis(1));
    assert!(wait(&t, "johndoe", IP).is_err(), "the first still counts");
    clock.advance(Duration::from_millis(1));
    assert_eq!(wait(&t, "johndoe", IP), Ok(()), "the first has left");
    t.record_failure("johndoe", IP); // t = 60: 20, 40, 60
    assert!(wait(&t, "johndoe", IP).is_err());
    clock.advance(60 * SECOND);
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    assert_eq!(t.len(), (0, 0), "an expired key is dropped");
}

#[test]
fn retry_after_is_the_wait_for_the_oldest_failure() {
    let (t, clock) = throttle(limits(2, 0));
    t.record_failure("johndoe", IP); // t = 0
    clock.advance(Duration::from_millis(10_500));
    t.record_failure("johndoe", IP); // t = 10.5
    assert_eq!(wait(&t, "johndoe", IP), Err(Duration::from_secs(50)));
    clock.advance(Duration::from_millis(100)); // 49.4 s left: rounded up
    assert_eq!(wait(&t, "johndoe", IP), Err(Duration::from_secs(50)));
    clock.advance(Duration::from_millis(49_399)); // 1 ms left
    assert_eq!(wait(&t, "johndoe", IP), Err(SECOND));
    clock.advance(Duration::from_millis(1));
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    // More failures than the limit: the newest `limit` count, so the
    // wait is for the older of those two.
    fail(&t, "johndoe", IP, 5);
    assert_eq!(wait(&t, "johndoe", IP), Err(60 * SECOND));
}

#[test]
fn retry_after_is_the_longer_of_both_dimensions() {
    let (t, clock) = throttle(limits(1, 2));
    t.record_failure("a", IP); // t = 0
    clock.advance(30 * SECOND);
    t.record_failure("b", IP);
    // At t = 30, "b" waits 60 s and the address 30 s.
    assert_eq!(wait(&t, "b", IP), Err(60 * SECOND));
    assert_eq!(wait(&t, "c", IP), Err(30 * SECOND));
    assert_eq!(wait(&t, "b", None), Err(60 * SECOND));
}

#[test]
fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
    let (t, _) = throttle(limits(0, 2));
    let a: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
    let c: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
    t.record_failure("x", Some(a));
    t.record_failure("x", Some(b));
    assert!(wait(&t, "x", Some(a)).is_err());
    assert_eq!(wait(&t, "x", Some(c)), Ok(()));

    let v4: IpAddr = "192.0.2.1".parse().expect("an address");
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("an address");
    let mapped_other: IpAddr = "::ffff:192.0.2.2".parse().expect("an address");
    t.record_failure("x", Some(mapped));
    t.record_failure("x", Some(v4));
    assert!(wait(&t, "x", Some(v4)).is_err());
    assert!(wait(&t, "x", Some(mapped)).is_err());
    assert_eq!(wait(&t, "x", Some(mapped_other)), Ok(()));
}

#[test]
fn a_flood_of_usernames_stays_within_the_cap() {
    // Throttled keys all (limit 1), so eviction takes the oldest of them.
    let (t, clock) = throttle(Limits {
        max_entries: 1000,
        ..limits(1, 0)
    });
    for i in 0..200_000u32 {
        t.record_failure(&i.to_string(), IP);
        if i % 1000 == 0 {
            clock.advance(Duration::from_millis(1));
            assert!(t.len().0 <= 1000);
        }
    }
    assert_eq!(t.len(), (1000, 0));
    // The newest are held, the oldest are gone.
    assert!(wait(&t, "199999", None).is_err());
    assert!(wait(&t, "199000", None).is_err());
    assert_eq!(wait(&t, "198999", None), Ok(()));
    assert_eq!(wait(&t, "0", None), Ok(()));
}

#[test]
fn eviction_removes_the_key_failed_longest_ago() {
    let (t, clock) = throttle(Limits {
        max_entries: 3,
        ..limits(2, 0)
    });
    fail(&t, "a", None, 2);
    clock.advance(SECOND);
    fail(&t, "b", None, 2);
    clock.advance(SECOND);
    fail(&t, "c", None, 2);
    clock.advance(SECOND);
    t.record_failure("a", None); // "a" is now the most recent
    t.record_failure("d", None); // evicts "b"
    assert_eq!(t.len(), (3, 0));
    assert!(wait(&t, "a", None).is_err());
    assert_eq!(wait(&t, "b", None), Ok(()));
    assert!(wait(&t, "c", None).is_err());
    t.record_failure("d", None);
    assert!(wait(&t, "d", None).is_err());
}

#[test]
fn addresses_are_capped_too() {
    let (t, _) = throttle(Limits {
        max_entries: 100,
        ..limits(0, 5)
    });
    for i in 0..10_000u32 {
        t.record_failure("x", Some(IpAddr::V4(Ipv4Addr::from(i))));
    }
    assert_eq!(t.len(), (0, 100));
}

#[test]
fn expired_keys_are_purged_as_others_come() {
    let (t, clock) = throttle(limits(5, 5));
    for i in 0..100u32 {
        t.record_failure(&i.to_string(), Some(IpAddr::V4(Ipv4Addr::from(i))));
    }
    assert_eq!(t.len(), (100, 100));
    clock.advance(61 * SECOND);
    for _ in 0..10 {
        t.record_failure("new", IP);
    }
    assert_eq!(t.len(), (1, 1));
}

#[test]
fn long_usernames_cost_a_hash() {
    let (t, _) = throttle(limits(1, 0));
    let long = "x".repeat(16 * 1024);
    t.record_failure(&long, None);
    assert!(wait(&t, &long, None).is_err());
    assert_eq!(wait(&t, &long[1..], None), Ok(()));
}

#[test]
fn empty_username_and_no_address_do_not_panic() {
    let (t, _) = throttle(limits(1, 1));
    assert_eq!(wait(&t, "", None), Ok(()));
    t.record_failure("", None);
    assert!(wait(&t, "", None).is_err());
    t.record_success("");
    t.record_success("never seen");
    assert_eq!(wait(&t, "", None), Ok(()));
    assert_eq!(t.len(), (0, 0));
}

#[test]
fn it_is_shareable_and_debuggable() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Throttle>();
    let t = Throttle::new(Limits::default());
    t.record_failure("johndoe", IP);
    let shown = format!("{t:?}");
    assert!(shown.contains("users: 1"), "{shown}");
    assert!(!shown.contains("johndoe"), "{shown}");
}

#[test]
fn admission_reserves_so_concurrent_guesses_get_at_most_the_limit() {
    let (t, _) = throttle(limits(10, 0));
    // Forty guesses in flight at once: none has been judged yet.
    let admitted: Vec<Attempt<'_>> = (0..40)
        .filter_map(|_| t.try_admit("johndoe", IP).ok())
        .collect();
    assert_eq!(admitted.len(), 10);
    // The eleventh would wait: ten in flight fill the budget, yet no
    // failure is settled, so it is no 429.
    assert_eq!(t.try_admit("johndoe", IP).unwrap_err(), Refusal::Busy);
    assert_eq!(wait(&t, "johndoe", IP), Ok(()), "nothing settled yet");
    admitted.into_iter().for_each(Attempt::failed);
    let refused = throttled_by(t.try_admit("johndoe", OTHER_IP).unwrap_err());
    assert!(refused.username && !refused.address, "{refused:?}");
}

#[test]
fn from_many_addresses_the_username_still_gets_its_limit() {
    let (t, _) = throttle(limits(10, 100));
    let admitted = (0..40u32)
        .filter_map(|i| {
            t.try_admit("johndoe", Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
                .ok()
        })
        .count();
    assert_eq!(admitted, 10);
}

#[test]
fn the_address_limit_reserves_too() {
    let (t, _) = throttle(limits(0, 5));
    let admitted: Vec<_> = (0..40)
        .filter_map(|i| t.try_admit(&format!("user{i}"), IP).ok())
        .collect();
    assert_eq!(admitted.len(), 5);
    assert_eq!(t.try_admit("other", IP).unwrap_err(), Refusal::Busy);
    assert!(t.try_admit("other", OTHER_IP).is_ok());
    admitted.into_iter().for_each(Attempt::failed);
    let refused = throttled_by(t.try_admit("other", IP).unwrap_err());
    assert!(refused.address && !refused.username, "{refused:?}");
}

#[test]
fn a_success_resets_the_username_and_returns_the_address_reservation() {
    let (t, _) = throttle(limits(3, 3));
    for attempt in [t.try_admit("johndoe", IP), t.try_admit("johndoe", IP)] {
        attempt.unwrap().failed();
    }
    t.try_admit("johndoe", IP).unwrap().succeeded();
    // The username starts again from zero; the address keeps its two
    // failures, not the success.
    assert_eq!(wait(&t, "johndoe", None), Ok(()));
    t.try_admit("x", IP).unwrap().failed();
    assert!(wait(&t, "y", IP).is_err(), "two failures and this one");
}

#[test]
fn a_refund_counts_nothing() {
    let (t, _) = throttle(limits(2, 2));
    for _ in 0..10 {
        t.try_admit("johndoe", IP).unwrap().refund();
    }
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    assert!(t.is_empty(), "{t:?}");
    // A refund takes back its own reservation, not another's.
    t.try_admit("johndoe", IP).unwrap().failed();
    let pending = t.try_admit("johndoe", IP).unwrap();
    assert_eq!(t.try_admit("johndoe", IP).unwrap_err(), Refusal::Busy);
    pending.refund();
    assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    t.try_admit("johndoe", IP).unwrap().failed();
    assert!(wait(&t, "johndoe", IP).is_err());
}

#[test]
fn an_address_only_attempt_leaves_usernames_alone() {
    let (t, _) = throttle(limits(1, 2));
    t.try_admit("johndoe", OTHER_IP).unwrap().failed();
    t.try_admit_address(IP).unwrap().failed();
    // A success refunds the address and resets no username.
    t.try_admit_address(IP).unwrap().refund();
    assert!(wait(&t, "johndoe", None).is_err());
    assert_eq!(wait(&t, "x", IP), Ok(()));
    t.try_admit_address(IP).unwrap().failed();
    let refused = throttled_by(t.try_admit_address(IP).unwrap_err());
    assert!(refused.address && !refused.username);
    assert!(t.try_admit_address(None).is_ok());
}

#[test]
fn a_dropped_attempt_counts_as_a_failure() {
    let (t, _) = throttle(limits(1, 0));
    drop(t.try_admit("johndoe", None).unwrap());
    assert!(wait(&t, "johndoe", None).is_err());
}

#[test]
fn a_check_reserves_nothing() {
    let (t, _) = throttle(limits(1, 1));
    for _ in 0..5 {
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
    }
    assert!(t.is_empty());
}

#[test]
fn eviction_takes_keys_that_are_not_throttled_first() {
    let (t, clock) = throttle(Limits {
        max_entries: 3,
        ..limits(2, 0)
    });
    fail(&t, "victim", None, 2);
    clock.advance(SECOND);
    for i in 0..100 {
        t.record_failure(&format!("spray{i}"), None);
    }
    assert_eq!(t.len().0, 3);
    assert!(wait(&t, "victim", None).is_err(), "the lockout survived");
    assert!(wait(&t, "spray99", None).is_ok());
    // Throttled keys go too once nothing else is left, oldest first.
    fail(&t, "a", None, 2);
    fail(&t, "b", None, 2);
    fail(&t, "c", None, 2);
    assert_eq!(wait(&t, "victim", None), Ok(()));
    assert!(wait(&t, "a", None).is_err() && wait(&t, "c", None).is_err());
}

#[test]
fn a_lockout_survives_a_million_usernames_from_thousands_of_64s() {
    // The default limits and table sizes, and the spray an attacker
    // with a /52 of IPv6 can send within one window: a million
    // distinct usernames from 4096 /64s, each attempt admitted while
    // its address may still fail, and failed.
    let (t, clock) = throttle(Limits::default());
    let victim_ip = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
    for _ in 0..10 {
        t.try_admit("victim", victim_ip).unwrap().failed();
    }
    for i in 0..90 {
        t.try_admit(&format!("other{i}"), victim_ip)
            .unwrap()
            .failed();
    }
    assert!(t.check("victim", None).is_err());
    assert!(t.check("anyone", victim_ip).unwrap_err().address);
    let prefix = 0x2001_0db8_0000_0000_u128 << 64;
    let mut admitted = 0u32;
    let mut username = String::new();
    for i in 0..1_000_000u128 {
        let subnet = i % 4096;
        let ip = IpAddr::V6(std::net::Ipv6Addr::from(prefix | (subnet << 64) | i));
        username.clear();
        write!(username, "spray{i}").unwrap();
        if let Ok(attempt) = t.try_admit(&username, Some(ip)) {
            attempt.failed();
            admitted += 1;
        }
        if i % 100_000 == 0 {
            clock.advance(SECOND);
        }
    }
    // Each /64 got its 100 failures; the rest were refused unhashed.
    assert_eq!(admitted, 4096 * 100);
    let (users, ips) = t.len();
    assert!(users <= 100_000 && ips <= 100_000, "{users} {ips}");
    assert!(t.check("victim", None).unwrap_err().username);
    assert!(t.check("anyone", victim_ip).unwrap_err().address);
    // And the lockout still ends when its window does.
    clock.advance(60 * SECOND);
    assert_eq!(wait(&t, "victim", victim_ip), Ok(()));
}

#[test]
fn a_success_keeps_the_other_attempts_in_flight() {
    // One right password among guesses in flight: resetting the
    // username's failures must not free the guesses' places, or a
    // guesser who also sends one good login would get past the limit.
    let (t, _) = throttle(limits(3, 0));
    let good = t.try_admit("johndoe", IP).unwrap();
    let guesses = [t.try_admit("johndoe", IP), t.try_admit("johndoe", IP)];
    good.succeeded();
    let third = t.try_admit("johndoe", IP).unwrap();
    assert_eq!(t.try_admit("johndoe", IP).unwrap_err(), Refusal::Busy);
    guesses.into_iter().for_each(|g| g.unwrap().failed());
    third.failed();
    assert!(throttled_by(t.try_admit("johndoe", IP).unwrap_err()).username);
}

#[tokio::test(start_paused = true)]
async fn right_passwords_past_the_budget_wait_and_are_let_in() {
    let t = Arc::new(throttle(limits(10, 100)).0);
    let deadline = tokio::time::Instant::now() + 2 * SECOND;
    // 1000 logins of one user from 100 addresses at once, each right.
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let t = t.clone();
        logins.spawn(async move {
            let ip = Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i % 100)));
            let attempt = t.admit("johndoe", ip, deadline).await?;
            // A hash's worth of time, ten at once.
            tokio::time::sleep(Duration::from_millis(10)).await;
            attempt.succeeded();
            Ok::<(), Refusal>(())
        });
    }
    let mut ok = 0;
    while let Some(login) = logins.join_next().await {
        assert_eq!(login.unwrap(), Ok(()));
        ok += 1;
    }
    assert_eq!(ok, 1000, "every one in, ten at a time, within 2 s");
    assert!(t.is_empty(), "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn waiting_guesses_see_the_limit_reached_and_get_their_429() {
    let t = Arc::new(throttle(limits(10, 0)).0);
    let deadline = tokio::time::Instant::now() + 2 * SECOND;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..40u32 {
        let t = t.clone();
        guesses.spawn(async move {
            let ip = Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i)));
            let attempt = t.admit("johndoe", ip, deadline).await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
            attempt.failed();
            Ok::<(), Refusal>(())
        });
    }
    let (mut hashed, mut throttled) = (0, 0);
    while let Some(guess) = guesses.join_next().await {
        match guess.unwrap() {
            Ok(()) => hashed += 1,
            Err(Refusal::Throttled(_)) => throttled += 1,
            Err(Refusal::Busy) => panic!("a 503 where the limit was known"),
        }
    }
    assert_eq!((hashed, throttled), (10, 30));
}

#[tokio::test(start_paused = true)]
async fn a_wait_ends_at_the_deadline_and_leaves_nothing() {
    let t = Arc::new(throttle(limits(1, 0)).0);
    let held = t.try_admit("johndoe", IP).unwrap();
    let start = tokio::time::Instant::now();
    let refused = t.admit("johndoe", OTHER_IP, start + SECOND).await;
    assert_eq!(refused.unwrap_err(), Refusal::Busy);
    assert_eq!(start.elapsed(), SECOND);
    // A waiter given up (its client gone) leaves no reservation.
    let gone = tokio::time::timeout(
        Duration::from_millis(10),
        t.admit("johndoe", OTHER_IP, start + 10 * SECOND),
    )
    .await;
    assert!(gone.is_err());
    held.refund();
    assert!(t.is_empty(), "{t:?}");
    t.admit("johndoe", IP, start).await.unwrap().succeeded();
    // The deadline in the past: admitted when free, Busy when not.
    let held = t.try_admit("johndoe", IP).unwrap();
    assert_eq!(
        t.admit("johndoe", IP, start).await.unwrap_err(),
        Refusal::Busy
    );
    held.refund();
}

#[tokio::test(start_paused = true)]
async fn a_freed_place_goes_to_the_attempt_waiting_longest() {
    let t = Arc::new(throttle(limits(1, 0)).0);
    let deadline = tokio::time::Instant::now() + 10 * SECOND;
    let held = t.try_admit("johndoe", IP).unwrap();
    let mut waiters = Vec::new();
    for i in 0..3u32 {
        let t = t.clone();
        waiters.push(tokio::spawn(async move {
            let attempt = t.admit("johndoe", IP, deadline).await?;
            let admitted = tokio::time::Instant::now();
            tokio::time::sleep(SECOND).await;
            attempt.succeeded();
            Ok::<_, Refusal>((i, admitted))
        }));
        // Each in line before the next comes.
        tokio::task::yield_now().await;
    }
    held.succeeded();
    // A newcomer does not take the place freed for those in line.
    assert_eq!(t.try_admit("johndoe", OTHER_IP).unwrap_err(), Refusal::Busy);
    let mut order = Vec::new();
    for waiter in waiters {
        order.push(waiter.await.unwrap().unwrap());
    }
    order.sort_by_key(|&(_, admitted)| admitted);
    let order: Vec<u32> = order.into_iter().map(|(i, _)| i).collect();
    assert_eq!(order, [0, 1, 2], "first come, first served");
    assert!(t.is_empty(), "{t:?}");
    assert!(lock(&t.users).lines.is_empty(), "nobody left in line");
}
