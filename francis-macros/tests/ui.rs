//! Compile-time diagnostics of `#[francis::actor]`, checked with trybuild: every
//! `tests/ui/*.rs` must fail to compile with exactly the errors in its `.stderr` file, except
//! `tests/ui/pass_*.rs`, which are realistic actors that must compile.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p francis-macros --test ui`.

use std::path::PathBuf;

#[test]
fn ui() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/ui")
        .expect("tests/ui exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no UI cases found");

    let t = trybuild::TestCases::new();
    for case in &cases {
        let is_pass = case
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pass_"));
        if is_pass {
            t.pass(case);
        } else {
            t.compile_fail(case);
        }
    }
}
