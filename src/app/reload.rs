//! The users and keys a request takes ([`UsersAndKeys`]), and
//! [`App::reload`], which replaces them while the server runs.

use super::App;
#[cfg(feature = "clients")]
use crate::clients::Clients;
use crate::counters::Counters;
use crate::logging::{self, Quoted};
use crate::token::{self, Claims, SecretKey, TokenError, Verification};
#[cfg(feature = "signing")]
use crate::token::{Profile, Signer, SigningKey, VerifyingKey};
use crate::token_cache::Keys;
use crate::users::{Change, UserStore, Users};
use argon2::Params;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};

/// What [`App::reload`] replaces, as one set: who may log in and the keys.
/// A request takes the set once ([`App::users_and_keys`]) and uses it
/// throughout, so it sees the old set or the new one, never a user of one
/// with the keys of the other.
#[derive(Debug)]
pub struct UsersAndKeys<S = Users> {
    users: S,
    /// The HS256 keys: the signing key first (unless `signing` has one),
    /// then the keys that only verify.
    keys: Vec<SecretKey>,
    /// The asymmetric keys (`--signing-key`): the first signs, every one
    /// verifies and is published.
    #[cfg(feature = "signing")]
    signing: Vec<SigningKey>,
    /// Their public halves, as verification takes them.
    #[cfg(feature = "signing")]
    published: Vec<VerifyingKey>,
    /// `iss` and `aud` of the tokens issued, and required of those
    /// verified; fixed at start, carried over by every reload.
    #[cfg(feature = "signing")]
    profile: Arc<Profile>,
    /// Which set this is, counting from 0 at start: a token verified under
    /// one set's keys is trusted from the cache only while that set is
    /// current, so a key a reload removed stops working at once.
    pub(crate) generation: u64,
}

/// The old name of [`UsersAndKeys`].
#[deprecated(note = "renamed `UsersAndKeys`, which says what it holds")]
pub type Loaded<S = Users> = UsersAndKeys<S>;

impl<S> UsersAndKeys<S> {
    /// The first set, at start: `keys`, the signing key first.
    pub(super) fn new(
        users: S,
        keys: Vec<SecretKey>,
        #[cfg(feature = "signing")] (signing, profile): (Vec<SigningKey>, Arc<Profile>),
    ) -> UsersAndKeys<S> {
        UsersAndKeys {
            users,
            keys,
            #[cfg(feature = "signing")]
            published: signing.iter().map(|k| k.verifying_key().clone()).collect(),
            #[cfg(feature = "signing")]
            signing,
            #[cfg(feature = "signing")]
            profile,
            generation: 0,
        }
    }

    /// The user store.
    pub fn users(&self) -> &S {
        &self.users
    }

    /// The key tokens are signed with, for embedders that mint their own.
    pub fn key(&self) -> &SecretKey {
        &self.keys[0]
    }

    /// Every HS256 key tokens are verified with: the signing key first.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// The asymmetric keys (`--signing-key`): the first signs, every one
    /// is published in the JWKS and verifies.
    #[cfg(feature = "signing")]
    pub fn signing_keys(&self) -> &[SigningKey] {
        &self.signing
    }

    /// The public keys the JWKS lists.
    #[cfg(feature = "signing")]
    pub fn published_keys(&self) -> &[VerifyingKey] {
        &self.published
    }

    /// What access tokens say of their issuer and audience.
    #[cfg(feature = "signing")]
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The key access tokens are signed with now: the first asymmetric
    /// key if there is one (HS256 keys then only verify), else the HS256
    /// signing key.
    #[cfg(feature = "signing")]
    pub fn signer(&self) -> Signer<'_> {
        match self.signing.first() {
            Some(key) => Signer::Key(key),
            None => Signer::Secret(&self.keys[0]),
        }
    }

    /// Every key and the claim rules a token is verified under.
    pub fn verification(&self) -> Verification<'_> {
        Verification {
            secrets: &self.keys,
            #[cfg(feature = "signing")]
            public: &self.published,
            algorithms: &[],
            #[cfg(feature = "signing")]
            issuer: self.profile.issuer.as_deref(),
            #[cfg(feature = "signing")]
            audience: self.profile.audience.as_deref(),
            // Our own tokens, with an issuer, are at+jwt; HS256 tokens
            // minted elsewhere (PyJWT's) may not be, so /users/me does
            // not require it.
            #[cfg(feature = "signing")]
            access_token_typ: false,
        }
    }
}

impl<S> Keys for UsersAndKeys<S> {
    // Out of line: the full verification runs on a cache miss only, and
    // the hit path around it stays small.
    #[inline(never)]
    fn verify_token(&self, token: &str, now: i64, leeway: i64) -> Result<Claims, TokenError> {
        let claims = token::verify_with(&self.verification(), token, now, leeway)?;
        // A client's token names a client, whose id may be a username: it
        // never passes as a user. Checked here, on a miss, so the token is
        // never cached and the hits pay nothing for it.
        if claims.client_credentials {
            return Err(TokenError::ClientToken);
        }
        Ok(claims)
    }
}

impl<S> App<S> {
    /// Whether the app serves clients (`Config::clients`): never without
    /// the `clients` feature, where a form's `client_id` and
    /// `client_secret` are the seed's, accepted and unused.
    pub(crate) fn serves_clients(&self) -> bool {
        #[cfg(feature = "clients")]
        return self.clients.is_some();
        #[cfg(not(feature = "clients"))]
        false
    }
}

