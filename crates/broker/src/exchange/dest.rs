//! Binding destinations.
use super::Exchange;
use crate::queue::QueueHandle;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Where a binding sends matching messages: a queue, or another exchange
/// (RabbitMQ's exchange-to-exchange bindings).
#[derive(Clone)]
pub enum Dest {
    Queue(QueueHandle),
    Exchange(Arc<Exchange>),
}

impl Dest {
    pub fn name(&self) -> &str {
        match self {
            Dest::Queue(q) => q.name(),
            Dest::Exchange(e) => &e.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Dest::Queue(_) => "queue",
            Dest::Exchange(_) => "exchange",
        }
    }
}

/// Identity, not name: a queue deleted and re-declared is a new destination.
impl PartialEq for Dest {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Dest::Queue(a), Dest::Queue(b)) => a == b,
            (Dest::Exchange(a), Dest::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
impl Eq for Dest {}

impl Hash for Dest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Dest::Queue(q) => q.hash(state),
            Dest::Exchange(e) => (Arc::as_ptr(e) as usize).hash(state),
        }
    }
}
