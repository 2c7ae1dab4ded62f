//! The `order-scheduler` binary: parses the command line and hands over to the library.

use clap::Parser;
use order_scheduler::app::{redact, Application};
use order_scheduler::config::{Cli, Command, DbArgs};
use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("info,actix_web::middleware::logger=warn,actix_server=warn"),
    )
    .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => match Application::build(&args) {
            Ok(app) => app.run_until_stopped().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        },
        Command::Migrate(db) => migrate(&db),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, even when a driver's message spans several.
            let message = format!("{e:#}")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("order-scheduler: {message}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(db: &DbArgs) -> anyhow::Result<()> {
    let store = storage::Store::open_without_migrating(&db.database_url, &Default::default())?;
    store.migrate()?;
    println!(
        "migrations applied to {} ({})",
        redact(&db.database_url),
        store.backend_name()
    );
    Ok(())
}
