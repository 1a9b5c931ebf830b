//! A service of your own that accepts password-bearer's access tokens
//! without the server's secret: it checks each token against the public
//! keys of the server's JWKS (`GET /.well-known/jwks.json`), on hyper with
//! no framework, and answers `GET /hello` with the token's `sub`, or 401.
//!
//! ```sh
//! openssl genpkey -algorithm ed25519 -out signing.pem
//! cargo run --release --features signing -- --signing-key signing.pem \
//!     --issuer http://127.0.0.1:8000 --audience orders-api &
//! cargo run --features signing --example resource_server -- \
//!     --jwks-uri http://127.0.0.1:8000/.well-known/jwks.json \
//!     --issuer http://127.0.0.1:8000 --audience orders-api --port 8080 &
//! TOKEN=$(curl -s -d 'username=johndoe&password=secret' http://127.0.0.1:8000/token \
//!     | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/hello   # hello johndoe
//! ```
//!
//! What it checks, with [`password_bearer::jwks`]: the header's `alg` is in
//! its allow-list (`--algorithms`, by default `EdDSA,ES256`; never `none`,
//! never `HS256`), the `kid` names a key of the set and the signature is
//! that key's, `typ` is `at+jwt`, `iss` is `--issuer`, `aud` is or lists
//! `--audience`, and `exp` has not passed.
//!
//! When it fetches the set: at the first token, when the copy it holds is
//! older than the answer's `Cache-Control: max-age` (capped by
//! `--max-cache-seconds`, 600 by default), and when a token names a `kid`
//! it has not got (the server has rotated to a key published since). Never
//! more than once per `--cooldown-seconds` (30 by default), so that tokens
//! with made-up `kid`s cannot make it hammer the server; until then it
//! verifies with the copy it has. docs/verifying-tokens.md gives the
//! rotation these timings serve.
//!
//! The fetch is plain HTTP (hyper's client on a `TcpStream`): keep the JWKS
//! on a network you trust, or add a TLS connector, since whoever answers
//! the fetch chooses the keys.
//!
//! A service that verifies by itself never asks the server, so a token
//! revoked there, or a disabled user's, passes here until its `exp`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use password_bearer::jwks::{Jwks, Rules, TokenError};
use password_bearer::token::Algorithm;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// How long a fetch of the JWKS may take, and how big its answer may be.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const JWKS_LIMIT: usize = 64 * 1024;

/// What the service is told on its command line.
pub(crate) struct Settings {
    /// Where the JWKS is (`http://` only).
    pub(crate) jwks_uri: Uri,
    /// The algorithms, issuer and audience a token must have.
    pub(crate) rules: Rules,
    /// The least time between two fetches of the JWKS.
    pub(crate) cooldown: Duration,
    /// The longest a fetched set is kept, whatever its `max-age` says.
    pub(crate) max_cache: Duration,
}

/// The keys fetched last, and when.
struct Cache {
    jwks: Arc<Jwks>,
    /// When the copy is too old to use without trying to fetch it again.
    stale_at: Option<Instant>,
    /// The last fetch tried, for the cooldown.
    last_fetch: Option<Instant>,
}

/// The service's state: its settings and its copy of the keys.
pub(crate) struct Keys {
    settings: Settings,
    /// One fetch at a time: a request that needs the keys fetched waits for
    /// the fetch under way instead of starting another.
    cache: Mutex<Cache>,
}

impl Keys {
    pub(crate) fn new(settings: Settings) -> Keys {
        Keys {
            settings,
            cache: Mutex::new(Cache {
                jwks: Arc::new(Jwks::default()),
                stale_at: None,
                last_fetch: None,
            }),
        }
    }

    /// The claims' `sub` if `token` is good.
    async fn verify(&self, token: &str) -> Result<String, TokenError> {
        let mut jwks = self.keys(false).await;
        // A `kid` the set lacks: a key published since the last fetch (a
        // rotation), or a made-up one. Fetch again, unless a fetch was
        // tried within the cooldown.
        if kid_of(token).is_some_and(|kid| !jwks.has_kid(&kid)) {
            jwks = self.keys(true).await;
        }
        Ok(jwks.verify(token, &self.settings.rules)?.sub)
    }

    /// The keys, fetched again first if they are stale (or `unknown_kid`),
    /// and the cooldown since the last fetch has passed. A failed fetch
    /// keeps the keys held (and is logged): the server being away for a
    /// moment does not lock everyone out.
    async fn keys(&self, unknown_kid: bool) -> Arc<Jwks> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let stale = cache.stale_at.is_none_or(|at| now >= at);
        let cooled = cache
            .last_fetch
            .is_none_or(|at| now.duration_since(at) >= self.settings.cooldown);
        if (stale || unknown_kid) && cooled {
            cache.last_fetch = Some(now);
            match tokio::time::timeout(FETCH_TIMEOUT, fetch(&self.settings.jwks_uri)).await {
                Ok(Ok((jwks, max_age))) => {
                    cache.jwks = Arc::new(jwks);
                    cache.stale_at = Some(now + max_age.min(self.settings.max_cache));
                }
                Ok(Err(e)) => eprintln!("resource_server: the JWKS: {e}"),
                Err(_) => eprintln!("resource_server: the JWKS: no answer in {FETCH_TIMEOUT:?}"),
            }
        }
        Arc::clone(&cache.jwks)
    }
}

