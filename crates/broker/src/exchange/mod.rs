//! Exchanges: named routers from a publish to the queues (and exchanges) bound to them.
mod bindings;
#[cfg(test)]
mod bindings_tests;
mod dest;
pub mod headers;
mod kind;
pub mod topic;

pub use bindings::Binding;
pub use dest::Dest;
pub use kind::ExchangeKind;

use crate::message::Message;
use crate::queue::QueueHandle;
use amq_protocol::types::FieldTable;
use bindings::Bindings;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The properties an exchange was declared with.
#[derive(Debug, Clone)]
pub struct ExchangeMeta {
    pub name: Arc<str>,
    pub vhost: Arc<str>,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// An exchange and its bindings.
pub struct Exchange {
    pub name: Arc<str>,
    pub meta: ExchangeMeta,
    bindings: RwLock<Bindings>,
    deleted: AtomicBool,
}

/// Routing depth bound for exchange-to-exchange chains; cycles are cut by the visited list,
/// this only bounds pathological fan-in.
const MAX_ROUTE_DEPTH: usize = 32;

impl Exchange {
    pub fn new(meta: ExchangeMeta) -> Arc<Self> {
        Arc::new(Exchange {
            name: meta.name.clone(),
            bindings: RwLock::new(Bindings::new(meta.kind)),
            meta,
            deleted: AtomicBool::new(false),
        })
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// True for the nameless default exchange, which routes by queue name.
    pub fn is_default(&self) -> bool {
        self.name.is_empty()
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.read().list().to_vec()
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.read().is_empty()
    }

    pub(crate) fn add_binding(&self, b: Binding) {
        self.bindings.write().add(b);
    }

    pub(crate) fn remove_binding(&self, dest: &Dest, key: &str, args: &FieldTable) -> bool {
        self.bindings.write().remove(dest, key, args)
    }

    pub(crate) fn remove_bindings_to(&self, dest: &Dest) -> usize {
        self.bindings.write().remove_dest(dest)
    }

    /// Appends to `out` every queue this message reaches through this exchange and the
    /// exchanges bound to it. `out` may hold duplicates; [`route`] removes them.
    fn collect(self: &Arc<Self>, msg: &Message, out: &mut Vec<QueueHandle>, seen: &mut Visited) {
        if !seen.insert(Arc::as_ptr(self)) {
            return;
        }
        let mut next: Vec<Arc<Exchange>> = Vec::new();
        self.bindings.read().for_each_match(msg, |d| match d {
            Dest::Queue(q) => out.push(q.clone()),
            Dest::Exchange(e) => next.push(e.clone()),
        });
        for e in next {
            e.collect(msg, out, seen);
        }
    }
}

/// Exchanges already visited while routing one message (exchange-to-exchange bindings can
/// form cycles). A fixed array on the stack: a Vec here cost an allocation per publish.
struct Visited {
    ptrs: [*const Exchange; MAX_ROUTE_DEPTH],
    len: usize,
}

impl Visited {
    /// False if `e` was visited already, or too many exchanges were.
    fn insert(&mut self, e: *const Exchange) -> bool {
        if self.len == MAX_ROUTE_DEPTH || self.ptrs[..self.len].contains(&e) {
            return false;
        }
        self.ptrs[self.len] = e;
        self.len += 1;
        true
    }
}

/// Resolves a message to the distinct queues it must go to. `out` is cleared first; callers
/// keep it between publishes so routing allocates nothing in the steady state.
pub fn route(exchange: &Arc<Exchange>, msg: &Message, out: &mut Vec<QueueHandle>) {
    out.clear();
    let mut seen = Visited { ptrs: [std::ptr::null(); MAX_ROUTE_DEPTH], len: 0 };
    exchange.collect(msg, out, &mut seen);
    if out.len() > 1 {
        out.sort_unstable_by_key(|q| &**q as *const _ as usize);
        out.dedup();
    }
}
