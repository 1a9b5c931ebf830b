//! The sample outputs of README.md and docs/*.md are what the server answers
//! now: the walkthrough's requests are sent to a server with the demo
//! users, and each answer must be a line of a `console` block, byte for
//! byte. Tokens differ from run to run, so their values are masked on both
//! sides; every token response shown in the docs must then have the shape
//! of one the server gave (a sample that predates refresh tokens fails).
//! The one-line errors shown for bad configuration are run as their
//! commands are, and must be what the binary prints.

use crate::support::*;
use std::collections::BTreeSet;

/// The output lines of every ```` ```console ```` block of `file` (a path
/// from the crate's root): the lines that are not a `$ ` command or its
/// continuation.
fn console_output(file: &str) -> Vec<String> {
    let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = Vec::new();
    let (mut console, mut continued) = (false, false);
    for line in text.lines() {
        if line.starts_with("```") {
            console = line == "```console";
            continued = false;
            continue;
        }
        if !console {
            continue;
        }
        let command = line.starts_with("$ ") || continued;
        continued = command && line.ends_with('\\');
        if !command {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// `line` with the values of `access_token` and `refresh_token` replaced
/// by `…`, as the docs abbreviate them.
fn masked(line: &str) -> String {
    let mut out = line.to_owned();
    for field in ["\"access_token\":\"", "\"refresh_token\":\""] {
        if let Some(start) = out.find(field).map(|i| i + field.len()) {
            let end = start + out[start..].find('"').expect("a closing quote");
            out.replace_range(start..end, "…");
        }
    }
    out
}

const DOCS: [&str; 3] = ["README.md", "docs/configuration.md", "docs/sessions.md"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_shows_what_the_server_answers() {
    let server = start().await;
    let readme: BTreeSet<String> = console_output("README.md")
        .iter()
        .map(|l| masked(l))
        .collect();
    let mut answers = Vec::new();

    let johndoe = post_token(server.addr, &credentials("johndoe", "secret")).await;
    answers.push(johndoe.text().to_owned());
    let token = johndoe.json()["access_token"].as_str().unwrap().to_owned();
    answers.push(
        get_me(server.addr, &format!("Bearer {token}"))
            .await
            .text()
            .to_owned(),
    );
    let alice = login(server.addr, "alice", "secret2").await;
    answers.push(
        get_me(server.addr, &format!("Bearer {alice}"))
            .await
            .text()
            .to_owned(),
    );
    answers.push(get(server.addr, "/users/me", &[]).await.text().to_owned());
    answers.push(
        get_me(server.addr, "Bearer not-a-token")
            .await
            .text()
            .to_owned(),
    );
    answers.push(
        post_token(server.addr, "username=johndoe&password=nope")
            .await
            .text()
            .to_owned(),
    );
    answers.push(
        post_token(server.addr, "password=x")
            .await
            .text()
            .to_owned(),
    );

    // Refresh twice, then the first refresh token again: a reuse.
    let login = post_token(
        server.addr,
        "username=johndoe&password=secret&scope=me items",
    )
    .await;
    let first = login.json()["refresh_token"].as_str().unwrap().to_owned();
    let next = post_token(
        server.addr,
        &format!("grant_type=refresh_token&refresh_token={first}"),
    )
    .await;
    answers.push(next.text().to_owned());
    let second = next.json()["refresh_token"].as_str().unwrap().to_owned();
    let narrowed = format!("grant_type=refresh_token&refresh_token={second}&scope=me");
    answers.push(post_token(server.addr, &narrowed).await.text().to_owned());
    let reuse = post_token(
        server.addr,
        &format!("grant_type=refresh_token&refresh_token={first}"),
    )
    .await;
    assert_eq!(reuse.status, 400);
    answers.push(reuse.text().to_owned());

    // curl -F username=@johndoe.txt: a file where a field goes.
    let body =
        "--X\r\nContent-Disposition: form-data; name=\"username\"; filename=\"johndoe.txt\"\r\n\
                Content-Type: text/plain\r\n\r\njohndoe\r\n--X\r\n\
                Content-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--X--\r\n";
    let file = request(
        server.addr,
        "POST",
        "/token",
        &[("Content-Type", "multipart/form-data; boundary=X")],
        body.as_bytes(),
    )
    .await;
    answers.push(file.text().to_owned());

    // The busy login's body (the walkthrough's 503).
    answers.push(BUSY.to_owned());

    for answer in answers {
        assert!(
            readme.contains(&masked(&answer)),
            "README.md shows no line {:?}",
            masked(&answer)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_response_in_the_docs_has_a_shape_the_server_answers() {
    let server = start().await;
    let mut shapes = BTreeSet::new();
    for (user, password, scope) in [
        ("johndoe", "secret", ""),
        ("johndoe", "secret", "me+items"),
        ("johndoe", "secret", "me+admin"),
        ("alice", "secret2", "items"),
    ] {
        let body = format!("username={user}&password={password}&scope={scope}");
        shapes.insert(masked(post_token(server.addr, &body).await.text()));
    }
    let mut seen = 0;
    for file in DOCS {
        for line in console_output(file) {
            if line.starts_with("{\"access_token\"") {
                seen += 1;
                let line = masked(&line);
                assert!(
                    shapes.contains(&line),
                    "{file}: {line} is not an answer the server gives: {shapes:?}"
                );
            }
        }
    }
    assert!(seen >= 5, "the docs show {seen} token responses");
}

/// The binary run as a sample's command is, in `dir` (the samples name
/// relative paths): its stderr. Killed past a deadline, should it serve
/// rather than refuse.
fn stderr_of(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = crate::cli::command(args, env)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait for the binary").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("the binary's stderr");
    assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: exit 2");
    String::from_utf8(output.stderr).expect("UTF-8 on stderr")
}

#[test]
fn the_configuration_errors_shown_are_the_ones_printed() {
    let shown: BTreeSet<String> = [
        "docs/configuration.md",
        "docs/sessions.md",
        "docs/scaling-out.md",
    ]
    .into_iter()
    .flat_map(console_output)
    .collect();
    let dir = crate::cli::TempDir::new();
    dir.file(
        "secret.key",
        b"a key of at least thirty-two bytes, for the samples\n",
    );
    let shown_by_the_docs = |args: &[&str], env: &[(&str, &str)]| {
        let stderr = stderr_of(&dir.0, args, env);
        let line = stderr.trim_end();
        assert!(
            shown.contains(line),
            "{args:?} {env:?} prints {line:?}, which no console block of the docs shows"
        );
    };
    shown_by_the_docs(&[], &[("PASSWORD_BEARER_PORT", "abc")]);
    #[cfg(not(feature = "postgres"))]
    shown_by_the_docs(&["--users", "postgres://bearer:…@db/auth"], &[]);
    #[cfg(feature = "state-dir")]
    {
        // The state directory held by another server (this process, here).
        let _held =
            password_bearer::sessions::state_dir::StateDirSessions::open(&dir.0.join("state"))
                .expect("open the state directory");
        for state in ["state", "secret.key", "secret.key/state"] {
            let args = [
                "--secret-key-file",
                "secret.key",
                "--state-dir",
                state,
                "--port",
                "8001",
            ];
            shown_by_the_docs(&args, &[]);
        }
    }
}
