//! `examples/resource_server.rs` against the binary: a service that
//! checks our tokens from the JWKS alone accepts them, fetches the set
//! again when a token names a key it has not got, keeps the set it holds
//! for its `max-age`, and refuses a token once its key is dropped (by a
//! SIGHUP) and its copy of the set has expired. The example runs in the
//! test's process (its `serve`, on port 0, with its own command line
//! parsed), the server as the real binary.

use crate::cli::{Proc, TempDir};
use crate::support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[path = "../examples/resource_server.rs"]
mod example;

// Keys as `openssl genpkey` writes them (test keys, nothing else uses them).
const OLD: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJAfUHM52xaGhmNSE2NA41fzpyKIwr+mhAwQUFV+9HvR
-----END PRIVATE KEY-----
";
const NEW: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgD2BSOSaui6c23pqp
YX4xdGZgwZKjV/d3of5iwmru87yhRANCAASHaWGQrlPX0RfSnVJUtCPOK1LAVuJG
8xsiPIM7FfUibm9Pn3gRk21J9lKhFEPnwqe2LKdtKRZM2VK+paebXkLs
-----END PRIVATE KEY-----
";
const NEXT: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMH2QTG6s5yXuw9enlrnyisbrbYkJHhDyJ7EApYmcEMB
-----END PRIVATE KEY-----
";

const ISSUER: &str = "http://auth.test";

/// The example on port 0 with `flags` after `--jwks-uri`, `--issuer`.
async fn example(jwks: SocketAddr, flags: &[&str]) -> SocketAddr {
    let mut args = vec![
        "--jwks-uri".to_owned(),
        format!("http://{jwks}/.well-known/jwks.json"),
        "--issuer".to_owned(),
        ISSUER.to_owned(),
    ];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    let (settings, _port) = example::parse_args(&args).expect("the flags parse");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(
        listener,
        Arc::new(example::Keys::new(settings)),
    ));
    addr
}

/// `GET /hello` with `token`: the status and the body.
async fn hello(addr: SocketAddr, token: &str) -> (u16, String) {
    let response = get(
        addr,
        "/hello",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await;
    (response.status, response.text().to_owned())
}

/// Puts `pem` in `file` and has the server read its keys again.
fn rotate(server: &mut Proc, files: [(&str, &str); 2]) {
    for (file, pem) in files {
        std::fs::write(file, pem).expect("write a key file");
    }
    server.signal("HUP");
    server.wait_line("reloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_verifies_from_the_jwks_through_a_rotation() {
    let dir = TempDir::new();
    let first = dir.file("first.pem", OLD.as_bytes());
    let second = dir.file("second.pem", NEW.as_bytes());
    let mut server = Proc::spawn(&[
        "--port",
        "0",
        "--signing-key",
        &first,
        "--signing-key",
        &second,
        "--issuer",
        ISSUER,
        "--audience",
        "orders-api",
    ]);
    let jwks = server.wait_listening();
    // Keeps the set for its max-age (the server's, minutes); fetches again
    // on an unknown kid, at most once a second.
    let patient = example(
        jwks,
        &["--audience", "orders-api", "--cooldown-seconds", "1"],
    )
    .await;
    // Keeps it a second at most.
    let eager = example(
        jwks,
        &[
            "--audience",
            "orders-api",
            "--cooldown-seconds",
            "1",
            "--max-cache-seconds",
            "1",
        ],
    )
    .await;
    // Fetches at most once a minute.
    let guarded = example(
        jwks,
        &["--audience", "orders-api", "--cooldown-seconds", "60"],
    )
    .await;
    let elsewhere = example(jwks, &["--audience", "another-api"]).await;

    let old = login(jwks, "johndoe", "secret").await;
    assert_eq!(hello(patient, &old).await, (200, "hello johndoe\n".into()));
    assert_eq!(hello(eager, &old).await.0, 200);
    assert_eq!(hello(guarded, &old).await.0, 200);
    assert_eq!(hello(elsewhere, &old).await.0, 401, "another audience");
    let no_token = get(patient, "/hello", &[]).await;
    assert_eq!(
        (no_token.status, no_token.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let mut forged = old.clone().into_bytes();
    let last = forged.len() - 2; // a signature byte (not the last, whose low bits are padding)
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        hello(patient, std::str::from_utf8(&forged).unwrap())
            .await
            .0,
        401
    );

    // A key that was never published signs at once (not the advised
    // rotation): the patient example's set is fresh, yet it fetches again
    // for the unknown kid, once its cooldown has passed; the guarded one,
    // within its minute, does not, and refuses the token.
    rotate(&mut server, [(&first, NEXT), (&second, OLD)]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let next = login(jwks, "johndoe", "secret").await;
    assert_eq!(hello(patient, &next).await, (200, "hello johndoe\n".into()));
    assert_eq!(hello(guarded, &next).await.0, 401, "within the cooldown");

    // The old key dropped. Both cooldowns past, the patient example still
    // holds the old key, its set being within its max-age; the eager one,
    // whose second is up, fetches the set again and refuses the old token,
    // and still takes the new one.
    rotate(&mut server, [(&first, NEXT), (&second, NEW)]);
    assert_eq!(get_me(jwks, &format!("Bearer {old}")).await.status, 401);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(hello(patient, &old).await.0, 200, "within max-age");
    let (status, body) = hello(eager, &old).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(hello(eager, &next).await.0, 200);
}

#[test]
fn the_example_refuses_a_command_line_that_would_weaken_its_checks() {
    let parse = |flags: &[&str]| {
        let args: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        example::parse_args(&args).map(|_| ()).unwrap_err()
    };
    let base = ["--jwks-uri", "http://127.0.0.1:1/.well-known/jwks.json"];
    let with = |more: &[&'static str]| [&base[..], more].concat();
    // No issuer or audience would check neither.
    assert_eq!(parse(&with(&["--audience", "api"])), "--issuer is required");
    assert_eq!(
        parse(&with(&["--issuer", ISSUER])),
        "--audience is required"
    );
    // A shared secret's algorithm, or none, is never allowed.
    let all = with(&["--issuer", ISSUER, "--audience", "api", "--algorithms"]);
    for alg in ["HS256", "none", "EdDSA,HS384"] {
        let err = parse(&[&all[..], &[alg]].concat());
        assert!(err.starts_with("--algorithms: "), "{alg}: {err}");
    }
}
