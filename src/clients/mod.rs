//! The clients: machines that authenticate with an id and a secret (RFC
//! 6749 §2.3.1) to get tokens of their own (the client credentials grant),
//! to ask whether a token is good (RFC 7662 introspection) and to revoke
//! their tokens. [`Clients`] is the set loaded from the clients file, a
//! JSON object keyed by client id in the users file's manner; immutable,
//! replaced whole on a reload.
//!
//! A client secret is ours to make: 256 random bits ([`generate_secret`]),
//! and the file keeps its SHA-256 (`sha256$<43 base64url chars>`), never
//! the secret. A slow password KDF protects a guessable password; a 256-bit
//! random secret is not guessable (2^256 tries, and no two secrets share a
//! digest, so no salt and no precomputation helps), and an argon2 or
//! bcrypt per grant would cap the grant at tens per second per core, where
//! a SHA-256 costs a microsecond. So the file refuses any other stored form,
//! and [`hash_secret`] refuses a secret that is not one of ours (shorter
//! than 43 base64url characters).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::users::{is_scope_token, MAX_USERNAME_BYTES};

#[cfg(feature = "postgres")]
pub mod postgres;

/// The prefix of a stored secret: the name of its digest.
const STORED_PREFIX: &str = "sha256$";

/// A generated secret's length: 32 bytes in base64url without padding.
pub const SECRET_CHARS: usize = 43;

/// Longest client id: it travels in a token's `sub` and `client_id`, as a
/// username does in `sub`.
pub const MAX_CLIENT_ID_BYTES: usize = MAX_USERNAME_BYTES;

/// One client, as the clients file holds it. Its secret's digest is never
/// shown, in `{:?}` or anywhere else.
pub struct Client {
    client_id: String,
    scopes: Vec<String>,
    introspect: bool,
    /// SHA-256 of the secret.
    digest: [u8; 32],
}

impl fmt::Debug for Client {
    // Hand-written so the digest never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("introspect", &self.introspect)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The client's id: the clients file's key, and its tokens' `sub` and
    /// `client_id`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The scopes the client credentials grant may give this client.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether this client may be granted `scope`.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether this client may call `POST /introspect`.
    pub fn may_introspect(&self) -> bool {
        self.introspect
    }
}

/// One client as stored, in the file or in the table, before it is checked.
pub(crate) struct Row {
    pub(crate) client_id: String,
    pub(crate) secret_hash: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) introspect: bool,
}

/// One entry of the clients file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    client_id: String,
    secret_hash: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    introspect: bool,
}

