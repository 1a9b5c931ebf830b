//! The sessions' state, when sessions are on: where they are kept, the
//! deny-list, how long they last; and ending the sessions of the users a
//! reload removed. Starting, refreshing and revoking a session are the
//! handlers' (`handlers/token.rs`, `refresh.rs`, `revoke.rs`).

use super::App;
use crate::clock::unix_now;
use crate::logging::{self, Quoted, LOGIN};
use crate::sessions::{Revocation, Revocations, SessionStore};
use std::sync::Arc;

/// Sessions, when on: where they are kept, what was revoked, how long.
pub(crate) struct SessionState {
    pub(crate) store: Arc<dyn SessionStore>,
    /// Shared with the store, which may feed it ([`SessionStore::follow`]).
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) ttl_secs: i64,
    /// `Config::refresh_retry_window`, in seconds.
    pub(crate) retry_secs: i64,
}

impl std::fmt::Debug for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionState")
            .field("revocations", &self.revocations)
            .field("ttl_secs", &self.ttl_secs)
            .field("retry_secs", &self.retry_secs)
            .finish_non_exhaustive()
    }
}

impl<S> App<S> {
    /// The deny-list, when sessions are on.
    pub(crate) fn revocations(&self) -> Option<&Revocations> {
        self.sessions.as_ref().map(|s| &*s.revocations)
    }

    /// How long a session revoked at `now` stays on the deny-list: until the
    /// last access token it may have issued has expired.
    pub(crate) fn revoked_until(&self, now: i64) -> i64 {
        now.saturating_add(self.token_ttl_secs)
            .saturating_add(self.leeway_secs)
    }

    /// Ends every session of each of `usernames`, with their access
    /// tokens, when awaited: a reload removed, disabled or gave another
    /// password to each (see [`App::reload`]). Awaited where it is called
    /// (no task of its own: each task type costs the binary its own copy
    /// of tokio's task code). A store that fails stops it at once, so that
    /// a store down delays the caller by one call's deadline: the sessions
    /// left are refused at their next refresh, which looks at the user too.
    pub(crate) fn end_sessions_of(
        &self,
        usernames: Vec<String>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let sessions = self
            .sessions
            .as_ref()
            .map(|s| (s.store.clone(), s.revocations.clone()));
        let until = self.revoked_until(unix_now());
        let login_log = self.login_log;
        async move {
            let Some((store, revocations)) = sessions else {
                return;
            };
            for (done, username) in usernames.iter().enumerate() {
                let ended = match store.end_sessions_of(username.clone(), until).await {
                    Ok(ended) => ended,
                    Err(e) => {
                        logging::emit(
                            logging::STORE_DOWN,
                            format_args!(
                                "password-bearer: the sessions of {} users were not ended by \
                                 the reload ({e}); each is refused at its next refresh",
                                usernames.len() - done
                            ),
                        );
                        return;
                    }
                };
                if login_log && !ended.is_empty() {
                    logging::emit(
                        LOGIN,
                        format_args!(
                            "sessions ended by the reload: {} username={}",
                            ended.len(),
                            Quoted(username)
                        ),
                    );
                }
                let now = unix_now();
                for id in ended {
                    revocations.add(Revocation::Session(id, until), Some(username), now);
                }
            }
        }
    }
}
