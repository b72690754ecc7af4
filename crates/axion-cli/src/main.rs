//! The `axion` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "axion", version, about = "LLM observability for Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the tracing providers and show which one this environment selects, and why.
    Providers,
    /// Check that the detected provider starts with this environment's settings.
    Check,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Providers => {
            let detection = axion::detect_provider(&axion::Settings::from_env());
            for name in axion::list_providers() {
                let marker = if name == detection.provider { "*" } else { " " };
                println!("{marker} {name}");
            }
            println!("\nselected: {} ({})", detection.provider, detection.reason);
        }
        Command::Check => {
            let detection = axion::detect_provider(&axion::Settings::from_env());
            axion::configure_tracing(Some(&detection.provider))
                .map_err(|error| anyhow::anyhow!("{} (selected by {})", error, detection.reason))?;
            println!("ok: {} starts ({})", detection.provider, detection.reason);
        }
    }
    Ok(())
}
