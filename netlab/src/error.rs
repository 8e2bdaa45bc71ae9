use std::time::Duration;

/// Errors of the lab helpers; each names the command or object concerned.
#[derive(Debug, thiserror::Error)]
pub enum NetlabError {
    #[error("spawning `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed ({status}): {output}")]
    Command {
        cmd: String,
        status: String,
        output: String,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = NetlabError> = std::result::Result<T, E>;
