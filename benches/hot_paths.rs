//! Where every microsecond goes: the request's hot paths one by one, then
//! whole requests in process, then over loopback side by side with a bare
//! hyper server that answers the same bytes without auth.
//!
//! `cargo bench --bench hot_paths`; one group: `cargo bench --bench hot_paths -- token`.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::Full;
use hyper::Request;
use password_bearer::bearer::bearer_token;
use password_bearer::form::{parse_token_body, parse_token_form};
use password_bearer::password::{hash_password, verify_password};
use password_bearer::token::{issue, verify, SecretKey};
use password_bearer::users::{User, Users};
use password_bearer::{serve, App, Config};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
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

criterion_group!(benches, parsing, tokens, handle, argon2id, loopback);
criterion_main!(benches);
