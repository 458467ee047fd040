//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz
//! harnesses, without a fuzz engine, so CI keeps every seed and every past crash as a
//! regression test (as Envoy does with its fuzz corpora). The harnesses are the very code the
//! fuzz targets run: `fuzz/src/lib.rs`, included here.

// Test code: a failed check is meant to panic (clippy only exempts `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn policy_load_corpus() {
    replay("policy_load", harness::policy_load);
}

#[test]
fn path_routing_corpus() {
    replay("path_routing", harness::path_routing);
}

#[test]
fn body_classify_corpus() {
    replay("body_classify", harness::body_classify);
}

#[test]
fn body_decode_corpus() {
    replay("body_decode", harness::body_decode);
}

#[test]
fn authorize_redirect_corpus() {
    replay("authorize_redirect", harness::authorize_redirect);
}

#[test]
fn url_identity_corpus() {
    replay("url_identity", harness::url_identity);
}

/// The fuzz policy itself loads (the harnesses unwrap it).
#[test]
fn fuzz_policy_loads() {
    mcp_oauth_guard::policy::Policy::from_bytes(harness::FUZZ_POLICY.as_bytes()).unwrap();
}
