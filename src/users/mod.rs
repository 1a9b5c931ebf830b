//! The users: the [`UserStore`] trait the routes look users up through, and
//! the built-in store, the seed's `fake_users_db` loaded from a JSON file of
//! the same shape (or the demo users), with argon2 PHC strings as hashes.

use crate::password::{self, PasswordError};
use argon2::Params;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "postgres")]
pub mod postgres;

/// The demo users' file: the tutorial's two users, their passwords hashed
/// once with `password-bearer hash-password` and committed, so that no build
/// (ours or a dependent's) runs argon2, and every build is the same. A unit
/// test checks that each hash verifies its documented password.
const DEMO_USERS: &str = include_str!("../demo_users.json");

/// One user, as `GET /users/me` shows it and `/token` checks it. Built with
/// [`User::builder`]; read through its accessors. Immutable, so that the
/// `/users/me` body serialized at build time can never go stale: a store
/// changes a user by replacing it.
pub struct User {
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    disabled: Option<bool>,
    scopes: Vec<String>,
    /// Never in a response, a log line or `{:?}`.
    hashed_password: Arc<str>,
    /// The `/users/me` body, serialized once: this is the hot path's answer.
    me_body: Bytes,
}

impl fmt::Debug for User {
    // Hand-written so the hash never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .field("disabled", &self.disabled)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The public fields, in the order FastAPI's `User` model writes them.
#[derive(Serialize)]
struct PublicUser<'a> {
    username: &'a str,
    email: Option<&'a str>,
    full_name: Option<&'a str>,
    disabled: Option<bool>,
}

impl User {
    /// Starts a user named `username` whose password hash is
    /// `hashed_password`, an argon2 PHC string (see
    /// [`crate::password::hash_password`]); [`UserBuilder::build`] checks it.
    pub fn builder(username: impl Into<String>, hashed_password: impl Into<String>) -> UserBuilder {
        UserBuilder {
            username: username.into(),
            hashed_password: hashed_password.into(),
            email: None,
            full_name: None,
            disabled: None,
            scopes: Vec::new(),
        }
    }

    /// The login name: the key of the users file and the token's `sub`.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Shown as `email` (null when absent).
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// Shown as `full_name` (null when absent).
    pub fn full_name(&self) -> Option<&str> {
        self.full_name.as_deref()
    }

    /// Shown as `disabled`. Optional as in the seed's model: absent is shown
    /// as `null` and counts as active.
    pub fn disabled(&self) -> Option<bool> {
        self.disabled
    }

    /// The scopes `/token` may grant this user (FastAPI's scopes chapter).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether this user may be granted `scope`.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether `current_active_user` refuses this user.
    pub fn is_disabled(&self) -> bool {
        self.disabled == Some(true)
    }

    /// The JSON body `GET /users/me` answers for this user.
    pub fn me_body(&self) -> &Bytes {
        &self.me_body
    }

    pub(crate) fn hashed_password(&self) -> &Arc<str> {
        &self.hashed_password
    }
}

/// A [`User`] in the making: see [`User::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct UserBuilder {
    username: String,
    hashed_password: String,
    email: Option<String>,
    full_name: Option<String>,
    disabled: Option<bool>,
    scopes: Vec<String>,
}

impl fmt::Debug for UserBuilder {
    // As `User`'s: without the hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserBuilder")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl UserBuilder {
    /// Sets `email`.
    pub fn email(mut self, email: impl Into<String>) -> UserBuilder {
        self.email = Some(email.into());
        self
    }

    /// Sets `full_name`.
    pub fn full_name(mut self, full_name: impl Into<String>) -> UserBuilder {
        self.full_name = Some(full_name.into());
        self
    }

    /// Sets `disabled` (absent, `null`, unless set).
    pub fn disabled(mut self, disabled: bool) -> UserBuilder {
        self.disabled = Some(disabled);
        self
    }

    /// The scopes `/token` may grant. Each must be an RFC 6749 scope token
    /// (printable ASCII, no space, `"` or backslash), as it travels in a
    /// space-separated claim and in a `WWW-Authenticate` header.
    pub fn scopes<I>(mut self, scopes: I) -> UserBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The user, once its hash is an argon2 PHC string argon2 accepts and
    /// its scopes are scope tokens.
    pub fn build(self) -> Result<User, UserError> {
        password::check_phc(&self.hashed_password).map_err(UserError::Hash)?;
        if let Some(bad) = self.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(UserError::Scope(bad.clone()));
        }
        let me_body = serde_json::to_vec(&PublicUser {
            username: &self.username,
            email: self.email.as_deref(),
            full_name: self.full_name.as_deref(),
            disabled: self.disabled,
        })
        .expect("strings and a bool always serialize");
        Ok(User {
            username: self.username,
            email: self.email,
            full_name: self.full_name,
            disabled: self.disabled,
            scopes: self.scopes,
            hashed_password: self.hashed_password.into(),
            me_body: me_body.into(),
        })
    }
}

