//! `examples/sqlite_store.rs` served over TCP: users in a temp-file SQLite
//! database, added with the example's own command, looked up at every
//! request (a change in the table counts at the next one), and a broken
//! database answered 503, counting no failed login, until it is repaired.
//! (An embedder's users store, the example's; the binary's store of
//! sessions on disk is `state_dir`'s surface.)

use crate::cli::{path_str, TempDir};
use crate::support::*;
use password_bearer::{App, Config};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The example, compiled into the tests so that its store, command line
/// and routing are tested too.
#[path = "../examples/sqlite_store.rs"]
mod example;

use example::{add_user, Profile, SqliteUsers};

/// The 503 of a request the store could not serve.
/// A database file in a directory removed when dropped; the file does not
/// exist until the store or `add-user` creates it.
struct Db {
    _dir: TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = TempDir::new();
        let path = dir.0.join("users.db");
        Db { _dir: dir, path }
    }

    fn arg(&self) -> String {
        path_str(&self.path)
    }

    /// Runs `statements` as an administrator would, in the `sqlite3` shell.
    fn sql(&self, statements: &str) {
        Connection::open(&self.path)
            .and_then(|c| c.execute_batch(statements))
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }
}

/// The example's command line, in-process, with `stdin` as its input.
async fn command(args: &[&str], stdin: &str) -> Result<(), String> {
    example::run(args, stdin.as_bytes(), false)
        .await
        .map_err(|e| e.to_string())
}

/// The example's server over `db`, quiet, `configure`d.
async fn serve(db: &Path, configure: impl FnOnce(&mut Config<SqliteUsers>)) -> TestServer {
    let users = SqliteUsers::open(db).expect("the database opens");
    let mut config = Config::new(users, test_key());
    config.login_log = false;
    configure(&mut config);
    let app = Arc::new(App::new(config));
    start_loop(
        |listener, shutdown| async move { example::serve_sqlite(listener, app, shutdown).await },
    )
    .await
}

