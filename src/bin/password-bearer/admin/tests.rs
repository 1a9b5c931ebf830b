//! The admin commands' parsing and the users file's edits, without a
//! process (tests/admin.rs drives the binary as an operator does).

use super::args::{parse, Action, Admin, Target};
use super::edit::{self, Missing};
use super::users;
use crate::error::ConfigError;
use serde_json::{json, Value};
use std::ffi::OsString;

fn parse_with(
    group: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Option<Admin>, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let read = move |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| OsString::from(v))
    };
    parse(group, args.iter().map(|a| (*a).to_owned()), &read)
}

fn parsed(group: &str, args: &[&str]) -> Admin {
    parse_with(group, args, &[])
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .expect("a command, not --help")
}

fn error(group: &str, args: &[&str]) -> String {
    parse_with(group, args, &[])
        .expect_err("refused")
        .to_string()
}

#[test]
fn users_add_takes_its_fields_in_any_order() {
    let admin = parsed(
        "users",
        &[
            "add",
            "--scope",
            "me",
            "carol",
            "--email=c@example.com",
            "--full-name",
            "Carol C",
            "--scope=items",
            "--scope",
            "me",
            "--disabled",
            "--users",
            "u.json",
        ],
    );
    assert_eq!(
        admin,
        Admin {
            action: Action::UserAdd {
                name: "carol".into(),
                email: Some("c@example.com".into()),
                full_name: Some("Carol C".into()),
                scopes: vec!["me".into(), "items".into()],
                disabled: true,
            },
            target: Target::UsersFile("u.json".into()),
        }
    );
}

#[test]
fn each_users_command_names_its_user() {
    let cases = [
        ("passwd", Action::UserPasswd("bob".into())),
        ("disable", Action::UserDisable("bob".into(), true)),
        ("enable", Action::UserDisable("bob".into(), false)),
        ("remove", Action::UserRemove("bob".into())),
    ];
    for (verb, action) in cases {
        assert_eq!(
            parsed("users", &[verb, "bob", "--users", "u.json"]).action,
            action
        );
        assert_eq!(
            error("users", &[verb, "--users", "u.json"]),
            format!("users {verb}: needs a NAME")
        );
    }
    assert_eq!(
        parsed("users", &["list", "--users", "u.json"]).action,
        Action::UserList
    );
    assert!(error("users", &["list", "bob", "--users", "u.json"]).contains("unexpected \"bob\""));
}

