//! The session and revocation promises, written once and run against every
//! store: in memory, `--state-dir` (the `persist` feature, in-process on a
//! directory of its own) and Redis (the `redis` feature, the binary's
//! throwaway `redis-server` under a prefix of its own), over real TCP,
//! across a restart where the store survives one, and on two instances
//! where it is shared.
//!
//! [`Deployment`] is the harness: the instances of one [`Backend`], each an
//! API listener and a metrics listener, which it restarts on the same store
//! or joins with another instance. A promise is an async fn of a `Backend`
//! that asks the deployment what the store can do ([`Backend::durable`],
//! [`Backend::shared`]) rather than which one it is; [`promises!`] makes a
//! test of it per store. To add one (a password change ending sessions, a
//! refresh retried after a lost answer), write the fn and list it there.

use crate::metrics::{scrape, value};
use crate::sessions::{field, login_json, refresh, revoke};
use crate::support::*;
use password_bearer::sessions::MAX_REVOCATIONS_PER_USER;
use password_bearer::users::Users;
use password_bearer::{serve, serve_metrics, App, Config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where sessions and revocations are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The default: each instance its own, gone with it.
    Memory,
    /// `--state-dir`: a file that survives a restart, one instance at a time.
    #[cfg(feature = "persist")]
    StateDir,
    /// `--redis-url`: shared by every instance, outlives them.
    #[cfg(feature = "redis")]
    Redis,
}

impl Backend {
    /// Whether what the store holds survives its instances' restart.
    pub(crate) fn durable(self) -> bool {
        self != Backend::Memory
    }

    /// Whether several instances share the store.
    pub(crate) fn shared(self) -> bool {
        #[cfg(feature = "redis")]
        if self == Backend::Redis {
            return true;
        }
        false
    }
}

/// The settings a promise is tested at: lowered caps keep a flood short.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// `Config::max_revocations`, and the `--state-dir` file's cap.
    pub(crate) max_revocations: usize,
    /// `Config::max_revocations_per_user`, and every store's.
    pub(crate) max_revocations_per_user: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_revocations: 100_000,
            max_revocations_per_user: MAX_REVOCATIONS_PER_USER,
        }
    }
}

/// Where a deployment's store is.
enum Store {
    Memory,
    #[cfg(feature = "persist")]
    Dir(crate::cli::TempDir),
    #[cfg(feature = "redis")]
    Redis {
        url: String,
        prefix: String,
    },
}

