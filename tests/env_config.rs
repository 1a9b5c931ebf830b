//! The binary configured from `PASSWORD_BEARER_*` environment variables, as
//! containers and service managers run it: each setting from its variable, a
//! flag winning over its variable, and a bad variable reported like a bad
//! flag (one stderr line naming the variable, exit 2).

use crate::cli::{assert_config_error_with_env, path_str, run_with_env, Proc, TempDir};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_users_and_key_file_from_the_environment() {
    let dir = TempDir::new();
    let key = b"an-environment-key-of-more-than-32-bytes-42";
    let key_file = dir.file("key", &[key.as_slice(), b"\n"].concat());
    let users = users_json(&[("carol", "carol's password", false)]);
    let users_file = dir.file("users.json", users.as_bytes());
    let mut proc = Proc::spawn_with_env(
        &[],
        &[
            ("PASSWORD_BEARER_PORT", "0"),
            ("PASSWORD_BEARER_USERS", &users_file),
            ("PASSWORD_BEARER_SECRET_KEY_FILE", &key_file),
        ],
    );
    let addr = proc.wait_listening();
    assert_ne!(addr.port(), 0, "the real port, not 0");
    assert!(
        !proc.seen.iter().any(|l| l.contains("random key")),
        "the key file was used: {:?}",
        proc.seen
    );

    // A user of that file logs in, and the token is signed with that key.
    let token = login(addr, "carol", "carol's password").await;
    let (_, claims) = decode_verified(&token, key);
    assert_eq!(claims["sub"], "carol");
    assert_eq!(get_me(addr, &format!("Bearer {token}")).await.status, 200);
    // A token minted elsewhere with the key is accepted too.
    let minted = sign_with(
        Hs::S256,
        key,
        HS256_HEADER,
        &format!(r#"{{"sub":"carol","exp":{}}}"#, now() + 600),
    );
    let resp = get_me(addr, &format!("Bearer {minted}")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["username"], "carol");
    // The users file replaced the demo users.
    assert_invalid_grant(&post_token(addr, "username=johndoe&password=secret").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_wins_over_its_variable() {
    // Were the variable used, the server could not start on this port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("address").port();
    let mut proc = Proc::spawn_with_env(
        &["--port", "0"],
        &[("PASSWORD_BEARER_PORT", &taken_port.to_string())],
    );
    let addr = proc.wait_listening();
    assert_ne!(addr.port(), taken_port);
    assert_ne!(addr.port(), 0);
    assert_eq!(get(addr, "/nope", &[]).await.status, 404);
}

#[test]
fn a_bad_port_variable_is_one_line_naming_it_and_exit_2() {
    assert_config_error_with_env(
        &[],
        &[("PASSWORD_BEARER_PORT", "abc")],
        "PASSWORD_BEARER_PORT",
    );
    let out = run_with_env(&[], &[("PASSWORD_BEARER_PORT", "abc")], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("--port"),
        "the variable, not the flag: {stderr:?}"
    );
}

#[test]
fn a_bad_switch_variable_is_one_line_naming_it_and_exit_2() {
    assert_config_error_with_env(
        &["--port", "0"],
        &[("PASSWORD_BEARER_NO_DOCS", "yes")],
        "PASSWORD_BEARER_NO_DOCS",
    );
}

#[test]
fn bad_values_and_files_from_variables_name_the_variable() {
    let dir = TempDir::new();
    let missing = path_str(&dir.0.join("no-such-users.json"));
    for (var, value) in [
        ("PASSWORD_BEARER_USERS", missing.as_str()),
        ("PASSWORD_BEARER_SECRET_KEY_FILE", missing.as_str()),
        ("PASSWORD_BEARER_TOKEN_TTL_MINUTES", "0"),
        ("PASSWORD_BEARER_DOCS_ASSETS_URL", "cdn.example.com"),
    ] {
        assert_config_error_with_env(&["--port", "0"], &[(var, value)], var);
    }
}

#[test]
fn hash_password_ignores_the_variables() {
    let out = run_with_env(
        &["hash-password"],
        &[
            ("PASSWORD_BEARER_PORT", "abc"),
            ("PASSWORD_BEARER_NO_DOCS", "yes"),
        ],
        b"pw\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("$argon2id$"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_docs_variable_turns_off_docs_and_openapi_json() {
    let mut proc = Proc::spawn_with_env(&["--port", "0"], &[("PASSWORD_BEARER_NO_DOCS", "true")]);
    let addr = proc.wait_listening();
    for path in ["/docs", "/openapi.json"] {
        let resp = get(addr, path, &[]).await;
        assert_eq!(resp.status, 404, "{path}: {}", resp.text());
    }
    // Only the documentation is gone.
    assert_eq!(
        post_token(addr, "username=johndoe&password=secret")
            .await
            .status,
        200
    );
}

/// `PASSWORD_BEARER_USER=users.json` (no S) is no setting: the server
/// serves the demo users, and says so, and says which variable it ignored
/// and which it may have meant; never the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_variable_is_a_warning_naming_the_closest() {
    let dir = TempDir::new();
    let users = users_json(&[("carol", "carol's password", false)]);
    let users_file = dir.file("users.json", users.as_bytes());
    let mut proc = Proc::spawn_with_env(
        &["--port", "0"],
        &[
            ("PASSWORD_BEARER_USER", &users_file),
            ("PASSWORD_BEARER_FROBNICATE", "a-value-never-shown"),
        ],
    );
    let addr = proc.wait_listening();
    let warnings: Vec<&String> = proc
        .seen
        .iter()
        .filter(|l| l.contains("is not a setting"))
        .collect();
    assert_eq!(warnings.len(), 2, "{:?}", proc.seen);
    assert!(
        warnings.iter().any(|l| l.contains(
            "PASSWORD_BEARER_USER is not a setting, ignored; did you mean PASSWORD_BEARER_USERS?"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("PASSWORD_BEARER_FROBNICATE") && !l.contains("did you mean")),
        "{warnings:?}"
    );
    for line in &proc.seen {
        assert!(
            !line.contains(&users_file) && !line.contains("a-value-never-shown"),
            "{line}"
        );
    }
    assert!(
        proc.seen
            .iter()
            .any(|l| l.contains("demo users johndoe, alice")),
        "{:?}",
        proc.seen
    );
    // Ignored indeed: the demo users serve, the file's do not.
    login(addr, "johndoe", "secret").await;
    assert_invalid_grant(&post_token(addr, &credentials("carol", "carol's password")).await);
}

#[test]
fn known_variables_are_not_warned_about() {
    let dir = TempDir::new();
    let users = users_json(&[("carol", "carol's password", false)]);
    let users_file = dir.file("users.json", users.as_bytes());
    let mut proc = Proc::spawn_with_env(
        &[],
        &[
            ("PASSWORD_BEARER_PORT", "0"),
            ("PASSWORD_BEARER_USERS", &users_file),
            ("PASSWORD_BEARER_NO_DOCS", ""),
        ],
    );
    proc.wait_listening();
    assert!(
        !proc
            .seen
            .iter()
            .any(|l| l.contains("is not a setting") || l.contains("demo users")),
        "{:?}",
        proc.seen
    );
}
