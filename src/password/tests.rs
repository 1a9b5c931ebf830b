use super::*;

#[test]
fn hash_then_verify() {
    let phc = hash_password("secret").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    let params = check_phc(&phc).unwrap();
    assert_eq!(
        (params.m_cost(), params.t_cost(), params.p_cost()),
        (19456, 2, 1)
    );
    assert!(verify_password(&phc, b"secret"));
    assert!(!verify_password(&phc, b"secret2"));
    assert!(!verify_password(&phc, b""));
}

#[test]
fn two_hashes_of_one_password_differ_by_salt() {
    assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
}

#[test]
fn rejects_what_is_not_an_argon2_phc_string() {
    assert!(matches!(
        check_phc("fakehashedsecret"),
        Err(PasswordError::NotPhc(_))
    ));
    assert!(matches!(check_phc(""), Err(PasswordError::NotPhc(_))));
    assert!(matches!(
        check_phc("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
        Err(PasswordError::Algorithm(_))
    ));
    assert!(matches!(
        check_phc("$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
        Err(PasswordError::Params(_))
    ));
    assert!(matches!(
        check_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"),
        Err(PasswordError::NotPhc(_))
    ));
    assert!(!verify_password("garbage", b"secret"));
}

#[test]
fn other_frameworks_hashes_are_named_and_never_shown() {
    for (hash, scheme) in [
        // passlib's bcrypt, and the other prefixes bcrypt libraries write.
        (
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "bcrypt",
        ),
        (
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "bcrypt",
        ),
        (
            "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "bcrypt",
        ),
        (
            "$bcrypt-sha256$v=2,t=2b,r=12$n79VH.0Q2TMWmt3Oqt9uku$Kq4Noyk3094Y2QlB8NdRT8SvGiI4ft2",
            "bcrypt",
        ),
        (
            "bcrypt_sha256$$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "bcrypt",
        ),
        (
            "$pbkdf2-sha256$29000$N2YuJcL5HyPzrmuWiaAbUg$PGpz5iNPMJmcz3BC8eWvmoT5DTQQqAPyGQvvobOA/H0",
            "PBKDF2",
        ),
        (
            "pbkdf2_sha256$600000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA=",
            "PBKDF2",
        ),
        ("$6$rounds=656000$c2FsdA$aGFzaA", "SHA-512-crypt"),
    ] {
        assert_eq!(check_phc(hash), Err(PasswordError::Unsupported(scheme)), "{hash}");
        let shown = check_phc(hash).unwrap_err().to_string();
        assert_eq!(
            shown,
            format!(
                "a {scheme} hash: {scheme} is not supported (argon2 only); \
                 rehash with `password-bearer hash-password`"
            )
        );
        assert!(!verify_password(hash, b"secret"));
    }
    // What matches no known format is not named after its first field.
    assert!(matches!(
        check_phc("$secretword$x$y"),
        Err(PasswordError::NotPhc(e)) if !e.contains("secretword")
    ));
}

#[tokio::test]
async fn the_dummy_hash_uses_the_users_memory_cost() {
    // Unknown users cost a hash at the usual parameters: with other
    // parameters (or none) their answer time would tell them apart.
    let verifier = Verifier::new(Params::new(64, 3, 1, None).unwrap());
    assert_eq!(verifier.verify(None, b"pw").await, Ok(false));
    let pool = verifier.memory.lock().unwrap();
    assert_eq!(pool.len(), 1);
    assert_eq!(pool[0].len(), 64, "the dummy hash used m=64 KiB of blocks");
}

#[tokio::test]
async fn memory_is_reused_and_bounded_by_the_permits() {
    let cheap = Params::new(8, 1, 1, None).unwrap();
    let verifier = Arc::new(Verifier::new(cheap.clone()));
    let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
    let checks = verifying(&verifier, &phc, 32);
    for check in checks {
        assert_eq!(check.await.unwrap(), Ok(true));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(verifier.memory.lock().unwrap().len() <= cores);
}

#[tokio::test]
async fn verifier_answers_false_for_unknown_users() {
    let cheap = Params::new(8, 1, 1, None).unwrap();
    let verifier = Verifier::new(cheap.clone());
    let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
    assert_eq!(verifier.verify(Some(phc.clone()), b"pw").await, Ok(true));
    assert_eq!(verifier.verify(Some(phc), b"nope").await, Ok(false));
    assert_eq!(verifier.verify(None, b"pw").await, Ok(false));
}

/// `n` logins of the right password, each verifying on its own task.
fn verifying(
    verifier: &Arc<Verifier>,
    phc: &Arc<str>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<bool, Busy>>> {
    (0..n)
        .map(|_| {
            let (verifier, phc) = (verifier.clone(), phc.clone());
            tokio::spawn(async move { verifier.verify(Some(phc), b"pw").await })
        })
        .collect()
}

fn cheap_verifier(slots: usize, max_wait: Duration) -> (Arc<Verifier>, Arc<str>) {
    let cheap = Params::new(8, 1, 1, None).unwrap();
    let phc = hash_with_params(b"pw", cheap.clone()).unwrap().into();
    (Arc::new(Verifier::with_limits(cheap, slots, max_wait)), phc)
}

#[tokio::test(start_paused = true)]
async fn a_login_that_cannot_start_within_the_wait_is_busy() {
    let (verifier, phc) = cheap_verifier(1, Duration::from_millis(1500));
    let held = verifier.permits.clone().acquire_owned().await.unwrap();
    let start = tokio::time::Instant::now();
    let busy = verifier.verify(Some(phc.clone()), b"pw").await;
    assert_eq!(
        busy,
        Err(Busy {
            retry_after: Duration::from_secs(2)
        })
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(1500),
        "the whole wait, no more"
    );
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 0);
    drop(held);
    assert_eq!(verifier.verify(Some(phc), b"pw").await, Ok(true));
}

#[tokio::test(start_paused = true)]
async fn a_queue_already_too_long_is_refused_at_once() {
    let (verifier, phc) = cheap_verifier(2, Duration::from_millis(100));
    // Recent hashes took 100 ms (50 ms at the margin's speed); both
    // slots are taken.
    verifier.hash_micros.store(100_000, Ordering::Relaxed);
    let held = verifier
        .permits
        .clone()
        .acquire_many_owned(2)
        .await
        .unwrap();
    let waiters = verifying(&verifier, &phc, 6);
    tokio::task::yield_now().await;
    // Six wait (the last of them to start after two more rounds, at
    // 50 ms within the wait); the next would need three even at 50 ms.
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 6);
    let start = tokio::time::Instant::now();
    assert!(verifier.verify(Some(phc.clone()), b"pw").await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap().ok();
    }
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cold_queue_is_judged_once_the_first_hash_is_timed() {
    let (verifier, phc) = cheap_verifier(1, Duration::from_secs(2));
    let held = verifier.permits.clone().acquire_owned().await.unwrap();
    // Ten logins arrive before any hash was timed: all of them wait.
    let waiters = verifying(&verifier, &phc, 10);
    tokio::task::yield_now().await;
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 10);
    // The first hash took 1 s: even were hashes twice as fast, those
    // with five or more ahead of them cannot start within 2 s, and are
    // refused now, not in 2 s.
    let start = tokio::time::Instant::now();
    assert!(average_in(
        &verifier.hash_micros,
        Duration::from_millis(1000)
    ));
    verifier.first_estimate.notify_waiters();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 5);
    assert_eq!(start.elapsed(), Duration::ZERO);
    let mut refused = 0;
    for waiter in &waiters[5..] {
        refused += usize::from(waiter.is_finished());
    }
    assert_eq!(refused, 5, "the last five");
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap().ok();
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_hash_refuses_no_login_the_wait_allows() {
    // A fresh server on a busy machine: its first hash took 700 ms
    // (cold memory, other processes), the next ones are fast. Judged on
    // that one sample, the two logins with six and seven ahead of them
    // (three rounds of 700 ms) were refused at once, although the queue
    // drained in time; now the margin lets them wait, and they start.
    let (verifier, phc) = cheap_verifier(2, Duration::from_secs(2));
    let held = verifier
        .permits
        .clone()
        .acquire_many_owned(2)
        .await
        .unwrap();
    let waiters = verifying(&verifier, &phc, 8);
    tokio::task::yield_now().await;
    assert!(average_in(
        &verifier.hash_micros,
        Duration::from_millis(700)
    ));
    verifier.first_estimate.notify_waiters();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 8, "none refused");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(held);
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Ok(true));
    }
}

