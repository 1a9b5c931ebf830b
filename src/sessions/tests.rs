use super::*;

const NOW: i64 = 1_700_000_000;
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

#[test]
fn a_session_knows_its_users_hash_by_a_keyed_fingerprint_only() {
    let session = Session::start("johndoe", HASH, "", NOW, NOW + 60).unwrap();
    assert!(session.started_with(HASH));
    // Another salt (a new password, or the user re-created), one
    // character more or less: another hash.
    let other = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHU$aGFzaGhhc2g";
    for changed in [other, &HASH[..HASH.len() - 1], &format!("{HASH}x"), ""] {
        assert!(!session.started_with(changed), "{changed}");
    }
    // Keyed by each session's secret: two sessions of one user show
    // unrelated fingerprints, and neither holds the hash.
    let twin = Session::start("johndoe", HASH, "", NOW, NOW + 60).unwrap();
    assert!(twin.started_with(HASH));
    assert_ne!(session.fingerprint, twin.fingerprint);
    assert!(!format!("{session:?}").contains("argon2"));
}

#[test]
fn a_rotation_forgives_one_retry_of_the_previous_token_within_its_window() {
    let mut s = Session::start("johndoe", HASH, "", NOW, NOW + 600).unwrap();
    assert_eq!(s.rotate(1, NOW, NOW + 60), Advance::Unknown, "never issued");
    assert_eq!(s.rotate(0, NOW, NOW + 60), Advance::Advanced);
    assert_eq!((s.counter, s.retry_until), (1, NOW + 60));
    assert_eq!(s.rotate(0, NOW + 59, NOW + 119), Advance::Retried);
    assert_eq!((s.counter, s.retry_until), (2, 0));
    assert_eq!(s.rotate(1, NOW + 59, NOW + 119), Advance::Reused);
    assert_eq!(s.rotate(0, NOW + 59, NOW + 119), Advance::Reused);
    assert_eq!(s.rotate(2, NOW + 60, NOW + 120), Advance::Advanced);
    // At the window's end, the previous token is a reuse.
    assert_eq!(s.rotate(2, NOW + 120, NOW + 180), Advance::Reused);
    // Two tokens back is never a retry.
    assert_eq!(s.rotate(1, NOW + 61, NOW + 121), Advance::Reused);
    assert_eq!(s.rotate(3, NOW + 600, NOW + 660), Advance::Unknown, "ended");
}

#[test]
fn refresh_tokens_round_trip_and_only_their_session_vouches_for_them() {
    let session = Session::start("johndoe", HASH, "me", NOW, NOW + 60).unwrap();
    let text = session.refresh_token(3);
    assert_eq!(text.len(), 48);
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let token = RefreshToken::parse(&text).unwrap();
    assert_eq!((token.session, token.counter), (session.id, 3));
    assert!(session.issued(&token));
    // Another session's secret, a changed counter, a changed tag: no.
    let other = Session::start("johndoe", HASH, "me", NOW, NOW + 60).unwrap();
    let mut forged = token;
    forged.session = other.id;
    assert!(!other.issued(&forged));
    let mut bumped = token;
    bumped.counter = 4;
    assert!(!session.issued(&bumped));
    let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
    bytes[35] ^= 1;
    let flipped = RefreshToken::parse(&URL_SAFE_NO_PAD.encode(bytes)).unwrap();
    assert!(!session.issued(&flipped));
    for bad in [
        "",
        "short",
        &"A".repeat(47),
        &"!".repeat(48),
        &format!("{text}="),
    ] {
        assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
    }
    assert!(!format!("{session:?} {token:?}").contains("secret: ["));
}

#[test]
fn ids_are_128_random_bits_in_22_characters() {
    let a = SessionId::random().unwrap();
    assert_ne!(a, SessionId::random().unwrap());
    assert_eq!(a.encode().len(), 22);
    assert_eq!(SessionId::decode(&a.encode()), Some(a));
    assert_eq!(SessionId::decode("nope"), None);
    assert_eq!(TokenId::decode(&"A".repeat(24)), None);
}

#[test]
fn the_deny_list_denies_until_the_tokens_have_expired() {
    let list = Revocations::new(100, MAX_REVOCATIONS_PER_USER);
    let (sid, jti) = (SessionId::random().unwrap(), TokenId::random().unwrap());
    let (sid_text, jti_text) = (sid.encode(), jti.encode());
    let denies = |sid: Option<&str>, jti: Option<&str>, now: i64| {
        list.denies("johndoe", Some(NOW), sid, jti, now)
    };
    assert!(!denies(Some(&sid_text), Some(&jti_text), NOW));
    let before = list.generation();
    list.add(Revocation::Session(sid, NOW + 60), Some("johndoe"), NOW);
    assert_ne!(list.generation(), before);
    assert!(denies(Some(&sid_text), None, NOW));
    assert!(denies(Some(&sid_text), Some("other"), NOW + 59));
    assert!(!denies(Some(&sid_text), None, NOW + 60));
    list.add(Revocation::Token(jti, NOW + 10), None, NOW);
    assert!(denies(None, Some(&jti_text), NOW));
    assert!(!denies(None, None, NOW));
    assert!(!denies(Some("not an id"), Some("nor this"), NOW));
}

