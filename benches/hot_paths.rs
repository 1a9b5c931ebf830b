//! Where every microsecond goes: the request's hot paths one by one, then
//! whole requests in process, then over loopback side by side with a bare
//! hyper server that answers the same bytes without auth.
//!
//! `cargo bench --bench hot_paths`; one group: `cargo bench --bench hot_paths -- token`.
//! Sessions: `cargo bench --bench hot_paths -- 'refresh|revocation'` (criterion
//! takes one filter, a regex): a refresh grant beside a login, a refresh's
//! parts, and what the deny-list costs `/users/me` and `POST /revoke`.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use password_bearer::bearer::bearer_token;
use password_bearer::form::{parse_token_body, parse_token_form};
use password_bearer::password::{hash_password, verify_password};
use password_bearer::sessions::memory::MemorySessions;
use password_bearer::sessions::{RefreshToken, Session, SessionId, SessionStore, TokenId};
use password_bearer::throttle::{Limits, Throttle};
use password_bearer::token::{issue, issue_in_session, verify, SecretKey};
use password_bearer::users::{User, UserStore, Users};
use password_bearer::{serve, App, Config};
use serde::Serialize;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

#[allow(dead_code)]
#[path = "../examples/baseline.rs"]
mod baseline;

const KEY: &[u8] = b"benchmark-key-0123456789abcdef-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

fn key() -> SecretKey {
    SecretKey::new(KEY).expect("the key is long enough")
}

/// The demo users and a valid token for johndoe.
fn demo_app() -> (App, String) {
    let app = App::new(Config::new(Users::demo(), key()));
    (app, issue(&key(), "johndoe", now(), 3600))
}

/// One user whose hash is as cheap as argon2 allows, so that `/token`
/// measures the path around the hash, not the hash.
fn cheap_app() -> App {
    let params = Params::new(8, 1, 1, None).expect("minimal parameters are valid");
    let salt = SaltString::encode_b64(b"benchmark-salt!!").expect("16 bytes is a valid salt");
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"secret", &salt)
        .expect("hashing succeeds")
        .to_string();
    let user = User::builder("johndoe", hash)
        .full_name("John Doe")
        .disabled(false)
        .build()
        .expect("the hash is a PHC string");
    let users = Users::from_users([user]).expect("one user");
    let mut config = Config::new(users, key());
    config.login_log = false;
    App::new(config)
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let body = b"grant_type=password&username=johndoe&password=secret&scope=me+items";
    group.bench_function("token_form", |b| {
        b.iter(|| parse_token_form(black_box(body)))
    });
    let header = format!("Bearer {}", issue(&key(), "johndoe", now(), 3600));
    group.bench_function("bearer_header", |b| {
        b.iter(|| bearer_token(black_box(Some(header.as_bytes()))).is_ok())
    });
    // The same form as `curl -F` sends it, then 16 KiB (the body limit) of
    // lines that start like a delimiter and are not: the search's worst.
    let boundary = "------------------------d74496d66958873e";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let multipart = format!(
        "{}{}{}{}--{boundary}--\r\n",
        part("grant_type", "password"),
        part("username", "johndoe"),
        part("password", "secret"),
        part("scope", "me items"),
    );
    group.bench_function("token_form_multipart", |b| {
        b.iter(|| {
            parse_token_body(
                Some(content_type.as_bytes()),
                black_box(multipart.as_bytes()),
                false,
            )
        })
    });
    let near = format!("\r\n--{}", &boundary[..boundary.len() - 1]);
    let mut worst = part("password", "");
    worst.truncate(worst.len() - 2);
    while worst.len() + near.len() <= 16 * 1024 - 200 {
        worst.push_str(&near);
    }
    worst = format!("{}{worst}\r\n--{boundary}--", part("username", "johndoe"));
    group.throughput(Throughput::Bytes(worst.len() as u64));
    group.bench_function("token_form_multipart_16k_near_delimiters", |b| {
        b.iter(|| {
            parse_token_body(
                Some(content_type.as_bytes()),
                black_box(worst.as_bytes()),
                false,
            )
        })
    });
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let mut group = c.benchmark_group("token");
    let key = key();
    let now = now();
    group.bench_function("issue", |b| {
        b.iter(|| issue(&key, black_box("johndoe"), now, 1800))
    });
    let token = issue(&key, "johndoe", now, 1800);
    group.bench_function("verify", |b| {
        b.iter(|| verify(&key, black_box(&token), now, 0))
    });
    group.finish();
}

