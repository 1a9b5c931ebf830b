//! The session and revocation promises, written once and run against every
//! store: in memory, `--state-dir` (the `state-dir` feature, in-process on a
//! directory of its own) and Redis (the `redis` feature, the binary's
//! throwaway `redis-server` under a prefix of its own), over real TCP,
//! across a restart where the store survives one, and on two instances
//! where it is shared. (The refresh grant and `POST /revoke` as a client
//! sees them on one in-memory server are `sessions`' surface.)
//!
//! [`Deployment`] is the harness: the instances of one [`Backend`], each an
//! API listener and a metrics listener, which it restarts on the same store,
//! joins with another instance, or reloads with other users (as SIGHUP
//! does); its users may also be a [`Live`] store, changed in place with no
//! reload, as SQL changes PostgreSQL's. A promise is an async fn of a
//! `Backend` that asks the deployment what the store can do
//! ([`Backend::durable`], [`Backend::shared`]) rather than which one it is;
//! [`promises!`] makes a test of it per store. To add one, write the fn in
//! the module of its kind and list it there.
//!
//! - [`revocations`]: a revocation that answered 200 holds, whatever
//!   another account floods.
//! - [`sessions`]: a session ends with its user's password, removal or
//!   disabling; a refresh retried after a lost answer is answered once;
//!   the store's own rotation rules.
//! - [`clients`] (the `clients` feature): what a revocation, or a session
//!   ended by a reload, ended introspects inactive everywhere; guesses at
//!   a client's secret are throttled on every instance.

#[cfg(feature = "clients")]
mod clients;
mod revocations;
mod sessions;

use crate::metrics::{scrape, value};
use crate::support::*;
use password_bearer::sessions::memory::MemorySessions;
use password_bearer::sessions::{SessionStore, MAX_REVOCATIONS_PER_USER};
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::{serve, serve_metrics, App, Config};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where sessions and revocations are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The default: each instance its own, gone with it.
    Memory,
    /// `--state-dir`: a file that survives a restart, one instance at a time.
    #[cfg(feature = "state-dir")]
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

/// The settings a promise is tested at: lowered caps keep a flood short,
/// a short retry window a wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// `Config::max_revocations`, and the `--state-dir` file's cap.
    pub(crate) max_revocations: usize,
    /// `Config::max_revocations_per_user`, and every store's.
    pub(crate) max_revocations_per_user: usize,
    /// `Config::refresh_retry_window`.
    pub(crate) refresh_retry_window: Duration,
}

impl Default for Settings {
    /// `Config::new`'s.
    fn default() -> Settings {
        Settings {
            max_revocations: 100_000,
            max_revocations_per_user: MAX_REVOCATIONS_PER_USER,
            refresh_retry_window: Duration::from_secs(60),
        }
    }
}

/// Where a deployment's store is.
enum Store {
    Memory,
    #[cfg(feature = "state-dir")]
    Dir(crate::cli::TempDir),
    #[cfg(feature = "redis")]
    Redis {
        url: String,
        prefix: String,
    },
}

