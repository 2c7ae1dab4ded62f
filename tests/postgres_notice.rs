//! Says, where a newcomer reads it, whether this `cargo test` run had a PostgreSQL server.
//!
//! Every Postgres test in the workspace skips itself (and passes) when `TEST_DATABASE_URL`
//! cannot be reached, and says so on stderr, but the test harness captures the output of
//! passing tests, so a run without Postgres looks all green. This target has no harness
//! (`harness = false` in `tests/Cargo.toml`): its output is not captured. It makes the same
//! connection attempt as `storage::testing::TestDb::postgres` and prints a banner when that
//! fails: what was skipped, the URL tried, and how to run those tests. With `REQUIRE_POSTGRES=1`
//! (as CI sets) it fails instead, like the Postgres tests themselves.

use diesel::{Connection, PgConnection};
use std::process::ExitCode;

/// The URL the Postgres tests use when `TEST_DATABASE_URL` is unset; the same default as
/// `storage::testing`.
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() -> ExitCode {
    // `cargo test -- --list` asks every test binary for its tests: this one has none.
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    let from_env = std::env::var("TEST_DATABASE_URL").ok();
    let url = from_env.clone().unwrap_or_else(|| DEFAULT_PG.to_string());
    let required = std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let source = if from_env.is_some() {
        "TEST_DATABASE_URL"
    } else {
        "the default; TEST_DATABASE_URL is unset"
    };
    match PgConnection::establish(&url) {
        Ok(_) => {
            println!("\nPostgres tests: ran against {url} ({source}).\n");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // libpq's message spans lines with a tab; one line reads better in a banner.
            let error = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let mut lines = vec![
                String::new(),
                if required {
                    "POSTGRES TESTS FAILED: REQUIRE_POSTGRES=1 and no PostgreSQL server answers."
                        .to_string()
                } else {
                    "POSTGRES TESTS SKIPPED: they passed without running, no PostgreSQL server \
                     answers."
                        .to_string()
                },
                String::new(),
                format!("  tried:  {url}  ({source})"),
                format!("  error:  {error}"),
                String::new(),
                "  Every test that needs Postgres returned early; the SQLite tests ran.".into(),
                "  To run them, start PostgreSQL, e.g. on Debian:".into(),
                "      apt-get install postgresql && pg_ctlcluster <version> main start".into(),
                "  or with Docker:".into(),
                "      docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16"
                    .into(),
                "  then run the tests again, pointing TEST_DATABASE_URL at a user that may \
                 CREATE DATABASE:"
                    .into(),
                "      TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
                 cargo test --workspace"
                    .into(),
                "  REQUIRE_POSTGRES=1 makes the Postgres tests fail instead of skipping \
                 (CI sets it)."
                    .into(),
                String::new(),
            ];
            if required {
                lines.push("  Failing, because REQUIRE_POSTGRES=1.".into());
                lines.push(String::new());
            }
            let rule = "*".repeat(78);
            let body: Vec<String> = lines
                .iter()
                .map(|l| format!("*** {l}").trim_end().to_string())
                .collect();
            println!("\n{rule}\n{}\n{rule}\n", body.join("\n"));
            if required {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
