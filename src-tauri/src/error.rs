//! The one error every command rejects with: a stable `code` the dashboard branches on,
//! and a message for people that names the problem and the fix.

use node::config::{ConfigError, Problem};
use serde::Serialize;
use ts_rs::TS;

/// What a command failed with (`ui/src/bindings/CommandError.ts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CommandError {
    /// The node is not running: it could not start (the message says why) or is restarting.
    #[error("{message}")]
    NodeUnavailable {
        /// Why, and what to do.
        message: String,
    },
    /// Settings were refused; nothing was saved.
    #[error("{message}")]
    InvalidSettings {
        /// A summary.
        message: String,
        /// Every problem, with its key.
        problems: Vec<Problem>,
    },
    /// The ledger could not be read.
    #[error("{message}")]
    LedgerError {
        /// Why.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{message}")]
    IoError {
        /// Why.
        message: String,
    },
    /// An update check or install failed; nothing was installed.
    #[error("{message}")]
    UpdateError {
        /// What failed, and what to do.
        message: String,
    },
    /// Anything else (a bug: the message says what).
    #[error("{message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl CommandError {
    /// The node is not running, because of `why`.
    pub fn node_unavailable(why: impl Into<String>) -> Self {
        Self::NodeUnavailable {
            message: why.into(),
        }
    }

    /// A ledger problem, with context.
    pub fn ledger(context: &str, e: impl std::fmt::Display) -> Self {
        Self::LedgerError {
            message: format!("{context}: {e}"),
        }
    }

    /// An unexpected failure.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal {
            message: e.to_string(),
        }
    }
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { problems, .. } => Self::InvalidSettings {
                message: format!(
                    "the settings were not saved: {}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                problems,
            },
            e @ (ConfigError::Read { .. } | ConfigError::Write { .. }) => Self::IoError {
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_with_their_code_beside_the_message() {
        let json = serde_json::to_value(CommandError::node_unavailable("no key")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "node_unavailable", "message": "no key"})
        );
        let invalid: CommandError = ConfigError::Invalid {
            path: "x".into(),
            problems: vec![Problem {
                key: Some("gpu.max_duty_cycle_percent".into()),
                line: None,
                message: "150 is out of range: allowed 1 to 100 percent".into(),
            }],
        }
        .into();
        let json = serde_json::to_value(&invalid).unwrap();
        assert_eq!(json["code"], "invalid_settings");
        assert_eq!(json["problems"][0]["key"], "gpu.max_duty_cycle_percent");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("gpu.max_duty_cycle_percent: 150 is out of range")
        );
    }
}
