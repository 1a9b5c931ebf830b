//! The library's layers, as ARCHITECTURE.md draws them, checked from the
//! source: every `crate::` path in `src/` names an edge between two of the
//! library's top-level modules, and those edges must form no cycle and
//! never point up a layer (so nothing below `App` imports `app`). Reads
//! the files as text, with no parser and no build: a few milliseconds, so
//! it runs in every `cargo test`.
//!
//! A new module of the library goes into [`LAYERS`]; the test says so when
//! one is missing.

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
            "drain",
            "error",
            "form",
            "logging",
            "multipart",
            "token",
        ],
    ),
    (
        "domain (no App)",
        &[
            "deadline",
            "limiter",
            "openapi",
            "password",
            "redis",
            "sessions",
            "slots",
            "throttle",
            "token_cache",
            "users",
        ],
    ),
    ("state", &["app", "auth"]),
    ("handlers", &["metrics", "refresh", "routes"]),
    ("serving", &["server", "tls"]),
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

/// Every `.rs` file of module `module`: `src/module.rs` and `src/module/**`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src().join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read a directory entry").path();
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

/// Module -> the library modules it names, with a file that names each.
fn edges() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let modules = library_modules();
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for module in &modules {
        let out = edges.entry(module.clone()).or_default();
        for file in files_of(module) {
            let text = fs::read_to_string(&file).expect("read a source file");
            for name in crate_paths(&code(&text)) {
                if &name != module && modules.contains(&name) {
                    out.entry(name).or_insert_with(|| file.clone());
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
