//! The binary's command line: flags, the `hash-password` subcommand, and
//! turning flags into a [`Config`](password_bearer::app::Config) with one-line errors for bad settings.
//! The binary's alone: declared by `main.rs`, not part of the library.
//!
//! Every flag can also come from an environment variable named after it
//! (`--secret-key-file` ↔ `PASSWORD_BEARER_SECRET_KEY_FILE`), as containers
//! and service managers configure programs; a flag given on the command line
//! wins over its variable. One table, [`FLAGS`](defs::FLAGS), drives the parsing, the
//! variable names and `--help`, so a flag cannot be added to one and
//! forgotten in another.
//!
//! Split by job, as ripgrep splits its flags: `defs` (the flag table and
//! the value checks), `parse` (argv and variables, did-you-mean), `help`,
//! `lowargs` (the parsed [`Options`]) and `hiargs` (options to `Config`,
//! the files read).
//!
//! Hand-written rather than a parser crate: a handful of flags does not pay
//! for the binary size an embedded deployment would carry.

mod defs;
mod help;
mod hiargs;
mod lowargs;
mod parse;
#[cfg(test)]
mod tests;

pub(crate) use crate::error::ConfigError;
pub(crate) use defs::DEMO_USERS;
pub(crate) use help::USAGE;
pub(crate) use hiargs::{renew_tls, Tls};
pub(crate) use lowargs::{Command, Options, VERSION};
pub(crate) use parse::{parse_args, unknown_variables};
