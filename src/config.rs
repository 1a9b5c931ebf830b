//! The binary's command line: flags, the `hash-password` subcommand, and
//! turning flags into a [`Config`] with one-line errors for bad settings.
//!
//! Hand-written rather than a parser crate: a handful of flags does not pay
//! for the binary size an embedded deployment would carry.

use crate::app::{Config, MAX_LEEWAY};
use crate::token::SecretKey;
use crate::users::Users;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The usage text of `--help`.
pub const USAGE: &str = "\
password-bearer: the OAuth2 password grant and Bearer check, on hyper

Usage:
  password-bearer [OPTIONS]          serve POST /token and GET /users/me
  password-bearer hash-password      read a password on stdin, print its argon2id hash

Options:
  --host HOST                   address to listen on [default: 127.0.0.1]
  --port PORT                   port to listen on; 0 picks a free one [default: 8000]
  --users FILE                  users JSON, the seed's fake_users_db shape with argon2
                                PHC hashes [default: the demo users johndoe, alice]
  --secret-key-file FILE        HS256 key: the file's content, trimmed, >= 32 bytes
                                [default: a random key; tokens die with the process]
  --token-ttl-minutes N         lifetime of issued tokens [default: 30]
  --token-leeway-seconds N      clock skew allowed on exp/nbf, 0..=60 [default: 0]
  --header-read-timeout-seconds N
                                time to send a request head; idle keep-alive limit [default: 10]
  --max-body-bytes N            largest request body [default: 16384]
  --grace-period-seconds N      on SIGINT/SIGTERM, time for in-flight requests [default: 10]
  -h, --help                    print this help
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve with these options.
    Serve(Options),
    /// Read a password on stdin and print its hash.
    HashPassword,
    /// Print [`USAGE`].
    Help,
}

/// The serving options, as given (files not yet read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--host`.
    pub host: String,
    /// `--port`.
    pub port: u16,
    /// `--users`.
    pub users: Option<PathBuf>,
    /// `--secret-key-file`.
    pub secret_key_file: Option<PathBuf>,
    /// `--token-ttl-minutes`.
    pub token_ttl_minutes: u64,
    /// `--token-leeway-seconds`.
    pub token_leeway_seconds: u64,
    /// `--header-read-timeout-seconds`.
    pub header_read_timeout_seconds: u64,
    /// `--max-body-bytes`.
    pub max_body_bytes: usize,
    /// `--grace-period-seconds`.
    pub grace_period_seconds: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            users: None,
            secret_key_file: None,
            token_ttl_minutes: 30,
            token_leeway_seconds: 0,
            header_read_timeout_seconds: 10,
            max_body_bytes: 16 * 1024,
            grace_period_seconds: 10,
        }
    }
}

/// A bad command line or configuration: `what` names the flag or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The flag, and the file when there is one.
    pub what: String,
    /// What is wrong, in a few words.
    pub problem: String,
}

impl ConfigError {
    fn new(what: impl Into<String>, problem: impl fmt::Display) -> ConfigError {
        ConfigError {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error printed.
        let problem = self.problem.replace(['\n', '\r'], " ");
        write!(f, "{}: {}", self.what, problem)
    }
}

impl std::error::Error for ConfigError {}

/// Parses the arguments after the program name. `--flag value` and
/// `--flag=value` are both accepted.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let mut options = Options::default();
    let mut first = true;
    while let Some(arg) = args.next() {
        if first && arg == "hash-password" {
            if let Some(extra) = args.next() {
                return Err(ConfigError::new(extra, "hash-password takes no arguments"));
            }
            return Ok(Command::HashPassword);
        }
        first = false;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| ConfigError::new(&flag, "needs a value"))
        };
        match flag.as_str() {
            "--host" => options.host = value()?,
            "--port" => options.port = number(&flag, &value()?)?,
            "--users" => options.users = Some(value()?.into()),
            "--secret-key-file" => options.secret_key_file = Some(value()?.into()),
            "--token-ttl-minutes" => {
                options.token_ttl_minutes = number(&flag, &value()?)?;
                // A year bounds `exp` far from overflow and is already too long.
                if !(1..=525_600).contains(&options.token_ttl_minutes) {
                    return Err(ConfigError::new(flag, "must be from 1 to 525600"));
                }
            }
            "--token-leeway-seconds" => {
                options.token_leeway_seconds = number(&flag, &value()?)?;
                if options.token_leeway_seconds > MAX_LEEWAY.as_secs() {
                    return Err(ConfigError::new(flag, "must be from 0 to 60"));
                }
            }
            "--header-read-timeout-seconds" => {
                options.header_read_timeout_seconds = number(&flag, &value()?)?;
                if options.header_read_timeout_seconds == 0 {
                    return Err(ConfigError::new(flag, "must be at least 1"));
                }
            }
            "--max-body-bytes" => options.max_body_bytes = number(&flag, &value()?)?,
            "--grace-period-seconds" => options.grace_period_seconds = number(&flag, &value()?)?,
            _ => return Err(ConfigError::new(flag, "unknown option (see --help)")),
        }
    }
    Ok(Command::Serve(options))
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| ConfigError::new(flag, format!("{text:?} is not a valid number")))
}

