//! `axion traces`, `axion dataset`, `axion scores`: the loader, collection, dataset and
//! publishing APIs from the shell, with the SDK's environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use axion::collection::{Trace, TraceCollection};
use axion::dataset::{Dataset, DatasetItem};
use axion::load::{FetchTraces, LangfuseTraceLoader, TimeWindow};
use axion::publish::{
    publish_to_observability, EvaluationResult, LangfuseScores, PublishOptions, ScoreLevel,
};

/// The loader's filters as flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Filters {
    /// Trace name.
    #[arg(long)]
    name: Option<String>,
    /// Tags the traces must all carry (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// User id.
    #[arg(long)]
    user_id: Option<String>,
    /// Session id.
    #[arg(long)]
    session_id: Option<String>,
    /// Only the last N days (default 7 unless another window is given).
    #[arg(long, conflicts_with_all = ["hours_back", "from", "to"])]
    days_back: Option<u32>,
    /// Only the last N hours.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    hours_back: Option<u32>,
    /// From this RFC 3339 time.
    #[arg(long)]
    from: Option<String>,
    /// Until this RFC 3339 time (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// At most this many traces.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

impl Filters {
    fn query(&self, full: bool) -> Result<FetchTraces> {
        let window = if self.from.is_some() || self.to.is_some() {
            TimeWindow::from_mode(
                "absolute",
                None,
                None,
                self.from.as_deref(),
                self.to.as_deref(),
            )?
        } else if let Some(hours) = self.hours_back {
            TimeWindow::HoursBack(hours)
        } else {
            TimeWindow::DaysBack(self.days_back.unwrap_or(7))
        };
        Ok(FetchTraces {
            limit: self.limit,
            window,
            tags: self.tags.clone(),
            name: self.name.clone(),
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            fetch_full_traces: full,
            extra: Vec::new(),
        })
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum TracesCommand {
    /// A table of matching traces (or `--json`).
    List {
        #[command(flatten)]
        filters: Filters,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One trace as a tree with its scores (or `--json`).
    Get {
        /// Trace id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Full traces saved as a TraceCollection JSON file.
    Export {
        #[command(flatten)]
        filters: Filters,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum DatasetCommand {
    /// A dataset from matching traces (JSONL or CSV by the file's extension).
    Build {
        #[command(flatten)]
        filters: Filters,
        /// Output file (`.jsonl` or `.csv`).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ScoresCommand {
    /// Publish scores from a JSONL file of `{"trace_id", "observation_id"?, "name", "value", "comment"?}`.
    Push {
        /// The file.
        file: PathBuf,
    },
}

fn loader() -> Result<LangfuseTraceLoader> {
    LangfuseTraceLoader::from_env().context("reading LANGFUSE_* settings")
}

/// Fetches full traces page by page, showing `fetched n/limit` on a terminal.
fn fetch_collection(filters: &Filters) -> Result<TraceCollection> {
    use std::io::{IsTerminal, Write};
    let query = filters.query(true)?;
    let show = std::io::stderr().is_terminal();
    let mut traces = Vec::new();
    loader()?.for_each_trace(&query, |trace| {
        traces.push(trace);
        if show && (traces.len() % 25 == 0) {
            eprint!("\rfetched {}/{}", traces.len(), query.limit);
            let _ = std::io::stderr().flush();
        }
        Ok(())
    })?;
    if show {
        eprintln!("\rfetched {} traces{}", traces.len(), " ".repeat(12));
    }
    Ok(TraceCollection::from_loaded(traces))
}

pub fn traces(command: TracesCommand) -> Result<()> {
    match command {
        TracesCommand::List { filters, json } => {
            let traces = loader()?.fetch_traces(&filters.query(false)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&traces)?);
                return Ok(());
            }
            println!(
                "{:<34} {:<24} {:<12} {:>9} {:>10}  tags",
                "id", "name", "user", "latency", "cost"
            );
            for loaded in &traces {
                let trace = &loaded.trace;
                println!(
                    "{:<34} {:<24} {:<12} {:>8.2}s {:>10.6}  {}",
                    trace.id,
                    trace.name.as_deref().unwrap_or("-"),
                    trace.user_id.as_deref().unwrap_or("-"),
                    loaded.latency.unwrap_or(0.0),
                    loaded.total_cost.unwrap_or(0.0),
                    trace.tags.join(",")
                );
            }
            eprintln!("{} traces", traces.len());
        }
        TracesCommand::Get { id, json } => {
            let loaded = loader()?.fetch_trace(&id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&loaded)?);
            } else {
                print_tree(&Trace::from(loaded));
            }
        }
        TracesCommand::Export { filters, out } => {
            let collection = fetch_collection(&filters)?;
            collection.save(&out)?;
            eprintln!("{} traces written to {}", collection.len(), out.display());
        }
    }
    Ok(())
}

pub fn dataset(command: DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Build { filters, out } => {
            let collection = fetch_collection(&filters)?;
            let dataset = Dataset::from_traces(&collection);
            dataset.save(&out)?;
            eprintln!("{} items written to {}", dataset.len(), out.display());
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct ScoreLine {
    trace_id: String,
    #[serde(default)]
    observation_id: Option<String>,
    name: String,
    value: f64,
    #[serde(default)]
    comment: Option<String>,
}

pub fn scores(command: ScoresCommand) -> Result<()> {
    match command {
        ScoresCommand::Push { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut trace_level = Vec::new();
            let mut observation_level = Vec::new();
            for (number, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let line: ScoreLine = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}", file.display(), number + 1))?;
                let mut item = DatasetItem::new(format!("line-{}", number + 1));
                item.trace_id = Some(line.trace_id);
                item.observation_id = line.observation_id.clone();
                let result = EvaluationResult {
                    item,
                    metrics: BTreeMap::from([(line.name, line.value)]),
                    comment: line.comment,
                };
                if line.observation_id.is_some() {
                    observation_level.push(result);
                } else {
                    trace_level.push(result);
                }
            }
            let mut target = LangfuseScores::from_env()?;
            let mut total = axion::publish::PublishReport::default();
            for (results, level) in [
                (trace_level, ScoreLevel::Trace),
                (observation_level, ScoreLevel::Observation),
            ] {
                let options = PublishOptions {
                    level,
                    ..PublishOptions::default()
                };
                let report = publish_to_observability(&results, &options, &mut target);
                total.uploaded += report.uploaded;
                total.skipped += report.skipped;
                total.failed += report.failed;
            }
            println!(
                "uploaded {}, skipped {}, failed {}",
                total.uploaded, total.skipped, total.failed
            );
            if total.failed > 0 {
                bail!("{} scores were refused", total.failed);
            }
        }
    }
    Ok(())
}

/// The trace as an indented tree: type, name, model, usage, level; then its scores.
pub fn print_tree(trace: &Trace) {
    println!(
        "trace {} {} (user {}, {} observations, cost {:.6} USD)",
        trace.id,
        trace.name.as_deref().unwrap_or("-"),
        trace.user_id.as_deref().unwrap_or("-"),
        trace.observations.len(),
        trace.total_cost.unwrap_or(0.0)
    );
    fn walk(trace: &Trace, parent: Option<&str>, depth: usize) {
        for observation in trace
            .observations
            .iter()
            .filter(|o| o.parent_observation_id.as_deref() == parent)
        {
            let mut line = format!(
                "{}{} {}",
                "  ".repeat(depth + 1),
                observation.r#type,
                observation.name.as_deref().unwrap_or("-")
            );
            if let Some(model) = &observation.model {
                line.push_str(&format!(" [{model}]"));
            }
            if let Some(usage) = observation
                .usage_details
                .as_ref()
                .filter(|usage| !usage.is_empty())
            {
                line.push_str(&format!(
                    " tokens {}/{}",
                    usage.get("input").unwrap_or(&0),
                    usage.get("output").unwrap_or(&0)
                ));
            }
            if observation.level != axion::ObservationLevel::Default {
                line.push_str(&format!(" {}", observation.level));
            }
            for score in trace
                .scores
                .iter()
                .filter(|s| s.observation_id.as_deref() == Some(observation.id.as_str()))
            {
                line.push_str(&format!(" ← {} = {}", score.name, score.value));
            }
            println!("{line}");
            walk(trace, Some(&observation.id), depth + 1);
        }
    }
    walk(trace, None, 0);
    for score in trace.scores.iter().filter(|s| s.observation_id.is_none()) {
        println!(
            "  score {} = {}{}",
            score.name,
            score.value,
            score
                .comment
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
    }
}