#[test]
fn entries_without_an_owner_are_bounded_and_drop_what_expires_first() {
    let list = Revocations::new(3, MAX_REVOCATIONS_PER_USER);
    let denies =
        |id: &TokenId, now: i64| list.denies("x", Some(NOW), None, Some(&id.encode()), now);
    let ids: Vec<TokenId> = (0..3).map(|_| TokenId::random().unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        list.add(Revocation::Token(*id, NOW + 10 + i as i64), None, NOW);
    }
    let late = TokenId::random().unwrap();
    list.add(Revocation::Token(late, NOW + 100), None, NOW);
    assert_eq!((list.len(), list.collapsed()), (3, 1));
    assert!(!denies(&ids[0], NOW));
    assert!(denies(&late, NOW));
    // Expired entries make room before anything in force is dropped.
    let later = TokenId::random().unwrap();
    list.add(Revocation::Token(later, NOW + 200), None, NOW + 50);
    assert_eq!(list.len(), 2);
    assert!(denies(&late, NOW + 50));
    // Revoked again: the later end is kept.
    list.add(Revocation::Token(late, NOW + 60), None, NOW + 50);
    assert!(denies(&late, NOW + 99));
}

/// A token of `sub` issued at `iat` with id `jti`, denied at `now`?
fn denies_token(list: &Revocations, sub: &str, iat: i64, jti: &TokenId, now: i64) -> bool {
    list.denies(sub, Some(iat), None, Some(&jti.encode()), now)
}

#[test]
fn a_user_past_their_cap_collapses_into_a_mark_and_loses_no_revocation() {
    let list = Revocations::new(100_000, 8);
    let victim = TokenId::random().unwrap();
    list.add(Revocation::Token(victim, NOW + 1800), Some("alice"), NOW);
    // An account refreshing and revoking in a loop: every token it
    // revoked stays revoked, the first ones included.
    let mut flood = Vec::new();
    for i in 0..3 * 9 {
        let id = TokenId::random().unwrap();
        list.add(
            Revocation::Token(id, NOW + 1800 + i),
            Some("mallory"),
            NOW + i,
        );
        flood.push((id, NOW + i));
    }
    for &(id, iat) in &flood {
        assert!(denies_token(&list, "mallory", iat, &id, NOW + 30), "{iat}");
    }
    assert!(denies_token(&list, "alice", NOW, &victim, NOW + 30));
    // What mallory gave up: its tokens of before the last collapse,
    // revoked or not; later ones work, and alice's others too.
    let other = TokenId::random().unwrap();
    assert!(denies_token(&list, "mallory", NOW + 1, &other, NOW + 30));
    assert!(!denies_token(
        &list,
        "mallory",
        NOW + 100,
        &other,
        NOW + 100
    ));
    assert!(!denies_token(&list, "alice", NOW, &other, NOW + 30));
    // Three collapses into one mark, and alice's entry.
    assert_eq!(list.len(), 2);
    assert_eq!(list.collapsed(), 3 * 9);
    // The mark lasts as long as the latest entry it replaced.
    assert!(denies_token(&list, "mallory", NOW, &flood[0].0, NOW + 1825));
    assert!(!denies_token(
        &list,
        "mallory",
        NOW,
        &flood[0].0,
        NOW + 1826
    ));
}

#[test]
fn over_the_total_cap_the_largest_holder_collapses_not_the_others() {
    let list = Revocations::new(10, 100);
    let alice: Vec<TokenId> = (0..3).map(|_| TokenId::random().unwrap()).collect();
    for id in &alice {
        // Expiring first: a drop of the soonest would take these.
        list.add(Revocation::Token(*id, NOW + 30), Some("alice"), NOW);
    }
    let mut flood = Vec::new();
    for i in 0..20 {
        let id = TokenId::random().unwrap();
        list.add(Revocation::Token(id, NOW + 1800), Some("mallory"), NOW + i);
        flood.push((id, NOW + i));
    }
    assert!(list.len() <= 10 + 1, "{}", list.len());
    for id in &alice {
        assert!(denies_token(&list, "alice", NOW, id, NOW + 5));
    }
    for &(id, iat) in &flood {
        assert!(denies_token(&list, "mallory", iat, &id, NOW + 25));
    }
    assert!(list.collapsed() > 0);
    // A full list of users holding one each: they collapse one by one,
    // each into their own mark, and each still denies.
    let list = Revocations::new(2, 100);
    let ids: Vec<TokenId> = (0..4).map(|_| TokenId::random().unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        list.add(
            Revocation::Token(*id, NOW + 60),
            Some(&format!("u{i}")),
            NOW,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        assert!(denies_token(&list, &format!("u{i}"), NOW, id, NOW + 1));
    }
}

#[test]
fn loaded_marks_widen_and_expire() {
    let list = Revocations::new(10, 10);
    let id = TokenId::random().unwrap();
    list.add(
        Revocation::User {
            issued: NOW,
            until: NOW + 100,
        },
        Some("bob"),
        NOW,
    );
    list.add(
        Revocation::User {
            issued: NOW - 50,
            until: NOW + 200,
        },
        Some("bob"),
        NOW,
    );
    list.add(
        Revocation::User {
            issued: NOW,
            until: NOW + 100,
        },
        None,
        NOW,
    );
    assert_eq!(list.len(), 1);
    assert!(denies_token(&list, "bob", NOW, &id, NOW + 150));
    assert!(!denies_token(&list, "bob", NOW + 1, &id, NOW + 1));
    // No iat: could be of any time.
    assert!(list.denies("bob", None, None, Some(&id.encode()), NOW + 1));
    assert!(!denies_token(&list, "bobby", NOW, &id, NOW + 1));
    assert!(!denies_token(&list, "bob", NOW, &id, NOW + 200), "ended");
    list.add(
        Revocation::User {
            issued: NOW,
            until: NOW + 300,
        },
        Some("carol"),
        NOW + 200,
    );
    assert_eq!(list.len(), 1, "bob's ended mark went when carol's came");
}
