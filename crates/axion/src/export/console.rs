//! The console provider: one JSON object per line ([`axion_model::Record`]) on stderr, or
//! appended to the file named by `AXION_CONSOLE_PATH`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Exporter, PipelineConfig, PipelineTracer};
use crate::config::Settings;
use crate::provider::{BaseTracer, RawRecord};
use crate::{Error, Result};

/// Writes records as JSON lines.
pub struct ConsoleExporter {
    target: String,
    out: Box<dyn Write + Send>,
    buffer: Vec<u8>,
}

impl ConsoleExporter {
    /// Writes to standard error.
    pub fn stderr() -> Self {
        Self {
            target: "stderr".into(),
            out: Box::new(io::stderr()),
            buffer: Vec::new(),
        }
    }

    /// Appends to a file, creating it (and its folder) if needed.
    pub fn file(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let target = path.display().to_string();
        let output = |source| Error::Output {
            target: target.clone(),
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(output)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(output)?;
        Ok(Self {
            target: target.clone(),
            out: Box::new(file),
            buffer: Vec::new(),
        })
    }

    /// Writes to any writer.
    pub fn writer(target: impl Into<String>, out: impl Write + Send + 'static) -> Self {
        Self {
            target: target.into(),
            out: Box::new(out),
            buffer: Vec::new(),
        }
    }
}

impl Exporter for ConsoleExporter {
    fn export(&mut self, batch: Vec<RawRecord>) -> Result<()> {
        self.buffer.clear();
        for record in batch {
            serde_json::to_writer(&mut self.buffer, &record.into_model()).map_err(|error| {
                Error::Output {
                    target: self.target.clone(),
                    source: error.into(),
                }
            })?;
            self.buffer.push(b'\n');
        }
        // One write per batch keeps lines from different processes sharing the file whole.
        self.out
            .write_all(&self.buffer)
            .and_then(|()| self.out.flush())
            .map_err(|source| Error::Output {
                target: self.target.clone(),
                source,
            })
    }
}

pub(crate) fn console_provider(settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
    let exporter = match settings.get("AXION_CONSOLE_PATH") {
        Some(path) => ConsoleExporter::file(path)?,
        None => ConsoleExporter::stderr(),
    };
    let mut config = PipelineConfig::from_settings(settings)?;
    if settings.get("AXION_EXPORT_INTERVAL_MS").is_none() {
        // A person is watching the console: show lines promptly.
        config.scheduled_delay = Duration::from_millis(100);
    }
    Ok(Arc::new(PipelineTracer::new("console", exporter, config)?))
}