/// Whether `s` is an RFC 6749 §3.3 scope-token.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Why [`UserBuilder::build`] refused a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserError {
    /// The password hash is not usable (what is wrong, never the hash).
    Hash(PasswordError),
    /// A scope that is not an RFC 6749 scope token.
    Scope(String),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::Hash(e) => write!(f, "hashed_password is {e}"),
            UserError::Scope(scope) => write!(
                f,
                "scope {scope:?} is not a scope token (printable ASCII without space, '\"' or '\\')"
            ),
        }
    }
}

impl std::error::Error for UserError {}

/// Where the routes find users: implement it to back users with your own
/// database. Lookups are async so a store may do I/O; the built-in
/// [`Users`] answers at once.
pub trait UserStore: Send + Sync + 'static {
    /// The user named `username`: `Ok(None)` when there is none, and
    /// [`StoreError`] when the store cannot tell (a database down or timing
    /// out). The two must stay apart: the routes answer an unknown user as a
    /// failed login or a refused token, and a store error as 503, counting
    /// nothing against anyone.
    fn find(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Arc<User>>, StoreError>> + Send;

    /// The user named `username`, only when this store holds it in memory
    /// and can never change it (no interior mutability: the built-in
    /// [`Users`]; a change comes only by [`crate::App::reload`], which
    /// replaces the store). The routes then remember it with the verified
    /// token, and skip [`find`](UserStore::find) while this store is
    /// current. The default, `None`, suits every store whose users may
    /// change at any time (a database): they are looked up every request.
    fn fixed_user(&self, username: &str) -> Option<Arc<User>> {
        let _ = username;
        None
    }

    /// Whether the store can answer now, for `GET /healthz` (503 while it
    /// cannot). The default says yes; a database-backed store should run a
    /// cheap query that reads its users table (`SELECT 1 FROM users LIMIT
    /// 1`): a bare `SELECT 1` can succeed on a connection whose table is
    /// gone (SQLite answers it without reading the file).
    fn health(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Ok(()))
    }

    /// The argon2 parameters most users' hashes have: the dummy hash checked
    /// for unknown usernames takes them, so that unknown users cost what real
    /// ones do. `None` means the crate's defaults (m=19456, t=2, p=1).
    fn hash_params(&self) -> Option<Params> {
        None
    }

    /// The costliest argon2 parameters among the users' hashes (memory ×
    /// iterations): a failed login is answered no sooner than a hash at
    /// these would be, so that its time does not tell a user with costly
    /// parameters from one with the usual ones, or from an unknown username.
    /// `None` means [`hash_params`](UserStore::hash_params)' answer; a
    /// costlier hash met at a login raises it from then on.
    fn slowest_hash_params(&self) -> Option<Params> {
        None
    }

    /// Every scope some user may be granted, listed in `/openapi.json`.
    fn scopes(&self) -> Vec<String> {
        Vec::new()
    }

    /// The users of this store whose sessions `next`, replacing it in
    /// [`crate::App::reload`], ends: gone from `next`, disabled there, or
    /// with another password hash. The reload ends their sessions at once.
    /// The default, for a store that cannot list its users, is none: each
    /// session is then refused at its next refresh, when its user is
    /// looked up (gone, disabled, or the password changed since the login).
    fn sessions_ended_by(&self, next: &Self) -> Vec<String> {
        let _ = next;
        Vec::new()
    }

    /// How `next`, replacing this store in [`crate::App::reload`], changes
    /// its users: each user changed, by name, and how (added, removed,
    /// given another password, disabled, enabled). The reload logs one
    /// audit line per user and counts each change. The default, for a
    /// store that cannot list its users (a database, changed in place
    /// rather than by a reload), is none.
    fn changes_by(&self, next: &Self) -> Vec<(String, Vec<Change>)> {
        let _ = next;
        Vec::new()
    }
}

/// One way a reload changed a user ([`UserStore::changes_by`]), for the
/// audit log and the metric `password_bearer_admin_changes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A user the store did not have.
    Added,
    /// A user the new store does not have.
    Removed,
    /// Another password hash.
    Password,
    /// Active before, disabled now.
    Disabled,
    /// Disabled before, active now.
    Enabled,
}

impl Change {
    /// Every change, in the metric's order.
    pub const ALL: [Change; 5] = [
        Change::Added,
        Change::Removed,
        Change::Password,
        Change::Disabled,
        Change::Enabled,
    ];

