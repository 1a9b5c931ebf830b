//! `--clients postgres://…` (the `clients`, `postgres` and `admin`
//! features) against the throwaway cluster: a client `clients add` put in
//! the table gets a token by the client credentials grant within 1 s (the
//! table is read again every 0.5 s) and introspects; `clients remove`
//! makes its grant 401 `invalid_client` within 1 s; a bad row keeps the
//! running set, told in one line that names the client and not the value;
//! the database stopped, the running set keeps serving grants, and the
//! table is read again when it is back.

use super::{new_database, poll, sql, Stopped, GATE, PASSWORD, PROPAGATION};
use crate::cli::{run, Proc, TempDir};
use crate::clients::{answer, assert_invalid_client, grant_basic, introspect};
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

/// `password-bearer clients ARGS --clients URL`, which must succeed:
/// stdout and stderr. Never the URL's password in them.
fn admin(url: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["clients"];
    all.extend_from_slice(args);
    all.extend(["--clients", url]);
    let out = run(&all, b"");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{all:?}: {stderr}");
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// A server whose users and clients are in the database at `url` (one
/// pool for both); the directory of its key file, to keep.
fn server(url: &str) -> (Proc, SocketAddr, TempDir) {
    let tmp = TempDir::new();
    let key = tmp.file("key", TEST_KEY);
    let mut proc = Proc::spawn(&[
        "--port",
        "0",
        "--users",
        url,
        "--clients",
        url,
        "--secret-key-file",
        &key,
        // The grant is polled until a change counts, each a failure until
        // then: not a guesser to stop.
        "--login-failures-per-user",
        "0",
        "--login-failures-per-ip",
        "0",
    ]);
    let addr = proc.wait_listening();
    (proc, addr, tmp)
}

/// `clients add NAME --scope items --introspect`: the secret printed.
fn add(url: &str, name: &str) -> String {
    let (stdout, stderr) = admin(url, &["add", name, "--scope", "items", "--introspect"]);
    assert!(
        stderr.contains(&format!(r#"audit: clients add client_id="{name}""#))
            && stderr.contains("within 0.5 s"),
        "{stderr}"
    );
    let secret = stdout.trim().to_owned();
    assert_eq!(secret.len(), 43, "{stdout}");
    secret
}

/// Polls the grant for `id` until it answers `status`, within 1 s.
async fn until_grant(addr: SocketAddr, id: &str, secret: &str, status: u16) -> Response {
    poll(PROPAGATION, status, || grant_basic(addr, id, secret, ""))
        .await
        .0
}

fn assert_no_password(proc: &Proc) {
    for line in &proc.seen {
        assert!(!line.contains(PASSWORD), "the password leaked: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_added_and_removed_in_the_table_count_within_a_second_and_a_bad_row_changes_nothing(
) {
    let _shared = GATE.read().await;
    let url = new_database().await;
    let (mut proc, addr, _tmp) = server(&url);
    assert!(
        proc.seen
            .iter()
            .any(|l| l.contains("clients from postgres://postgres:***@")
                && l.contains(": 0 clients")),
        "{:?}",
        proc.seen
    );

    let secret = add(&url, "billing");
    let resp = until_grant(addr, "billing", &secret, 200).await;
    let token = access_token(&resp);
    let body = answer(&introspect(addr, &token, ("billing", &secret)).await);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "billing");
    assert_eq!(body["scope"], "items");
    let (list, _) = admin(&url, &["list"]);
    assert_eq!(list, "\"billing\" introspect scopes=\"items\"\n");

    // A secret in clear, written with SQL: the whole read is refused, the
    // running set serves on, and one line names the client, not the value.
    let db = sql(&url).await;
    let plaintext = "this-plaintext-secret-must-never-be-logged";
    db.execute(
        "INSERT INTO clients (client_id, secret_hash) VALUES ('evil', $1)",
        &[&plaintext],
    )
    .await
    .expect("insert a bad row");
    let line = proc.wait_line("reading the table failed");
    assert!(
        line.contains(r#"client "evil""#) && line.contains("previous 1 clients"),
        "{line}"
    );
    assert!(!line.contains(plaintext), "{line}");
    // Several periods later: still served, and still that one line.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(grant_basic(addr, "billing", &secret, "").await.status, 200);
    db.execute("DELETE FROM clients WHERE client_id = 'evil'", &[])
        .await
        .expect("delete the bad row");
    proc.wait_line("(read again)");
    let failures = proc
        .seen
        .iter()
        .filter(|l| l.contains("reading the table failed"))
        .count();
    assert_eq!(failures, 1, "{:?}", proc.seen);
    assert!(proc.seen.iter().all(|l| !l.contains(plaintext)));

    // SIGHUP reads the table too, and says so.
    proc.signal("HUP");
    proc.wait_line(": 1 clients");

    admin(&url, &["remove", "billing"]);
    let resp = until_grant(addr, "billing", &secret, 401).await;
    assert_invalid_client(&resp, true);
    assert_no_password(&proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_keeps_the_running_clients_and_they_are_read_again_when_it_is_back() {
    let _alone = GATE.write().await;
    let url = new_database().await;
    let (mut proc, addr, _tmp) = server(&url);
    let secret = add(&url, "billing");
    until_grant(addr, "billing", &secret, 200).await;

    let stopped = Stopped::new();
    proc.wait_line("reading the table failed");
    // Grants need no database: the set in memory serves them.
    for _ in 0..5 {
        let resp = grant_basic(addr, "billing", &secret, "").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stopped);
    proc.wait_line("(read again)");
    let failures = proc
        .seen
        .iter()
        .filter(|l| l.contains("reading the table failed"))
        .count();
    assert_eq!(failures, 1, "one line per outage: {:?}", proc.seen);

    // Read again for real: a removal counts within 1 s once more.
    admin(&url, &["remove", "billing"]);
    until_grant(addr, "billing", &secret, 401).await;
    assert_no_password(&proc);
}
