//! A new password for `users add` and `users passwd`: from the terminal,
//! asked twice without echo, or read once from stdin when stdin is not a
//! terminal (a script's pipe).
//!
//! Echo is turned off by running `stty -echo` on `/dev/tty`, and back on
//! with the settings `stty -g` saved, on every path out (a guard's drop):
//! no `unsafe` termios calls of our own, and no crate for a few lines.
//! Ctrl-C while the password is typed kills the process with echo off,
//! as `passwd` leaves it too; `stty sane` or `reset` brings it back.

use crate::error::ConfigError;
use password_bearer::app::MAX_PASSWORD_BYTES;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::process::{Command, Stdio};

/// The new password of `name`, checked: not empty, no longer than a
/// login accepts.
pub(super) fn new_password(name: &str) -> Result<String, ConfigError> {
    let password = if std::io::stdin().is_terminal() {
        from_terminal(name)?
    } else {
        from_stdin()?
    };
    check(&password)?;
    Ok(password)
}

fn fail(problem: impl std::fmt::Display) -> ConfigError {
    ConfigError::new("password", problem)
}

fn check(password: &str) -> Result<(), ConfigError> {
    if password.is_empty() {
        return Err(fail("empty; nothing changed"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(fail(format!(
            "longer than the {MAX_PASSWORD_BYTES} bytes a login accepts; nothing changed"
        )));
    }
    Ok(())
}

/// All of stdin, less a final newline; a second line is refused rather
/// than made part of the password (a script echoing it twice, as the
/// terminal asks, would otherwise set "pw\npw").
fn from_stdin() -> Result<String, ConfigError> {
    let mut input = String::new();
    std::io::stdin()
        .take(MAX_PASSWORD_BYTES as u64 + 3)
        .read_to_string(&mut input)
        .map_err(|e| fail(format!("cannot read stdin: {e}")))?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.contains(['\n', '\r']) {
        return Err(fail(
            "more than one line on stdin; give the password once, on one line",
        ));
    }
    Ok(password.to_owned())
}

/// Asks twice on the terminal, echo off; the two must match.
fn from_terminal(name: &str) -> Result<String, ConfigError> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| fail(format!("cannot open the terminal: {e}")))?;
    let mut out = tty
        .try_clone()
        .map_err(|e| fail(format!("cannot use the terminal: {e}")))?;
    let mut lines = BufReader::new(
        tty.try_clone()
            .map_err(|e| fail(format!("cannot use the terminal: {e}")))?,
    );
    let first = ask(
        &tty,
        &mut out,
        &mut lines,
        &format!("New password for {name}: "),
    )?;
    check(&first)?;
    let second = ask(&tty, &mut out, &mut lines, "Again: ")?;
    if first != second {
        return Err(fail("the two passwords differ; nothing changed"));
    }
    Ok(first)
}

/// One line read from the terminal with its echo off.
fn ask(
    tty: &File,
    out: &mut File,
    lines: &mut BufReader<File>,
    prompt: &str,
) -> Result<String, ConfigError> {
    out.write_all(prompt.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| fail(format!("cannot write to the terminal: {e}")))?;
    let mut line = String::new();
    {
        let _quiet = NoEcho::start(tty)?;
        lines
            .read_line(&mut line)
            .map_err(|e| fail(format!("cannot read the terminal: {e}")))?;
    }
    // The Enter typed was not echoed either.
    let _ = out.write_all(b"\n");
    if !line.ends_with('\n') {
        return Err(fail("the terminal closed before a line was typed"));
    }
    line.pop();
    if line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

/// The terminal's echo off while alive; its settings as they were after.
struct NoEcho {
    tty: File,
    saved: String,
}

impl NoEcho {
    fn start(tty: &File) -> Result<NoEcho, ConfigError> {
        let tty = tty
            .try_clone()
            .map_err(|e| fail(format!("cannot use the terminal: {e}")))?;
        let saved = stty(&tty, &["-g"])?;
        stty(&tty, &["-echo"])?;
        Ok(NoEcho {
            tty,
            saved: saved.trim().to_owned(),
        })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if stty(&self.tty, &[&self.saved]).is_err() {
            let _ = stty(&self.tty, &["echo"]);
        }
    }
}

/// Runs `stty args` on the terminal `tty`; its output.
fn stty(tty: &File, args: &[&str]) -> Result<String, ConfigError> {
    let stdin = tty
        .try_clone()
        .map_err(|e| fail(format!("cannot use the terminal: {e}")))?;
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::from(stdin))
        .stderr(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run stty to turn the echo off: {e}")))?;
    if !out.status.success() {
        return Err(fail("stty could not turn the terminal's echo off"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
