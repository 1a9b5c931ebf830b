//! Several instances behind a load balancer: tokens are stateless, so
//! servers sharing the signing key (and the users) accept each other's
//! tokens, and a server with another key, or without the user, refuses them.

use crate::support::*;
use password_bearer::token::SecretKey;
use password_bearer::users::Users;
use password_bearer::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_the_key_accept_each_others_tokens() {
    let a = start().await;
    // B also serves the embedder's scoped route: scopes travel too.
    let b = start_with_items(Config::new(Users::demo(), test_key())).await;
    let other_key =
        SecretKey::new(b"another deployment's key, 32 bytes or more").expect("long enough");
    let c = start_with(Config::new(Users::demo(), other_key)).await;

    let from_a = access_token(&login_with_scope(a.addr, "johndoe", "secret", "me items").await);
    let from_b = login(b.addr, "johndoe", "secret").await;
    let from_c = login(c.addr, "johndoe", "secret").await;

    for (token, server, which) in [
        (&from_a, &b, "A's token on B"),
        (&from_a, &a, "A's token on A"),
        (&from_b, &a, "B's token on A"),
    ] {
        let resp = get_me(server.addr, &format!("Bearer {token}")).await;
        assert_eq!(resp.status, 200, "{which}: {}", resp.text());
        assert_json_exact(&resp, 200, JOHNDOE_ME);
    }
    let resp = get_items(b.addr, &from_a).await;
    assert_json_exact(&resp, 200, &items_body("johndoe"));

    // Another key: every token of A and B is refused, and C's elsewhere.
    for (token, server, which) in [
        (&from_a, &c, "A's token on C"),
        (&from_b, &c, "B's token on C"),
        (&from_c, &a, "C's token on A"),
        (&from_c, &b, "C's token on B"),
    ] {
        let resp = get_me(server.addr, &format!("Bearer {token}")).await;
        assert_eq!(resp.status, 401, "{which}: {}", resp.text());
        assert_401(&resp, INVALID_CREDENTIALS);
    }
    let resp = get_items(b.addr, &from_c).await;
    assert_401(&resp, INVALID_CREDENTIALS);
    // C's own tokens work on C.
    let resp = get_me(c.addr, &format!("Bearer {from_c}")).await;
    assert_json_exact(&resp, 200, JOHNDOE_ME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_other_users_refuses_a_user_it_does_not_have() {
    let a = start().await;
    let b = start_with(Config::new(
        users_with(&[("bob", "hunter2", false)]),
        test_key(),
    ))
    .await;
    let token = login(a.addr, "johndoe", "secret").await;
    let resp = get_me(b.addr, &format!("Bearer {token}")).await;
    assert_401(&resp, INVALID_CREDENTIALS);
    // bob's token from B names a user A does not have.
    let bob = login(b.addr, "bob", "hunter2").await;
    let resp = get_me(a.addr, &format!("Bearer {bob}")).await;
    assert_401(&resp, INVALID_CREDENTIALS);
}
