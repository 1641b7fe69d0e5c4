//! The module graph points downward: every `crate::` path in `src/` names a top-level module
//! listed before its own in `docs/architecture.md`.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// The module order written in `docs/architecture.md`, bottom first.
fn order() -> Vec<String> {
    let doc =
        fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let block = doc
        .split("```text")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```text block listing the modules");
    block
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to; `None` for the crate root and binaries.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "bin" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

/// Names the crate root re-exports (`pub use module::Name;`), mapped to their module.
fn root_reexports(lib: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    out
}

/// The code of `src` with `//` comments (and doc comments) blanked, lines kept.
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal ("http://...") is rare in paths; keep such lines.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every first segment after `crate::` in `code`, with the 1-based line it starts on;
/// `use crate::{a::X, b}` yields `a` and `b`.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `$crate::` and `some_crate::` are other crates.
        if at > 0
            && (bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b'$')
        {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        if bytes.get(from) == Some(&b'{') {
            let mut depth = 0;
            let mut end = from;
            for (j, c) in code[from..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = from + j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &code[from + 1..end];
            let mut depth = 0;
            let mut start = 0;
            let mut parts = Vec::new();
            for (j, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&inner[start..j]);
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&inner[start..]);
            for p in parts {
                let name: String = p
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((name, line));
                }
            }
        } else {
            let name: String = code[from..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((name, line));
            }
        }
    }
    out
}

#[test]
fn modules_point_downward() {
    let order = order();
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let src = root().join("src");
    let reexports = root_reexports(&fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs"));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    let mut unlisted = BTreeSet::new();
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let Some(me) = module_of(rel) else { continue };
        let Some(&my_rank) = rank.get(me.as_str()) else {
            unlisted.insert(me);
            continue;
        };
        let code = strip_comments(&fs::read_to_string(file).expect("a readable file"));
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        for (name, line) in crate_paths(&code) {
            let target = if rank.contains_key(name.as_str()) {
                name
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                continue;
            };
            if target == me || rank[target.as_str()] < my_rank {
                continue;
            }
            upward.push(format!(
                "src/{rel_str}:{line}: `{me}` uses `{target}`, which sits above it"
            ));
        }
    }
    assert!(
        unlisted.is_empty(),
        "modules missing from docs/architecture.md: {unlisted:?}"
    );
    assert!(upward.is_empty(), "upward edges:\n{}", upward.join("\n"));
}

#[test]
fn grouped_and_inline_paths_are_found() {
    let code = "use crate::{a::X, b::{Y, Z}};\nfn f() { crate::c::g(); $crate::d::h(); other_crate::e(); }";
    let found: Vec<_> = crate_paths(code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(found, ["a", "b", "c"]);
}
