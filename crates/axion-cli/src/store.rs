//! `axion store`: work on a server's storage directly (the server need not run).

use anyhow::{Context, Result};
use axion_server::store::{self, Pagination, Store};

#[derive(clap::Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy everything (projects, keys, traces, observations, scores) from one store into
    /// another: from the SQLite file to PostgreSQL when one machine is no longer enough, or
    /// back. Each is a data directory or a postgres:// URL. Running it again changes nothing.
    Copy {
        /// The store to read: a data directory (holding axion.db) or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// The store to write into (created when missing; what it holds is kept and merged).
        #[arg(long)]
        to: String,
    },
}

pub(crate) fn run(command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Copy { from, to } => copy(&from, &to),
    }
}

/// Each project's trace, observation and score counts.
fn counts(store: &dyn Store) -> Result<Vec<(String, [u64; 3])>> {
    let first = Pagination::Offset { page: 1, limit: 1 };
    let mut counts = Vec::new();
    for project in store.projects()? {
        let traces = store.list_traces(&project.id, &Default::default(), &first)?;
        let observations = store.list_observations(&project.id, &Default::default(), &first)?;
        let scores = store.list_scores(&project.id, &Default::default(), &first)?;
        counts.push((
            project.id,
            [traces.total, observations.total, scores.total].map(Option::unwrap_or_default),
        ));
    }
    Ok(counts)
}

fn copy(from: &str, to: &str) -> Result<()> {
    let source = store::open(from).with_context(|| format!("opening {from}"))?;
    let target = store::open(to).with_context(|| format!("opening {to}"))?;
    let started = std::time::Instant::now();
    let mut pages = 0u64;
    let report = store::copy(source.as_ref(), target.as_ref(), |report| {
        pages += 1;
        if pages % 50 == 0 {
            eprintln!(
                "… {} traces, {} observations, {} scores",
                report.traces, report.observations, report.scores
            );
        }
    })?;
    println!(
        "copied {} projects, {} keys, {} traces, {} observations, {} scores in {:.1} s",
        report.projects,
        report.keys,
        report.traces,
        report.observations,
        report.scores,
        started.elapsed().as_secs_f64()
    );
    // What the target holds of each copied project must be at least what the source holds
    // (it may have had more of its own).
    let held: std::collections::HashMap<String, [u64; 3]> =
        counts(target.as_ref())?.into_iter().collect();
    for (project, source_counts) in counts(source.as_ref())? {
        let target_counts = held.get(&project).copied().unwrap_or_default();
        anyhow::ensure!(
            target_counts
                .iter()
                .zip(&source_counts)
                .all(|(target, source)| target >= source),
            "project {project}: the target holds {target_counts:?} traces, observations and scores, the source {source_counts:?}"
        );
    }
    println!("checked: the target holds every record of every project");
    source.close();
    target.close();
    Ok(())
}
