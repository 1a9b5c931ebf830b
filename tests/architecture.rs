//! The library's layers, as ARCHITECTURE.md draws them, checked from the
//! source: every `crate::` (and `super::`, `self::`) path in `src/` names
//! an edge between two of the library's modules, and those edges must form
//! no cycle and never point up a layer (so nothing below `App` imports
//! `app`). Reads the files as text, with no parser and no build: a few
//! milliseconds, so it runs in every `cargo test`.
//!
//! A module is a top-level module of `src/lib.rs`, or a file inside one's
//! folder that [`LAYERS`] places apart (`server::caps`, the connection
//! caps, sits below `App` while the rest of `server/` is above it). A path
//! into such a file must name it (`crate::server::caps::X`; a group under
//! `crate::server::{…}` counts as `server` itself).
//!
//! A new module of the library goes into [`LAYERS`]; the test says so when
//! one is missing. And no file of `src/` (the binary's included) is over
//! 800 lines, its unit tests counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each library module and its layer, from the leaves up. A module may
/// import its own layer and those below; the cycle check keeps one layer
/// acyclic within itself.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "addr",
            "bearer",
            "clock",
            "counters",
            "error",
            "form",
            "jwks",
            "logging",
            "multipart",
            "server::access_log",
            "server::drain",
            "server::panic_guard",
            "server::tls",
            "token",
        ],
    ),
    (
        "domain (no App)",
        &[
            "clients",
            "limiter",
            "openapi",
            "password",
            "redis",
            "server::caps",
            "server::deadline",
            "sessions",
            "throttle",
            "token_cache",
            "users",
        ],
    ),
    ("state", &["app", "auth"]),
    // `app::handle` is `App::handle`, which calls the dispatcher.
    ("handlers", &["app::handle", "handlers"]),
    ("serving", &["server"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The modules `src/lib.rs` declares with a file of their own (`mod x;`).
fn library_modules() -> BTreeSet<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    lib.lines()
        .map(str::trim)
        .map(|line| {
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            line.strip_prefix("pub ").unwrap_or(line)
        })
        .filter_map(|line| line.strip_prefix("mod "))
        .filter_map(|rest| rest.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

/// The modules the check sees: those `src/lib.rs` declares, and the files
/// inside their folders that [`LAYERS`] places apart (`server::caps`).
fn modules() -> BTreeSet<String> {
    let mut modules = library_modules();
    for (_, listed) in LAYERS {
        for name in listed.iter().filter(|name| name.contains("::")) {
            let relative = name.replace("::", "/");
            assert!(
                src().join(format!("{relative}.rs")).is_file() || src().join(&relative).is_dir(),
                "LAYERS in tests/architecture.rs names `{name}`, but src/{relative}.rs is not there"
            );
            modules.insert((*name).to_owned());
        }
    }
    modules
}

/// Every `.rs` file of `module`: `src/module.rs` and `src/module/**`,
/// less the files of the modules among `modules` placed apart inside it.
fn files_of(module: &str, modules: &BTreeSet<String>) -> Vec<PathBuf> {
    let relative = module.replace("::", "/");
    let apart: Vec<PathBuf> = modules
        .iter()
        .filter_map(|other| other.strip_prefix(module)?.strip_prefix("::"))
        .map(|inner| src().join(&relative).join(inner.replace("::", "/")))
        .collect();
    let owned = |path: &Path| {
        !apart
            .iter()
            .any(|other| path.starts_with(other) || path == other.with_extension("rs"))
    };
    let mut files = Vec::new();
    let file = src().join(format!("{relative}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src().join(&relative)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read a directory entry").path();
            if !owned(&path) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The code of a file without its comments: a path in a doc link is not
/// an import.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // `//` inside a string (a URL) is rare in `src/`, and cutting
            // there only loses an edge the string never made.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after each `crate::` in `code`: `crate::a::b`
/// gives `a`, `crate::{a::x, b::{y, z}}` gives `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `$crate::` and `some_crate::` are not this crate.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0usize, true);
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => word.push(c),
                    _ if start && !word.is_empty() => {
                        names.push(std::mem::take(&mut word));
                        start = false;
                    }
                    _ => {}
                }
            }
            if !word.is_empty() {
                names.push(word);
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(word);
        }
    }
    names
}

/// The module path of the file `path` under `src/`: `src/a/b.rs` and
/// `src/a/b/mod.rs` are `a::b`.
fn module_path_of(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(src()).expect("a file under src/");
    let mut segments: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if segments.last().is_some_and(|last| last == "mod") {
        segments.pop();
    }
    segments
}

/// The absolute paths (their segments) that `crate::`, `super::` and
/// `self::` paths in `code` name, for a file of module path `here`:
/// `crate::a::b::c` gives `[a, b, c]`, `crate::{a::x, b::{y, z}}` gives
/// `[a, x]`, `[b, y]` and `[b, z]`; in `a::b`, `super::c` gives `[a, c]`.
fn named_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let before = code[..at].chars().next_back();
        let word_before = before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        let (mut base, mut tail) = match () {
            _ if word_before => (None, rest),
            _ if rest.starts_with("crate::") => (Some(Vec::new()), &rest["crate::".len()..]),
            _ if rest.starts_with("self::") => (Some(here.to_vec()), &rest["self::".len()..]),
            _ if rest.starts_with("super::") => (Some(here.to_vec()), rest),
            _ => (None, rest),
        };
        if let Some(base) = base.as_mut() {
            while let Some(after) = tail.strip_prefix("super::") {
                base.pop();
                tail = after;
            }
            let mut chars = tail.chars().peekable();
            for path in use_tree(&mut chars) {
                paths.push(base.iter().cloned().chain(path).collect());
            }
            // Past the prefix, so that a `super::super::` is read once.
            at += rest.len() - tail.len();
            continue;
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    paths
}

/// The paths of the use tree (or path expression) `chars` starts with, as
/// their segments.
fn use_tree(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Vec<Vec<String>> {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    if chars.peek() == Some(&'{') {
        chars.next();
        let mut paths = Vec::new();
        loop {
            paths.extend(use_tree(chars));
            // Past what follows the element (`as name`) to `,` or `}`.
            loop {
                match chars.next() {
                    Some(',') | None => break,
                    Some('}') => return paths,
                    Some(_) => {}
                }
            }
            if chars.peek().is_none() {
                return paths;
            }
        }
    }
    let mut word = String::new();
    while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
        word.push(c);
        chars.next();
    }
    if word.is_empty() {
        return Vec::new();
    }
    let mut ahead = chars.clone();
    if ahead.next() == Some(':') && ahead.next() == Some(':') {
        *chars = ahead;
        let rest = use_tree(chars);
        if !rest.is_empty() {
            return rest
                .into_iter()
                .map(|path| std::iter::once(word.clone()).chain(path).collect())
                .collect();
        }
    }
    vec![vec![word]]
}

/// The module among `modules` that `path` is in: `a::b` when placed
/// apart, else `a`.
fn module_named(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    if let [first, second, ..] = path {
        let inner = format!("{first}::{second}");
        if modules.contains(&inner) {
            return Some(inner);
        }
    }
    path.first()
        .filter(|first| modules.contains(*first))
        .cloned()
}

/// Module -> the library modules it names, with a file that names each.
fn edges() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let modules = modules();
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for module in &modules {
        let out = edges.entry(module.clone()).or_default();
        for file in files_of(module, &modules) {
            let text = fs::read_to_string(&file).expect("read a source file");
            for path in named_paths(&code(&text), &module_path_of(&file)) {
                if let Some(name) = module_named(&path, &modules) {
                    if &name != module {
                        out.entry(name).or_insert_with(|| file.clone());
                    }
                }
            }
        }
    }
    edges
}

