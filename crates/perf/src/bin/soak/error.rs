//! What can end a soak run before its verdict, or one client session before its reconnect.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out: {0}")]
    Timeout(&'static str),
}