#[cfg(feature = "clients")]
impl<S> App<S> {
    /// The current clients; `None` when the app serves none
    /// (`Config::clients`). Take them once per request.
    pub fn clients(&self) -> Option<Arc<Clients>> {
        self.clients
            .as_ref()
            .map(|c| c.read().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// Replaces the clients at once (the binary does on SIGHUP, with the
    /// users and keys, once every file has been read): requests already
    /// running finish with the set they took. A client the new set no
    /// longer has can no longer authenticate, and its tokens introspect as
    /// inactive; a token it holds still verifies where a resource server
    /// checks the JWT alone, until it expires. Returns false, changing
    /// nothing, when the app started without clients (`Config::clients`),
    /// whose routes are then not served.
    pub fn reload_clients(&self, clients: Clients) -> bool {
        let Some(current) = &self.clients else {
            return false;
        };
        *current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(clients);
        true
    }
}

impl<S: UserStore> App<S> {
    /// The current users and keys: take them once per request, and use
    /// that set throughout.
    pub fn users_and_keys(&self) -> Arc<UsersAndKeys<S>> {
        // A panic elsewhere while the lock was held (it never is across
        // anything that can panic) leaves the set whole: use it.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The old name of [`App::users_and_keys`].
    #[deprecated(note = "renamed `users_and_keys`, as `Loaded` is now `UsersAndKeys`")]
    pub fn loaded(&self) -> Arc<UsersAndKeys<S>> {
        self.users_and_keys()
    }

    /// Replaces the users and keys at once (the binary does on SIGHUP):
    /// requests already running finish with the set they took, later ones
    /// get the new set. A user the new store no longer has, or now has
    /// disabled, is refused at their next request, since every request
    /// looks its user up; a token signed with a key no longer listed is
    /// refused at once, cached or not. Throttling and revocations carry
    /// on, and so do sessions, except those of the users the new store
    /// removed, disabled or gave another password
    /// ([`UserStore::sessions_ended_by`]): the future returned ends them,
    /// with their access tokens, when awaited (the binary awaits it at
    /// once). Dropped instead, each of those sessions is refused at its
    /// next refresh, which looks its user up, but a user disabled and
    /// enabled again before that keeps them. `key` signs from now on;
    /// `old_keys` only verify.
    #[must_use = "the sessions of the users the reload removed, disabled or gave another password \
                  end when this is awaited"]
    pub fn reload(
        &self,
        users: S,
        key: SecretKey,
        old_keys: Vec<SecretKey>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        #[cfg(feature = "signing")]
        let signing = self.users_and_keys().signing.clone();
        self.reload_all(
            users,
            key,
            old_keys,
            #[cfg(feature = "signing")]
            signing,
        )
    }

    /// [`App::reload`], the asymmetric keys replaced too (`signing`, the
    /// first signs; empty: the HS256 `key` signs again), in the same set:
    /// a request sees the old keys or the new ones, never a mix.
    /// `/.well-known/jwks.json` is served when the app started with signing
    /// keys (`Config::signing_keys`), and then lists the new ones.
    #[cfg(feature = "signing")]
    #[must_use = "the sessions of the users the reload removed, disabled or gave another password \
                  end when this is awaited"]
    pub fn reload_with_signing_keys(
        &self,
        users: S,
        key: SecretKey,
        old_keys: Vec<SecretKey>,
        signing: Vec<SigningKey>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.reload_all(users, key, old_keys, signing)
    }

    fn reload_all(
        &self,
        users: S,
        key: SecretKey,
        old_keys: Vec<SecretKey>,
        #[cfg(feature = "signing")] signing: Vec<SigningKey>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let ended = self.users_and_keys().users().sessions_ended_by(&users);
        let changed = self.users_and_keys().users().changes_by(&users);
        // Unknown usernames must keep costing what a real hash costs, and
        // the docs list the scopes the users now have.
        self.verifier.set_dummy_params(usual_params(&users));
        self.verifier.set_slowest_params(&slowest_params(&users));
        if let Some(docs) = &self.docs {
            docs.list_scopes(&users.scopes());
        }
        let mut keys = vec![key];
        keys.extend(old_keys);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let generation = current.generation.wrapping_add(1);
        *current = Arc::new(UsersAndKeys {
            users,
            keys,
            #[cfg(feature = "signing")]
            published: signing.iter().map(|k| k.verifying_key().clone()).collect(),
            #[cfg(feature = "signing")]
            signing,
            #[cfg(feature = "signing")]
            profile: current.profile.clone(),
            generation,
        });
        drop(current);
        audit_changes(&self.counters, &changed);
        self.end_sessions_of(ended)
    }
}

/// One audit line per user a reload changed (never a hash), and each
/// change counted for `password_bearer_admin_changes_total`.
fn audit_changes(counters: &Counters, changed: &[(String, Vec<Change>)]) {
    for (username, changes) in changed {
        let mut labels = String::new();
        for &change in changes {
            counters.admin_changes[change as usize].fetch_add(1, Relaxed);
            if !labels.is_empty() {
                labels.push(',');
            }
            labels.push_str(change.label());
        }
        logging::emit(
            logging::ADMIN_CHANGE,
            format_args!(
                "password-bearer: audit: reload: user {labels} username={}",
                Quoted(username)
            ),
        );
    }
}

/// The costliest argon2 parameters among `users`' hashes, whose time failed
/// logins are padded to; the usual ones when the store does not say.
pub(super) fn slowest_params<S: UserStore>(users: &S) -> Params {
    users
        .slowest_hash_params()
        .unwrap_or_else(|| usual_params(users))
}

/// The argon2 parameters most of `users`' hashes use, for the dummy hash of
/// unknown usernames; the defaults when the store does not say.
pub(super) fn usual_params<S: UserStore>(users: &S) -> Params {
    // argon2's defaults are the crate's (`password::hash_password` checks).
    users.hash_params().unwrap_or(Params::DEFAULT)
}