/// A cycle among `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Option<Vec<String>> {
    // Depth-first, keeping the path: an edge back into it closes a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|&n| n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flat_map(BTreeMap::keys) {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_library_has_no_import_cycle() {
    let edges = edges();
    assert!(
        edges.len() > 20,
        "found only {} library modules in src/lib.rs",
        edges.len()
    );
    if let Some(cycle) = find_cycle(&edges) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                let file = &edges[&pair[0]][&pair[1]];
                let file = file.strip_prefix(src()).unwrap_or(file);
                format!("{} -> {} (in src/{})", pair[0], pair[1], file.display())
            })
            .collect();
        panic!("an import cycle: {}", steps.join(", "));
    }
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(layer, (_, modules))| modules.iter().map(move |m| (*m, layer)))
        .collect();
    let mut wrong = Vec::new();
    for (module, imports) in &edges() {
        let Some(&own) = layer_of.get(module.as_str()) else {
            wrong.push(format!(
                "src/lib.rs declares `{module}`, which LAYERS in tests/architecture.rs does not place"
            ));
            continue;
        };
        for (import, file) in imports {
            let theirs = layer_of.get(import.as_str()).copied().unwrap_or(usize::MAX);
            if theirs > own {
                let file = file.strip_prefix(src()).unwrap_or(file);
                wrong.push(format!(
                    "{module} ({}) imports {import} ({}) in src/{}",
                    LAYERS[own].0,
                    LAYERS.get(theirs).map_or("unplaced", |l| l.0),
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_finds_grouped_and_nested_paths_but_not_comments() {
    let text = "use crate::{a::x, b::{y, z}};\nuse crate::c;\n// crate::d\n/// [`crate::e`]\nlet v = crate::f::g();\nmacro $crate::h; other_crate::i";
    assert_eq!(crate_paths(&code(text)), ["a", "b", "c", "f"]);
}

#[test]
fn the_reader_resolves_super_self_and_files_placed_apart() {
    let here = ["server".to_owned(), "caps".to_owned()];
    let text = "use super::drain::Drain;\nuse self::inner::X;\nuse crate::server::{deadline::A, tls};\nuse crate::logging::{self, Peer as P};\nlet x = super::super::app::App::new();";
    let paths = named_paths(&code(text), &here);
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        [
            "server::drain::Drain",
            "server::caps::inner::X",
            "server::deadline::A",
            "server::tls",
            "logging::self",
            "logging::Peer",
            "app::App::new",
        ]
    );
    let modules: BTreeSet<String> = ["server", "server::drain", "app", "logging"]
        .map(str::to_owned)
        .into();
    assert_eq!(
        module_named(&paths[0], &modules).as_deref(),
        Some("server::drain")
    );
    assert_eq!(module_named(&paths[2], &modules).as_deref(), Some("server"));
    assert_eq!(module_named(&paths[6], &modules).as_deref(), Some("app"));
}

/// Every `.rs` file under `src/`, the binary's included.
fn all_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file a reader can take in: long unit-test modules go to a sibling
/// `tests.rs`, and a module that grows past this is split by what it holds.
const MAX_LINES: usize = 800;

#[test]
fn no_source_file_is_over_800_lines() {
    let mut files = Vec::new();
    all_rust_files(&src(), &mut files);
    assert!(
        files.len() > 50,
        "read {} files: the wrong folder?",
        files.len()
    );
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = fs::read_to_string(path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}