/// The `kid` of a token's header, read before anything is verified, only to
/// know whether the keys held can verify it.
fn kid_of(token: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    Some(header.get("kid")?.as_str()?.to_owned())
}

/// `GET uri` with hyper's HTTP/1.1 client: the keys, and how long the
/// answer may be kept (its `Cache-Control: max-age`, zero without one).
async fn fetch(uri: &Uri) -> Result<(Jwks, Duration), String> {
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("{uri}: only http://HOST[:PORT]/PATH is fetched"));
    };
    let address = (authority.host(), authority.port_u16().unwrap_or(80));
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    // The connection is driven by its own task, and closed when `sender`
    // is dropped.
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(HOST, authority.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("{uri}: {}", response.status()));
    }
    let max_age = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(max_age)
        .unwrap_or(Duration::ZERO);
    let body = Limited::new(response.into_body(), JWKS_LIMIT)
        .collect()
        .await
        .map_err(|e| format!("{uri}: {e}"))?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| format!("{uri}: not UTF-8"))?;
    let jwks = Jwks::from_json(text).map_err(|e| format!("{uri}: {e}"))?;
    Ok((jwks, max_age))
}

/// The `max-age` of a `Cache-Control` value (`public, max-age=300`);
/// `no-store` and `no-cache` mean none.
fn max_age(cache_control: &str) -> Option<Duration> {
    let directives = || cache_control.split(',').map(str::trim);
    if directives()
        .any(|d| d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache"))
    {
        return None;
    }
    directives()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|seconds| seconds.parse().ok())
        .map(Duration::from_secs)
}

/// `GET /hello`: 200 `hello SUB`, or 401 without a good bearer token.
pub(crate) async fn route(keys: &Keys, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if (request.method(), request.uri().path()) != (&Method::GET, "/hello") {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        let mut response = text(StatusCode::UNAUTHORIZED, "no bearer token\n".into());
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, "Bearer".parse().expect("a valid header"));
        return response;
    };
    match keys.verify(token).await {
        Ok(sub) => text(StatusCode::OK, format!("hello {sub}\n")),
        Err(e) => {
            // Why, for the client and the log; never the token itself.
            let mut response = text(StatusCode::UNAUTHORIZED, format!("{e}\n"));
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                r#"Bearer error="invalid_token""#.parse().expect("a valid header"),
            );
            response
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("a valid header"),
    );
    response
}

/// Serves `route` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, keys: Arc<Keys>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let keys = Arc::clone(&keys);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let keys = Arc::clone(&keys);
                async move { Ok::<_, Infallible>(route(&keys, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                eprintln!("resource_server: a connection: {e}");
            }
        });
    }
}

/// The command line: `--jwks-uri URI --issuer URL --audience AUD` and the
/// optional `--port N` (8080), `--algorithms EdDSA,ES256`,
/// `--cooldown-seconds N` (30), `--max-cache-seconds N` (600). Returns
/// the settings and the port.
pub(crate) fn parse_args(args: &[String]) -> Result<(Settings, u16), String> {
    let value = |name: &str| {
        let at = args.iter().position(|a| a == name);
        at.map(|at| {
            args.get(at + 1)
                .cloned()
                .ok_or(format!("{name} needs a value"))
        })
        .transpose()
    };
    let required = |v: Option<String>, name: &str| v.ok_or(format!("{name} is required"));
    let number = |v: Option<String>, name: &str, default: u64| {
        v.map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name}: {v:?} is not a number"))
        })
    };
    let jwks_uri: Uri = required(value("--jwks-uri")?, "--jwks-uri")?
        .parse()
        .map_err(|e| format!("--jwks-uri: {e}"))?;
    let issuer = required(value("--issuer")?, "--issuer")?;
    let audience = required(value("--audience")?, "--audience")?;
    let algorithms = value("--algorithms")?
        .unwrap_or_else(|| "EdDSA,ES256".into())
        .split(',')
        .map(|name| match Algorithm::from_name(name) {
            // A shared secret is not a key of the JWKS.
            Some(Algorithm::HS256) | None => Err(format!(
                "--algorithms: {name:?} is not an asymmetric algorithm (EdDSA, ES256)"
            )),
            Some(alg) => Ok(alg),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let port = number(value("--port")?, "--port", 8080)?;
    let port = u16::try_from(port).map_err(|_| format!("--port: {port} is not a port"))?;
    let settings = Settings {
        jwks_uri,
        rules: Rules::new(&algorithms, &issuer, &audience),
        cooldown: Duration::from_secs(number(
            value("--cooldown-seconds")?,
            "--cooldown-seconds",
            30,
        )?),
        max_cache: Duration::from_secs(number(
            value("--max-cache-seconds")?,
            "--max-cache-seconds",
            600,
        )?),
    };
    Ok((settings, port))
}

#[allow(dead_code)] // tests include this file for `parse_args`, `Keys` and `serve`
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (settings, port) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("resource_server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("resource_server: 127.0.0.1:{port}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    eprintln!("resource_server on http://127.0.0.1:{port}/hello");
    match serve(listener, Arc::new(Keys::new(settings))).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resource_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
