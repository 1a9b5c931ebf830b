//! `GET /metrics` over TCP, read with a Prometheus text-format parser that
//! is not ours (the `prometheus-parse` crate): every count equals what the
//! clients saw (logins ok, failed, throttled and busy; requests by route
//! and status; the hash queue; 408s from the request timeout), the
//! connection and session gauges follow
//! connections, logins, refreshes and `/revoke`; the metrics listener
//! answers nothing but `GET /metrics` and holds at most a few connections,
//! the API's listener never serves the metrics; and `--metrics-addr` in the
//! binary, its bad values and a port already taken.

use crate::attacks::slow_user;
use crate::cli::{assert_config_error, run, Proc};
use crate::connections::STALLED_BODY;
use crate::support::*;
use password_bearer::metrics::CONTENT_TYPE;
use password_bearer::users::Users;
use password_bearer::{serve, serve_metrics, App, Config};
use prometheus_parse::{Sample, Scrape, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// An app served on two listeners: the API and its metrics. Dropping it
/// shuts both down.
pub(crate) struct Served {
    pub(crate) api: SocketAddr,
    pub(crate) metrics: SocketAddr,
    _stop: [oneshot::Sender<()>; 2],
}

pub(crate) async fn start_both(config: Config) -> Served {
    let app = Arc::new(App::new(config));
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (api, metrics) = (bind().await.expect("bind"), bind().await.expect("bind"));
    let addrs = (api.local_addr().unwrap(), metrics.local_addr().unwrap());
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(api, app.clone(), async move {
        let _ = api_stopped.await;
    }));
    tokio::spawn(serve_metrics(metrics, app, async move {
        let _ = metrics_stopped.await;
    }));
    Served {
        api: addrs.0,
        metrics: addrs.1,
        _stop: [stop_api, stop_metrics],
    }
}

fn quiet(mut config: Config) -> Config {
    config.login_log = false;
    config
}

/// One scrape, checked to be a 200 in the exposition format and parsed.
pub(crate) async fn scrape(metrics: SocketAddr) -> Scrape {
    let resp = get(metrics, "/metrics", &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some(CONTENT_TYPE));
    let text = resp.text().to_owned();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    // Every series has its `# TYPE` before it (the parser leaves a series
    // without one untyped); a histogram's `_sum` and `_count` are untyped
    // to this parser whatever precedes them.
    for sample in &scrape.samples {
        let name = &sample.metric;
        let sum_or_count = name.ends_with("_sum") || name.ends_with("_count");
        assert!(
            sum_or_count || !matches!(sample.value, Value::Untyped(_)),
            "{name} has no # TYPE:\n{text}"
        );
        assert!(name.starts_with("password_bearer_"), "{name}");
    }
    scrape
}

/// The value of the series `name` with exactly `labels`; `None` when absent.
pub(crate) fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |s: &&Sample| {
        s.metric == name
            && labels.len() == s.labels.iter().count()
            && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    };
    let sample = scrape.samples.iter().find(matches)?;
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

#[track_caller]
fn number(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

/// `password_bearer_logins_total` of one outcome.
#[track_caller]
fn logins(scrape: &Scrape, outcome: &str) -> f64 {
    number(
        scrape,
        "password_bearer_logins_total",
        &[("outcome", outcome)],
    )
}

/// `password_bearer_requests_total` as `route status -> count`.
fn requests(scrape: &Scrape) -> BTreeMap<String, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "password_bearer_requests_total")
        .map(|s| {
            let label = |name| s.labels.get(name).expect("route and status labels");
            let Value::Counter(count) = s.value else {
                panic!("requests_total is a counter: {s:?}")
            };
            (format!("{} {}", label("route"), label("status")), count)
        })
        .collect()
}

/// A histogram's buckets (`le` -> cumulative count), checked to be
/// cumulative, to end in `+Inf`, and to agree with `_count`.
fn histogram(scrape: &Scrape, name: &str) -> Vec<(f64, f64)> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("{name} is a histogram: {sample:?}")
    };
    let buckets: Vec<_> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    let &(last, total) = buckets.last().expect("buckets");
    assert_eq!(last, f64::INFINITY, "{buckets:?}");
    assert_eq!(number(scrape, &format!("{name}_count"), &[]), total);
    buckets
}