/// One instance: an app served on an API listener and a metrics listener,
/// shut down when dropped.
pub(crate) struct Instance {
    pub(crate) api: SocketAddr,
    pub(crate) metrics: SocketAddr,
    stop: Option<watch::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Instance {
    async fn serve(config: Config) -> Instance {
        let app = Arc::new(App::new(config));
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (api, metrics) = (bind().await.expect("bind"), bind().await.expect("bind"));
        let addrs = (api.local_addr().unwrap(), metrics.local_addr().unwrap());
        let (stop, stopped) = watch::channel(());
        // Fires when the sender is dropped.
        let signal = |mut stopped: watch::Receiver<()>| async move {
            let _ = stopped.changed().await;
        };
        let tasks = vec![
            tokio::spawn(serve(api, app.clone(), signal(stopped.clone()))),
            tokio::spawn(serve_metrics(metrics, app, signal(stopped))),
        ];
        Instance {
            api: addrs.0,
            metrics: addrs.1,
            stop: Some(stop),
            tasks,
        }
    }

    /// Shuts the instance down and waits until it has let go of its app
    /// (and so of its store).
    async fn stop(mut self) {
        drop(self.stop.take());
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the instance stops within its grace period")
                .expect("the serving task did not panic");
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// The instances of one store.
pub(crate) struct Deployment {
    pub(crate) backend: Backend,
    settings: Settings,
    users: Users,
    store: Store,
    pub(crate) instances: Vec<Instance>,
}

impl Deployment {
    /// One instance of `backend` for `users`, at `settings`; where the store
    /// is shared, `instances` of them.
    pub(crate) async fn start(
        backend: Backend,
        users: Users,
        settings: Settings,
        instances: usize,
    ) -> Deployment {
        let store = match backend {
            Backend::Memory => Store::Memory,
            #[cfg(feature = "persist")]
            Backend::StateDir => Store::Dir(crate::cli::TempDir::new()),
            #[cfg(feature = "redis")]
            Backend::Redis => Store::Redis {
                url: crate::redis::shared().url(),
                prefix: crate::redis::prefix(),
            },
        };
        let mut deployment = Deployment {
            backend,
            settings,
            users,
            store,
            instances: Vec::new(),
        };
        let instances = if backend.shared() { instances } else { 1 };
        for _ in 0..instances.max(1) {
            deployment.add_instance().await;
        }
        deployment
    }

    /// The first instance's API.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.instances[0].api
    }

    /// Every instance's API.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.instances.iter().map(|i| i.api).collect()
    }

    /// Another instance on the store; only where it is shared (or the
    /// first).
    pub(crate) async fn add_instance(&mut self) -> SocketAddr {
        assert!(
            self.instances.is_empty() || self.backend.shared(),
            "{:?} is one instance's",
            self.backend
        );
        let instance = Instance::serve(self.config().await).await;
        let addr = instance.api;
        self.instances.push(instance);
        addr
    }

    /// Every instance stopped, then as many started again on the same
    /// store (for a store in memory, an empty one).
    pub(crate) async fn restart(&mut self) {
        let count = self.instances.len();
        for instance in self.instances.drain(..) {
            instance.stop().await;
        }
        for _ in 0..count {
            self.add_instance().await;
        }
    }

    /// `password_bearer_revocations_collapsed_total`, summed over the
    /// instances.
    pub(crate) async fn collapsed(&self) -> f64 {
        let mut sum = 0.0;
        for instance in &self.instances {
            let scraped = scrape(instance.metrics).await;
            sum += value(&scraped, "password_bearer_revocations_collapsed_total", &[])
                .expect("the counter is there with sessions on");
        }
        sum
    }

    async fn config(&self) -> Config {
        let mut config = Config::new(self.users.clone(), test_key());
        config.login_log = false;
        config.max_revocations = self.settings.max_revocations;
        config.max_revocations_per_user = self.settings.max_revocations_per_user;
        match &self.store {
            Store::Memory => {}
            #[cfg(feature = "persist")]
            Store::Dir(dir) => {
                use password_bearer::sessions::memory::{
                    DEFAULT_MAX_PER_USER, DEFAULT_MAX_SESSIONS,
                };
                use password_bearer::sessions::persistent::{OpenError, PersistentSessions};
                // The previous instance's blocking tasks may hold the file
                // a moment after it stopped.
                let deadline = Instant::now() + Duration::from_secs(10);
                let store = loop {
                    match PersistentSessions::open_bounded(
                        &dir.0,
                        DEFAULT_MAX_SESSIONS,
                        DEFAULT_MAX_PER_USER,
                        self.settings.max_revocations,
                    ) {
                        Ok(store) => break store,
                        Err(OpenError::InUse(_)) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("the state directory opens: {e}"),
                    }
                };
                let store = store.revocations_per_user(self.settings.max_revocations_per_user);
                config.sessions = Some(Arc::new(store));
            }
            #[cfg(feature = "redis")]
            Store::Redis { url, prefix } => {
                use password_bearer::redis::{Redis, RedisSessions};
                use password_bearer::sessions::memory::DEFAULT_MAX_PER_USER;
                let redis = Redis::connect(url, prefix).await.expect("Redis answers");
                let sessions = RedisSessions::open(redis.clone(), DEFAULT_MAX_PER_USER)
                    .await
                    .expect("Redis answers")
                    .revocations_per_user(self.settings.max_revocations_per_user);
                config.sessions = Some(Arc::new(sessions));
                config.shared_throttle = Some(redis);
            }
        }
        config
    }
}

/// One test of a promise per store: `promises! { name, ... }` for each
/// `async fn name(backend: Backend)`.
macro_rules! promises {
    ($($promise:ident),* $(,)?) => {$(
        mod $promise {
            use super::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$promise(Backend::Memory).await
            }

            #[cfg(feature = "persist")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn state_dir() {
                super::$promise(Backend::StateDir).await
            }

            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$promise(Backend::Redis).await
            }
        }
    )*};
}

promises! {
    a_revocation_flood_undoes_no_other_users_revocation,
    a_full_list_restarted_then_flooded_keeps_other_users_revocations,
}

// ---------------------------------------------------------------------------
// The revocations: one that answered 200 holds until its tokens expire,
// whatever another account does, across restarts and instances.

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
async fn a_revocation_flood_undoes_no_other_users_revocation(backend: Backend) {
    let settings = Settings {
        max_revocations: 64,
        max_revocations_per_user: 16,
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
async fn a_full_list_restarted_then_flooded_keeps_other_users_revocations(backend: Backend) {
    let settings = Settings {
        max_revocations: 24,
        max_revocations_per_user: MAX_REVOCATIONS_PER_USER,
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
