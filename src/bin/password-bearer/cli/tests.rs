//! The command line's unit tests: parsing, the environment, `--help`,
//! did-you-mean, and `Options::load` into a `Config`.

use super::defs::*;
use super::lowargs::*;
use super::parse::*;
use super::*;
use password_bearer::app::DEFAULT_DOCS_ASSETS_URL;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The command line alone, with an empty environment.
fn args_only(args: &[&str]) -> Result<Command, ConfigError> {
    with_env(args, &[])
}

fn with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    parse(args.iter().map(OsString::from), |name| {
        env.get(name).cloned()
    })
}

fn serve(result: Result<Command, ConfigError>) -> Options {
    match result {
        Ok(Command::Serve(o)) => *o,
        other => panic!("{other:?}"),
    }
}

fn options(args: &[&str]) -> Options {
    serve(args_only(args))
}

fn env_options(env: &[(&str, &str)]) -> Options {
    serve(with_env(&[], env))
}

fn env_error(env: &[(&str, &str)]) -> String {
    with_env(&[], env).unwrap_err().to_string()
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
fn the_defaults_help_shows_are_the_real_ones() {
    for flag in FLAGS {
        // These describe what happens without the flag: no file, or
        // as many workers as cores; `users-table` and `clients-table` are
        // refused by a build without their features, and name the default
        // table otherwise.
        if flag.default.is_empty()
            || [
                "users",
                "users-table",
                "clients-table",
                "secret-key-file",
                "workers",
                "max-connections-per-ip",
                "state-dir",
                "redis-url",
            ]
            .contains(&flag.name)
        {
            continue;
        }
        let arg = format!("{}={}", flag.flag(), flag.default);
        assert_eq!(options(&[&arg]), Options::default(), "{arg}");
    }
}

#[test]
fn redis_url_is_checked_unrepeated_and_excludes_a_state_dir() {
    let err = args_only(&["--redis-url", "http://:hunter2@host"])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--redis-url: "), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    if cfg!(feature = "redis") {
        let o = options(&["--redis-url=redis://:pw@127.0.0.1:1/", "--state-dir=/tmp/x"]);
        let err = o.load().unwrap_err().to_string();
        assert_eq!(
            err,
            "--state-dir: sessions are kept in Redis (--redis-url): there is no state to keep here"
        );
    } else {
        assert!(err.contains("without the `redis` feature"), "{err}");
    }
}

#[test]
fn the_key_file_flag_repeats_for_a_rotation_and_sessions_can_be_off() {
    let o = options(&["--secret-key-file", "new", "--secret-key-file=old"]);
    assert_eq!(
        o.secret_key_files,
        [PathBuf::from("new"), PathBuf::from("old")]
    );
    assert_eq!(
        options(&["--refresh-token-ttl-days=0"]).refresh_token_ttl_days,
        0
    );
    let err = args_only(&["--refresh-token-ttl-days", "3651"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--refresh-token-ttl-days: must be from 0 to 3650"
    );
    let (config, _) = options(&["--refresh-token-ttl-days=2"]).load().unwrap();
    assert_eq!(config.refresh_token_ttl, Duration::from_secs(2 * 86400));
    let err = options(&["--refresh-token-ttl-days=0", "--state-dir=/tmp/x"])
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--state-dir /tmp/x: sessions are off"),
        "{err}"
    );
}

