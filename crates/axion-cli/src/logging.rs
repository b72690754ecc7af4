//! Where log records go: standard error, a line each, from the level `AXION_LOG` names
//! (`error`, `warn`, `info`, `debug`, `trace` or `off`; `info` when unset). The server reports
//! through `log` what no client sees: a logged write it could not store, a failed checkpoint, a
//! schema upgrade at start; the SDK its retries, at `debug`.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct StandardError;

impl Log for StandardError {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A closed standard error loses the line; it must not take a server thread down.
            let _ = writeln!(
                std::io::stderr().lock(),
                "axion {}: {}",
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// The level `AXION_LOG` names, `info` when unset; what to say when it names none.
fn level(setting: Option<&str>) -> Result<LevelFilter, String> {
    match setting {
        None => Ok(LevelFilter::Info),
        Some(text) => text.trim().parse().map_err(|_| {
            format!(
                "AXION_LOG={text:?} names no level (error, warn, info, debug, trace, off); using info"
            )
        }),
    }
}

/// Installs the logger, at the level `AXION_LOG` names.
pub fn init() {
    let setting = std::env::var("AXION_LOG").ok();
    let level = level(setting.as_deref()).unwrap_or_else(|problem| {
        let _ = writeln!(std::io::stderr().lock(), "axion: {problem}");
        LevelFilter::Info
    });
    if log::set_logger(&StandardError).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_named_in_any_case_and_default_to_info() {
        assert_eq!(level(None), Ok(LevelFilter::Info));
        assert_eq!(level(Some("debug")), Ok(LevelFilter::Debug));
        assert_eq!(level(Some(" WARN ")), Ok(LevelFilter::Warn));
        assert_eq!(level(Some("off")), Ok(LevelFilter::Off));
        assert!(level(Some("loud"))
            .unwrap_err()
            .contains("\"loud\" names no level"));
    }
}