#[track_caller]
fn assert_inactive(resp: &Response) {
    assert_json_exact(resp, 400, r#"{"detail":"Inactive user"}"#);
}

const CAROL_ME: &str = r#"{"username":"carol","email":"carol@example.com","full_name":"Carol Jones","disabled":false}"#;

/// carol / "carol's password", scopes `me` and `items`, added by the
/// example's `add-user` with the password on stdin.
async fn add_carol(db: &Db) {
    let args = [
        "add-user",
        &db.arg(),
        "carol",
        "--email",
        "carol@example.com",
        "--full-name",
        "Carol Jones",
        "--scopes",
        "me items",
    ];
    command(&args, "carol's password\r\n")
        .await
        .expect("add-user succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_backs_logins_users_me_and_the_scoped_route() {
    let db = Db::new();
    add_carol(&db).await;
    let server = serve(&db.path, |_| {}).await;
    let addr = server.addr;

    let both = access_token(&login_with_scope(addr, "carol", "carol's password", "me items").await);
    assert_eq!(token_claims(&both)["scope"], "me items");
    assert_json_exact(
        &get_me(addr, &format!("Bearer {both}")).await,
        200,
        CAROL_ME,
    );
    assert_json_exact(&get_items(addr, &both).await, 200, &items_body("carol"));

    let me_only = access_token(&login_with_scope(addr, "carol", "carol's password", "me").await);
    let resp = get_items(addr, &me_only).await;
    assert_json_exact(&resp, 401, NOT_ENOUGH_PERMISSIONS);
    assert_eq!(
        resp.header_all("www-authenticate"),
        [r#"Bearer scope="items""#]
    );
    assert_401(&get(addr, ITEMS_PATH, &[]).await, NOT_AUTHENTICATED);
    let resp = request(addr, "POST", ITEMS_PATH, &[], b"").await;
    assert_json_exact(&resp, 405, r#"{"detail":"Method Not Allowed"}"#);

    // The password was read without its line ending; no row, no login.
    assert_invalid_grant(&post_token(addr, &credentials("carol", "carol's password\r")).await);
    assert_invalid_grant(&post_token(addr, &credentials("nobody", "anything")).await);

    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);
    let doc = get(addr, "/openapi.json", &[]).await.json();
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["scopes"],
        serde_json::json!({"items": "", "me": ""})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_in_the_table_count_at_the_next_request() {
    let db = Db::new();
    add_carol(&db).await;
    let dave = Profile {
        disabled: true,
        scopes: vec!["me".to_owned()],
        ..Profile::default()
    };
    add_user(&db.path, "dave", "dave's password", &dave).expect("dave is added");
    let server = serve(&db.path, |_| {}).await;
    let addr = server.addr;

    // A disabled user logs in, as in the seed, and is refused by
    // `current_active_user`.
    let dave = access_token(&login_with_scope(addr, "dave", "dave's password", "me").await);
    assert_inactive(&get_me(addr, &format!("Bearer {dave}")).await);
    db.sql("UPDATE users SET disabled = NULL WHERE username = 'dave'");
    assert_json_exact(
        &get_me(addr, &format!("Bearer {dave}")).await,
        200,
        r#"{"username":"dave","email":null,"full_name":null,"disabled":null}"#,
    );

    let carol =
        access_token(&login_with_scope(addr, "carol", "carol's password", "me items").await);
    let bearer = format!("Bearer {carol}");
    db.sql("UPDATE users SET disabled = 1 WHERE username = 'carol'");
    assert_inactive(&get_me(addr, &bearer).await);
    assert_inactive(&get_items(addr, &carol).await);
    db.sql("UPDATE users SET disabled = 0, full_name = 'Carol Smith' WHERE username = 'carol'");
    assert_json_exact(
        &get_me(addr, &bearer).await,
        200,
        &CAROL_ME.replace("Jones", "Smith"),
    );

    // A row the store cannot make a user of is the table's fault: 503, as
    // for a broken database, and no wrong password counted.
    db.sql("UPDATE users SET hashed_password = 'fakehashedsecret' WHERE username = 'carol'");
    assert_busy(&get_me(addr, &bearer).await);
    assert_busy(&post_token(addr, &credentials("carol", "carol's password")).await);

    // add-user again replaces the row: a new password, at once.
    command(&["add-user", &db.arg(), "carol"], "new password\n")
        .await
        .expect("add-user replaces carol");
    assert_invalid_grant(&post_token(addr, &credentials("carol", "carol's password")).await);
    assert!(!login(addr, "carol", "new password").await.is_empty());

    db.sql("DELETE FROM users WHERE username = 'carol'");
    assert_401(&get_me(addr, &bearer).await, INVALID_CREDENTIALS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_is_503_and_counts_no_failed_login() {
    let db = Db::new();
    add_carol(&db).await;
    // Limits a counted outage would trip: two failures per user and per
    // address.
    let server = serve(&db.path, |config| {
        config.throttle.per_user = 2;
        config.throttle.per_ip = 2;
    })
    .await;
    let addr = server.addr;
    let carol =
        access_token(&login_with_scope(addr, "carol", "carol's password", "me items").await);
    let bearer = format!("Bearer {carol}");

    db.sql("DROP TABLE users");
    for password in ["wrong", "carol's password", "wrong", "wrong"] {
        let resp = post_token(addr, &credentials("carol", password)).await;
        assert_busy(&resp);
        assert_token_endpoint_headers(&resp);
    }
    assert_busy(&post_token(addr, &credentials("nobody", "wrong")).await);
    let resp = get_me(addr, &bearer).await;
    assert_busy(&resp);
    assert!(
        resp.header("www-authenticate").is_none(),
        "{:?}",
        resp.headers
    );
    assert_busy(&get_items(addr, &carol).await);
    assert_json_exact(
        &get(addr, "/healthz", &[]).await,
        503,
        r#"{"status":"unavailable"}"#,
    );

    // Repaired with the example's own command: the table is created again.
    add_carol(&db).await;
    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);
    assert_json_exact(&get_me(addr, &bearer).await, 200, CAROL_ME);
    // Five attempts against limits of two counted nothing: one failure now
    // is the first.
    assert_invalid_grant(&post_token(addr, &credentials("carol", "wrong")).await);
    assert!(!login(addr, "carol", "carol's password").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_overwritten_with_garbage_is_503_until_restored() {
    let db = Db::new();
    add_carol(&db).await;
    let server = serve(&db.path, |config| {
        config.throttle.per_user = 1;
        config.throttle.per_ip = 1;
    })
    .await;
    let addr = server.addr;
    let carol =
        access_token(&login_with_scope(addr, "carol", "carol's password", "me items").await);
    let bearer = format!("Bearer {carol}");
    // Every pooled connection has read the file: the garbage must be
    // noticed by connections that have pages cached, not only new ones.
    assert_json_exact(&get_me(addr, &bearer).await, 200, CAROL_ME);

    let good = std::fs::read(&db.path).expect("read the database");
    let garbage: Vec<u8> = b"not a database. "
        .iter()
        .copied()
        .cycle()
        .take(good.len())
        .collect();
    // In place, as a disk or a careless copy would: same file, new bytes.
    std::fs::write(&db.path, &garbage).expect("overwrite the database");
    assert_busy(&post_token(addr, &credentials("carol", "carol's password")).await);
    assert_busy(&post_token(addr, &credentials("carol", "wrong")).await);
    assert_busy(&get_me(addr, &bearer).await);
    assert_busy(&get_items(addr, &carol).await);
    assert_json_exact(
        &get(addr, "/healthz", &[]).await,
        503,
        r#"{"status":"unavailable"}"#,
    );

    std::fs::write(&db.path, &good).expect("restore the database");
    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);
    assert_json_exact(&get_items(addr, &carol).await, 200, &items_body("carol"));
    // A limit of one failure, and the outage's wrong password was not it.
    assert!(!login(addr, "carol", "carol's password").await.is_empty());
}

#[tokio::test]
async fn the_command_line_refuses_what_it_cannot_store() {
    let db = Db::new();
    let file = db.arg();
    for (args, stdin, error) in [
        (&["add-user", &file][..], "pw\n", "usage:"),
        (&["serve"][..], "", "usage:"),
        (&["serve", &file, "1", "2"][..], "", "usage:"),
        (&["serve", &file, "http"][..], "", r#""http" is not a port"#),
        (
            &["add-user", &file, "eve", "--email"][..],
            "pw\n",
            "--email needs a value",
        ),
        (
            &["add-user", &file, "eve", "--admin"][..],
            "pw\n",
            r#"unknown option "--admin""#,
        ),
        (
            &["add-user", &file, "eve", "--scopes", "me it\"ems"][..],
            "pw\n",
            r#""it\"ems" is not a scope token"#,
        ),
        (
            &["add-user", &file, "eve"][..],
            "\n",
            "a password has 1 to 1024 bytes",
        ),
        (
            &["add-user", &file, ""][..],
            "pw\n",
            "a username has 1 to 256 bytes",
        ),
    ] {
        let refused = command(args, stdin).await.expect_err("refused");
        assert!(refused.contains(error), "{args:?}: {refused}");
    }
    // Nothing was hashed or written: the file was never created.
    assert!(!db.path.exists());
}
