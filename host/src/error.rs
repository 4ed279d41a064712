//! The host's error type.

use std::fmt;
use std::path::PathBuf;

/// Why the host cannot start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest is unreadable, malformed or inconsistent.
    #[error("{}", located(file, field, message))]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// The offending field (dotted path), empty for the whole file.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The runtime config file is unreadable or asks for something unsupported.
    #[error("{}", located(file, field, message))]
    RuntimeConfig {
        /// The runtime config file.
        file: PathBuf,
        /// The offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A variable cannot be resolved.
    #[error("{0}")]
    Variable(String),
    /// The embedded storage (key-value or queue) cannot be opened.
    #[error("storage: {0}")]
    Storage(String),
    /// A component cannot be loaded, compiled or linked.
    #[error("component {component:?}: {message}")]
    Component {
        /// The component id.
        component: String,
        /// What went wrong.
        message: String,
    },
}

fn located(file: &std::path::Path, field: &str, message: &str) -> impl fmt::Display {
    let field = if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    };
    format!("{}: {field}{message}", file.display())
}