fn handle(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let mut group = c.benchmark_group("handle");
    let (app, token) = demo_app();
    let auth = format!("Bearer {token}");
    let get_me = |auth: Option<&str>| {
        let mut request = Request::get("/users/me");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request
            .body(Full::new(Bytes::new()))
            .expect("a valid request")
    };
    group.bench_function("users_me_200", |b| {
        b.iter(|| rt.block_on(app.handle(get_me(Some(&auth)), None)).status())
    });
    group.bench_function("users_me_401", |b| {
        b.iter(|| rt.block_on(app.handle(get_me(None), None)).status())
    });
    let cheap = cheap_app();
    let login = || {
        Request::post("/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"username=johndoe&password=secret",
            )))
            .expect("a valid request")
    };
    // With a client address, as served: its throttle reservation is
    // taken and returned on each success.
    let peer = Some(([192, 0, 2, 1], 40000).into());
    group.bench_function("token_200_cheap_hash", |b| {
        b.iter(|| rt.block_on(cheap.handle(login(), peer)).status())
    });
    group.finish();
}

fn argon2id(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    let hash = hash_password("secret").expect("hashing succeeds");
    group.bench_function("verify_m19456_t2_p1", |b| {
        b.iter(|| verify_password(&hash, black_box(b"secret")))
    });
    group.finish();
}

/// One keep-alive connection: write a request, read the whole response.
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr, token: &str) -> Client {
        let stream = TcpStream::connect(addr).await.expect("the server listens");
        stream.set_nodelay(true).expect("nodelay");
        let request = format!(
            "GET /users/me HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .into_bytes();
        Client {
            stream,
            request,
            buf: vec![0; 4096],
        }
    }

    /// Sends one request; returns the response's length. Both servers
    /// answer the same body, so one read of the head and body suffices
    /// once the length is known.
    async fn round_trip(&mut self) -> usize {
        self.stream.write_all(&self.request).await.expect("write");
        let mut read = 0;
        loop {
            let n = self.stream.read(&mut self.buf[read..]).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            read += n;
            if let Some(end) = response_end(&self.buf[..read]) {
                assert_eq!(end, read, "one response at a time");
                return read;
            }
        }
    }
}

/// Where the response in `buf` ends, once its head and body are complete.
fn response_end(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })?
        .parse()
        .ok()?;
    (buf.len() >= head_end + length).then_some(head_end + length)
}

fn loopback(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let (ours, baseline, token) = rt.block_on(async {
        let (app, token) = demo_app();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ours = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, Arc::new(app), std::future::pending()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let baseline = listener.local_addr().expect("addr");
        tokio::spawn(baseline::serve_baseline(listener));
        (ours, baseline, token)
    });
    let mut group = c.benchmark_group("loopback_users_me");
    group.throughput(Throughput::Elements(1));
    for (name, addr) in [("password_bearer", ours), ("bare_hyper", baseline)] {
        let mut client = rt.block_on(Client::connect(addr, &token));
        assert!(rt.block_on(client.round_trip()) > baseline::BODY.len());
        group.bench_function(name, |b| b.iter(|| rt.block_on(client.round_trip())));
    }
    group.finish();
}

/// The demo users (real argon2id hashes, m=19456 t=2), sessions on (the
/// default), no login log lines.
fn session_app() -> App {
    let mut config = Config::new(Users::demo(), key());
    config.login_log = false;
    App::new(config)
}

/// A client address, as served: the throttle's address reservations are
/// taken and returned as for a real client.
fn peer() -> Option<SocketAddr> {
    Some(([192, 0, 2, 1], 40000).into())
}

fn form_post(path: &str, body: String) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request")
}

fn refresh_request(refresh_token: &str) -> Request<Full<Bytes>> {
    form_post(
        "/token",
        format!("grant_type=refresh_token&refresh_token={refresh_token}"),
    )
}

