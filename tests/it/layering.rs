//! The layering of ARCHITECTURE.md, enforced: every `crate::MODULE` path in the code of a
//! top-level module (comments aside) must name a module that the map's "may use" table
//! allows it, every module of `src/lib.rs` must be on the map, and the allowed graph must
//! have no cycle (so nothing can import upward).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The "may use" table between the `layering` markers of ARCHITECTURE.md: one row per
/// module, `| \`module\` | \`a\`, \`b\` |` (or `—` for none).
fn allowed(map: &str) -> Graph {
    let begin = map
        .find("<!-- layering:begin -->")
        .expect("ARCHITECTURE.md has the layering table");
    let end = map.find("<!-- layering:end -->").expect("the layering table ends");
    let mut graph = Graph::new();
    for line in map[begin..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let names =
            |cell: &str| -> BTreeSet<String> { cell.split('`').skip(1).step_by(2).map(str::to_string).collect() };
        let module = names(cells[1]).into_iter().next().expect("a module name");
        graph.insert(module, names(cells[2]));
    }
    graph
}

/// The top-level module that `file` (under `src/`) belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::NAME` paths of `code`, comments left out (`named_enum!` is `names`'s macro;
/// a path through the crate root, `crate::{…}` or `crate::Error`, is kept as written, so the
/// map refuses it: name the module).
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap();
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(match name.as_str() {
                "named_enum" => "names".into(),
                "" => "{".into(),
                _ => name,
            });
        }
    }
    found
}

/// The module graph of the code: module → the modules its files name.
fn used(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let module = module_of(src, &file);
        if module == "lib" || module == "main" {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports(&code).into_iter().filter(|m| m != &module));
    }
    graph
}

/// Edges of `code` that `map` does not allow, as "from → to".
fn forbidden(code: &Graph, map: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in code {
        for to in tos {
            if !map.get(from).is_some_and(|allowed| allowed.contains(to)) {
                out.push(format!("{from} → {to}"));
            }
        }
    }
    out
}

/// A cycle of `graph`, if it has one (depth-first search).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(n: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(path[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn imports_follow_the_map_of_architecture_md() {
    let map = allowed(&std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap());
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let mapped: BTreeSet<String> = map.keys().cloned().collect();
    assert_eq!(
        declared, mapped,
        "every module of src/lib.rs has one row in ARCHITECTURE.md's table"
    );
    assert_eq!(cycle(&map), None, "the map's allowed imports have no cycle");
    let code = used(&root().join("src"));
    let bad = forbidden(&code, &map);
    assert!(bad.is_empty(), "imports the map of ARCHITECTURE.md forbids: {bad:?}");
}

#[test]
fn the_check_finds_a_forbidden_import_and_a_cycle() {
    let map = allowed(
        "<!-- layering:begin -->\n| module | may use |\n| --- | --- |\n| `error` | — |\n| `schedule` | `error` |\n\
         | `sampler` | `error`, `schedule` |\n<!-- layering:end -->",
    );
    assert_eq!(
        map["sampler"],
        BTreeSet::from(["error".to_string(), "schedule".to_string()])
    );
    assert!(map["error"].is_empty());
    // schedule reaching up into sampler is refused; a path in a comment is not an import.
    let code = "use crate::error::Result;\n// see crate::sampler::Sampler\nfn f() { crate::sampler::run(); }";
    let graph = Graph::from([("schedule".to_string(), imports(code))]);
    assert_eq!(forbidden(&graph, &map), vec!["schedule → sampler".to_string()]);
    let mut looped = map.clone();
    looped.get_mut("schedule").unwrap().insert("sampler".into());
    assert!(cycle(&looped).is_some());
}
