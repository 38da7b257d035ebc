//! The CLI behaves like a Unix tool.

use std::process::{Command, Stdio};

const BINDGUARD: &str = env!("CARGO_BIN_EXE_bindguard");

/// `bindguard crds | head -0`: the reader is gone before anything is written. The command ends
/// quietly and successfully, as `cat` would end on SIGPIPE, instead of panicking.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let root = env!("CARGO_MANIFEST_DIR");
    let review = format!("{root}/examples/reviews/rrb-owner-changed.deny-422.json");
    let state = format!("{root}/examples/cluster");
    for args in [vec!["crds"], vec!["review", &review, "--state", &state]] {
        let mut child = Command::new(BINDGUARD)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bindguard");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for bindguard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// An error is one line on stderr, no backtrace, exit status 1.
#[test]
fn an_error_is_one_line() {
    let out = Command::new(BINDGUARD)
        .args(["review", "/nonexistent.json", "--state", "/nonexistent"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run bindguard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("bindguard: "), "{stderr}");
}