fn revoke_request(token: &str) -> Request<Full<Bytes>> {
    form_post("/revoke", format!("token={token}"))
}

fn me_request(access_token: &str) -> Request<Full<Bytes>> {
    Request::get("/users/me")
        .header("authorization", format!("Bearer {access_token}"))
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// The JSON body of a 200 answer.
fn json_200(rt: &Runtime, response: Response<Full<Bytes>>) -> serde_json::Value {
    assert_eq!(response.status(), StatusCode::OK);
    let body = rt
        .block_on(response.into_body().collect())
        .expect("a full body")
        .to_bytes();
    serde_json::from_slice(&body).expect("a JSON answer")
}

/// `(access_token, refresh_token)` of a login as johndoe.
fn log_in(rt: &Runtime, app: &App, scope: &str) -> (String, String) {
    let body = format!("username=johndoe&password=secret&scope={scope}");
    let answer = json_200(
        rt,
        rt.block_on(app.handle(form_post("/token", body), peer())),
    );
    let field = |name: &str| answer[name].as_str().expect("a token").to_owned();
    (field("access_token"), field("refresh_token"))
}

/// The output of a future that is ready at once (the in-memory stores'
/// are), without a runtime's `block_on` around it.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future was not ready at once"),
    }
}

/// Times requests answered by `app` from the client address `client`, one
/// call per iteration, from `App::handle`'s call to its answer: each
/// request is built and each answer read outside the clock, by `next`.
fn time_handle_from(
    client: Option<SocketAddr>,
    rt: &Runtime,
    app: &App,
    iters: u64,
    mut next: impl FnMut(Option<Response<Full<Bytes>>>) -> Request<Full<Bytes>>,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut request = next(None);
    for _ in 0..iters {
        let start = Instant::now();
        let response = rt.block_on(app.handle(request, client));
        total += start.elapsed();
        request = next(Some(response));
    }
    total
}

/// [`time_handle_from`] the usual client address.
fn time_handle(
    rt: &Runtime,
    app: &App,
    iters: u64,
    next: impl FnMut(Option<Response<Full<Bytes>>>) -> Request<Full<Bytes>>,
) -> Duration {
    time_handle_from(peer(), rt, app, iters, next)
}

/// A refresh grant, start to answer, against a login in the same run.
fn refresh(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let mut group = c.benchmark_group("refresh");
    // johndoe's real argon2id hash: a refresh that hashed would take
    // milliseconds, not microseconds.
    let app = session_app();
    let (_, first) = log_in(&rt, &app, "me+items");
    let mut refresh_token = first;
    group.bench_function("grant", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &app, iters, |answer| {
                if let Some(answer) = answer {
                    let answer = json_200(&rt, answer);
                    refresh_token = answer["refresh_token"].as_str().expect("rotated").into();
                }
                refresh_request(&refresh_token)
            })
        })
    });
    // The same path with the narrowest scope asked: one scope kept.
    let (_, first) = log_in(&rt, &app, "me+items");
    let mut refresh_token = first;
    group.bench_function("grant_scope_narrowed", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &app, iters, |answer| {
                if let Some(answer) = answer {
                    let answer = json_200(&rt, answer);
                    refresh_token = answer["refresh_token"].as_str().expect("rotated").into();
                }
                form_post(
                    "/token",
                    format!("grant_type=refresh_token&refresh_token={refresh_token}&scope=me"),
                )
            })
        })
    });
    // The frame around a grant: the request read, the form parsed, the
    // refresh token read and its session looked up (none: a well-formed
    // token of no session), an error answered. Without a client address,
    // so that the failures count against nobody's throttle.
    let unknown = Session::start("johndoe", "", "", now(), now() + 60)
        .expect("the OS random source works")
        .refresh_token(0);
    group.bench_function("refused_unknown_session", |b| {
        b.iter_custom(|iters| {
            time_handle_from(None, &rt, &app, iters, |answer| {
                if let Some(answer) = answer {
                    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
                }
                refresh_request(&unknown)
            })
        })
    });
    // A login with the cheapest argon2 parameters: the path around the
    // hash, a session started. Its own app: each login is a new session,
    // and the per-user cap would evict the one refreshed above.
    let cheap = cheap_app();
    group.bench_function("login_cheap_hash", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &cheap, iters, |answer| {
                if let Some(answer) = answer {
                    assert_eq!(answer.status(), StatusCode::OK);
                }
                form_post("/token", "username=johndoe&password=secret".into())
            })
        })
    });
    group.finish();

    // A login as deployed: the demo users' argon2id hash (m=19456, t=2).
    let mut group = c.benchmark_group("refresh_vs_login");
    group.sample_size(10);
    let login_app = session_app();
    group.bench_function("login_argon2id_default", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &login_app, iters, |answer| {
                if let Some(answer) = answer {
                    assert_eq!(answer.status(), StatusCode::OK);
                }
                form_post("/token", "username=johndoe&password=secret".into())
            })
        })
    });
    group.finish();
}

