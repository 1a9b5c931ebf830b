//! Tokens other services verify without the secret (the `signing`
//! feature): `--signing-key` EdDSA and ES256 keys, `/.well-known/jwks.json`
//! and its `Cache-Control`, RFC 8414's metadata, `--issuer`/`--audience`
//! and RFC 9068's claims, the algorithm rules at `/users/me` (each attack
//! a 401), rotations in process and on SIGHUP, refresh and revoke with an
//! EdDSA key, and bad key files. `jwt.rs` keeps the HS256 rules, which hold
//! unchanged without these flags.

use crate::cli::*;
use crate::sessions::{log_in, me_status, refreshed, revoke};
use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use password_bearer::jwks::{Jwks, Rules};
use password_bearer::token::{issue_access, Algorithm, Profile, SecretKey, Signer, SigningKey};
use password_bearer::users::Users;
use password_bearer::{App, Config};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const ISSUER: &str = "https://auth.example";

/// An Ed25519 key in PEM PKCS#8, as `openssl genpkey -algorithm ed25519`
/// writes it, from a seed of 32 bytes `seed`.
fn ed25519_pem(seed: u8) -> String {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend([seed; 32]);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der)
    )
}

fn ed25519(seed: u8) -> SigningKey {
    SigningKey::from_pem(ed25519_pem(seed).as_bytes()).unwrap()
}

/// A fresh P-256 key in PEM PKCS#8, by `openssl genpkey` (installed by
/// `.ci/run`).
fn p256_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .output()
        .expect("openssl runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn config(keys: Vec<SigningKey>, issuer: Option<&str>, audience: Option<&str>) -> Config {
    let mut config = Config::new(Users::demo(), test_key());
    config.login_log = false;
    config.signing_keys = keys;
    config.issuer = issuer.map(str::to_owned);
    config.audience = audience.map(str::to_owned);
    config
}

/// A token's header and claims, unverified.
fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = serde_json::from_slice(&unb64(it.next().unwrap())).unwrap();
    let claims = serde_json::from_slice(&unb64(it.next().unwrap())).unwrap();
    (header, claims)
}

