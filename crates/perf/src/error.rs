//! What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("bad URI {0}")]
    Uri(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("broker closed the {scope} with {code} {text}")]
    Closed { scope: &'static str, code: u16, text: String },
    #[error("protocol error: {0}")]
    Protocol(String),
}
