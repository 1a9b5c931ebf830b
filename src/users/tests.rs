use super::*;

const HASH: &str =
    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$wOWJhvTr6+vdLSdhOxXC+AqkX2QXmJ5zTEUW9xdDKhw";

#[test]
fn a_reload_ends_the_sessions_of_users_removed_disabled_or_re_hashed() {
    let other = HASH.replace("c2FsdHNhbHQ", "c2FsdHNhbHU");
    let user = |name: &str, hash: &str, disabled: bool| {
        User::builder(name, hash)
            .disabled(disabled)
            .build()
            .unwrap()
    };
    let before = Users::from_users([
        user("kept", HASH, false),
        user("removed", HASH, false),
        user("disabled", HASH, false),
        user("re-hashed", HASH, false),
    ])
    .unwrap();
    let after = Users::from_users([
        user("kept", HASH, false),
        user("disabled", HASH, true),
        user("re-hashed", &other, false),
        user("added", HASH, false),
    ])
    .unwrap();
    let mut ended = before.sessions_ended_by(&after);
    ended.sort();
    assert_eq!(ended, ["disabled", "re-hashed", "removed"]);
    assert_eq!(after.sessions_ended_by(&after.clone()), ["disabled"]);
    assert!(before.sessions_ended_by(&before.clone()).is_empty());
    // The audit's view of the same reload: every change, by name.
    assert_eq!(
        before.changes_by(&after),
        [
            ("added".to_owned(), vec![Change::Added]),
            ("disabled".to_owned(), vec![Change::Disabled]),
            ("re-hashed".to_owned(), vec![Change::Password]),
            ("removed".to_owned(), vec![Change::Removed]),
        ]
    );
    let back = Users::from_users([user("disabled", &other, false)]).unwrap();
    assert_eq!(
        after.changes_by(&back),
        [
            ("added".to_owned(), vec![Change::Removed]),
            (
                "disabled".to_owned(),
                vec![Change::Password, Change::Enabled]
            ),
            ("kept".to_owned(), vec![Change::Removed]),
            ("re-hashed".to_owned(), vec![Change::Removed]),
        ]
    );
    assert!(after.changes_by(&after.clone()).is_empty());
    // The metric's cells are indexed by the enum's order.
    for (index, change) in Change::ALL.into_iter().enumerate() {
        assert_eq!(change as usize, index);
    }
}

#[test]
fn demo_users_are_the_seeds() {
    let users = Users::demo();
    assert_eq!(users.len(), 2);
    let john = users.get("johndoe").unwrap();
    assert!(!john.is_disabled());
    assert!(password::verify_password(john.hashed_password(), b"secret"));
    let alice = users.get("alice").unwrap();
    assert!(alice.is_disabled());
    assert!(password::verify_password(
        alice.hashed_password(),
        b"secret2"
    ));
    assert_eq!(
        &john.me_body()[..],
        br#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#
    );
    assert!(
        !DEMO_USERS.contains("\"secret"),
        "clear passwords in the binary"
    );
}

#[test]
fn optional_fields_default_like_the_seed() {
    let users = Users::from_json(&format!(
        r#"{{"bob": {{"username": "bob", "hashed_password": "{HASH}"}}}}"#
    ))
    .unwrap();
    let bob = users.get("bob").unwrap();
    assert_eq!(
        &bob.me_body()[..],
        br#"{"username":"bob","email":null,"full_name":null,"disabled":null}"#
    );
}

#[test]
fn refuses_bad_files_with_a_reason() {
    let err = |text: &str| Users::from_json(text).unwrap_err().to_string();
    assert!(err("[").starts_with("invalid users JSON"));
    assert!(err(r#"{"bob": {"username": "bob"}}"#).contains("hashed_password"));
    assert!(err(&format!(r#"{{"bob": {{"hashed_password": "{HASH}"}}}}"#)).contains("username"));
    assert!(err(&format!(
        r#"{{"bob": {{"username": "bob", "hashed_pasword": "{HASH}"}}}}"#
    ))
    .contains("hashed_pasword"));
    assert!(err(&format!(
        r#"{{"bob": {{"username": "rob", "hashed_password": "{HASH}"}}}}"#
    ))
    .contains("must be equal"));
    let bad_hash = err(r#"{"bob": {"username": "bob", "hashed_password": "fakehashedsecret"}}"#);
    assert!(bad_hash.contains("not an argon2 PHC string"), "{bad_hash}");
    assert!(
        !bad_hash.contains("fakehashedsecret"),
        "the hash leaked: {bad_hash}"
    );
    assert_eq!(err("{}"), "no users");
    let long = "u".repeat(MAX_USERNAME_BYTES + 1);
    assert_eq!(
        err(&format!(
            r#"{{"{long}": {{"username": "{long}", "hashed_password": "{HASH}"}}}}"#
        )),
        "a username is 257 bytes; at most 256 are allowed"
    );
}

#[test]
fn scopes_are_read_and_checked() {
    let users = Users::from_json(&format!(
        r#"{{"bob": {{"username": "bob", "hashed_password": "{HASH}", "scopes": ["me", "items"]}},
            "eve": {{"username": "eve", "hashed_password": "{HASH}", "scopes": ["me"]}}}}"#
    ))
    .unwrap();
    let bob = users.get("bob").unwrap();
    assert!(bob.allows("items") && bob.allows("me") && !bob.allows("admin"));
    assert_eq!(UserStore::scopes(&users), ["items", "me"]);
    let err = Users::from_json(&format!(
        r#"{{"bob": {{"username": "bob", "hashed_password": "{HASH}", "scopes": ["a b"]}}}}"#
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a scope token"), "{err}");
}

#[test]
fn the_builder_checks_the_hash_and_scopes_and_serializes_once() {
    let user = User::builder("carol", HASH)
        .email("carol@example.com")
        .disabled(true)
        .scopes(["me", "items"])
        .build()
        .unwrap();
    assert_eq!(
        (
            user.username(),
            user.email(),
            user.full_name(),
            user.disabled()
        ),
        ("carol", Some("carol@example.com"), None, Some(true))
    );
    assert_eq!(user.scopes(), ["me", "items"]);
    assert_eq!(
        &user.me_body()[..],
        br#"{"username":"carol","email":"carol@example.com","full_name":null,"disabled":true}"#
    );
    assert!(matches!(
        User::builder("x", "fakehashedsecret").build(),
        Err(UserError::Hash(_))
    ));
    assert_eq!(
        User::builder("x", HASH)
            .scopes(["ok", "not ok"])
            .build()
            .unwrap_err(),
        UserError::Scope("not ok".into())
    );
}

#[test]
fn debug_never_shows_the_hash() {
    let users = Users::demo();
    let shown = format!("{:?} {:?}", users.get("johndoe").unwrap(), users);
    assert!(!shown.contains("argon2"), "{shown}");
}