#[tokio::test(start_paused = true)]
async fn a_login_given_up_leaves_the_queue() {
    let (verifier, phc) = cheap_verifier(1, Duration::from_secs(2));
    let held = verifier.permits.clone().acquire_owned().await.unwrap();
    let gone = tokio::time::timeout(
        Duration::from_millis(10),
        verifier.verify(Some(phc.clone()), b"pw"),
    )
    .await;
    assert!(gone.is_err());
    assert_eq!(verifier.waiting.load(Ordering::Relaxed), 0);
    drop(held);
    assert_eq!(verifier.verify(Some(phc), b"pw").await, Ok(true));
}

#[tokio::test]
async fn failures_are_answered_at_the_slowest_hash_time_and_successes_at_once() {
    let cheap = Params::new(8, 1, 1, None).unwrap();
    let verifier = Verifier::new(cheap.clone());
    // A user with 512 times the work among users with the cheap one.
    verifier.set_slowest_params(&Params::new(8 * 512, 1, 1, None).unwrap());
    let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
    for (hash, password) in [(None, &b"pw"[..]), (Some(phc.clone()), b"nope")] {
        let start = Instant::now();
        assert_eq!(verifier.verify(hash, password).await, Ok(false));
        let took = start.elapsed();
        // Nothing was hashed since: the target it was held to.
        let target = verifier.padding.target();
        assert!(took >= target, "{took:?} < {target:?}");
        assert!(
            target
                >= Duration::from_nanos(
                    512 * 8 * verifier.padding.unit_nanos.load(Ordering::Relaxed)
                ),
            "{target:?}"
        );
    }
    let start = Instant::now();
    assert_eq!(verifier.verify(Some(phc), b"pw").await, Ok(true));
    assert!(start.elapsed() < verifier.padding.target(), "not padded");
}

