//! Introspection (the `clients` feature): a token revoked, a session
//! ended or a password changed answers `{"active":false}` to `POST
//! /introspect` on every instance, across a restart, whatever the store;
//! the tokens nobody ended stay active. What a resource server asking us
//! relies on.

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