fn count_of(statuses: &[u16], status: u16) -> f64 {
    statuses.iter().filter(|&&s| s == status).count() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_follow_what_the_clients_saw() {
    let mut config = quiet(Config::new(Users::demo(), test_key()));
    config.throttle.per_user = 3;
    config.throttle.per_ip = 0;
    let server = start_both(config).await;
    let api = server.api;

    let empty = scrape(server.metrics).await;
    assert!(requests(&empty).is_empty(), "{:?}", requests(&empty));
    for outcome in ["ok", "failed", "throttled", "busy"] {
        let labels = [("outcome", outcome)];
        assert_eq!(number(&empty, "password_bearer_logins_total", &labels), 0.0);
    }
    assert_eq!(
        histogram(&empty, "password_bearer_hash_duration_seconds").len(),
        12
    );

    let bearer = format!("Bearer {}", login(api, "johndoe", "secret").await);
    for _ in 0..3 {
        assert_invalid_grant(&post_token(api, &credentials("johndoe", "guess")).await);
    }
    let resp = post_token(api, &credentials("johndoe", "secret")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
    for _ in 0..2 {
        assert_eq!(get_me(api, &bearer).await.status, 200);
    }
    assert_eq!(get(api, "/users/me", &[]).await.status, 401);
    assert_eq!(get_me(api, "Bearer not.a.token").await.status, 401);
    assert_eq!(
        request(api, "POST", "/users/me", &[], b"").await.status,
        405
    );
    // The API's listener has no /metrics: an unknown path like any other,
    // and all of them one label.
    assert_eq!(get(api, "/metrics", &[]).await.status, 404);
    assert_eq!(get(api, "/no/such/path/8d1f", &[]).await.status, 404);

    let seen = scrape(server.metrics).await;
    let expected: BTreeMap<String, f64> = [
        ("token 200", 1.0),
        ("token 400", 3.0),
        ("token 429", 1.0),
        ("users_me 200", 2.0),
        ("users_me 401", 2.0),
        ("users_me 405", 1.0),
        ("other 404", 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(requests(&seen), expected);
    let logins = |outcome| logins(&seen, outcome);
    assert_eq!(
        [
            logins("ok"),
            logins("failed"),
            logins("throttled"),
            logins("busy")
        ],
        [1.0, 3.0, 1.0, 0.0]
    );
    // Four hashes (the 429 costs none), none of which waited.
    let hashes = histogram(&seen, "password_bearer_hash_duration_seconds");
    assert_eq!(hashes.last().unwrap().1, 4.0);
    assert!(number(&seen, "password_bearer_hash_duration_seconds_sum", &[]) > 0.0);
    let waits = histogram(&seen, "password_bearer_hash_queue_wait_seconds");
    assert_eq!(waits.first().unwrap().1, 4.0, "{waits:?}");
    assert_eq!(number(&seen, "password_bearer_hash_queue_depth", &[]), 0.0);
    assert_eq!(
        number(&seen, "password_bearer_hashes_in_progress", &[]),
        0.0
    );
    // No username, token or path made it into a label.
    let labels: Vec<String> = seen
        .samples
        .iter()
        .flat_map(|s| s.labels.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    for secret in ["johndoe", "guess", "secret", "8d1f", "not.a.token"] {
        assert!(labels.iter().all(|l| !l.contains(secret)), "{labels:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_refused_for_want_of_a_hash_slot_count_as_busy() {
    let mut config = quiet(Config::new(slow_user(), test_key()));
    config.hash_slots = 1;
    config.login_queue_wait = Duration::ZERO;
    config.throttle.per_user = 0;
    config.throttle.per_ip = 0;
    let server = start_both(config).await;
    let api = server.api;
    // Logins at once, one slot and no wait: all but the first few are
    // refused. Compared with what the clients got, so the count is exact
    // whatever the machine's speed; repeated until one was refused.
    let mut statuses = Vec::new();
    while count_of(&statuses, 503) == 0.0 {
        assert!(statuses.len() < 64, "never busy: {statuses:?}");
        let mut logins = JoinSet::new();
        for _ in 0..8 {
            logins.spawn(async move { post_token(api, &credentials("slow", "slow secret")).await });
        }
        while let Some(resp) = logins.join_next().await {
            statuses.push(resp.expect("the login task").status);
        }
    }
    let seen = scrape(server.metrics).await;
    let logins = |outcome| logins(&seen, outcome);
    assert_eq!(
        (logins("ok"), logins("busy")),
        (count_of(&statuses, 200), count_of(&statuses, 503))
    );
    assert_eq!(
        count_of(&statuses, 200) + count_of(&statuses, 503),
        statuses.len() as f64
    );
    let hashed = histogram(&seen, "password_bearer_hash_duration_seconds");
    assert_eq!(hashed.last().unwrap().1, count_of(&statuses, 200));
    assert_eq!(
        number(
            &seen,
            "password_bearer_requests_total",
            &[("route", "token"), ("status", "503")]
        ),
        count_of(&statuses, 503)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_connections_gauge_follows_connections() {
    let server = start_both(quiet(Config::new(Users::demo(), test_key()))).await;
    let open = |scrape: &Scrape| number(scrape, "password_bearer_open_connections", &[]);
    assert_eq!(open(&scrape(server.metrics).await), 0.0);
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut conn = Conn::open(server.api).await;
        // Answered, so accepted and admitted.
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert_eq!(conn.response().await.status, 200);
        conns.push(conn);
    }
    // The scrapes' own connections are the metrics listener's: not counted.
    assert_eq!(open(&scrape(server.metrics).await), 3.0);
    drop(conns);
    let deadline = Instant::now() + IO_TIMEOUT;
    while open(&scrape(server.metrics).await) != 0.0 {
        assert!(Instant::now() < deadline, "connections still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_by_the_request_timeout_are_counted() {
    let mut config = quiet(Config::new(Users::demo(), test_key()));
    config.request_timeout = Duration::from_secs(1);
    let server = start_both(config).await;
    let timeouts = |scrape: &Scrape| number(scrape, "password_bearer_request_timeouts_total", &[]);
    assert_eq!(timeouts(&scrape(server.metrics).await), 0.0);
    for expected in [1.0, 2.0] {
        let mut conn = Conn::open(server.api).await;
        conn.send(STALLED_BODY).await;
        assert_eq!(conn.response().await.status, 408);
        assert_eq!(timeouts(&scrape(server.metrics).await), expected);
    }
    // No route answered them: the routes' counts hold none.
    assert!(
        requests(&scrape(server.metrics).await).is_empty(),
        "{:?}",
        requests(&scrape(server.metrics).await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_refreshes_and_revocations_are_counted() {
    let server = start_both(quiet(Config::new(Users::demo(), test_key()))).await;
    let (api, metrics) = (server.api, server.metrics);
    let sessions = |s: &Scrape| number(s, "password_bearer_sessions", &[]);
    let revocations = |s: &Scrape| number(s, "password_bearer_revocations", &[]);
    let refreshes = |s: &Scrape, outcome| {
        number(
            s,
            "password_bearer_refreshes_total",
            &[("outcome", outcome)],
        )
    };
    let first = scrape(metrics).await;
    assert_eq!((sessions(&first), revocations(&first)), (0.0, 0.0));

    let refresh_token = |resp: &Response| {
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()["refresh_token"].as_str().unwrap().to_owned()
    };
    let form = |pairs: &[(&str, &str)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let a = refresh_token(&post_token(api, &credentials("johndoe", "secret")).await);
    let b = refresh_token(&post_token(api, &credentials("johndoe", "secret")).await);
    assert_eq!(sessions(&scrape(metrics).await), 2.0);

    // Two refreshes rotate session a's token; the first one presented
    // again (two rotations back: no retry) revokes the session.
    let refresh = |token: &str| form(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
    let rotated = refresh_token(&post_token(api, &refresh(&a)).await);
    let _rotated = refresh_token(&post_token(api, &refresh(&rotated)).await);
    assert_eq!(post_token(api, &refresh(&a)).await.status, 400);
    let seen = scrape(metrics).await;
    assert_eq!(
        (refreshes(&seen, "ok"), refreshes(&seen, "failed")),
        (2.0, 1.0)
    );
    assert_eq!(
        number(&seen, "password_bearer_refresh_reuses_total", &[]),
        1.0
    );
    assert_eq!((sessions(&seen), revocations(&seen)), (1.0, 1.0));

    // Session b revoked through /revoke.
    let revoked = request(
        api,
        "POST",
        "/revoke",
        &[("Content-Type", FORM)],
        form(&[("token", &b)]).as_bytes(),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let seen = scrape(metrics).await;
    assert_eq!((sessions(&seen), revocations(&seen)), (0.0, 2.0));
    assert_eq!(
        number(
            &seen,
            "password_bearer_requests_total",
            &[("route", "revoke"), ("status", "200")]
        ),
        1.0
    );
    // Two logins, logins only: refreshes are counted on their own.
    let logins = number(&seen, "password_bearer_logins_total", &[("outcome", "ok")]);
    assert_eq!(logins, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_answers_get_metrics_only() {
    let server = start_both(quiet(Config::new(Users::demo(), test_key()))).await;
    let metrics = server.metrics;
    for path in [
        "/",
        "/metrics/",
        "/metricsx",
        "/users/me",
        "/token",
        "/healthz",
    ] {
        assert_eq!(get(metrics, path, &[]).await.status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let resp = request(metrics, method, "/metrics", &[], b"").await;
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(resp.header("allow"), Some("GET"), "{method}");
    }
    // None of that reached the API's counts.
    assert!(requests(&scrape(metrics).await).is_empty());
    // A query string is still /metrics (Prometheus sends none, people do).
    assert_eq!(get(metrics, "/metrics?x=1", &[]).await.status, 200);
    // What is not a request line is 400; a head over 8 KiB is 431.
    for garbage in [
        "NONSENSE",
        "GET /metrics",
        "GET metrics HTTP/1.1",
        "GET /metrics SPDY/3",
    ] {
        let resp = send_raw(metrics, format!("{garbage}\r\n\r\n").as_bytes()).await;
        assert_eq!(resp.status, 400, "{garbage}");
    }
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(send_raw(metrics, huge.as_bytes()).await.status, 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_a_few_connections_at_once() {
    let server = start_both(quiet(Config::new(Users::demo(), test_key()))).await;
    // Four idle connections take every place...
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(Conn::open(server.metrics).await);
    }
    // ...so a fifth waits in the backlog, unanswered...
    let mut fifth = Conn::open(server.metrics).await;
    fifth
        .send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let waited = tokio::time::timeout(Duration::from_millis(300), fifth.try_response()).await;
    assert!(waited.is_err(), "answered past the cap: {waited:?}");
    // ...until one of them leaves. The API answered all along.
    assert_eq!(get(server.api, "/healthz", &[]).await.status, 200);
    idle.pop();
    assert_eq!(fifth.response().await.status, 200);
}

#[test]
fn metrics_addr_values_that_are_not_host_port_are_one_line_and_exit_2() {
    for bad in [
        "9100",
        "localhost",
        ":9100",
        "127.0.0.1:",
        "127.0.0.1:70000",
        "::1:9100",
    ] {
        assert_config_error(&["--port", "0", "--metrics-addr", bad], "--metrics-addr");
    }
}

#[test]
fn metrics_addr_on_the_apis_port_is_one_line_and_exit_2() {
    // A port free a moment ago, for the API and the metrics both.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let metrics = format!("127.0.0.1:{port}");
    let out = run(&["--port", &port, "--metrics-addr", &metrics], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("--metrics-addr"), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

/// The binary started with `extra` flags and `--metrics-addr 127.0.0.1:0`:
/// the API's address and the metrics'.
fn spawn_with_metrics(extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let mut args = vec!["--port", "0", "--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args);
    let line = proc.wait_line("metrics on http://");
    let metrics: SocketAddr = line
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("an address in {line:?}"));
    let api = proc.wait_listening();
    assert_ne!(api, metrics);
    (proc, api, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_metrics_on_metrics_addr_only() {
    let (_proc, api, metrics) = spawn_with_metrics(&[]);
    login(api, "johndoe", "secret").await;
    assert_eq!(get(api, "/metrics", &[]).await.status, 404);
    let seen = scrape(metrics).await;
    let ok = number(&seen, "password_bearer_logins_total", &[("outcome", "ok")]);
    assert_eq!(ok, 1.0);
    assert_eq!(number(&seen, "password_bearer_sessions", &[]), 1.0);
}

/// The sessions gauge of the `--state-dir` store: its table's stored length.
#[cfg(feature = "state-dir")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_gauge_counts_the_state_dirs_sessions() {
    let tmp = crate::cli::TempDir::new();
    let dir = crate::cli::path_str(&tmp.0.join("state"));
    let (_proc, api, metrics) = spawn_with_metrics(&["--state-dir", &dir]);
    assert_eq!(
        number(&scrape(metrics).await, "password_bearer_sessions", &[]),
        0.0
    );
    login(api, "johndoe", "secret").await;
    login(api, "johndoe", "secret").await;
    assert_eq!(
        number(&scrape(metrics).await, "password_bearer_sessions", &[]),
        2.0
    );
}
