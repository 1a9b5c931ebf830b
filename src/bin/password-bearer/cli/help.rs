//! The `--help` text, [`USAGE`], rendered from the flag table so that
//! every flag and its environment variable are listed, wrapped for an
//! 80-column terminal.

use super::defs::{Kind, FLAGS};
use std::fmt;

/// The text of `--help`, rendered from [`FLAGS`]: `print!("{USAGE}")`.
pub(crate) const USAGE: Usage = Usage;

/// The `--help` text; see [`USAGE`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage;

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Descriptions start at this column and wrap before WIDTH, so the
        // text reads in an 80-column terminal.
        const COLUMN: usize = 32;
        const WIDTH: usize = 80;
        f.write_str(
            "\
password-bearer: the OAuth2 password grant and Bearer check, on hyper

Usage:
  password-bearer [OPTIONS]          serve POST /token and GET /users/me
  password-bearer hash-password      read a password on stdin, print its argon2id hash
  password-bearer hash-client-secret [--generate]
                                     read a client secret on stdin (or make one),
                                     print its stored form (sha256$...)
  password-bearer users ACTION       add, passwd, disable, enable, remove, list users
  password-bearer clients ACTION     add, remove, list clients (see users --help)
                                     (both build with the `admin` feature)

Options (each also read from the environment variable shown; a flag given
on the command line wins; a switch's variable is on when 1 or true, off when
0, false or empty; --switch=1/true/0/false is accepted too):
",
        )?;
        for flag in FLAGS {
            let mut head = format!("  {}", flag.flag());
            if let Kind::Value(placeholder) = flag.kind() {
                head = format!("{head} {placeholder}");
            }
            let mut lines = wrap(flag.help, WIDTH - COLUMN);
            if !flag.default.is_empty() {
                // Never split, so the default reads (and greps) whole.
                let default = format!("[default: {}]", flag.default);
                match lines.last_mut() {
                    Some(last) if last.len() + 1 + default.len() <= WIDTH - COLUMN => {
                        last.push(' ');
                        last.push_str(&default);
                    }
                    _ => lines.push(default),
                }
            }
            let mut lines = lines.iter();
            if head.len() < COLUMN {
                let first = lines.next().map_or("", String::as_str);
                writeln!(f, "{head:<COLUMN$}{first}")?;
            } else {
                writeln!(f, "{head}")?;
            }
            for line in lines {
                writeln!(f, "{:COLUMN$}{line}", "")?;
            }
            writeln!(f, "{:COLUMN$}[env: {}]", "", flag.env_var())?;
        }
        writeln!(f, "  {:<w$}print this help", "-h, --help", w = COLUMN - 2)?;
        writeln!(
            f,
            "  {:<w$}print the version",
            "-V, --version",
            w = COLUMN - 2
        )
    }
}

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
