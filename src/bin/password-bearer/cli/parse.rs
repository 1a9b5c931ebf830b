//! Tokenising: argv and the `PASSWORD_BEARER_*` variables into a
//! [`Command`], checked against the flag table; "did you mean" for a
//! mistyped flag or variable.

use super::defs::{Kind, ENV_PREFIX, FLAGS};
use super::{Command, ConfigError, Options};
use std::ffi::OsString;

/// `users …` or `clients …`: the admin commands, parsed by their module.
#[cfg(feature = "admin")]
fn admin(
    group: &str,
    args: impl Iterator<Item = String>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Command, ConfigError> {
    Ok(match crate::admin::parse(group, args, env)? {
        Some(admin) => Command::Admin(Box::new(admin)),
        None => Command::AdminHelp,
    })
}

/// Without the `admin` feature: one line naming it, as a PostgreSQL URL
/// without the `postgres` feature is refused.
#[cfg(not(feature = "admin"))]
fn admin(
    group: &str,
    _args: impl Iterator<Item = String>,
    _env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Command, ConfigError> {
    let features = if group == "clients" {
        "admin,clients"
    } else {
        "admin"
    };
    Err(ConfigError::new(
        group,
        format!(
            "an admin command, but this binary was built without the `admin` feature \
             (cargo build --release --features {features})"
        ),
    ))
}

/// Parses the arguments after the program name, taking every flag not on
/// the command line from its environment variable as read by `env` (see
/// [`Flag::env_var`]). `--flag value` and `--flag=value` are both accepted;
/// a switch is on when given alone, and `--switch=VALUE` takes the spellings
/// its variable does. `hash-password`, `hash-client-secret` and `--help`
/// do not read `env`; the admin commands (`users …`, `clients …`) read
/// their store's variables.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Command, ConfigError> {
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let mut options = Options::default();
    let mut given = [false; FLAGS.len()];
    let mut first = true;
    while let Some(arg) = args.next() {
        if first && (arg == "users" || arg == "clients") {
            return admin(&arg, args, &env);
        }
        if first && arg == "hash-password" {
            if let Some(extra) = args.next() {
                return Err(ConfigError::new(extra, "hash-password takes no arguments"));
            }
            return Ok(Command::HashPassword);
        }
        if first && arg == "hash-client-secret" {
            let generate = match args.next().as_deref() {
                None => false,
                Some("--generate") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        other,
                        "hash-client-secret takes only --generate",
                    ))
                }
            };
            if let Some(extra) = args.next() {
                return Err(ConfigError::new(
                    extra,
                    "hash-client-secret takes only --generate",
                ));
            }
            return Ok(Command::HashClientSecret { generate });
        }
        first = false;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "-V" || arg == "--version" {
            return Ok(Command::Version);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        // The flag and its slot in `given` together, rather than an index
        // into each: no bounds check, no panic path in the binary.
        let Some((flag, seen)) = name.strip_prefix("--").and_then(|bare| {
            FLAGS
                .iter()
                .zip(given.iter_mut())
                .find(|(flag, _)| flag.name == bare)
        }) else {
            let problem = match closest_flag(&name) {
                Some(close) => format!("unknown option; did you mean `{close}`?"),
                None => "unknown option (see --help)".to_owned(),
            };
            return Err(ConfigError::new(name, problem));
        };
        let text = match (inline, flag.kind()) {
            (Some(text), _) => text,
            (None, Kind::Switch) => "true".to_owned(),
            (None, Kind::Value(_)) => args
                .next()
                .ok_or_else(|| ConfigError::new(&name, "needs a value"))?,
        };
        flag.set(&mut options, &name, &text)?;
        *seen = true;
    }
    // After the command line, so that a flag wins even over a variable whose
    // value is invalid: the operator's explicit choice is the one checked.
    for (flag, given) in FLAGS.iter().zip(given) {
        if given {
            continue;
        }
        let var = flag.env_var();
        let Some(value) = env(&var) else { continue };
        let text = value
            .into_string()
            .map_err(|_| ConfigError::new(&var, "the value is not valid UTF-8"))?;
        flag.set(&mut options, &var, &text)?;
        if flag.kind() != Kind::Switch {
            options.from_env.push(flag.name);
        }
    }
    Ok(Command::Serve(Box::new(options)))
}

/// What a mistyped `arg` most likely meant: the flag (or `hash-password`,
/// `--help`, `--version`) closest to it, when close enough to be a typo
/// rather than another word: a letter or two dropped, added, changed or
/// swapped. Dashes are not counted, so `-users` and `users` find `--users`.
fn closest_flag(arg: &str) -> Option<String> {
    let bare = arg.trim_start_matches('-');
    let mut names = FLAGS.iter().map(|flag| flag.name).chain([
        "hash-password",
        "hash-client-secret",
        "help",
        "version",
    ]);
    closest(bare, &mut names).map(|name| match name {
        "hash-password" | "hash-client-secret" => name.to_owned(),
        _ => format!("--{name}"),
    })
}

/// Of `names`, the one closest to `typed` by [`edit_distance`], if within a
/// typo's reach: at most 2 edits, and at most a third of the name, so that
/// short words do not match everything. (`dyn`: one copy in the binary for
/// flags and variables.)
pub(super) fn closest(
    typed: &str,
    names: &mut dyn Iterator<Item = &'static str>,
) -> Option<&'static str> {
    names
        // A length apart by more than 2 is more than 2 edits: not worth
        // measuring (and a megabyte argument costs nothing).
        .filter(|name| typed.len().abs_diff(name.len()) <= 2)
        .map(|name| (edit_distance(typed, name), name))
        .filter(|&(distance, name)| distance <= 2 && distance * 3 <= name.len())
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// Edits (a character inserted, removed, replaced, or two neighbours
/// swapped) from `a` to `b`: the optimal string alignment distance, with
/// two rows of the table. Flag names are ASCII; other characters count
/// byte by byte, which only makes them look further apart.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

/// One warning per `PASSWORD_BEARER_*` variable among `names` that is no
/// flag's: it is ignored, and a typo (`PASSWORD_BEARER_USER`) would
/// otherwise serve the defaults (the demo users) without a word. Names
/// only: a value may be a secret.
pub(crate) fn unknown_variables(names: impl IntoIterator<Item = OsString>) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in names {
        // A name that is not UTF-8 is not a flag's variable, nor close to one.
        let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(ENV_PREFIX)) else {
            continue;
        };
        // Compared as flag names (`USERS` as `users`): a variable is a
        // flag's when its rest is the flag's name in upper case, `_` for `-`.
        let as_flag: String = rest
            .chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let flag = FLAGS.iter().find(|flag| flag.name == as_flag);
        if flag.is_some() && !rest.bytes().any(|b| b.is_ascii_lowercase()) {
            continue;
        }
        let close = flag
            .map(|flag| flag.name)
            .or_else(|| closest(&as_flag, &mut FLAGS.iter().map(|flag| flag.name)));
        let hint = match close.and_then(|name| FLAGS.iter().find(|f| f.name == name)) {
            Some(flag) => format!("; did you mean {}?", flag.env_var()),
            None => " (see --help)".to_owned(),
        };
        // A name may hold a newline, which must not start a line of its
        // own in the log: control characters are shown as `?`.
        let shown: String = rest
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        warnings.push(format!(
            "{ENV_PREFIX}{shown} is not a setting, ignored{hint}"
        ));
    }
    warnings
}

/// [`parse`] with the process environment.
pub(crate) fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    parse(args, |name| std::env::var_os(name))
}