/// Why a clients file, a client or a secret was refused. Its message names
/// the client, never a secret or a digest.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The file could not be read.
    Read(std::io::Error),
    /// Not JSON of the expected shape (serde's message names line and column).
    Json(serde_json::Error),
    /// An entry's key is not its `client_id`.
    KeyMismatch {
        /// The key of the entry.
        key: String,
        /// The `client_id` inside it.
        client_id: String,
    },
    /// A client id that is empty, too long, not printable ASCII, or holds
    /// a space, `:`, `%` or `+` (see [`is_client_id`]).
    ClientId(String),
    /// A scope that is not an RFC 6749 scope token.
    Scope {
        /// The client.
        client_id: String,
        /// The scope.
        scope: String,
    },
    /// A `secret_hash` that is not `sha256$` and the 43 base64url
    /// characters of a SHA-256 (an argon2 hash, a plaintext secret).
    SecretHash {
        /// The client (never the value).
        client_id: String,
    },
    /// A secret shorter than 43 characters, or with characters outside
    /// base64url: not one [`generate_secret`] made.
    WeakSecret,
    /// The operating system's random source failed.
    Random(String),
    /// A client id twice (a clients table without its primary key).
    Duplicate(String),
    /// The clients table could not be read (the database's reason, never
    /// a row's value).
    Database(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Read(e) => write!(f, "cannot read: {e}"),
            ClientError::Json(e) => write!(f, "invalid clients JSON: {e}"),
            ClientError::KeyMismatch { key, client_id } => write!(
                f,
                "entry {key:?} has client_id {client_id:?}; they must be equal"
            ),
            ClientError::ClientId(id) => write!(
                f,
                "client_id {id:?} must be 1 to {MAX_CLIENT_ID_BYTES} printable ASCII characters without space, ':', '%' or '+'"
            ),
            ClientError::Scope { client_id, scope } => write!(
                f,
                "client {client_id:?}: scope {scope:?} is not a scope token (printable ASCII without space, '\"' or '\\')"
            ),
            ClientError::SecretHash { client_id } => write!(
                f,
                "client {client_id:?}: secret_hash is not sha256$ and 43 base64url characters; make one with `password-bearer hash-client-secret`"
            ),
            ClientError::WeakSecret => write!(
                f,
                "a client secret must be at least {SECRET_CHARS} base64url characters (A-Z a-z 0-9 - _); generate one with `password-bearer hash-client-secret --generate`"
            ),
            ClientError::Random(e) => write!(f, "no random bytes: {e}"),
            ClientError::Duplicate(id) => write!(f, "client {id:?} is there twice"),
            ClientError::Database(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ClientError {}

/// A new client secret: 32 bytes of the operating system's random source,
/// in base64url without padding (43 characters).
pub fn generate_secret() -> Result<String, ClientError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ClientError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of `secret` (`sha256$` and its digest in base64url), as
/// the clients file's `secret_hash` holds it. Refuses a secret shorter than
/// 43 characters or with characters outside base64url
/// ([`ClientError::WeakSecret`]).
pub fn hash_secret(secret: &str) -> Result<String, ClientError> {
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if secret.len() < SECRET_CHARS || !secret.bytes().all(base64url) {
        return Err(ClientError::WeakSecret);
    }
    Ok(format!(
        "{STORED_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
    ))
}

/// The digest in a stored form, if it is one.
fn parse_stored(stored: &str) -> Option<[u8; 32]> {
    let encoded = stored.strip_prefix(STORED_PREFIX)?;
    if encoded.len() != SECRET_CHARS {
        return None;
    }
    // The engine refuses non-canonical trailing bits, so one digest has one
    // stored form.
    URL_SAFE_NO_PAD.decode(encoded).ok()?.try_into().ok()
}

/// Whether `id` may name a client: 1 to [`MAX_CLIENT_ID_BYTES`] printable
/// ASCII characters without space, `:` (HTTP Basic splits on it), `%` or
/// `+` (so that Basic's form-urlencoding leaves the id as it is, and a
/// client library that does not encode sends the same bytes as one that
/// does).
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID_BYTES
        && id
            .bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && !matches!(b, b':' | b'%' | b'+'))
}

/// Equality whose time does not depend on where the digests differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The digest an unknown client id is compared against, so that its
/// answer takes what a known client's wrong secret does. No secret hashes
/// to it (it is no SHA-256 output anyone knows an input of).
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

/// All clients, by id. Cloning shares them.
#[derive(Clone, Default)]
pub struct Clients {
    by_id: HashMap<String, Arc<Client>>,
}

impl fmt::Debug for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("count", &self.by_id.len())
            .finish_non_exhaustive()
    }
}

impl Clients {
    /// Reads a clients file (see [`Clients::from_json`]).
    pub fn load(path: &Path) -> Result<Clients, ClientError> {
        let text = std::fs::read_to_string(path).map_err(ClientError::Read)?;
        Clients::from_json(&text)
    }

