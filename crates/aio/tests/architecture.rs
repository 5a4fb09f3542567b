//! Tidy checks of ARCHITECTURE.md's invariants, run by `cargo test`: the
//! crate graph has only the edges the design allows, and the platform crates
//! compile to nothing elsewhere.
//!
//! A file of its own because these tests read the workspace's manifests and
//! sources, not the runtime.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/aio sits two levels below the workspace root")
        .to_path_buf()
}

/// The workspace crates (`aio*`) a crate's manifest depends on, in any
/// dependency table except dev-dependencies.
fn workspace_deps(krate: &str) -> BTreeSet<String> {
    let manifest = workspace_root().join("crates").join(krate).join("Cargo.toml");
    let text = fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.ends_with("dependencies]") && !line.contains("dev-dependencies");
            continue;
        }
        if !in_deps {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if name == "aio" || name.starts_with("aio-") {
            deps.insert(name);
        }
    }
    deps
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn crates_directory_holds_exactly_the_layers() {
    let mut found: Vec<String> = fs::read_dir(workspace_root().join("crates"))
        .expect("crates/ exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "aio",
            "aio-base-policy",
            "aio-child-watchers",
            "aio-events",
            "aio-net",
            "aio-process",
            "aio-selector",
            "aio-unix",
            "aio-windows"
        ],
        "a new crate needs a place in ARCHITECTURE.md and in this test"
    );
}

// Architecture Invariant: aio-events depends on no crate of this workspace.
#[test]
fn abstract_layer_depends_on_no_workspace_crate() {
    assert_eq!(workspace_deps("aio-events"), set(&[]));
}

// Architecture Invariant: the base policy, the selector core and the child
// watchers sit directly on the abstract layer and know nothing of each other
// or of any platform crate.
#[test]
fn middle_layers_depend_only_on_the_abstract_layer() {
    for krate in ["aio-base-policy", "aio-selector", "aio-child-watchers"] {
        assert_eq!(workspace_deps(krate), set(&["aio-events"]), "{krate}");
    }
}

// Architecture Invariant: the sockets know only the abstract layer: they
// register with whatever loop runs through `EventLoop`'s readiness API, so
// any loop that implements it serves them, and no loop knows them.
#[test]
fn sockets_depend_only_on_the_abstract_layer() {
    assert_eq!(workspace_deps("aio-net"), set(&["aio-events"]));
}

// Architecture Invariant: subprocesses know only the abstract layer: the
// running loop for their pipes, and the policy's `ChildWatcher` trait for
// reaping (on Windows, the loop's `wait_for_handle`), never a particular
// watcher, loop or policy.
#[test]
fn subprocesses_depend_only_on_the_abstract_layer() {
    assert_eq!(workspace_deps("aio-process"), set(&["aio-events"]));
}

// Architecture Invariant: the platform crates never depend on each other or
// on the facade.
#[test]
fn platform_crates_do_not_know_each_other() {
    assert_eq!(
        workspace_deps("aio-unix"),
        set(&[
            "aio-base-policy",
            "aio-child-watchers",
            "aio-events",
            "aio-selector"
        ])
    );
    assert_eq!(
        workspace_deps("aio-windows"),
        set(&["aio-base-policy", "aio-events", "aio-selector"])
    );
}

// Architecture Invariant: nothing under crates/ depends on the facade.
#[test]
fn no_layer_depends_on_the_facade() {
    for krate in [
        "aio-events",
        "aio-base-policy",
        "aio-selector",
        "aio-child-watchers",
        "aio-net",
        "aio-process",
        "aio-unix",
        "aio-windows",
    ] {
        assert!(
            !workspace_deps(krate).contains("aio"),
            "{krate} depends on the facade"
        );
    }
}

// Architecture Invariant: a platform crate compiles to an empty crate on other
// platforms (`#![cfg(unix)]` / `#![cfg(windows)]` after its docs); the
// subprocesses, which have a Unix and a Windows half, to an empty crate on
// any other.
#[test]
fn platform_crates_are_cfg_gated() {
    for (krate, gate) in [
        ("aio-unix", "#![cfg(unix)]"),
        ("aio-child-watchers", "#![cfg(unix)]"),
        ("aio-process", "#![cfg(any(unix, windows))]"),
        ("aio-windows", "#![cfg(windows)]"),
    ] {
        let lib = workspace_root().join("crates").join(krate).join("src/lib.rs");
        let text = fs::read_to_string(&lib).expect("lib.rs exists");
        assert!(
            text.lines().any(|line| line.trim() == gate),
            "{krate} lacks {gate}"
        );
    }
}

// Architecture Invariant: the facade holds no loop logic: its sources are the
// re-exports in lib.rs and the runner.
#[test]
fn facade_is_docs_reexports_and_the_runner() {
    let mut files: Vec<String> = fs::read_dir(workspace_root().join("crates/aio/src"))
        .expect("crates/aio/src exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(files, ["lib.rs", "runner.rs"]);
}

// Every source file opens with a `//!` comment saying what it holds.
#[test]
fn every_source_file_opens_with_module_docs() {
    let mut missing = Vec::new();
    let mut stack = vec![workspace_root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("readable file");
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "files without a //! opening: {missing:?}");
}
