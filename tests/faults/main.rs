//! Fault suite: the real binary under kills, database restarts and many instances.

#[test]
fn binary_starts_and_answers() {
    let db = storage::testing::TestDb::sqlite();
    let server = system_tests::ServerProcess::start(&db.url, &[]);
    let r = reqwest::blocking::get(format!("{}/api/v1/scheduler/status", server.base_url)).expect("status");
    assert!(r.status().is_success());
}
