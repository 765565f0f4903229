//! Warren's routing engine: virtual hosts, exchanges (direct, fanout, topic, headers),
//! queues and bindings.
//!
//! Metadata changes all go through [`Broker`], which checks them as RabbitMQ does and hands
//! each to a [`MetadataLog`] (where durability and replication attach). Publishing and
//! delivering do not take the metadata lock: a publish resolves its exchange through the
//! vhost, routes to [`QueueHandle`]s, and each queue dispatches to consumers' sinks.
pub mod blocking;
mod broker;
pub mod error;
pub mod exchange;
pub mod message;
pub mod meta;
pub mod names;
pub mod queue;
pub mod store;
mod vhost;

pub use broker::{BindSpec, Broker, BrokerSettings, DeclaredQueue, ExchangeDeclare, QueueDeclare, Recovered};
pub use error::BrokerError;
pub use exchange::{Exchange, ExchangeKind};
pub use message::Message;
pub use meta::{BindingRecord, InMemoryOnly, MetaChange, MetadataLog};
pub use queue::{ConnectionId, Consumer, ConsumerSpec, Credit, Delivery, DeliverySink, QueueHandle, QueuedMessage};
pub use store::{DurableListener, LoadDone, Loaded, MessageStore, StoredMessage};
pub use vhost::VHost;
