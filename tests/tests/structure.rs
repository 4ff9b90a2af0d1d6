//! The workspace's structural rules (issue 15, `../shared/STYLE.md`), checked on the source
//! tree so that they stay true: no source file of a library crate over 700 lines, no
//! `Result<_, String>` outside test code, and no import cycle between the modules of a crate
//! (edges between sibling modules, from `crate::` and `super::` paths).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose sources the rules cover (the `tests` crate is test code).
const CRATES: [&str; 6] = ["ir", "passes", "compiler", "runtime", "models", "python"];
/// The line limit of one source file.
const MAX_LINES: usize = 700;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Each crate's `src/` files with their text.
fn sources() -> Vec<(String, PathBuf, String)> {
    let mut all = Vec::new();
    for c in CRATES {
        let src = workspace().join(c).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            all.push((c.to_string(), f, text));
        }
    }
    all
}

/// The text before a file's unit-test module (test code may use `String` errors).
fn non_test(text: &str) -> &str {
    let cut = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    &text[..cut]
}

/// The code of a text without its comments (a doc link is not an import).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file's module path inside its crate: `src/session/garbled.rs` is `[session, garbled]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut m: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

/// `crate::a::b` and `super::c` paths named in `text`, as module paths from the crate root.
fn imports(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().next_back();
            let after = &rest[i..];
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let path: Vec<&str> = after
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap()
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let (head, tail) = path.split_first().unwrap();
            let mut target: Vec<String> = if *head == "crate" {
                Vec::new()
            } else {
                // `super` of `a/b.rs` and of `a/b/mod.rs` alike is `a`.
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let mut tail = tail;
            while let Some(("super", t)) = tail.split_first().map(|(h, t)| (*h, t)) {
                target.pop();
                tail = t;
            }
            target.extend(tail.iter().map(|s| s.to_string()));
            out.push(target);
        }
    }
    out
}

#[test]
fn no_library_source_file_is_over_700_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|(_, _, t)| t.lines().count() > MAX_LINES)
        .map(|(_, f, t)| format!("{} ({} lines)", f.display(), t.lines().count()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:#?}");
}

#[test]
fn no_library_function_returns_a_string_error() {
    let mut found = Vec::new();
    for (_, f, text) in sources() {
        for (n, line) in non_test(&text).lines().enumerate() {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(i) = squeezed.find("Result<") {
                if squeezed[i..].contains(",String>") {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Result<_, String> outside tests: {found:#?}"
    );
}

/// Edges between sibling modules, from each file's module path and non-test text.
fn sibling_edges(files: &[(Vec<String>, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    // Only modules (files) are nodes: `super::Step` names an item of the parent, not a sibling.
    let modules: BTreeSet<String> = files
        .iter()
        .flat_map(|(m, _)| (1..=m.len()).map(|k| m[..k].join("::")))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in files {
        for target in imports(m, text) {
            // The edge joins the two sibling modules where the paths part.
            let k = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if k >= m.len() || k >= target.len() {
                continue; // an ancestor or descendant: not a cycle between siblings
            }
            let to = target[..=k].join("::");
            if modules.contains(&to) {
                edges.entry(m[..=k].join("::")).or_default().insert(to);
            }
        }
    }
    edges
}

/// The modules that reach themselves through their siblings' imports.
fn cyclic(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = edges[start].iter().collect();
        while let Some(v) = stack.pop() {
            if v == start {
                out.push(start.clone());
                break;
            }
            if seen.insert(v.clone()) {
                stack.extend(edges.get(v).into_iter().flatten());
            }
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let all = sources();
    let mut cycles = Vec::new();
    for c in CRATES {
        let src = workspace().join(c).join("src");
        let files: Vec<(Vec<String>, String)> = all
            .iter()
            .filter(|(k, f, _)| k == c && !f.components().any(|p| p.as_os_str() == "bin"))
            .map(|(_, f, t)| (module_of(&src, f), code_of(non_test(t))))
            .collect();
        let files: Vec<(Vec<String>, &str)> =
            files.iter().map(|(m, t)| (m.clone(), t.as_str())).collect();
        for m in cyclic(&sibling_edges(&files)) {
            cycles.push(format!("{c}: `{m}` imports itself through its siblings"));
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_checks_see_a_cycle_and_a_string_error_when_there_is_one() {
    let m = |p: &str| p.split('/').map(str::to_string).collect::<Vec<_>>();
    // Two siblings importing each other, one through `super`: a cycle.
    let cycle = [
        (m("a"), "use crate::b::X;"),
        (m("b"), "use super::a::Y; my_crate::c::f();"),
    ];
    assert_eq!(cyclic(&sibling_edges(&cycle)), ["a", "b"]);
    // A parent using its child and the child its parent is not a sibling cycle.
    let nested = [
        (m("s"), "use self::c::Z; use crate::s::c::W;"),
        (m("s/c"), "use super::Step; use crate::s::g::Layer;"),
        (m("s/g"), "use crate::t::T;"),
    ];
    let e = sibling_edges(&nested);
    assert!(cyclic(&e).is_empty(), "{e:?}");
    assert_eq!(e["s::c"], BTreeSet::from(["s::g".to_string()]));
    // A doc link is not an import.
    assert!(!code_of("/// See [`crate::b`].\nfn f() {}").contains("crate::b"));
    assert!(
        non_test("fn f() -> Result<(), String>\n#[cfg(test)]\nmod tests {}").contains("String")
    );
}