    /// Its name in a log line and in the metric's `change` label.
    pub fn label(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Password => "password",
            Change::Disabled => "disabled",
            Change::Enabled => "enabled",
        }
    }
}

/// A user store that could not answer: its driver's error, kept for the
/// log line (so it must not carry secrets, such as a connection string
/// with its password). Never shown to clients, who get 503.
#[derive(Debug)]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps the store's own error (or a message).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError(source.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store unavailable: {}", self.0)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// One entry of the users file, in the seed's `fake_users_db` shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    username: String,
    full_name: Option<String>,
    email: Option<String>,
    hashed_password: String,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Why a users file was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum UsersError {
    /// The file could not be read.
    Read(std::io::Error),
    /// Not JSON of the expected shape (serde's message names line and column).
    Json(serde_json::Error),
    /// An entry's key is not its `username`.
    KeyMismatch {
        /// The key of the entry.
        key: String,
        /// The `username` inside it.
        username: String,
    },
    /// An entry's `hashed_password` or `scopes` are not usable.
    User {
        /// The entry's username.
        username: String,
        /// What is wrong (never the hash itself).
        error: UserError,
    },
    /// A username longer than [`MAX_USERNAME_BYTES`] (its length).
    LongUsername(usize),
    /// The file holds no users.
    Empty,
}

/// Longest username a users file may hold: the username travels in every
/// token's `sub`, and a token must stay under [`crate::token::MAX_TOKEN_LEN`].
pub const MAX_USERNAME_BYTES: usize = 256;

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsersError::Read(e) => write!(f, "cannot read: {e}"),
            UsersError::Json(e) => write!(f, "invalid users JSON: {e}"),
            UsersError::KeyMismatch { key, username } => {
                write!(
                    f,
                    "entry {key:?} has username {username:?}; they must be equal"
                )
            }
            UsersError::User { username, error } => write!(f, "user {username:?}: {error}"),
            UsersError::LongUsername(len) => write!(
                f,
                "a username is {len} bytes; at most {MAX_USERNAME_BYTES} are allowed"
            ),
            UsersError::Empty => write!(f, "no users"),
        }
    }
}

impl std::error::Error for UsersError {}

/// FNV-1a, for the users map: every request looks a username up, and
/// SipHash costs several times more on names this short. Safe here: the map
/// is built once from the users file, so clients can only look up, never
/// insert colliding keys.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325) // FNV's 64-bit offset basis
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// All users, by username. Cloning shares the users.
#[derive(Clone)]
pub struct Users {
    by_name: HashMap<String, Arc<User>, FnvBuild>,
    /// The argon2 parameters most of the hashes use: the dummy hash checked
    /// for unknown usernames takes these, so it costs what a real one does.
    usual_params: Params,
    /// The costliest parameters among the hashes: failed logins are answered
    /// no sooner than a hash at these would be.
    slowest_params: Params,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("count", &self.by_name.len())
            .finish_non_exhaustive()
    }
}

impl Users {
    /// The seed's two users: johndoe / secret (active, scopes `me` and
    /// `items`) and alice / secret2 (disabled, scope `me`).
    pub fn demo() -> Users {
        // No `expect`: it would keep `UsersError`'s `Debug` in every binary
        // for an error this constant file cannot have (a unit test reads it).
        Users::from_json(DEMO_USERS)
            .unwrap_or_else(|_| panic!("the committed demo users file is valid"))
    }

    /// Reads a users file (see [`Users::from_json`]).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(UsersError::Read)?;
        Users::from_json(&text)
    }

    /// Parses the seed's `fake_users_db` shape:
    /// `{"johndoe": {"username", "full_name", "email", "hashed_password", "disabled"}}`.
    /// `username` and `hashed_password` are required, the rest optional as in
    /// the seed's `User` model; unknown fields are refused, so a typo such as
    /// `hashed_pasword` stops startup instead of locking a user out.
    pub fn from_json(text: &str) -> Result<Users, UsersError> {
        let entries: BTreeMap<String, Entry> =
            serde_json::from_str(text).map_err(UsersError::Json)?;
        let users = entries
            .into_iter()
            .map(|(key, entry)| {
                if key != entry.username {
                    return Err(UsersError::KeyMismatch {
                        key,
                        username: entry.username,
                    });
                }
                if key.len() > MAX_USERNAME_BYTES {
                    return Err(UsersError::LongUsername(key.len()));
                }
                let mut user =
                    User::builder(entry.username, entry.hashed_password).scopes(entry.scopes);
                if let Some(email) = entry.email {
                    user = user.email(email);
                }
                if let Some(full_name) = entry.full_name {
                    user = user.full_name(full_name);
                }
                if let Some(disabled) = entry.disabled {
                    user = user.disabled(disabled);
                }
                user.build().map_err(|error| UsersError::User {
                    username: key,
                    error,
                })
            })
            .collect::<Result<Vec<User>, UsersError>>()?;
        Users::from_users(users)
    }

    /// Builds the store from users made in code.
    pub fn from_users(users: impl IntoIterator<Item = User>) -> Result<Users, UsersError> {
        let by_name: HashMap<String, Arc<User>, FnvBuild> = users
            .into_iter()
            .map(|u| (u.username.clone(), Arc::new(u)))
            .collect();
        let (usual_params, slowest_params) = hash_params(&by_name).ok_or(UsersError::Empty)?;
        Ok(Users {
            by_name,
            usual_params,
            slowest_params,
        })
    }

    /// The user named `username`, if any.
    pub fn get(&self, username: &str) -> Option<&Arc<User>> {
        self.by_name.get(username)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no users (never, for a loaded store).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The argon2 parameters most users' hashes have.
    pub fn usual_params(&self) -> &Params {
        &self.usual_params
    }
}