#[test]
fn the_padding_follows_the_slowest_hash() {
    // The larger of the two per-unit times, plus a quarter.
    assert_eq!(padding_target(1000, 40, 0), Duration::from_micros(50));
    assert_eq!(padding_target(1000, 40, 80), Duration::from_micros(100));
    assert_eq!(padding_target(1000, 80, 40), Duration::from_micros(100));
    assert_eq!(padding_target(0, 80, 40), Duration::ZERO);

    let padding = Padding::new(&Params::new(8, 1, 1, None).unwrap());
    assert_eq!(padding.slowest.load(Ordering::Relaxed), 8);
    padding.set_slowest(800);
    padding.observe(8, Duration::from_micros(8));
    assert_eq!(padding.unit_nanos.load(Ordering::Relaxed), 1000);
    assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 0);
    assert_eq!(padding.target(), Duration::from_micros(1000));
    // The slowest user's own hashes, slower per unit, set the pace.
    padding.observe(800, Duration::from_micros(1600));
    assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 2000);
    assert_eq!(padding.target(), Duration::from_micros(2000));
    // A costlier hash than any user's at load (one added in the
    // database since) raises the slowest.
    padding.observe(1600, Duration::from_micros(4800));
    assert_eq!(padding.slowest.load(Ordering::Relaxed), 1600);
    assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 3000);
    // A reload to other parameters forgets the old ones' pace.
    padding.set_slowest(800);
    assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 0);
    padding.set_slowest(800);
    padding.observe(800, Duration::from_micros(1600));
    padding.set_slowest(800);
    assert_eq!(
        padding.slowest_unit_nanos.load(Ordering::Relaxed),
        2000,
        "same parameters, kept"
    );
}

#[test]
fn the_hash_time_average_follows_the_hashes() {
    let average = AtomicU64::new(0);
    assert!(average_in(&average, Duration::from_millis(20)), "the first");
    assert_eq!(average.load(Ordering::Relaxed), 20_000);
    for _ in 0..40 {
        assert!(!average_in(&average, Duration::from_millis(40)));
    }
    let now = average.load(Ordering::Relaxed);
    assert!((39_000..=40_000).contains(&now), "{now}");
}