/// One instance: an app served on an API listener and a metrics listener,
/// shut down when dropped.
pub(crate) struct Instance<S = Users> {
    pub(crate) api: SocketAddr,
    pub(crate) metrics: SocketAddr,
    /// To reload.
    app: Arc<App<S>>,
    /// Its session store, to ask directly.
    sessions: Arc<dyn SessionStore>,
    stop: Option<watch::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl<S: UserStore> Instance<S> {
    async fn serve(config: Config<S>) -> Instance<S> {
        let sessions = config.sessions.clone().expect("the harness sets the store");
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
            tokio::spawn(serve_metrics(metrics, app.clone(), signal(stopped))),
        ];
        Instance {
            api: addrs.0,
            metrics: addrs.1,
            app,
            sessions,
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

impl<S> Drop for Instance<S> {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// The instances of one store, serving the users of `S`: a users file's
/// ([`Users`], reloaded whole) or a [`Live`] store.
pub(crate) struct Deployment<S = Users> {
    pub(crate) backend: Backend,
    settings: Settings,
    users: S,
    store: Store,
    /// The clients file every instance serves, when it serves clients.
    #[cfg(feature = "clients")]
    clients: Option<String>,
    pub(crate) instances: Vec<Instance<S>>,
}

impl<S: UserStore + Clone> Deployment<S> {
    /// One instance of `backend` for `users`, at `settings`; where the store
    /// is shared, `instances` of them.
    pub(crate) async fn start(
        backend: Backend,
        users: S,
        settings: Settings,
        instances: usize,
    ) -> Deployment<S> {
        Deployment::start_serving(backend, users, settings, instances, None).await
    }

    /// As [`start`](Deployment::start), every instance also serving the
    /// clients of the clients file `clients`.
    #[cfg(feature = "clients")]
    pub(crate) async fn start_with_clients(
        backend: Backend,
        users: S,
        settings: Settings,
        instances: usize,
        clients: String,
    ) -> Deployment<S> {
        Deployment::start_serving(backend, users, settings, instances, Some(clients)).await
    }

    async fn start_serving(
        backend: Backend,
        users: S,
        settings: Settings,
        instances: usize,
        clients: Option<String>,
    ) -> Deployment<S> {
        #[cfg(not(feature = "clients"))]
        let _: Option<String> = clients;
        let store = match backend {
            Backend::Memory => Store::Memory,
            #[cfg(feature = "state-dir")]
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
            #[cfg(feature = "clients")]
            clients,
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

    /// Every instance given `users` (and the test key) at once, as SIGHUP
    /// with a new users file does, the sessions it ends ended before this
    /// returns; a restart starts on them.
    pub(crate) async fn reload(&mut self, users: S) {
        for instance in &self.instances {
            instance
                .app
                .reload(users.clone(), test_key(), Vec::new())
                .await;
        }
        self.users = users;
    }

    /// The first instance's session store, to ask directly.
    pub(crate) fn sessions(&self) -> Arc<dyn SessionStore> {
        self.instances[0].sessions.clone()
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

    async fn config(&self) -> Config<S> {
        let mut config = Config::new(self.users.clone(), test_key());
        config.login_log = false;
        config.max_revocations = self.settings.max_revocations;
        config.max_revocations_per_user = self.settings.max_revocations_per_user;
        config.refresh_retry_window = self.settings.refresh_retry_window;
        #[cfg(feature = "clients")]
        if let Some(clients) = &self.clients {
            config.clients = Some(password_bearer::clients::Clients::from_json(clients).unwrap());
        }
        match &self.store {
            // What `App::new` makes of `None`, made here to keep a handle.
            Store::Memory => config.sessions = Some(Arc::new(MemorySessions::default())),
            #[cfg(feature = "state-dir")]
            Store::Dir(dir) => {
                use password_bearer::sessions::memory::{
                    DEFAULT_MAX_PER_USER, DEFAULT_MAX_SESSIONS,
                };
                use password_bearer::sessions::state_dir::{OpenError, StateDirSessions};
                use std::time::Instant;
                // The previous instance's blocking tasks may hold the file
                // a moment after it stopped.
                let deadline = Instant::now() + Duration::from_secs(10);
                let store = loop {
                    match StateDirSessions::open_bounded(
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

/// A users store changed in place, as SQL changes a database's users: no
/// reload tells the server; each request looks the user up.
#[derive(Clone)]
pub(crate) struct Live(Arc<RwLock<Users>>);

impl Live {
    pub(crate) fn new(users: Users) -> Live {
        Live(Arc::new(RwLock::new(users)))
    }

    pub(crate) fn set(&self, users: Users) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = users;
    }
}

impl UserStore for Live {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        let users = self.0.read().unwrap_or_else(PoisonError::into_inner);
        Ok(users.get(username).cloned())
    }
}

/// One test of a promise per store: `promises! { module::name, ... }` for
/// each `async fn name(backend: Backend)` of `module`, as
/// `promises::name::{memory, state_dir, redis}`.
macro_rules! promises {
    ($($module:ident::$promise:ident),* $(,)?) => {$(
        mod $promise {
            use super::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$module::$promise(Backend::Memory).await
            }

            #[cfg(feature = "state-dir")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn state_dir() {
                super::$module::$promise(Backend::StateDir).await
            }

            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$module::$promise(Backend::Redis).await
            }
        }
    )*};
}

#[cfg(feature = "clients")]
promises! {
    clients::introspection_sees_every_ending_everywhere,
    clients::guesses_at_a_client_are_throttled_everywhere,
}

promises! {
    revocations::a_revocation_flood_undoes_no_other_users_revocation,
    revocations::a_full_list_restarted_then_flooded_keeps_other_users_revocations,
    sessions::a_password_changed_by_a_reload_ends_the_session,
    sessions::a_password_changed_in_place_ends_the_session_at_its_refresh,
    sessions::a_user_re_created_under_the_name_inherits_no_session,
    sessions::a_user_disabled_then_enabled_has_no_session_from_before,
    sessions::a_retry_after_a_lost_answer_is_answered_once,
    sessions::a_retry_after_the_window_is_a_reuse,
    sessions::the_store_rotates_retries_and_ends_by_the_rules,
}
