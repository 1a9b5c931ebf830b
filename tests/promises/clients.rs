//! The clients' promises (the `clients` feature), whatever the store:
//! introspection sees every ending (a token revoked, a session ended, a
//! password changed answers `{"active":false}` to `POST /introspect` on
//! every instance, across a restart; the tokens nobody ended stay active),
//! which is what a resource server asking us relies on; and guesses at a
//! client's secret are throttled on every instance, as guesses at a
//! password are.

use super::{Backend, Deployment, Settings};
use crate::sessions::{field, login_json, revoke};
use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use password_bearer::clients::{generate_secret, hash_secret};
use password_bearer::users::Users;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// The two clients' secrets: `rs`, a resource server that may introspect,
/// and `svc`, a machine that gets tokens and may not.
struct Secrets {
    rs: String,
    svc: String,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            rs: generate_secret().unwrap(),
            svc: generate_secret().unwrap(),
        }
    }

    fn file(&self) -> String {
        serde_json::json!({
            "rs": {"client_id": "rs", "secret_hash": hash_secret(&self.rs).unwrap(),
                   "introspect": true},
            "svc": {"client_id": "svc", "secret_hash": hash_secret(&self.svc).unwrap(),
                    "scopes": ["items"]},
        })
        .to_string()
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn post_form(addr: SocketAddr, path: &str, body: &str, authorization: &str) -> Response {
    let headers = [("Content-Type", FORM), ("Authorization", authorization)];
    request(addr, "POST", path, &headers, body.as_bytes()).await
}

fn token_form(token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish()
}

/// `rs`'s introspection of `token` on `addr`: the answer's JSON.
async fn introspect(addr: SocketAddr, secrets: &Secrets, token: &str) -> Value {
    let resp = post_form(
        addr,
        "/introspect",
        &token_form(token),
        &basic("rs", &secrets.rs),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// `token` answers `{"active":false}` and nothing more on `addr`: at once,
/// or, on another instance of a shared store, within the propagation
/// bound (as a revoked token's 401 at `/users/me`).
async fn assert_inactive(addr: SocketAddr, secrets: &Secrets, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let answer = introspect(addr, secrets, token).await;
        if answer == serde_json::json!({"active": false}) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "an ended token introspects {answer} on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[track_caller]
fn assert_active(answer: &Value, sub: &str, client_id: &str) {
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], sub, "{answer}");
    assert_eq!(answer["client_id"], client_id, "{answer}");
}

/// The tokens of the promise: those ended, and those nobody ended.
struct Tokens {
    ended: Vec<String>,
    bob: String,
    svc: String,
}

impl Tokens {
    /// On `addr`: bob's access token revoked alone, a session of his
    /// revoked by its refresh token, `svc`'s own token revoked by `svc`
    /// (client authentication at `/revoke`); and one live token of each.
    async fn make(addr: SocketAddr, secrets: &Secrets) -> Tokens {
        let one = login_json(addr, "bob", "bob-password", "").await;
        let two = login_json(addr, "bob", "bob-password", "").await;
        let three = login_json(addr, "bob", "bob-password", "").await;
        assert_eq!(revoke(addr, &field(&one, "access_token")).await.status, 200);
        assert_eq!(
            revoke(addr, &field(&two, "refresh_token")).await.status,
            200
        );
        let svc = basic("svc", &secrets.svc);
        let grant = || async {
            let resp = post_form(addr, "/token", "grant_type=client_credentials", &svc).await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            field(&resp.json(), "access_token")
        };
        let (revoked, live) = (grant().await, grant().await);
        let resp = post_form(addr, "/revoke", &token_form(&revoked), &svc).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        Tokens {
            ended: vec![
                field(&one, "access_token"),
                field(&two, "access_token"),
                revoked,
            ],
            bob: field(&three, "access_token"),
            svc: live,
        }
    }

    /// On every instance: each ended token inactive, the live ones active.
    async fn hold(&self, deployment: &Deployment, secrets: &Secrets) {
        for addr in deployment.addrs() {
            for token in &self.ended {
                assert_inactive(addr, secrets, token).await;
            }
            assert_active(
                &introspect(addr, secrets, &self.bob).await,
                "bob",
                "password-bearer",
            );
            assert_active(&introspect(addr, secrets, &self.svc).await, "svc", "svc");
        }
    }
}

fn bob(password: &str) -> Users {
    users_with(&[("bob", password, false)])
}

/// A revocation that answered 200, by a user or by a client, introspects
/// inactive on every instance and after a restart; so does a session
/// ended by a password change at a reload; what nobody ended stays active.
pub(super) async fn introspection_sees_every_ending_everywhere(backend: Backend) {
    let secrets = Secrets::new();
    let mut deployment = Deployment::start_with_clients(
        backend,
        bob("bob-password"),
        Settings::default(),
        2,
        secrets.file(),
    )
    .await;
    let tokens = Tokens::make(deployment.addr(), &secrets).await;
    tokens.hold(&deployment, &secrets).await;
    if backend.durable() {
        deployment.restart().await;
        tokens.hold(&deployment, &secrets).await;
    }
    deployment.reload(bob("a-new-password")).await;
    for addr in deployment.addrs() {
        assert_inactive(addr, &secrets, &tokens.bob).await;
        assert_active(&introspect(addr, &secrets, &tokens.svc).await, "svc", "svc");
    }
}

/// The client credentials grant for `svc` with `secret`, from the address
/// `source`.
async fn grant_from(addr: SocketAddr, source: std::net::IpAddr, secret: &str) -> Response {
    let authorization = basic("svc", secret);
    let headers = [
        ("Content-Type", FORM),
        ("Authorization", authorization.as_str()),
    ];
    let body = b"grant_type=client_credentials";
    let mut conn = Conn::open_from(addr, source).await;
    conn.send(&request_bytes("POST", "/token", &headers, body))
        .await;
    conn.response().await
}

/// Forty guesses at `svc`'s secret at once, from four addresses, over the
/// instances: at most the per-id limit (10) are checked and answered 401
/// `invalid_client`, the rest 429, as guesses at a password are. Then
/// `svc` is refused on every instance, its right secret too, for the
/// window; the other client is not.
pub(super) async fn guesses_at_a_client_are_throttled_everywhere(backend: Backend) {
    let secrets = Secrets::new();
    let deployment = Deployment::start_with_clients(
        backend,
        bob("bob-password"),
        Settings::default(),
        2,
        secrets.file(),
    )
    .await;
    let addrs = deployment.addrs();
    let mut guesses = JoinSet::new();
    for i in 0..40u8 {
        let addr = addrs[usize::from(i) % addrs.len()];
        let wrong = generate_secret().unwrap();
        guesses.spawn(async move { grant_from(addr, loopback(2 + i % 4), &wrong).await });
    }
    let (mut unauthorized, mut throttled) = (0, 0);
    while let Some(resp) = guesses.join_next().await {
        let resp = resp.unwrap();
        match resp.status {
            401 => {
                assert_eq!(resp.json()["error"], "invalid_client", "{}", resp.text());
                unauthorized += 1;
            }
            429 => throttled += 1,
            status => panic!("a guess answered {status}: {}", resp.text()),
        }
    }
    assert!(
        (1..=10).contains(&unauthorized) && throttled == 40 - unauthorized,
        "{unauthorized} guesses checked, {throttled} throttled"
    );
    for &addr in &addrs {
        let resp = grant_from(addr, loopback(6), &secrets.svc).await;
        assert_eq!(
            resp.status,
            429,
            "svc is throttled on {addr}: {}",
            resp.text()
        );
        let answer = introspect(addr, &secrets, "not-a-token").await;
        assert_eq!(answer, serde_json::json!({"active": false}));
    }
}