/// RFC 6749 §5.1's answer, as `handlers/token.rs` serializes it.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// A refresh grant's steps one by one, in the order `handlers/refresh.rs`
/// takes them.
fn refresh_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("refresh_parts");
    let key = key();
    let now = now();
    let session = Session::start("johndoe", "", "me items", now, now + 14 * 86_400)
        .expect("the OS random source works");
    let text = session.refresh_token(0);
    let body = format!("grant_type=refresh_token&refresh_token={text}");
    let content_type = Some(&b"application/x-www-form-urlencoded"[..]);
    group.bench_function("1_parse_form", |b| {
        b.iter(|| parse_token_body(content_type, black_box(body.as_bytes()), true))
    });
    let throttle = Throttle::new(Limits::default());
    let ip = peer().map(|p| p.ip());
    group.bench_function("2_throttle_admit_and_refund", |b| {
        b.iter(|| {
            throttle
                .try_admit_address(black_box(ip))
                .expect("never throttled")
                .refund()
        })
    });
    group.bench_function("3_read_refresh_token", |b| {
        b.iter(|| RefreshToken::parse(black_box(&text)))
    });
    let store = MemorySessions::default();
    ready(store.create(session.clone())).expect("kept");
    group.bench_function("4_store_get", |b| {
        b.iter(|| ready(store.get(black_box(session.id), now)))
    });
    let presented = RefreshToken::parse(&text).expect("a refresh token");
    group.bench_function("5_check_tag_hmac", |b| {
        b.iter(|| session.issued(black_box(&presented)))
    });
    let users = Users::demo();
    group.bench_function("6_user_find", |b| {
        b.iter(|| ready(users.find(black_box("johndoe"))))
    });
    let mut counter = 0;
    group.bench_function("7_store_advance", |b| {
        b.iter(|| {
            let advanced = ready(store.advance(session.id, counter, now, now + 60, now + 1800));
            counter += 1;
            advanced
        })
    });
    group.bench_function("8_jti_random", |b| b.iter(TokenId::random));
    let jti = TokenId::random().expect("the OS random source works");
    group.bench_function("9_ids_encode", |b| {
        b.iter(|| (black_box(jti).encode(), black_box(session.id).encode()))
    });
    let (jti_text, sid_text) = (jti.encode(), session.id.encode());
    group.bench_function("10_issue_access_token", |b| {
        b.iter(|| {
            issue_in_session(
                &key,
                black_box("johndoe"),
                Some("me items"),
                (&jti_text, &sid_text),
                now,
                1800,
            )
        })
    });
    group.bench_function("11_next_refresh_token", |b| {
        b.iter(|| session.refresh_token(black_box(1)))
    });
    let access = issue_in_session(
        &key,
        "johndoe",
        Some("me items"),
        (&jti_text, &sid_text),
        now,
        1800,
    );
    let next = session.refresh_token(1);
    group.bench_function("12_answer_json", |b| {
        b.iter(|| {
            serde_json::to_vec(&TokenResponse {
                access_token: black_box(&access),
                token_type: "bearer",
                expires_in: 1800,
                refresh_token: Some(&next),
                scope: None,
            })
        })
    });
    group.finish();
}