#[test]
fn variable_names_follow_the_flags() {
    let names: Vec<String> = FLAGS.iter().map(Flag::env_var).collect();
    assert!(names.contains(&"PASSWORD_BEARER_PORT".to_owned()));
    assert!(names.contains(&"PASSWORD_BEARER_SECRET_KEY_FILE".to_owned()));
    assert!(names.contains(&"PASSWORD_BEARER_NO_DOCS".to_owned()));
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

#[test]
fn subcommand_and_help() {
    assert!(matches!(
        args_only(&["hash-password"]),
        Ok(Command::HashPassword)
    ));
    assert!(matches!(
        args_only(&["hash-client-secret"]),
        Ok(Command::HashClientSecret { generate: false })
    ));
    assert!(matches!(
        args_only(&["hash-client-secret", "--generate"]),
        Ok(Command::HashClientSecret { generate: true })
    ));
    assert!(args_only(&["hash-client-secret", "--generat"]).is_err());
    assert!(args_only(&["hash-client-secret", "--generate", "x"]).is_err());
    assert!(matches!(args_only(&["--help"]), Ok(Command::Help)));
    assert!(matches!(
        args_only(&["--port", "1", "-h"]),
        Ok(Command::Help)
    ));
}

#[test]
fn version_is_a_command_of_its_own() {
    for arg in ["--version", "-V"] {
        assert!(matches!(args_only(&[arg]), Ok(Command::Version)), "{arg}");
        assert!(matches!(
            with_env(&["--port", "1", arg], &[("PASSWORD_BEARER_PORT", "x")]),
            Ok(Command::Version)
        ));
    }
    assert_eq!(
        VERSION,
        format!("password-bearer {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(USAGE.to_string().contains("-V, --version"));
}

#[test]
fn a_mistyped_flag_is_told_the_closest() {
    let err = |args: &[&str]| args_only(args).unwrap_err().to_string();
    for (typed, meant) in [
        ("--user", "--users"),
        ("--user=users.json", "--users"),
        ("-users", "--users"),
        ("--prot", "--port"),
        ("--hots", "--host"),
        ("--secret-key-files", "--secret-key-file"),
        ("--no-doc", "--no-docs"),
        ("--verison", "--version"),
        ("--hlep", "--help"),
        ("hash_password", "hash-password"),
        ("hash-client-secrets", "hash-client-secret"),
    ] {
        let name = typed.split('=').next().unwrap();
        assert_eq!(
            err(&[typed]),
            format!("{name}: unknown option; did you mean `{meant}`?"),
            "{typed}"
        );
    }
    // Too far from any flag to be its typo.
    for typed in ["--bogus", "--secret-key", "--tls", "--x", "users.json"] {
        assert_eq!(
            err(&[typed]),
            format!("{typed}: unknown option (see --help)"),
        );
    }
}

#[test]
fn edit_distances() {
    for (a, b, distance) in [
        ("", "", 0),
        ("users", "users", 0),
        ("user", "users", 1),
        ("usrs", "users", 1),
        ("uzers", "users", 1),
        ("prot", "port", 1),
        ("", "port", 4),
        ("port", "", 4),
        ("kitten", "sitting", 3),
        ("ca", "abc", 3),
    ] {
        assert_eq!(edit_distance(a, b), distance, "{a:?} {b:?}");
        assert_eq!(edit_distance(b, a), distance, "{b:?} {a:?}");
    }
}

#[test]
fn unknown_variables_are_named_with_the_closest() {
    let names = [
        "PATH",
        "PASSWORD_BEARER_USER",
        "PASSWORD_BEARER_PORT",
        "PASSWORD_BEARER_FROBNICATE",
        "PASSWORD_BEARER_SECRET_KEY",
        "PASSWORD_BEARER_NO_DOC",
        // Read as written: the binary reads only the upper-case name.
        "PASSWORD_BEARER_users",
        "password_bearer_users",
        "PASSWORD_BEARER_X\nforged line",
    ];
    assert_eq!(
        unknown_variables(names.map(OsString::from)),
        [
            "PASSWORD_BEARER_USER is not a setting, ignored; \
             did you mean PASSWORD_BEARER_USERS?",
            "PASSWORD_BEARER_FROBNICATE is not a setting, ignored (see --help)",
            "PASSWORD_BEARER_SECRET_KEY is not a setting, ignored (see --help)",
            "PASSWORD_BEARER_NO_DOC is not a setting, ignored; \
             did you mean PASSWORD_BEARER_NO_DOCS?",
            "PASSWORD_BEARER_users is not a setting, ignored; \
             did you mean PASSWORD_BEARER_USERS?",
            "PASSWORD_BEARER_X?forged line is not a setting, ignored (see --help)",
        ]
    );
    let every: Vec<OsString> = FLAGS.iter().map(|f| f.env_var().into()).collect();
    assert!(unknown_variables(every).is_empty());
}

#[test]
fn the_demo_users_named_are_the_demo_users() {
    let demo = password_bearer::users::Users::demo();
    let named: Vec<&str> = DEMO_USERS
        .trim_start_matches("the demo users ")
        .split(", ")
        .collect();
    assert_eq!(named.len(), demo.len(), "{DEMO_USERS}");
    for name in named {
        assert!(demo.get(name).is_some(), "{name}");
    }
}

#[test]
fn hash_password_and_help_ignore_the_environment() {
    let bad = [
        ("PASSWORD_BEARER_PORT", "x"),
        ("PASSWORD_BEARER_NO_DOCS", "yes"),
    ];
    assert!(matches!(
        with_env(&["hash-password"], &bad),
        Ok(Command::HashPassword)
    ));
    assert!(matches!(with_env(&["-h"], &bad), Ok(Command::Help)));
}

#[test]
fn bad_flags_name_the_flag() {
    let err = |args: &[&str]| args_only(args).unwrap_err().to_string();
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
    assert_eq!(
        err(&["--header-read-timeout-seconds", "0"]),
        "--header-read-timeout-seconds: must be at least 1"
    );
    assert_eq!(
        err(&["--request-timeout-seconds", "0"]),
        "--request-timeout-seconds: must be at least 1"
    );
    assert_eq!(
        err(&["--login-queue-seconds", "61"]),
        "--login-queue-seconds: must be from 0 to 60"
    );
    assert_eq!(
        err(&["--max-connections-per-ip", "-1"]),
        "--max-connections-per-ip: \"-1\" is not a valid number"
    );
    assert_eq!(
        err(&["--no-docs=yes"]),
        "--no-docs: \"yes\" is not 1, true, 0 or false"
    );
    for bad in [
        "9100",
        "localhost",
        ":9100",
        "host:",
        "host:99999",
        "::1:9100",
    ] {
        assert_eq!(
            err(&["--metrics-addr", bad]),
            format!("--metrics-addr: {bad:?} is not HOST:PORT (e.g. 127.0.0.1:9100)")
        );
    }
    for ok in ["127.0.0.1:9100", "[::1]:0", "localhost:9100"] {
        assert_eq!(
            options(&["--metrics-addr", ok]).metrics_addr.as_deref(),
            Some(ok)
        );
    }
    assert_eq!(
        err(&["--docs-assets-url", "ftp://x"]),
        "--docs-assets-url: \"ftp://x\" must start with http://, https:// or /"
    );
}

#[test]
fn new_flags() {
    let o = options(&["--no-docs", "--access-log", "--no-login-log"]);
    assert_eq!((o.docs, o.access_log, o.login_log), (false, true, false));
    // A switch does not take the next argument as its value.
    let o = options(&["--no-docs", "--port", "1"]);
    assert_eq!((o.docs, o.port), (false, 1));
    let o = options(&["--docs-assets-url", "https://assets.example.com/swagger/"]);
    assert_eq!(o.docs_assets_url, "https://assets.example.com/swagger");
    let o = options(&["--docs-assets-url=/static/swagger-ui"]);
    assert_eq!(o.docs_assets_url, "/static/swagger-ui");
    assert_eq!(options(&["--docs-assets-url=/"]).docs_assets_url, "");
}

#[test]
fn docs_assets_urls_are_checked() {
    for ok in [
        "http://localhost:8080/swagger",
        "https://cdn.example.com/swagger-ui-dist@5/",
        "/swagger",
        "//cdn.example.com/swagger",
    ] {
        assert!(assets_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "cdn.example.com",
        "ftp://cdn.example.com",
        "javascript:alert(1)",
        "https://",
        "https:///path",
        "/a b",
        "/a\"><script>",
        "https://x/\n",
    ] {
        assert!(assets_url(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn each_kind_from_the_environment() {
    let o = env_options(&[
        ("PASSWORD_BEARER_HOST", "0.0.0.0"),
        ("PASSWORD_BEARER_PORT", "0"),
        ("PASSWORD_BEARER_TLS_CERT", "/etc/pb/cert.pem"),
        ("PASSWORD_BEARER_TLS_KEY", "/etc/pb/key.pem"),
        ("PASSWORD_BEARER_USERS", "/etc/pb/users.json"),
        // Refused by a build without the `clients` feature.
        #[cfg(feature = "clients")]
        ("PASSWORD_BEARER_CLIENTS", "/etc/pb/clients.json"),
        ("PASSWORD_BEARER_SECRET_KEY_FILE", "/etc/pb/key"),
        ("PASSWORD_BEARER_TOKEN_TTL_MINUTES", "5"),
        ("PASSWORD_BEARER_TOKEN_LEEWAY_SECONDS", "7"),
        ("PASSWORD_BEARER_HEADER_READ_TIMEOUT_SECONDS", "3"),
        ("PASSWORD_BEARER_REQUEST_TIMEOUT_SECONDS", "4"),
        ("PASSWORD_BEARER_MAX_CONNECTIONS_PER_IP", "0"),
        ("PASSWORD_BEARER_LOGIN_QUEUE_SECONDS", "0"),
        ("PASSWORD_BEARER_MAX_BODY_BYTES", "100"),
        ("PASSWORD_BEARER_GRACE_PERIOD_SECONDS", "1"),
        ("PASSWORD_BEARER_NO_DOCS", "true"),
        ("PASSWORD_BEARER_DOCS_ASSETS_URL", "/assets/"),
        ("PASSWORD_BEARER_ACCESS_LOG", "1"),
        ("PASSWORD_BEARER_NO_LOGIN_LOG", "TRUE"),
        ("PASSWORD_BEARER_LOGIN_FAILURES_PER_USER", "0"),
        ("PASSWORD_BEARER_LOGIN_FAILURES_PER_IP", "5"),
        ("PASSWORD_BEARER_MAX_CONNECTIONS", "64"),
        ("PASSWORD_BEARER_WORKERS", "3"),
        ("PASSWORD_BEARER_METRICS_ADDR", "127.0.0.1:9100"),
    ]);
    let expected = Options {
        host: "0.0.0.0".into(),
        port: 0,
        tls_cert: Some("/etc/pb/cert.pem".into()),
        tls_key: Some("/etc/pb/key.pem".into()),
        users: Some("/etc/pb/users.json".into()),
        users_table: None,
        clients: cfg!(feature = "clients").then(|| "/etc/pb/clients.json".into()),
        clients_table: None,
        secret_key_files: vec!["/etc/pb/key".into()],
        signing_key_files: Vec::new(),
        issuer: None,
        audience: None,
        refresh_token_ttl_days: 14,
        state_dir: None,
        redis_url: None,
        token_ttl_minutes: 5,
        token_leeway_seconds: 7,
        header_read_timeout_seconds: 3,
        request_timeout_seconds: 4,
        max_body_bytes: 100,
        grace_period_seconds: 1,
        docs: false,
        docs_assets_url: "/assets".into(),
        docs_assets_dir: None,
        access_log: true,
        login_log: false,
        login_failures_per_user: 0,
        login_failures_per_ip: 5,
        max_connections: 64,
        max_connections_per_ip: Some(0),
        login_queue_seconds: 0,
        workers: Some(3),
        metrics_addr: Some("127.0.0.1:9100".into()),
        from_env: o.from_env.clone(),
    };
    assert_eq!(o, expected);
    assert!(o.from_env.contains(&"users") && o.from_env.contains(&"port"));
    assert!(!o.from_env.contains(&"no-docs"), "{:?}", o.from_env);
}

#[test]
fn a_flag_beats_its_variable() {
    let env = [
        ("PASSWORD_BEARER_PORT", "9000"),
        ("PASSWORD_BEARER_HOST", "0.0.0.0"),
        ("PASSWORD_BEARER_NO_DOCS", "1"),
    ];
    let o = serve(with_env(&["--port", "9001", "--no-docs=false"], &env));
    assert_eq!((o.port, o.host.as_str(), o.docs), (9001, "0.0.0.0", true));
    assert_eq!(o.from_env, ["host"]);
    // The variable is not even checked when the flag is given.
    let o = serve(with_env(
        &["--port=1"],
        &[("PASSWORD_BEARER_PORT", "not a port")],
    ));
    assert_eq!(o.port, 1);
}

#[test]
fn bad_variables_name_the_variable() {
    assert_eq!(
        env_error(&[("PASSWORD_BEARER_PORT", "x")]),
        "PASSWORD_BEARER_PORT: \"x\" is not a valid number"
    );
    assert_eq!(
        env_error(&[("PASSWORD_BEARER_PORT", "")]),
        "PASSWORD_BEARER_PORT: \"\" is not a valid number"
    );
    assert_eq!(
        env_error(&[("PASSWORD_BEARER_TOKEN_TTL_MINUTES", "0")]),
        "PASSWORD_BEARER_TOKEN_TTL_MINUTES: must be from 1 to 525600"
    );
    assert_eq!(
        env_error(&[("PASSWORD_BEARER_NO_DOCS", "yes")]),
        "PASSWORD_BEARER_NO_DOCS: \"yes\" is not 1, true, 0 or false"
    );
    assert_eq!(
        env_error(&[("PASSWORD_BEARER_DOCS_ASSETS_URL", "cdn.example.com")]),
        "PASSWORD_BEARER_DOCS_ASSETS_URL: \"cdn.example.com\" must start with \
         http://, https:// or /"
    );
    let not_utf8 = {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(vec![0xff, b'/'])
    };
    let err = parse(Vec::<OsString>::new(), |name| {
        (name == "PASSWORD_BEARER_USERS").then(|| not_utf8.clone())
    })
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("PASSWORD_BEARER_USERS: "), "{err}");
}

#[test]
fn switch_spellings() {
    let docs = |value: &str| with_env(&[], &[("PASSWORD_BEARER_NO_DOCS", value)]);
    for on in ["1", "true", "TRUE", "True", " true\n"] {
        assert!(!serve(docs(on)).docs, "{on:?} turns --no-docs on");
    }
    for off in ["0", "false", "FALSE", "False", ""] {
        assert!(serve(docs(off)).docs, "{off:?} leaves --no-docs off");
    }
    for bad in ["yes", "no", "on", "off", "2", "-1", "t"] {
        assert_eq!(
            docs(bad).unwrap_err().to_string(),
            format!("PASSWORD_BEARER_NO_DOCS: {bad:?} is not 1, true, 0 or false")
        );
    }
}

#[test]
fn help_lists_every_flag_and_its_variable() {
    let usage = USAGE.to_string();
    for flag in FLAGS {
        let head = match flag.kind() {
            Kind::Value(placeholder) => format!("{} {placeholder}", flag.flag()),
            Kind::Switch => flag.flag(),
        };
        let listed = usage.lines().any(|line| {
            let line = line.trim_start();
            line == head || line.starts_with(&format!("{head} "))
        });
        assert!(listed, "{head}: {usage}");
        assert!(
            usage.contains(&format!("[env: {}]", flag.env_var())),
            "{}: {usage}",
            flag.env_var()
        );
        if !flag.default.is_empty() {
            assert!(usage.contains(flag.default), "{}: {usage}", flag.default);
        }
    }
    assert!(usage.contains("hash-password") && usage.contains("--help"));
}

#[test]
fn load_carries_the_limits_into_the_config() {
    let (config, _) = Options::default().load().unwrap();
    assert_eq!(config.request_timeout, Duration::from_secs(10));
    assert_eq!(config.max_connections_per_ip, None);
    assert_eq!(config.login_queue_wait, Duration::from_secs(2));
    let o = options(&[
        "--request-timeout-seconds=3",
        "--max-connections-per-ip=0",
        "--login-queue-seconds=0",
    ]);
    let (config, _) = o.load().unwrap();
    assert_eq!(config.request_timeout, Duration::from_secs(3));
    assert_eq!(config.max_connections_per_ip, Some(0));
    assert_eq!(config.login_queue_wait, Duration::ZERO);
}

#[test]
fn load_carries_the_new_settings_into_the_config() {
    let o = options(&[
        "--no-docs",
        "--access-log",
        "--no-login-log",
        "--docs-assets-url",
        "/swagger/",
    ]);
    let (config, warning) = o.load().unwrap();
    assert!(!config.docs && config.access_log && !config.login_log);
    assert_eq!(config.docs_assets_url, "/swagger");
    assert!(
        warning.is_some(),
        "no key file: a random key, and a warning"
    );
    let (config, _) = Options::default().load().unwrap();
    assert!(config.docs && !config.access_log && config.login_log);
    assert_eq!(config.docs_assets_url, DEFAULT_DOCS_ASSETS_URL);
}

#[test]
fn a_bad_file_from_a_variable_names_the_variable() {
    let missing = std::env::temp_dir().join(format!("pb-config-none-{}", std::process::id()));
    let missing = missing.to_str().unwrap();
    let o = env_options(&[("PASSWORD_BEARER_USERS", missing)]);
    let err = o.load().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("PASSWORD_BEARER_USERS {missing}: ")),
        "{err}"
    );
    let o = env_options(&[("PASSWORD_BEARER_SECRET_KEY_FILE", missing)]);
    let err = o.load().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("PASSWORD_BEARER_SECRET_KEY_FILE {missing}: ")),
        "{err}"
    );
}

#[test]
fn short_key_file_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("pb-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, "too short\n").unwrap();
    let opts = Options {
        secret_key_files: vec![path.clone()],
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
