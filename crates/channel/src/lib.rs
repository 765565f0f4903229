//! The AMQP channel layer: everything that happens on one channel — declares and binds
//! (handed to the routing engine), publishes (assembled, checked, routed), consumers and
//! their deliveries, acks, QoS, publisher confirms and transactions.
//!
//! A channel is owned by its connection's task and is never shared; the queues it talks to
//! are reached through `QueueHandle`s.
pub mod ack;
mod channel;
pub mod confirm;
mod consume;
mod content;
mod context;
mod publish;
mod timeout;
pub mod tx;
mod unacked;

pub use channel::Channel;
pub use context::{ConnCtx, Io};
pub use timeout::ConsumerTimeout;
