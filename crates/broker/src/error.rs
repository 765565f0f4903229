//! Errors of the routing engine, and their one mapping to AMQP reply codes.
use warren_codec::{AmqpError, ReplyCode};

/// Why a routing-engine operation failed. Texts follow RabbitMQ's wording so that clients
/// and operators see the messages they already know.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    #[error("no {kind} '{name}' in vhost '{vhost}'")]
    NotFound { kind: &'static str, name: String, vhost: String },
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    AccessRefused(String),
    #[error(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be \
         originally declared on another connection or the exclusive property value does not match \
         that of the original declaration."
    )]
    Locked { name: String, vhost: String },
    #[error("{0}")]
    CommandInvalid(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Internal(String),
}

impl BrokerError {
    pub fn not_found(kind: &'static str, name: &str, vhost: &str) -> Self {
        BrokerError::NotFound { kind, name: name.into(), vhost: vhost.into() }
    }

    pub fn reply_code(&self) -> ReplyCode {
        match self {
            BrokerError::NotFound { .. } => ReplyCode::NotFound,
            BrokerError::Precondition(_) => ReplyCode::PreconditionFailed,
            BrokerError::AccessRefused(_) => ReplyCode::AccessRefused,
            BrokerError::Locked { .. } => ReplyCode::ResourceLocked,
            BrokerError::CommandInvalid(_) => ReplyCode::CommandInvalid,
            BrokerError::NotAllowed(_) => ReplyCode::NotAllowed,
            BrokerError::Internal(_) => ReplyCode::InternalError,
        }
    }
}

impl From<BrokerError> for AmqpError {
    fn from(e: BrokerError) -> Self {
        AmqpError::new(e.reply_code(), &e)
    }
}
