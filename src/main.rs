//! `tollgate`: parse the command line, start logging, run the chosen command.

use clap::Parser;
use tollgate::{AuditCommand, Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json_logs = match &cli.command {
        Command::Serve(c) => c.log_format == LogFormat::Json,
        _ => false,
    };
    tollgate::init_logging(json_logs);
    match run(cli.command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tollgate: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        Command::Serve(config) => {
            let app = tollgate::Application::build(*config).await?;
            tokio::spawn(tollgate::cancel_on_signal(app.shutdown_token()));
            app.run_until_stopped().await?;
        }
        Command::Migrate(store) => {
            tollgate::migrate(&store.database_url).await?;
            println!("migrations applied");
        }
        Command::Audit { command: AuditCommand::Verify(args) } => {
            if let Some(path) = &args.file {
                let (entries, broken) = tollgate::verify_audit_file(path)?;
                match broken {
                    None => println!("audit export intact: {entries} entries verified"),
                    Some(b) => {
                        let seq = b.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                        println!(
                            "audit export BROKEN at line {} (entry {seq}): {} ({entries} entries verified before it)",
                            b.line, b.reason
                        );
                        return Ok(std::process::ExitCode::FAILURE);
                    }
                }
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let report = tollgate::verify_audit(&args.store.database_url).await?;
            match report.broken {
                None => println!("audit chain intact: {} entries verified", report.entries),
                Some(b) => {
                    let id = b.log_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into());
                    println!(
                        "audit chain BROKEN at entry {} (log_id {id}): {} ({} entries verified before it)",
                        b.seq, b.reason, report.entries
                    );
                    return Ok(std::process::ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
