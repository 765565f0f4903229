//! Metadata changes: the one place declares, deletes, binds and unbinds pass through.
//!
//! [`crate::Broker`] applies every change under its metadata lock and hands it to a
//! [`MetadataLog`] first. The durability layer implements the log over sled (write the
//! change, then apply it in memory); the cluster layer will replicate the same records.
use crate::error::BrokerError;
use crate::exchange::ExchangeMeta;
use crate::queue::QueueMeta;
use amq_protocol::types::FieldTable;

/// One metadata change, described by value so it can be stored or sent elsewhere.
#[derive(Debug, Clone)]
pub enum MetaChange {
    AddVHost { name: String },
    DeclareExchange(ExchangeMeta),
    DeleteExchange { vhost: String, name: String },
    DeclareQueue(QueueMeta),
    DeleteQueue { vhost: String, name: String },
    Bind(BindingRecord),
    Unbind(BindingRecord),
}

/// A binding by names. `durable` is true when both ends are durable, which is when
/// RabbitMQ keeps a binding across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingRecord {
    pub vhost: String,
    pub source: String,
    pub dest_is_exchange: bool,
    pub dest: String,
    pub routing_key: String,
    pub arguments: FieldTable,
    pub durable: bool,
}

/// Receives every metadata change before it takes effect. An error aborts the change,
/// and the client gets it as a channel error.
pub trait MetadataLog: Send + Sync {
    fn record(&self, change: &MetaChange) -> Result<(), BrokerError>;
}

/// The log of a broker that keeps metadata only in memory (nothing survives a restart).
pub struct InMemoryOnly;

impl MetadataLog for InMemoryOnly {
    fn record(&self, _change: &MetaChange) -> Result<(), BrokerError> {
        Ok(())
    }
}