/// What revocation costs `/users/me` (a cached token's check, with nothing
/// revoked since it was last checked, or right after a revocation of
/// another session's token, which sends it to the deny-list), and what a
/// revocation costs.
fn revocation(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let mut group = c.benchmark_group("revocation");
    // An access token of a session of its own, as a login would issue it.
    let mint_for = |key: &SecretKey, sub: &str| {
        let jti = TokenId::random().expect("random").encode();
        let sid = SessionId::random().expect("random").encode();
        issue_in_session(key, sub, None, (&jti, &sid), now(), 1800)
    };
    let mint = |key: &SecretKey| mint_for(key, "johndoe");

    // Nothing revoked: the cache hit's one extra atomic load. Before each
    // check, off the clock, a `POST /revoke` of a token that revokes
    // nothing: the same work between checks as in the benches below, so
    // that the caches are as warm (or cold) in both.
    let app = cheap_app();
    let (mine, _) = log_in(&rt, &app, "");
    json_200(&rt, rt.block_on(app.handle(me_request(&mine), None)));
    let nothing = mint(&SecretKey::new(b"another-key-0123456789abcdef-0123456").expect("a key"));
    group.bench_function("users_me_cached_nothing_revoked", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &app, iters, |answer| {
                if let Some(answer) = answer {
                    assert_eq!(answer.status(), StatusCode::OK);
                }
                let revoked = rt.block_on(app.handle(revoke_request(&nothing), None));
                assert_eq!(revoked.status(), StatusCode::OK);
                me_request(&mine)
            })
        })
    });

    // Before each check, another session's access token is revoked (off
    // the clock): the generation has moved, so the cached token is looked
    // up in the deny-list (a mutex, two ids decoded, two map lookups).
    // `listed` revocations already held, as on a server that revokes a lot.
    for listed in [1, 10_000] {
        let app = cheap_app();
        let (mine, _) = log_in(&rt, &app, "");
        let (other, _) = log_in(&rt, &app, "");
        for _ in 1..listed {
            let revoked =
                rt.block_on(app.handle(revoke_request(&mint(app.users_and_keys().key())), None));
            assert_eq!(revoked.status(), StatusCode::OK);
        }
        json_200(&rt, rt.block_on(app.handle(me_request(&mine), None)));
        let name = format!("users_me_cached_after_a_revocation_{listed}_listed");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                time_handle(&rt, &app, iters, |answer| {
                    if let Some(answer) = answer {
                        assert_eq!(answer.status(), StatusCode::OK);
                    }
                    let revoked = rt.block_on(app.handle(revoke_request(&other), None));
                    assert_eq!(revoked.status(), StatusCode::OK);
                    me_request(&mine)
                })
            })
        });
    }

    // POST /revoke of an access token: verified in full (no cache), then
    // kept in the store and the deny-list. The same token every time: the
    // list does not grow, and each revocation moves the generation.
    let app = cheap_app();
    let (access, _) = log_in(&rt, &app, "");
    group.bench_function("revoke_access_token", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &app, iters, |answer| {
                if let Some(answer) = answer {
                    assert_eq!(answer.status(), StatusCode::OK);
                }
                revoke_request(&access)
            })
        })
    });
    // A new access token revoked with the deny-list at its cap (100,000
    // entries, all in force, of 100 users, each under the per-user cap):
    // each addition drops the entry expiring first, found in an ordered
    // set. The tokens are minted off the clock. (Filling the list takes
    // about a second, also when this group is filtered out: criterion runs
    // every group's setup.)
    let app = cheap_app();
    for i in 0..100_000 {
        let token = mint_for(app.users_and_keys().key(), &format!("user{}", i % 100));
        let revoked = rt.block_on(app.handle(revoke_request(&token), None));
        assert_eq!(revoked.status(), StatusCode::OK);
    }
    group.bench_function("revoke_access_token_list_full", |b| {
        b.iter_custom(|iters| {
            time_handle(&rt, &app, iters, |answer| {
                if let Some(answer) = answer {
                    assert_eq!(answer.status(), StatusCode::OK);
                }
                revoke_request(&mint(app.users_and_keys().key()))
            })
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    parsing,
    tokens,
    handle,
    argon2id,
    loopback,
    refresh,
    refresh_parts,
    revocation
);
criterion_main!(benches);