/// A store shared with the embedder's own code (to add or disable users
/// while the server runs) is still a store.
impl<S: UserStore> UserStore for Arc<S> {
    fn find(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Arc<User>>, StoreError>> + Send {
        (**self).find(username)
    }

    fn fixed_user(&self, username: &str) -> Option<Arc<User>> {
        (**self).fixed_user(username)
    }

    fn health(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).health()
    }

    fn hash_params(&self) -> Option<Params> {
        (**self).hash_params()
    }

    fn slowest_hash_params(&self) -> Option<Params> {
        (**self).slowest_hash_params()
    }

    fn scopes(&self) -> Vec<String> {
        (**self).scopes()
    }

    fn sessions_ended_by(&self, next: &Self) -> Vec<String> {
        (**self).sessions_ended_by(next)
    }

    fn changes_by(&self, next: &Self) -> Vec<(String, Vec<Change>)> {
        (**self).changes_by(next)
    }
}

/// The file store never fails: its users are in memory.
impl UserStore for Users {
    fn find(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Arc<User>>, StoreError>> + Send {
        std::future::ready(Ok(self.get(username).cloned()))
    }

    /// Fixed: the users are read-only once loaded.
    fn fixed_user(&self, username: &str) -> Option<Arc<User>> {
        self.get(username).cloned()
    }

    fn hash_params(&self) -> Option<Params> {
        Some(self.usual_params.clone())
    }

    fn slowest_hash_params(&self) -> Option<Params> {
        Some(self.slowest_params.clone())
    }

    fn scopes(&self) -> Vec<String> {
        let all: BTreeSet<&String> = self.by_name.values().flat_map(|u| &u.scopes).collect();
        all.into_iter().cloned().collect()
    }

    fn sessions_ended_by(&self, next: &Users) -> Vec<String> {
        self.by_name
            .values()
            .filter(|before| {
                next.get(&before.username).is_none_or(|after| {
                    after.is_disabled() || after.hashed_password != before.hashed_password
                })
            })
            .map(|before| before.username.clone())
            .collect()
    }

    fn changes_by(&self, next: &Users) -> Vec<(String, Vec<Change>)> {
        let mut names: Vec<&String> = self.by_name.keys().chain(next.by_name.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| {
                let changes = match (self.get(name), next.get(name)) {
                    (None, Some(_)) => vec![Change::Added],
                    (Some(_), None) => vec![Change::Removed],
                    (Some(before), Some(after)) => {
                        let mut changes = Vec::new();
                        if after.hashed_password != before.hashed_password {
                            changes.push(Change::Password);
                        }
                        match (before.is_disabled(), after.is_disabled()) {
                            (false, true) => changes.push(Change::Disabled),
                            (true, false) => changes.push(Change::Enabled),
                            _ => {}
                        }
                        changes
                    }
                    (None, None) => Vec::new(),
                };
                (!changes.is_empty()).then(|| (name.clone(), changes))
            })
            .collect()
    }
}

/// The parameters most of `users`' hashes have, and the costliest.
fn hash_params(users: &HashMap<String, Arc<User>, FnvBuild>) -> Option<(Params, Params)> {
    let mut counts: Vec<(Params, usize)> = Vec::new();
    for user in users.values() {
        let params = password::check_phc(user.hashed_password()).ok()?;
        match counts.iter_mut().find(|(p, _)| *p == params) {
            Some((_, n)) => *n += 1,
            None => counts.push((params, 1)),
        }
    }
    let slowest = counts
        .iter()
        .map(|(p, _)| p)
        .max_by_key(|p| p.block_count() as u64 * u64::from(p.t_cost()))?
        .clone();
    let usual = counts.into_iter().max_by_key(|(_, n)| *n)?.0;
    Some((usual, slowest))
}

#[cfg(test)]
mod tests;