#[test]
fn the_store_comes_from_the_flag_else_the_servers_variable() {
    let env = [("PASSWORD_BEARER_USERS", "env.json")];
    let from_env = parse_with("users", &["list"], &env).unwrap().unwrap();
    assert_eq!(from_env.target, Target::UsersFile("env.json".into()));
    let flag = parse_with("users", &["list", "--users", "flag.json"], &env)
        .unwrap()
        .unwrap();
    assert_eq!(flag.target, Target::UsersFile("flag.json".into()));
    assert_eq!(
        error("users", &["list"]),
        "users: no --users FILE given (nor PASSWORD_BEARER_USERS)"
    );
    #[cfg(feature = "clients")]
    {
        let clients = parse_with(
            "clients",
            &["list"],
            &[("PASSWORD_BEARER_CLIENTS", "c.json")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(clients.target, Target::ClientsFile("c.json".into()));
        assert!(error("clients", &["list"]).starts_with("clients: no --clients FILE given"));
    }
    // --users-table belongs with a database.
    assert!(error(
        "users",
        &["list", "--users", "u.json", "--users-table", "t"]
    )
    .starts_with("--users-table: names a table"));
}

#[test]
fn a_postgres_url_needs_the_feature_and_is_never_echoed() {
    let result = parse_with(
        "users",
        &["list", "--users", "postgres://admin:hunter2@db/auth"],
        &[],
    );
    #[cfg(feature = "postgres")]
    assert_eq!(
        result.unwrap().unwrap().target,
        Target::UsersPostgres {
            url: "postgres://admin:hunter2@db/auth".into(),
            table: "users".into(),
        }
    );
    #[cfg(not(feature = "postgres"))]
    {
        let e = result.unwrap_err().to_string();
        assert!(e.starts_with("--users: a PostgreSQL URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn mistakes_are_one_line_naming_the_culprit() {
    assert!(error("users", &[]).starts_with("users: needs a command"));
    assert!(error("users", &["ad", "x"]).starts_with("users ad: unknown command"));
    assert!(
        error("users", &["add", "x", "--introspect"]).starts_with("--introspect: not an option")
    );
    #[cfg(feature = "clients")]
    assert!(error("clients", &["add", "x", "--email", "e"]).starts_with("--email: not an option"));
    assert!(error("users", &["passwd", "x", "--scope", "me"]).starts_with("--scope: not an option"));
    assert!(error("users", &["add", "x", "--scope"]).starts_with("--scope: needs a value"));
    assert!(error("users", &["add", "x", "--scope", "a b"]).contains("is not a scope"));
    assert!(error("users", &["add", "x", "--disabled=1"]).starts_with("--disabled: not an option"));
    assert!(error("users", &["add", "a\nb"]).contains("without control characters"));
    assert!(error("users", &["add", "x", "y"]).contains("unexpected \"y\""));
    assert!(error("users", &["add", &"x".repeat(257)]).contains("1 to 256 bytes"));
    for e in [
        error("users", &["add", "x", "--scope", "a b"]),
        error("users", &[]),
    ] {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    assert_eq!(parse_with("users", &["--help"], &[]).unwrap(), None);
    #[cfg(feature = "clients")]
    assert_eq!(parse_with("clients", &["add", "-h"], &[]).unwrap(), None);
}

/// Without the `clients` feature, every `clients …` is one line naming
/// it, before its arguments are looked at (`--help` included).
#[cfg(not(feature = "clients"))]
#[test]
fn the_clients_commands_need_their_feature() {
    let expected = "clients: this binary was built without the `clients` feature \
                    (cargo build --release --features admin,clients)";
    for args in [
        &[][..],
        &["list", "--clients", "c.json"],
        &["add", "x", "--introspect"],
        &["--help"],
    ] {
        assert_eq!(error("clients", args), expected, "{args:?}");
    }
}

/// A temporary directory for the edits.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "password-bearer-admin-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_edit_the_check_refuses_leaves_the_file_as_it_was() {
    let dir = Dir::new("refused");
    let path = dir.0.join("f.json");
    std::fs::write(&path, "{\"a\": {\"keep\": [1, 2]}}").unwrap();
    let before = std::fs::read(&path).unwrap();
    let result = edit::edit(
        &path,
        Missing::Fail,
        |object| {
            object.insert("b".into(), json!(1));
            Ok(())
        },
        |_| Err("no".into()),
    );
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("the server would refuse the result: no"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // What the change does not touch is kept; no temporary file is left.
    edit::edit(
        &path,
        Missing::Fail,
        |object| {
            object.insert("b".into(), json!(1));
            Ok(())
        },
        |_| Ok(()),
    )
    .unwrap();
    let after: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(after, json!({"a": {"keep": [1, 2]}, "b": 1}));
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["f.json", "f.json.lock"]);
    // A missing file is created only when asked.
    let missing = dir.0.join("new.json");
    assert!(edit::edit(&missing, Missing::Fail, |_| Ok(()), |_| Ok(()))
        .unwrap_err()
        .to_string()
        .contains("cannot read"));
    assert!(!missing.exists());
}

#[test]
fn the_list_shows_names_states_and_scopes_never_a_hash() {
    let users = json!({
        "bob": {"username": "bob", "hashed_password": "$argon2id$secret-hash", "disabled": true},
        "alice": {"username": "alice", "hashed_password": "$argon2id$other", "scopes": ["me", "items"],
                  "email": "alice@example.com"},
    });
    let Value::Object(users) = users else {
        unreachable!()
    };
    let list = users::list(&users);
    assert_eq!(
        list,
        "\"alice\" active scopes=\"me items\"\n\"bob\" disabled scopes=\"\"\n"
    );
}
