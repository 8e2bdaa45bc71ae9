//! `src/frr/` is a one-way chain: each module imports only modules below it (control and
//! the pure parsers at the bottom, the applier on top), so any of them can be read, tested
//! and replaced without the ones above. This reads the modules' `use` lines (outside their
//! test modules) and fails on a cycle, naming it.

use std::collections::{BTreeMap, BTreeSet};

/// The `frr` modules `text` (one module's source, test module excluded) imports.
fn imports(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let product = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for line in product.lines() {
        let l = line.trim();
        if !(l.starts_with("use ") || l.starts_with("pub use ")) {
            continue;
        }
        for prefix in ["super::", "crate::frr::"] {
            if let Some(rest) = l.split(prefix).nth(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&name) {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// A cycle in `graph`, if any (depth-first search with an explicit path).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_frr_modules_import_each_other_one_way() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/frr");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("src/frr") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
            sources.insert(name, std::fs::read_to_string(&path).expect("source"));
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    for expected in [
        "apply",
        "audit",
        "config",
        "control",
        "diff",
        "originated",
        "status",
        "vty",
    ] {
        assert!(modules.contains(expected), "src/frr/{expected}.rs is gone");
    }
    let graph: BTreeMap<String, BTreeSet<String>> = (sources.iter())
        .map(|(n, text)| (n.clone(), imports(text, &modules)))
        .collect();
    for (n, deps) in &graph {
        println!("frr::{n} imports {deps:?}");
    }
    assert_eq!(cycle(&graph), None, "a cycle between the frr modules");
    // the bottom of the chain
    assert!(graph["vty"].is_empty(), "vty imports nothing from frr/");
    assert!(
        graph["control"].iter().all(|m| m == "vty"),
        "control imports only vty from frr/"
    );
    assert!(
        graph["config"].is_empty(),
        "config imports nothing from frr/"
    );
}

#[test]
fn the_check_finds_a_cycle() {
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", "use super::b::X;\n"),
        ("b", "use crate::frr::c::{Y, Z};\n"),
        (
            "c",
            "pub use super::a::W;\n#[cfg(test)]\nmod tests { use super::b::V; }\n",
        ),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), imports(t, &modules)))
    .collect();
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut acyclic = graph.clone();
    acyclic.insert("c".into(), BTreeSet::new());
    assert_eq!(cycle(&acyclic), None);
}
