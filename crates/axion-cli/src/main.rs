//! The `axion` command line.

mod demo;
mod logging;
mod store;
mod traces;

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
    /// Run the trace server: Langfuse-compatible API and web UI on an embedded SQLite file
    /// (or a PostgreSQL database).
    Serve(ServeArgs),
    /// Read traces back (LANGFUSE_* variables): list, get, export.
    #[command(subcommand)]
    Traces(traces::TracesCommand),
    /// Build evaluation datasets from traces.
    #[command(subcommand)]
    Dataset(traces::DatasetCommand),
    /// Publish scores onto traces and observations.
    #[command(subcommand)]
    Scores(traces::ScoresCommand),
    /// The whole loop locally: serve, trace, fetch, dataset, evaluate, publish, show.
    Demo(demo::DemoArgs),
    /// Work on a server's storage: copy it between SQLite and PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AXION_LISTEN", default_value = "127.0.0.1:3000")]
    listen: std::net::SocketAddr,
    /// Directory for the database (created when missing).
    #[arg(long, env = "AXION_DATA_DIR", default_value = "./axion-data")]
    data_dir: std::path::PathBuf,
    /// Store in this PostgreSQL database instead of the embedded SQLite file
    /// (postgres://user:password@host:port/database); several servers may share it.
    #[arg(long, env = "AXION_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Public key to install for the default project (with --secret-key).
    #[arg(long, env = "AXION_PUBLIC_KEY", requires = "secret_key")]
    public_key: Option<String>,
    /// Secret key to install for the default project (with --public-key).
    #[arg(
        long,
        env = "AXION_SECRET_KEY",
        requires = "public_key",
        hide_env_values = true
    )]
    secret_key: Option<String>,
}

// The server's allocator, for every subcommand: `serve` and `demo` run the server, and the
// client commands do not mind. Why mimalloc: `axion_server::allocator`.
#[global_allocator]
static ALLOCATOR: axion_server::allocator::ServerAllocator =
    axion_server::allocator::ServerAllocator;

fn main() -> Result<()> {
    axion_server::allocator::configure();
    logging::init();
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
        Command::Serve(args) => serve(args)?,
        Command::Traces(command) => traces::traces(command)?,
        Command::Dataset(command) => traces::dataset(command)?,
        Command::Scores(command) => traces::scores(command)?,
        Command::Demo(args) => demo::run(args)?,
        Command::Store(command) => store::run(command)?,
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    // A small blocking pool: store calls run there, and every extra thread is another malloc
    // arena and SQLite connection.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let started = std::time::Instant::now();
        // Listened for before the banner: a signal sent the moment it appears must still
        // shut the server down gracefully, not end it where it stands.
        let shutdown = ShutdownSignals::install()?;
        let config = axion_server::ServerConfig {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            keys: args.public_key.zip(args.secret_key),
            database_url: args.database_url,
        };
        let server = axion_server::Server::start(config).await?;
        let addr = server.local_addr();
        let bootstrap = server.bootstrap().clone();
        println!(
            "axion serve: listening on http://{addr} (data in {}, ready in {} ms)",
            server.storage(),
            started.elapsed().as_millis()
        );
        println!("web UI: http://{addr}/ (sign in with the project's key pair)");
        if let (Some(public_key), Some(secret_key)) =
            (&bootstrap.public_key, &bootstrap.generated_secret)
        {
            println!(
                "\nCreated project {} with a new API key pair.",
                bootstrap.project_id
            );
            println!("The secret key is shown only this once (only its hash is stored):\n");
            println!("{}", axion_server::client_env(addr, public_key, secret_key));
            println!("export TRACING_MODE=langfuse\n");
        }
        shutdown.received().await;
        println!("axion serve: shutting down (finishing in-flight requests)");
        server.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere), listened for from the moment this is made.
pub(crate) struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub(crate) fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first of them.
    pub(crate) async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
