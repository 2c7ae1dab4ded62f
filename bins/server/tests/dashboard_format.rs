//! The dashboard's formatting functions (`src/dashboard/format.js`) under Node's own test
//! runner: `node --test src/dashboard/format.test.mjs`.
//!
//! Without `node` the test fails when `CI` is set, and otherwise prints a loud `*** SKIPPED`
//! line and passes (the browser test's convention).

use std::path::Path;
use std::process::Command;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

#[test]
fn dashboard_formatting_under_node() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard");
    let run = Command::new("node")
        .arg("--test")
        .arg("format.test.mjs")
        .current_dir(&dir)
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) if ci() => panic!("dashboard formatting tests cannot run in CI: node: {e}"),
        Err(e) => {
            // Straight to stderr, past the test harness's capture, so it shows in a plain
            // `cargo test` run.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: node not found ({e}): dashboard formatting tests. \
                 Set CI=1 to fail instead. ***\n"
            );
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The summary lines (`# tests 12`, `# pass 12`, ...), so the count shows in the log.
    let summary = |l: &&str| l.starts_with("# ") && !l.starts_with("# Subtest");
    for line in stdout.lines().filter(summary) {
        println!("{line}");
    }
    assert!(
        out.status.success(),
        "node --test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // A test file that imported nothing or defined no test would also exit 0.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok());
    assert!(
        passed.is_some_and(|n| n > 0),
        "no passing test reported:\n{stdout}"
    );
}