impl Options {
    /// Reads the files the options name and builds the [`Config`]. The
    /// second value is a warning to print, if any.
    pub fn load(&self) -> Result<(Config, Option<&'static str>), ConfigError> {
        let users = match &self.users {
            Some(path) => Users::load(path)
                .map_err(|e| ConfigError::new(format!("--users {}", path.display()), e))?,
            None => Users::demo(),
        };
        let (key, warning) = match &self.secret_key_file {
            Some(path) => {
                let what = format!("--secret-key-file {}", path.display());
                let bytes = std::fs::read(path)
                    .map_err(|e| ConfigError::new(&what, format!("cannot read: {e}")))?;
                // Trimmed, as PyJWT users write keys with `echo` and editors
                // add a final newline.
                let key =
                    SecretKey::new(bytes.trim_ascii()).map_err(|e| ConfigError::new(&what, e))?;
                (key, None)
            }
            None => (
                SecretKey::random().map_err(|e| ConfigError::new("--secret-key-file", e))?,
                Some(
                    "no --secret-key-file: signing with a random key; tokens die with the process",
                ),
            ),
        };
        let mut config = Config::new(users, key);
        config.token_ttl = Duration::from_secs(self.token_ttl_minutes * 60);
        config.leeway = Duration::from_secs(self.token_leeway_seconds);
        config.header_read_timeout = Duration::from_secs(self.header_read_timeout_seconds);
        config.body_limit = self.max_body_bytes;
        config.grace_period = Duration::from_secs(self.grace_period_seconds);
        Ok((config, warning))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ConfigError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Serve(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_both_flag_spellings() {
        assert_eq!(options(&[]), Options::default());
        let o = options(&["--port", "0", "--host=0.0.0.0", "--token-ttl-minutes=5"]);
        assert_eq!(
            (o.port, o.host.as_str(), o.token_ttl_minutes),
            (0, "0.0.0.0", 5)
        );
    }

    #[test]
    fn subcommand_and_help() {
        assert!(matches!(
            parse(&["hash-password"]),
            Ok(Command::HashPassword)
        ));
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse(&["--port", "1", "-h"]), Ok(Command::Help)));
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert_eq!(err(&["--port", "x"]), "--port: \"x\" is not a valid number");
        assert_eq!(
            err(&["--port", "70000"]),
            "--port: \"70000\" is not a valid number"
        );
        assert_eq!(err(&["--users"]), "--users: needs a value");
        assert_eq!(err(&["--bogus"]), "--bogus: unknown option (see --help)");
        assert_eq!(
            err(&["--token-ttl-minutes", "0"]),
            "--token-ttl-minutes: must be from 1 to 525600"
        );
        assert_eq!(
            err(&["--token-leeway-seconds", "61"]),
            "--token-leeway-seconds: must be from 0 to 60"
        );
    }

    #[test]
    fn short_key_file_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("pb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "too short\n").unwrap();
        let opts = Options {
            secret_key_file: Some(path.clone()),
            ..Options::default()
        };
        let err = opts.load().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--secret-key-file {}", path.display())),
            "{err}"
        );
        assert!(err.contains("32"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
