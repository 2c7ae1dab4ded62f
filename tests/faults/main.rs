//! Fault suite: the real `order-scheduler` binary under kills, database restarts, several
//! instances (one killed right after creating an order), a status-polling storm over a big
//! book, hostile input, fuzzing, security checks and a soak. Every scenario prints a
//! `FIGURES` line (run with `--nocapture` to see them); `docs/RELIABILITY.md` quotes them.
//!
//! The heavy or timing-sensitive scenarios take [`support::heavy`] so that they run one at a
//! time on a small machine. Build the binary first: `cargo build -p order-scheduler`.

mod db_restart;
mod fuzz;
mod hostile;
mod kill_drain;
mod killed_creator;
mod offsets;
mod security;
mod site_guard;
mod soak;
mod status_storm;
mod support;
mod three_instances;

#[test]
fn binary_starts_and_answers() {
    let db = storage::testing::TestDb::sqlite();
    let server = system_tests::ServerProcess::start(&db.url, &[]);
    let r = reqwest::blocking::get(format!("{}/api/v1/scheduler/status", server.base_url))
        .expect("status");
    assert!(r.status().is_success());
}