/// `header.claims` signed by `key`, whatever the header says.
fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&key.sign(input.as_bytes())))
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "sub": "johndoe", "aud": ISSUER, "client_id": "password-bearer",
           "iat": now(), "exp": now() + 600, "jti": "forged"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_lists_every_key_public_members_only_with_cache_control() {
    let p256 = SigningKey::from_pem(p256_pem().as_bytes()).unwrap();
    let server = start_with(config(vec![ed25519(1), p256.clone()], None, None)).await;
    let resp = get(server.addr, "/.well-known/jwks.json", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let jwks = resp.json();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let members =
        |key: &Value| -> Vec<String> { key.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(members(&keys[0]), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert_eq!(
        members(&keys[1]),
        ["alg", "crv", "kid", "kty", "use", "x", "y"]
    );
    assert_eq!(
        (
            &keys[0]["kty"],
            &keys[0]["crv"],
            &keys[0]["alg"],
            &keys[0]["use"]
        ),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig")
        )
    );
    assert_eq!(
        (
            &keys[1]["kty"],
            &keys[1]["crv"],
            &keys[1]["alg"],
            &keys[1]["use"]
        ),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        )
    );
    // The kid is the RFC 7638 thumbprint, computed here from the members.
    let thumbprint = |canonical: String| b64(&Sha256::digest(canonical.as_bytes()));
    assert_eq!(
        keys[0]["kid"],
        thumbprint(format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            keys[0]["x"].as_str().unwrap()
        ))
    );
    assert_eq!(
        keys[1]["kid"],
        thumbprint(format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            keys[1]["x"].as_str().unwrap(),
            keys[1]["y"].as_str().unwrap()
        ))
    );
    assert_eq!(keys[1]["kid"], p256.kid());
    // The JWKS, parsed by the library a verifier uses, is the same keys.
    let parsed = Jwks::from_json(resp.text()).unwrap();
    assert_eq!(
        parsed.keys(),
        [
            ed25519(1).verifying_key().clone(),
            p256.verifying_key().clone()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flags_neither_well_known_path_is_served_nor_documented() {
    let server = start().await;
    assert_eq!(
        get(server.addr, "/.well-known/jwks.json", &[]).await.status,
        404
    );
    assert_eq!(
        get(server.addr, "/.well-known/oauth-authorization-server", &[])
            .await
            .status,
        404
    );
    // A signing key without an issuer: the JWKS, no metadata.
    let server = start_with(config(vec![ed25519(1)], None, None)).await;
    assert_eq!(
        get(server.addr, "/.well-known/jwks.json", &[]).await.status,
        200
    );
    assert_eq!(
        get(server.addr, "/.well-known/oauth-authorization-server", &[])
            .await
            .status,
        404
    );
    let openapi = get(server.addr, "/openapi.json", &[]).await.json();
    assert!(openapi["paths"].get("/.well-known/jwks.json").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_names_the_issuer_and_the_endpoints() {
    let server = start_with(config(vec![ed25519(1)], Some(ISSUER), Some("api"))).await;
    let resp = get(server.addr, "/.well-known/oauth-authorization-server", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json(),
        json!({
            "issuer": ISSUER,
            "token_endpoint": "https://auth.example/token",
            "jwks_uri": "https://auth.example/.well-known/jwks.json",
            "revocation_endpoint": "https://auth.example/revoke",
            "revocation_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["password", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "response_types_supported": [],
            "scopes_supported": ["items", "me"],
        })
    );
    // Sessions off: no revocation endpoint, no refresh grant; HS256 only:
    // no JWKS.
    let mut hs256 = config(vec![], Some(ISSUER), None);
    hs256.refresh_token_ttl = std::time::Duration::ZERO;
    let server = start_with(hs256).await;
    let metadata = get(server.addr, "/.well-known/oauth-authorization-server", &[])
        .await
        .json();
    assert_eq!(metadata["grant_types_supported"], json!(["password"]));
    assert!(metadata.get("revocation_endpoint").is_none());
    assert!(metadata.get("jwks_uri").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_issuer_access_tokens_follow_rfc_9068_and_verify_from_the_jwks() {
    let key = ed25519(1);
    let server = start_with(config(vec![key.clone()], Some(ISSUER), Some("api"))).await;
    let (access, _) = log_in(server.addr, "johndoe", "secret").await;
    let (header, claims) = parts(&access);
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "kid": key.kid(), "typ": "at+jwt"})
    );
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "johndoe");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["client_id"], "password-bearer");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1800
    );
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    assert_eq!(me_status(server.addr, &access).await, 200);

    let jwks =
        Jwks::from_json(get(server.addr, "/.well-known/jwks.json", &[]).await.text()).unwrap();
    let verified = jwks
        .verify(&access, &Rules::new(&[Algorithm::EdDSA], ISSUER, "api"))
        .unwrap();
    assert_eq!(verified.sub, "johndoe");
    assert!(jwks
        .verify(&access, &Rules::new(&[Algorithm::ES256], ISSUER, "api"))
        .is_err());
    assert!(jwks
        .verify(
            &access,
            &Rules::new(&[Algorithm::EdDSA], "https://other", "api")
        )
        .is_err());
    assert!(jwks
        .verify(&access, &Rules::new(&[Algorithm::EdDSA], ISSUER, "other"))
        .is_err());
    // The same key and claims in a JWT that is not an access token (RFC
    // 9068 §4: a resource server checks `typ`): refused by the verifier.
    let (_, claims) = parts(&access);
    let rules = Rules::new(&[Algorithm::EdDSA], ISSUER, "api");
    let not_at = forge(
        &key,
        &json!({"alg": "EdDSA", "kid": key.kid(), "typ": "JWT"}),
        &claims,
    );
    assert_eq!(
        jwks.verify(&not_at, &rules),
        Err(password_bearer::token::TokenError::Type)
    );
    let at = forge(
        &key,
        &json!({"alg": "EdDSA", "kid": key.kid(), "typ": "at+jwt"}),
        &claims,
    );
    assert!(jwks.verify(&at, &rules).is_ok());

    // ES256, no sessions: still a jti; an issuer alone is its own audience.
    let p256 = SigningKey::from_pem(p256_pem().as_bytes()).unwrap();
    let mut es = config(vec![p256.clone()], Some(ISSUER), None);
    es.refresh_token_ttl = std::time::Duration::ZERO;
    let server = start_with(es).await;
    let access = login(server.addr, "johndoe", "secret").await;
    let (header, claims) = parts(&access);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["aud"], ISSUER);
    assert!(claims["jti"].is_string() && claims.get("sid").is_none());
    assert_eq!(me_status(server.addr, &access).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_and_audience_are_required_of_every_token_hs256_ones_too() {
    let server = start_with(config(vec![], Some(ISSUER), Some("api"))).await;
    let access = login(server.addr, "johndoe", "secret").await;
    let (header, claims) = parts(&access);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(
        (&claims["iss"], &claims["aud"]),
        (&json!(ISSUER), &json!("api"))
    );
    decode_verified(&access, TEST_KEY);
    assert_eq!(me_status(server.addr, &access).await, 200);
    let exp = now() + 600;
    for (claims, why) in [
        (format!(r#"{{"sub":"johndoe","exp":{exp}}}"#), "no iss"),
        (
            format!(r#"{{"sub":"johndoe","exp":{exp},"iss":"{ISSUER}"}}"#),
            "no aud",
        ),
        (
            format!(r#"{{"sub":"johndoe","exp":{exp},"iss":"{ISSUER}/","aud":"api"}}"#),
            "another iss",
        ),
        (
            format!(r#"{{"sub":"johndoe","exp":{exp},"iss":"{ISSUER}","aud":["x","y"]}}"#),
            "another aud",
        ),
    ] {
        assert_eq!(me_status(server.addr, &sign(&claims)).await, 401, "{why}");
    }
    let listed = sign(&format!(
        r#"{{"sub":"johndoe","exp":{exp},"iss":"{ISSUER}","aud":["x","api"]}}"#
    ));
    assert_eq!(me_status(server.addr, &listed).await, 200, "aud as a list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_algorithm_attacks_are_each_401() {
    let key = ed25519(1);
    let other = ed25519(2);
    let p256 = SigningKey::from_pem(p256_pem().as_bytes()).unwrap();
    let server = start_with(config(vec![key.clone()], Some(ISSUER), None)).await;
    let good = forge(
        &key,
        &json!({"alg": "EdDSA", "kid": key.kid(), "typ": "at+jwt"}),
        &good_claims(),
    );
    assert_eq!(me_status(server.addr, &good).await, 200, "the control");

    let x = unb64(key.verifying_key().to_jwk()["x"].as_str().unwrap());
    let jwk_text = key.verifying_key().to_jwk().to_string();
    let claims = good_claims().to_string();
    let hs256_with = |secret: &[u8]| {
        sign_with(
            Hs::S256,
            secret,
            &json!({"alg": "HS256", "kid": key.kid()}).to_string(),
            &claims,
        )
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(claims.as_bytes())
    );
    let attacks = [
        ("alg none", none),
        ("HS256 keyed with the public key's bytes", hs256_with(&x)),
        (
            "HS256 keyed with the public JWK",
            hs256_with(jwk_text.as_bytes()),
        ),
        (
            "an unknown kid on a good signature",
            forge(
                &key,
                &json!({"alg": "EdDSA", "kid": "unknown"}),
                &good_claims(),
            ),
        ),
        (
            "the right kid, another key's signature",
            forge(
                &other,
                &json!({"alg": "EdDSA", "kid": key.kid()}),
                &good_claims(),
            ),
        ),
        (
            "an ES256 token where only EdDSA is configured",
            forge(
                &p256,
                &json!({"alg": "ES256", "kid": p256.kid()}),
                &good_claims(),
            ),
        ),
        (
            "ES256 named on the EdDSA key's signature",
            forge(
                &key,
                &json!({"alg": "ES256", "kid": key.kid()}),
                &good_claims(),
            ),
        ),
        (
            "a header pointing at another key",
            forge(
                &key,
                &json!({"alg": "EdDSA", "jwk": other.verifying_key().to_jwk()}),
                &good_claims(),
            ),
        ),
    ];
    for (what, token) in attacks {
        let resp = get_me(server.addr, &format!("Bearer {token}")).await;
        assert_eq!(resp.status, 401, "{what}");
        assert_401(&resp, INVALID_CREDENTIALS);
    }
    // And a token with no kid may use the keys of its algorithm.
    let no_kid = forge(&key, &json!({"alg": "EdDSA"}), &good_claims());
    assert_eq!(me_status(server.addr, &no_kid).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_publishes_both_keys_then_only_the_new_one() {
    let (old, new) = (
        ed25519(1),
        SigningKey::from_pem(p256_pem().as_bytes()).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::new(App::new(config(vec![old.clone()], Some(ISSUER), None)));
    tokio::spawn(password_bearer::serve(
        listener,
        app.clone(),
        std::future::pending(),
    ));
    let kids = || async {
        get(addr, "/.well-known/jwks.json", &[]).await.json()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let before = login(addr, "johndoe", "secret").await;
    assert_eq!(me_status(addr, &before).await, 200, "and cached");

    // Step 1: the new key published, the old one still signs.
    app.reload_with_signing_keys(
        Users::demo(),
        test_key(),
        vec![],
        vec![old.clone(), new.clone()],
    )
    .await;
    assert_eq!(kids().await, [old.kid(), new.kid()]);
    assert_eq!(
        parts(&login(addr, "johndoe", "secret").await).0["kid"],
        old.kid()
    );
    // Step 2: the new one signs; both verify.
    app.reload_with_signing_keys(
        Users::demo(),
        test_key(),
        vec![],
        vec![new.clone(), old.clone()],
    )
    .await;
    let after = login(addr, "johndoe", "secret").await;
    assert_eq!(parts(&after).0["kid"], new.kid());
    assert_eq!(me_status(addr, &before).await, 200);
    assert_eq!(me_status(addr, &after).await, 200);
    // Step 3: the old one dropped: its token 401 at once, cached or not.
    app.reload_with_signing_keys(Users::demo(), test_key(), vec![], vec![new.clone()])
        .await;
    assert_eq!(kids().await, [new.kid()]);
    assert_eq!(me_status(addr, &before).await, 401);
    assert_eq!(me_status(addr, &after).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_and_revoke_work_with_an_eddsa_key() {
    let key = ed25519(1);
    let server = start_with(config(vec![key.clone()], Some(ISSUER), None)).await;
    let (first, refresh) = log_in(server.addr, "johndoe", "secret").await;
    let (access, refresh) = refreshed(server.addr, &refresh).await;
    assert_eq!(parts(&access).0["alg"], "EdDSA");
    assert_eq!(me_status(server.addr, &access).await, 200);
    // Revoking the access token by itself ...
    assert_eq!(revoke(server.addr, &first).await.status, 200);
    assert_eq!(me_status(server.addr, &first).await, 401);
    assert_eq!(me_status(server.addr, &access).await, 200);
    // ... and the session, by its refresh token: every access token ends.
    assert_eq!(revoke(server.addr, &refresh).await.status, 200);
    assert_eq!(me_status(server.addr, &access).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_keys_only_verify_once_a_signing_key_is_given() {
    let server = start_with(config(vec![ed25519(1)], None, None)).await;
    let access = login(server.addr, "johndoe", "secret").await;
    assert_eq!(parts(&access).0["alg"], "EdDSA");
    // A token the secret key signed before keeps working.
    let old = sign(&format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600));
    assert_eq!(me_status(server.addr, &old).await, 200);
    // With no profile, a secret key's token is the seed's, byte for byte.
    let key = SecretKey::new(TEST_KEY).unwrap();
    let mine = issue_access(
        Signer::Secret(&key),
        &Profile::default(),
        "johndoe",
        None,
        (None, None),
        now(),
        60,
    );
    assert_eq!(
        mine,
        password_bearer::token::issue(&key, "johndoe", now(), 60)
    );
    assert_eq!(me_status(server.addr, &mine).await, 200);
}

/// The binary serving the demo users, signing with the first of `keys`.
fn binary(keys: &[&str]) -> (Proc, std::net::SocketAddr) {
    let mut args = vec!["--port", "0", "--issuer", ISSUER];
    for key in keys {
        args.extend(["--signing-key", key]);
    }
    let mut proc = Proc::spawn(&args);
    let addr = proc.wait_listening();
    (proc, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_signing_keys_and_a_bad_file_changes_nothing() {
    let tmp = TempDir::new();
    let first = tmp.file("first.pem", ed25519_pem(1).as_bytes());
    let second = tmp.file("second.pem", p256_pem().as_bytes());
    let (mut proc, addr) = binary(&[&first, &second]);
    let mut conn = Conn::open(addr).await;
    let old = login(addr, "johndoe", "secret").await;
    assert_eq!(parts(&old).0["kid"], ed25519(1).kid());
    assert_eq!(me_on(&mut conn, &old).await.status, 200, "and now cached");

    // The rotation: a new key signs, the old one still verifies.
    tmp.file("first.pem", ed25519_pem(3).as_bytes());
    tmp.file("second.pem", ed25519_pem(1).as_bytes());
    proc.signal("HUP");
    proc.wait_line("reloaded: ");
    let new = login(addr, "johndoe", "secret").await;
    assert_eq!(parts(&new).0["kid"], ed25519(3).kid());
    assert_eq!(me_on(&mut conn, &old).await.status, 200);
    assert_eq!(me_on(&mut conn, &new).await.status, 200);

    // The old key dropped: its token is refused at once, though cached.
    tmp.file("second.pem", ed25519_pem(4).as_bytes());
    proc.signal("HUP");
    proc.wait_line("reloaded: ");
    assert_401(&me_on(&mut conn, &old).await, INVALID_CREDENTIALS);
    assert_eq!(me_on(&mut conn, &new).await.status, 200);

    // A broken key file: nothing changes, one line, no key material.
    tmp.file(
        "first.pem",
        b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n",
    );
    proc.signal("HUP");
    let line = proc.wait_line("reload failed");
    assert!(line.contains(&first), "names the file: {line}");
    assert!(!line.contains("c2VjcmV0"), "not the key: {line}");
    assert_eq!(me_on(&mut conn, &new).await.status, 200);
    assert_eq!(
        parts(&login(addr, "johndoe", "secret").await).0["kid"],
        ed25519(3).kid()
    );
}

/// `GET /users/me` on an open keep-alive connection.
async fn me_on(conn: &mut Conn, token: &str) -> Response {
    conn.send(
        format!("GET /users/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    conn.response().await
}

#[test]
fn bad_key_files_exit_2_without_their_content() {
    let tmp = TempDir::new();
    let body = "c2VjcmV0LWtleS1ieXRlcw";
    let cases = [
        tmp.file(
            "garbage.pem",
            format!("-----BEGIN PRIVATE KEY-----\n{body}==\n-----END PRIVATE KEY-----\n")
                .as_bytes(),
        ),
        tmp.file(
            "sec1.pem",
            format!("-----BEGIN EC PRIVATE KEY-----\n{body}==\n-----END EC PRIVATE KEY-----\n")
                .as_bytes(),
        ),
        tmp.file("text.pem", body.as_bytes()),
        format!("{}/missing.pem", tmp.0.display()),
    ];
    for file in &cases {
        let out = run(&["--port", "0", "--signing-key", file], b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("--signing-key") && stderr.contains(file.as_str()),
            "{stderr}"
        );
        assert!(!stderr.contains(body), "{stderr}");
    }
    assert_config_error(&["--issuer", "auth.example"], "--issuer");
    assert_config_error(&["--issuer", "https://auth.example/?x=1"], "--issuer");
}
