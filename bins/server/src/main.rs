//! The `order-scheduler` binary: parses the command line and hands over to the library.

use clap::Parser;
use order_scheduler::app::{redact, Application};
use order_scheduler::cli;
use order_scheduler::config::{Cli, Command, DbArgs};
use order_scheduler::logging::{self, LogFormat};
use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    // Only the server's lines go to collectors; the tools print for people.
    let format = match &cli.command {
        None => cli.serve.log_format,
        Some(Command::Serve(args)) => args.log_format,
        Some(_) => LogFormat::Text,
    };
    logging::init(format);
    let result = match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        // Only the server needs the async runtime; the tools are plain blocking programs.
        Command::Serve(args) => actix_web::rt::System::new().block_on(async move {
            let app = Application::build(&args)?;
            app.run_until_stopped().await.map_err(anyhow::Error::from)
        }),
        Command::Migrate(a) if a.status => cli::migration_status(&a.db),
        Command::Migrate(a) => migrate(&a.db),
        Command::Seed(a) => cli::seed(&a),
        Command::Orders(a) => cli::orders(&a),
        Command::Moderate(a) => cli::moderate(&a),
        Command::Clean(a) => cli::clean(&a),
        Command::Status(a) => cli::status(&a),
        Command::Scheduler(a) => cli::scheduler(&a),
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

/// `order-scheduler orders | head` closes the pipe early, and Rust's `println!` then panics
/// with "failed printing to stdout: Broken pipe". A reader that stops reading is not an error
/// of ours: end quietly, with the status a shell gives a process ended by SIGPIPE (128 + 13),
/// as other Unix tools do. Every other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}