    /// Parses a clients file: `{"billing": {"client_id": "billing",
    /// "secret_hash": "sha256$…", "scopes": ["items:read"], "introspect":
    /// true}}`. `client_id` and `secret_hash` are required; `scopes`
    /// defaults to none and `introspect` to false. Unknown fields are
    /// refused, so a typo stops startup instead of changing a client's
    /// rights. An empty object is a valid file: no client.
    pub fn from_json(text: &str) -> Result<Clients, ClientError> {
        let entries: BTreeMap<String, Entry> =
            serde_json::from_str(text).map_err(ClientError::Json)?;
        let mut checked = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            if key != entry.client_id {
                return Err(ClientError::KeyMismatch {
                    key,
                    client_id: entry.client_id,
                });
            }
            checked.push(entry);
        }
        Clients::from_rows(checked.into_iter().map(|e| Row {
            client_id: e.client_id,
            secret_hash: e.secret_hash,
            scopes: e.scopes,
            introspect: e.introspect,
        }))
    }

    /// The clients of `rows`, each checked as the file's entries are (the
    /// id, the scopes, the stored form); an id twice is refused. The
    /// clients table's rows come this way (`clients::postgres`).
    pub(crate) fn from_rows(rows: impl Iterator<Item = Row>) -> Result<Clients, ClientError> {
        let mut by_id = HashMap::new();
        for row in rows {
            let Row {
                client_id,
                secret_hash,
                scopes,
                introspect,
            } = row;
            if !is_client_id(&client_id) {
                return Err(ClientError::ClientId(client_id));
            }
            if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
                return Err(ClientError::Scope {
                    client_id,
                    scope: bad.clone(),
                });
            }
            let Some(digest) = parse_stored(&secret_hash) else {
                return Err(ClientError::SecretHash { client_id });
            };
            if by_id.contains_key(&client_id) {
                return Err(ClientError::Duplicate(client_id));
            }
            let client = Client {
                client_id: client_id.clone(),
                scopes,
                introspect,
                digest,
            };
            by_id.insert(client_id, Arc::new(client));
        }
        Ok(Clients { by_id })
    }

    /// The client `client_id` when `secret` is its secret; `None` for an
    /// unknown id or a wrong secret alike. The digests are compared in
    /// constant time, and an unknown id is compared against a dummy digest,
    /// so the time does not tell a known client from an unknown one.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Option<&Arc<Client>> {
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let client = self.by_id.get(client_id);
        let expected = client.map_or(&DUMMY_DIGEST, |c| &c.digest);
        let matched = same_digest(expected, &presented);
        client.filter(|_| matched)
    }

    /// The client `client_id`, if any (no authentication).
    pub fn get(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.by_id.get(client_id)
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The client ids, sorted.
    pub fn ids(&self) -> BTreeSet<&str> {
        self.by_id.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "q3n5ZbT0n7aJc3dO0Lq6m2wqLxS1mD9b1YgkV3H8r0E";

    fn file(secret_hash: &str) -> String {
        format!(
            r#"{{"billing": {{"client_id": "billing", "secret_hash": "{secret_hash}",
                "scopes": ["items:read"], "introspect": true}},
               "reports": {{"client_id": "reports", "secret_hash": "{secret_hash}"}}}}"#
        )
    }

    #[test]
    fn a_generated_secret_is_256_bits_of_base64url_and_hashes() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.len(), SECRET_CHARS);
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        let stored = hash_secret(&a).unwrap();
        assert!(stored.starts_with("sha256$"));
        assert_eq!(stored.len(), "sha256$".len() + SECRET_CHARS);
        assert!(parse_stored(&stored).is_some());
    }

    #[test]
    fn hash_secret_is_sha256_in_base64url() {
        // SHA-256("a" × 43), computed apart: printf 'a%.0s' {1..43} | sha256sum.
        let secret = "a".repeat(43);
        let digest = Sha256::digest(secret.as_bytes());
        assert_eq!(
            hash_secret(&secret).unwrap(),
            format!("sha256${}", URL_SAFE_NO_PAD.encode(digest))
        );
    }

    #[test]
    fn weak_or_foreign_secrets_are_refused() {
        for secret in [
            "",
            "hunter2",
            &"a".repeat(42),
            &format!("{}=", "a".repeat(43)),
        ] {
            assert!(
                matches!(hash_secret(secret), Err(ClientError::WeakSecret)),
                "{secret:?}"
            );
        }
        let message = hash_secret("hunter2").unwrap_err().to_string();
        assert!(message.contains("--generate"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(hash_secret(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn the_file_loads_with_its_defaults() {
        let clients = Clients::from_json(&file(&hash_secret(SECRET).unwrap())).unwrap();
        assert_eq!(clients.len(), 2);
        let billing = clients.get("billing").unwrap();
        assert_eq!(billing.scopes(), ["items:read"]);
        assert!(billing.may_introspect());
        assert!(billing.allows("items:read") && !billing.allows("items"));
        let reports = clients.get("reports").unwrap();
        assert!(reports.scopes().is_empty());
        assert!(!reports.may_introspect());
        assert_eq!(
            clients.ids().into_iter().collect::<Vec<_>>(),
            ["billing", "reports"]
        );
        assert!(Clients::from_json("{}").unwrap().is_empty());
    }

    #[test]
    fn authenticate_takes_the_right_secret_only() {
        let clients = Clients::from_json(&file(&hash_secret(SECRET).unwrap())).unwrap();
        let ok = clients.authenticate("billing", SECRET).unwrap();
        assert_eq!(ok.client_id(), "billing");
        assert!(clients.authenticate("billing", &SECRET[1..]).is_none());
        assert!(clients.authenticate("billing", "").is_none());
        assert!(clients.authenticate("nobody", SECRET).is_none());
        // The stored form is no secret that authenticates.
        assert!(clients
            .authenticate("billing", &hash_secret(SECRET).unwrap())
            .is_none());
    }

    #[test]
    fn other_stored_forms_are_refused_naming_the_client_not_the_value() {
        let argon2 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let stored = hash_secret(SECRET).unwrap();
        // The 43rd character carries 4 bits and 2 zero ones: 'F' sets a zero one.
        let wrong_bits = format!("sha256${}F", &stored[7..49]);
        for bad in [
            argon2,
            SECRET,
            "sha256$",
            &stored[..stored.len() - 1],
            &format!("{stored}A"),
            &format!("SHA256${}", &stored[7..]),
            &wrong_bits,
        ] {
            let error = Clients::from_json(&file(bad)).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, ClientError::SecretHash { .. }),
                "{bad}: {message}"
            );
            assert!(message.contains("\"billing\""), "{message}");
            // ("sha256$" alone is in the message as the form to use.)
            assert!(bad.len() < 10 || !message.contains(bad), "{message}");
        }
    }

    #[test]
    fn ids_keys_scopes_and_fields_are_checked() {
        let stored = hash_secret(SECRET).unwrap();
        let entry = |key: &str, id: &str, extra: &str| {
            format!(r#"{{"{key}": {{"client_id": "{id}", "secret_hash": "{stored}"{extra}}}}}"#)
        };
        assert!(matches!(
            Clients::from_json(&entry("a", "b", "")),
            Err(ClientError::KeyMismatch { .. })
        ));
        for id in [
            "",
            "a:b",
            "a b",
            "a%41",
            "a+b",
            "é",
            &"x".repeat(MAX_CLIENT_ID_BYTES + 1),
        ] {
            assert!(
                matches!(
                    Clients::from_json(&entry(id, id, "")),
                    Err(ClientError::ClientId(_))
                ),
                "{id:?}"
            );
        }
        assert!(matches!(
            Clients::from_json(&entry("a", "a", r#", "scopes": ["two words"]"#)),
            Err(ClientError::Scope { .. })
        ));
        let typo = Clients::from_json(&entry("a", "a", r#", "introspection": true"#));
        assert!(matches!(typo, Err(ClientError::Json(_))));
        let plain = Clients::from_json(&entry("a", "a", r#", "secret": "hunter2""#))
            .unwrap_err()
            .to_string();
        assert!(!plain.contains("hunter2"), "{plain}");
        assert!(matches!(
            Clients::from_json("[]"),
            Err(ClientError::Json(_))
        ));
    }

    #[test]
    fn debug_shows_no_digest() {
        let stored = hash_secret(SECRET).unwrap();
        let clients = Clients::from_json(&file(&stored)).unwrap();
        let shown = format!("{:?}", clients.get("billing").unwrap());
        assert!(shown.contains("billing"), "{shown}");
        assert!(
            !shown.contains("digest") && !shown.contains(&stored[7..]),
            "{shown}"
        );
    }
}
