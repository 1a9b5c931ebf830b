//! The revocations: one that answered 200 holds until its tokens expire,
//! whatever another account does, across restarts and instances.

use super::{Backend, Deployment, Settings};
use crate::sessions::{field, login_json, refresh, revoke};
use crate::support::*;
use password_bearer::sessions::MAX_REVOCATIONS_PER_USER;
use password_bearer::users::Users;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The victim and the flooder, both active.
fn bob_and_mallory() -> Users {
    users_with(&[
        ("bob", "bob-password", false),
        ("mallory", "mallory-password", false),
    ])
}

/// bob's revocations, made before anything else: an access token revoked
/// alone, and a session revoked with its access token; and a session of
/// his that nobody revoked.
struct Victim {
    revoked: [String; 2],
    live: String,
}

impl Victim {
    async fn revoke_on(addr: SocketAddr) -> Victim {
        let one = login_json(addr, "bob", "bob-password", "").await;
        let two = login_json(addr, "bob", "bob-password", "").await;
        let three = login_json(addr, "bob", "bob-password", "").await;
        assert_eq!(revoke(addr, &field(&one, "access_token")).await.status, 200);
        assert_eq!(
            revoke(addr, &field(&two, "refresh_token")).await.status,
            200
        );
        Victim {
            revoked: [field(&one, "access_token"), field(&two, "access_token")],
            live: field(&three, "refresh_token"),
        }
    }

    /// On every instance: both revoked tokens 401, and his live session
    /// refreshes to an access token that works.
    async fn holds(&mut self, deployment: &Deployment) {
        for addr in deployment.addrs() {
            for token in &self.revoked {
                assert_revoked(addr, token).await;
            }
            let resp = refresh(addr, &self.live, None).await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            let json = resp.json();
            self.live = field(&json, "refresh_token");
            let me = get_me(addr, &format!("Bearer {}", field(&json, "access_token"))).await;
            assert_eq!(me.status, 200, "{}", me.text());
        }
    }
}

/// `token` answers 401 on `addr`: at once, or, on another instance of a
/// shared store, within the propagation bound (a second).
async fn assert_revoked(addr: SocketAddr, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let resp = get_me(addr, &format!("Bearer {token}")).await;
        if resp.status == 401 {
            assert_401(&resp, INVALID_CREDENTIALS);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a revoked token answered {} on {addr}: {}",
            resp.status,
            resp.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// mallory's session refreshed and its new access token revoked, `times`
/// times, over the instances in turn: what the attack of issue 18 does.
/// Her revoked access tokens.
async fn flood(deployment: &Deployment, times: usize) -> Vec<String> {
    let addrs = deployment.addrs();
    let login = login_json(addrs[0], "mallory", "mallory-password", "").await;
    let mut refresh_token = field(&login, "refresh_token");
    let mut revoked = Vec::new();
    for i in 0..times {
        let addr = addrs[i % addrs.len()];
        let resp = refresh(addr, &refresh_token, None).await;
        assert_eq!(resp.status, 200, "refresh {i}: {}", resp.text());
        let json = resp.json();
        refresh_token = field(&json, "refresh_token");
        let access = field(&json, "access_token");
        let answer = revoke(addr, &access).await;
        assert_eq!(answer.status, 200, "revoke {i}: {}", answer.text());
        revoked.push(access);
    }
    revoked
}

/// mallory's revoked tokens: each 401 on the first instance, and the
/// first, one in the middle and the last on every other.
async fn flood_holds(deployment: &Deployment, revoked: &[String]) {
    for token in revoked {
        assert_revoked(deployment.addr(), token).await;
    }
    let sample = [0, revoked.len() / 2, revoked.len() - 1];
    for &addr in &deployment.addrs()[1..] {
        for &i in &sample {
            assert_revoked(addr, &revoked[i]).await;
        }
    }
}

/// One account revoking far past its cap (issue 18: "refresh, then revoke
/// the new access token", in a loop) undoes none of another account's
/// revocations, nor its own: not in memory, not in the file across a
/// restart, not on either of two instances sharing Redis, nor on both
/// after their restart; what was collapsed is counted.
pub(super) async fn a_revocation_flood_undoes_no_other_users_revocation(backend: Backend) {
    let settings = Settings {
        max_revocations: 64,
        max_revocations_per_user: 16,
        ..Settings::default()
    };
    let mut deployment = Deployment::start(backend, bob_and_mallory(), settings, 2).await;
    let mut victim = Victim::revoke_on(deployment.addr()).await;
    let revoked = flood(&deployment, 4 * 16 + 3).await;
    victim.holds(&deployment).await;
    flood_holds(&deployment, &revoked).await;
    assert!(
        deployment.collapsed().await >= 16.0,
        "the collapses are counted"
    );
    if backend.durable() {
        deployment.restart().await;
        victim.holds(&deployment).await;
        flood_holds(&deployment, &revoked).await;
    }
}

/// The variant of issue 18: the revocations filled to the total cap, a
/// restart, and two more by the flooder: the victim's revoked tokens stay
/// refused, without any further restart, and after one.
pub(super) async fn a_full_list_restarted_then_flooded_keeps_other_users_revocations(
    backend: Backend,
) {
    let settings = Settings {
        max_revocations: 24,
        max_revocations_per_user: MAX_REVOCATIONS_PER_USER,
        ..Settings::default()
    };
    let mut deployment = Deployment::start(backend, bob_and_mallory(), settings, 2).await;
    let mut victim = Victim::revoke_on(deployment.addr()).await;
    // bob revoked before: his entries end first, what a list full of
    // entries would drop (waiting out the clock's second, so that they do).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // bob's two and mallory's: the list and the store at their cap.
    let mut revoked = flood(&deployment, 24 - 2).await;
    if backend.durable() {
        deployment.restart().await;
    }
    revoked.extend(flood(&deployment, 2).await);
    victim.holds(&deployment).await;
    flood_holds(&deployment, &revoked).await;
    assert!(
        deployment.collapsed().await >= 1.0,
        "the collapse is counted"
    );
    if backend.durable() {
        deployment.restart().await;
        victim.holds(&deployment).await;
        flood_holds(&deployment, &revoked).await;
    }
}
