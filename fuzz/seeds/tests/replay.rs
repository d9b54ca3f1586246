//! Every fuzz target has seeds made from real data, and runs on each of them and on every saved
//! crash input without panicking (the same bodies libFuzzer runs, built as ordinary code).
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use confidant_fuzz::TARGETS;
use confidant_fuzz_seeds::{regressions, replay, seeds};

/// The `[[bin]]` names of fuzz/Cargo.toml, which `cargo fuzz` builds.
fn manifest_bins() -> Vec<String> {
    let text = std::fs::read_to_string(confidant_testkit::workspace_root().join("fuzz/Cargo.toml"))
        .unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = \"") {
            names.push(name.trim_end_matches('"').to_owned());
        }
    }
    names.sort();
    names
}

#[test]
fn every_target_is_built_listed_and_has_a_file() {
    let mut listed: Vec<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    listed.sort();
    assert_eq!(
        manifest_bins(),
        listed,
        "fuzz/Cargo.toml [[bin]]s vs TARGETS"
    );
    for t in TARGETS {
        let file = confidant_testkit::workspace_root()
            .join("fuzz/fuzz_targets")
            .join(format!("{}.rs", t.name));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("confidant_fuzz::run(\"{}\", data)", t.name)),
            "{} does not run its own target",
            file.display()
        );
    }
}

#[test]
fn every_target_runs_on_its_seeds_and_saved_crashes() {
    for t in TARGETS {
        let seeds = seeds(t.name).unwrap();
        assert!(seeds.len() >= 2, "{}: {} seeds", t.name, seeds.len());
        replay(t, &seeds);
        replay(t, &regressions(t.name).unwrap());
    }
}
