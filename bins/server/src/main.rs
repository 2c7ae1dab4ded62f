//! The `order-scheduler` binary: parses the command line and hands over to the library.

use clap::Parser;
use order_scheduler::app::{redact, Application};
use order_scheduler::cli;
use order_scheduler::config::{Cli, Command, DbArgs};
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("info,actix_web::middleware::logger=warn,actix_server=warn"),
    )
    .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        // Only the server needs the async runtime; the tools are plain blocking programs.
        Command::Serve(args) => actix_web::rt::System::new().block_on(async move {
            let app = Application::build(&args)?;
            app.run_until_stopped().await.map_err(anyhow::Error::from)
        }),
        Command::Migrate(db) => migrate(&db),
        Command::Seed(a) => cli::seed(&a),
        Command::Orders(a) => cli::orders(&a),
        Command::Moderate(a) => cli::moderate(&a),
        Command::Clean(a) => cli::clean(&a),
        Command::Status(a) => cli::status(&a),
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
