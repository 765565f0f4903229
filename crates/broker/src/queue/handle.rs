//! The handle through which everything outside the queue reaches it.
use super::Queue;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A reference to a queue. Routing resolves bindings to handles, and channels keep handles
/// for their unacked deliveries; nothing outside `queue/` owns a queue's state.
///
/// Today every queue is local. The cluster layer will make a handle able to point at a
/// queue whose leader is another node, behind these same methods, so callers do not change.
#[derive(Clone)]
pub struct QueueHandle(Arc<Queue>);

impl QueueHandle {
    pub(crate) fn new(q: Arc<Queue>) -> Self {
        QueueHandle(q)
    }
}

impl Deref for QueueHandle {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        &self.0
    }
}

/// Two handles are equal when they reach the same queue object (a queue deleted and
/// declared again under the same name is a different queue).
impl PartialEq for QueueHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for QueueHandle {}

impl Hash for QueueHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state)
    }
}

impl std::fmt::Debug for QueueHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueueHandle({}/{})", self.meta.vhost, self.meta.name)
    }
}
