//! The routing engine's entry point: vhosts, and every metadata change (declare, delete,
//! bind, unbind), each checked as RabbitMQ checks it and recorded in the [`MetadataLog`].
use crate::error::BrokerError;
use crate::exchange::{headers, Binding, Dest, Exchange, ExchangeKind, ExchangeMeta};
use crate::meta::{BindingRecord, MetaChange, MetadataLog};
use crate::names;
use crate::queue::{ConnectionId, MemoryBudget, Queue, QueueHandle, QueueMeta, QueueStorage, RecoveredState};
use crate::store::MessageStore;
use crate::vhost::VHost;
use amq_protocol::types::FieldTable;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// exchange.declare arguments.
#[derive(Debug, Clone, Default)]
pub struct ExchangeDeclare {
    pub name: String,
    pub kind: String,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// queue.declare arguments.
#[derive(Debug, Clone, Default)]
pub struct QueueDeclare {
    pub name: String,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// queue.bind / exchange.bind (and their unbinds).
#[derive(Debug, Clone, Default)]
pub struct BindSpec {
    pub source: String,
    pub dest: String,
    pub dest_is_exchange: bool,
    pub routing_key: String,
    pub arguments: FieldTable,
}

/// Durable state read back at start.
#[derive(Default)]
pub struct Recovered {
    pub vhosts: Vec<String>,
    pub exchanges: Vec<ExchangeMeta>,
    pub queues: Vec<(QueueMeta, RecoveredState)>,
    pub bindings: Vec<BindingRecord>,
}

/// What queue.declare-ok reports.
pub struct DeclaredQueue {
    pub queue: QueueHandle,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// Broker-wide settings the routing engine needs.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub queue_flow_threshold: usize,
    /// Bytes of ready messages one queue keeps in memory before paging to the store.
    pub queue_memory_window: usize,
    /// Bytes of ready messages all queues together keep in memory.
    pub memory_limit: usize,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings { queue_flow_threshold: 50_000, queue_memory_window: 32 << 20, memory_limit: 512 << 20 }
    }
}

pub struct Broker {
    vhosts: DashMap<String, Arc<VHost>>,
    /// Serialises metadata changes so check-then-apply is atomic. Never taken on the
    /// publish/deliver path. Lock order: this, then a vhost map shard, then an exchange's
    /// bindings, then a queue's state, then a connection's mailbox.
    meta_lock: Mutex<()>,
    log: Box<dyn MetadataLog>,
    storage: QueueStorage,
    next_queue_id: AtomicU64,
}

fn inequivalent(what: &str, arg: &str, name: &str, vhost: &str, got: impl ToString, cur: impl ToString) -> BrokerError {
    BrokerError::Precondition(format!(
        "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': received '{}' but current is '{}'",
        got.to_string(),
        cur.to_string()
    ))
}

fn default_exchange_refused() -> BrokerError {
    BrokerError::AccessRefused("operation not permitted on the default exchange".into())
}

fn reserved(kind: &str, name: &str) -> BrokerError {
    BrokerError::AccessRefused(format!("{kind} name '{name}' contains reserved prefix 'amq.*'"))
}

impl Broker {
    /// A broker whose metadata changes go to `log` and whose queues keep messages in
    /// `store` (None: memory only, no paging, nothing durable).
    pub fn new(settings: BrokerSettings, log: Box<dyn MetadataLog>, store: Option<Arc<dyn MessageStore>>) -> Self {
        let storage = QueueStorage {
            store,
            memory_window: settings.queue_memory_window,
            budget: Arc::new(MemoryBudget::new(settings.memory_limit)),
            flow_threshold: settings.queue_flow_threshold,
        };
        Broker { vhosts: DashMap::new(), meta_lock: Mutex::new(()), log, storage, next_queue_id: AtomicU64::new(1) }
    }

    /// Bytes of ready messages queues hold in memory.
    pub fn memory_used(&self) -> usize {
        self.storage.budget.used()
    }

    /// Re-creates what the durability layer recovered, without logging it again: vhosts,
    /// exchanges, queues (with their stored messages) and then bindings.
    pub fn restore(&self, r: Recovered) -> Result<(), BrokerError> {
        let _g = self.meta_lock.lock();
        for name in r.vhosts {
            if self.vhost(&name).is_none() {
                self.vhosts.insert(name.clone(), VHost::new(&name));
            }
        }
        for meta in r.exchanges {
            let Some(v) = self.vhost(&meta.vhost) else { continue };
            v.exchanges.insert(meta.name.to_string(), Exchange::new(meta));
        }
        for (meta, state) in r.queues {
            let Some(v) = self.vhost(&meta.vhost) else { continue };
            self.next_queue_id.fetch_max(meta.id + 1, Ordering::Relaxed);
            let name = meta.name.to_string();
            v.queues.insert(name, Queue::create(meta, self.storage.clone(), Some(state)));
        }
        for b in r.bindings {
            let Some(v) = self.vhost(&b.vhost) else { continue };
            let spec = BindSpec {
                source: b.source.clone(),
                dest: b.dest.clone(),
                dest_is_exchange: b.dest_is_exchange,
                routing_key: b.routing_key.clone(),
                arguments: b.arguments.clone(),
            };
            match self.binding_ends(&v, 0, &spec) {
                Ok((source, dest)) => {
                    source.add_binding(Binding { dest, routing_key: b.routing_key, arguments: b.arguments })
                }
                Err(e) => tracing::warn!(error = %e, "dropping recovered binding whose ends are gone"),
            }
        }
        Ok(())
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.iter().map(|v| v.clone()).collect()
    }

    pub fn add_vhost(&self, name: &str) -> Result<Arc<VHost>, BrokerError> {
        let _g = self.meta_lock.lock();
        if let Some(v) = self.vhost(name) {
            return Ok(v);
        }
        self.log.record(&MetaChange::AddVHost { name: name.into() })?;
        let v = VHost::new(name);
        self.vhosts.insert(name.into(), v.clone());
        Ok(v)
    }

    pub fn declare_exchange(&self, vhost: &VHost, d: &ExchangeDeclare) -> Result<Arc<Exchange>, BrokerError> {
        let _g = self.meta_lock.lock();
        // RabbitMQ refuses any declare of the default exchange, passive or not.
        if d.name.is_empty() {
            return Err(default_exchange_refused());
        }
        if d.passive {
            return vhost.exchange(&d.name).ok_or_else(|| BrokerError::not_found("exchange", &d.name, &vhost.name));
        }
        let kind = ExchangeKind::parse(&d.kind)
            .ok_or_else(|| BrokerError::CommandInvalid(format!("unknown exchange type '{}'", d.kind)))?;
        let existing = vhost.exchange(&d.name);
        // The reserved prefix only stops creating: an equivalent redeclare of amq.direct is fine.
        if existing.is_none() && names::is_reserved(&d.name) {
            return Err(reserved("exchange", &d.name));
        }
        if let Some(e) = existing {
            let m = &e.meta;
            let check = |arg, got: String, cur: String| {
                if got != cur {
                    Err(inequivalent("exchange", arg, &d.name, &vhost.name, got, cur))
                } else {
                    Ok(())
                }
            };
            check("type", kind.as_str().into(), m.kind.as_str().into())?;
            check("durable", d.durable.to_string(), m.durable.to_string())?;
            check("auto_delete", d.auto_delete.to_string(), m.auto_delete.to_string())?;
            check("internal", d.internal.to_string(), m.internal.to_string())?;
            return Ok(e);
        }
        let meta = ExchangeMeta {
            name: d.name.as_str().into(),
            vhost: vhost.name.clone(),
            kind,
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
            arguments: d.arguments.clone(),
        };
        self.log.record(&MetaChange::DeclareExchange(meta.clone()))?;
        let e = Exchange::new(meta);
        vhost.exchanges.insert(d.name.clone(), e.clone());
        Ok(e)
    }

    pub fn delete_exchange(&self, vhost: &VHost, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        let _g = self.meta_lock.lock();
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if names::is_reserved(name) {
            return Err(BrokerError::AccessRefused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                vhost.name
            )));
        }
        let Some(e) = vhost.exchange(name) else {
            // RabbitMQ 3.x treats deleting a missing exchange as done.
            return Ok(());
        };
        if if_unused && e.has_bindings() {
            return Err(BrokerError::Precondition(format!("exchange '{name}' in vhost '{}' in use", vhost.name)));
        }
        self.remove_exchange(vhost, &e)
    }

    /// Removes an exchange with its bindings in both directions (lock held by the caller).
    fn remove_exchange(&self, vhost: &VHost, e: &Arc<Exchange>) -> Result<(), BrokerError> {
        self.log.record(&MetaChange::DeleteExchange { vhost: vhost.name.to_string(), name: e.name.to_string() })?;
        vhost.exchanges.remove(&*e.name);
        e.mark_deleted();
        for b in e.bindings() {
            e.remove_binding(&b.dest, &b.routing_key, &b.arguments);
        }
        self.unbind_everywhere(vhost, &Dest::Exchange(e.clone()))
    }

    /// Drops every binding to `dest` and deletes auto-delete exchanges left unbound.
    fn unbind_everywhere(&self, vhost: &VHost, dest: &Dest) -> Result<(), BrokerError> {
        let mut emptied = Vec::new();
        for e in vhost.exchanges() {
            if e.remove_bindings_to(dest) > 0 && e.meta.auto_delete && !e.has_bindings() {
                emptied.push(e);
            }
        }
        for e in emptied {
            if !e.is_deleted() {
                self.remove_exchange(vhost, &e)?;
            }
        }
        Ok(())
    }

    /// Checks that `conn` may use queue `q` (exclusive queues belong to one connection).
    pub fn check_exclusive(&self, q: &Queue, conn: ConnectionId) -> Result<(), BrokerError> {
        match q.meta.exclusive_owner {
            Some(owner) if owner != conn => {
                Err(BrokerError::Locked { name: q.meta.name.to_string(), vhost: q.meta.vhost.to_string() })
            }
            _ => Ok(()),
        }
    }

    pub fn declare_queue(
        &self,
        vhost: &VHost,
        conn: ConnectionId,
        d: &QueueDeclare,
    ) -> Result<DeclaredQueue, BrokerError> {
        let _g = self.meta_lock.lock();
        let found = |q: QueueHandle| DeclaredQueue {
            message_count: q.message_count(),
            consumer_count: q.consumer_count(),
            queue: q,
        };
        if d.passive {
            let q = vhost.queue(&d.name).ok_or_else(|| BrokerError::not_found("queue", &d.name, &vhost.name))?;
            self.check_exclusive(&q, conn)?;
            return Ok(found(q));
        }
        let name = if d.name.is_empty() {
            names::generated_queue_name()
        } else if names::is_reserved(&d.name) {
            return Err(reserved("queue", &d.name));
        } else {
            d.name.clone()
        };
        if let Some(q) = vhost.queue(&name) {
            self.check_exclusive(&q, conn)?;
            let m = &q.meta;
            if d.exclusive != m.exclusive_owner.is_some() {
                return Err(BrokerError::Locked { name, vhost: vhost.name.to_string() });
            }
            if d.durable != m.durable {
                return Err(inequivalent("queue", "durable", &name, &vhost.name, d.durable, m.durable));
            }
            if d.auto_delete != m.auto_delete {
                return Err(inequivalent("queue", "auto_delete", &name, &vhost.name, d.auto_delete, m.auto_delete));
            }
            for (k, v) in d.arguments.inner() {
                if m.arguments.inner().get(k) != Some(v) {
                    let cur = m.arguments.inner().get(k).map(|c| format!("{c:?}")).unwrap_or_else(|| "none".into());
                    return Err(inequivalent("queue", k.as_str(), &name, &vhost.name, format!("{v:?}"), cur));
                }
            }
            return Ok(found(q));
        }
        let meta = QueueMeta {
            id: self.next_queue_id.fetch_add(1, Ordering::Relaxed),
            name: name.as_str().into(),
            vhost: vhost.name.clone(),
            // Kept as declared (redeclares compare it); the store never persists an
            // exclusive queue, as RabbitMQ never keeps one across restarts.
            durable: d.durable,
            exclusive_owner: d.exclusive.then_some(conn),
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
        };
        self.log.record(&MetaChange::DeclareQueue(meta.clone()))?;
        let q = Queue::create(meta, self.storage.clone(), None);
        vhost.queues.insert(name, q.clone());
        Ok(found(q))
    }

    /// queue.delete: returns the number of ready messages the queue held.
    pub fn delete_queue(
        &self,
        vhost: &VHost,
        conn: ConnectionId,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, BrokerError> {
        let _g = self.meta_lock.lock();
        let Some(q) = vhost.queue(name) else {
            // RabbitMQ 3.x: deleting a missing queue succeeds with message_count 0.
            return Ok(0);
        };
        self.check_exclusive(&q, conn)?;
        if if_unused && q.consumer_count() > 0 {
            return Err(BrokerError::Precondition(format!("queue '{name}' in vhost '{}' in use", vhost.name)));
        }
        if if_empty && q.message_count() > 0 {
            return Err(BrokerError::Precondition(format!("queue '{name}' in vhost '{}' not empty", vhost.name)));
        }
        self.remove_queue(vhost, &q)
    }

    /// Deletes a queue without client checks: auto-delete after the last consumer, and
    /// exclusive queues of a closed connection.
    pub fn delete_queue_unchecked(&self, vhost: &VHost, q: &QueueHandle) -> Result<u32, BrokerError> {
        let _g = self.meta_lock.lock();
        if q.is_deleted() {
            return Ok(0);
        }
        self.remove_queue(vhost, q)
    }

    fn remove_queue(&self, vhost: &VHost, q: &QueueHandle) -> Result<u32, BrokerError> {
        self.log.record(&MetaChange::DeleteQueue { vhost: vhost.name.to_string(), name: q.name().into() })?;
        vhost.queues.remove_if(q.name(), |_, v| v == q);
        self.unbind_everywhere(vhost, &Dest::Queue(q.clone()))?;
        Ok(q.mark_deleted())
    }

    /// Deletes the exclusive queues a closing connection owned.
    pub fn connection_closed(&self, conn: ConnectionId) {
        for vhost in self.vhosts() {
            for q in vhost.queues() {
                if q.meta.exclusive_owner == Some(conn) {
                    if let Err(e) = self.delete_queue_unchecked(&vhost, &q) {
                        tracing::error!(queue = q.name(), error = %e, "could not delete exclusive queue");
                    }
                }
            }
        }
    }

    /// Resolves both ends of a binding, with RabbitMQ's checks.
    fn binding_ends(
        &self,
        vhost: &VHost,
        conn: ConnectionId,
        b: &BindSpec,
    ) -> Result<(Arc<Exchange>, Dest), BrokerError> {
        if b.source.is_empty() || (b.dest_is_exchange && b.dest.is_empty()) {
            return Err(default_exchange_refused());
        }
        let source =
            vhost.exchange(&b.source).ok_or_else(|| BrokerError::not_found("exchange", &b.source, &vhost.name))?;
        let dest = if b.dest_is_exchange {
            Dest::Exchange(
                vhost.exchange(&b.dest).ok_or_else(|| BrokerError::not_found("exchange", &b.dest, &vhost.name))?,
            )
        } else {
            let q = vhost.queue(&b.dest).ok_or_else(|| BrokerError::not_found("queue", &b.dest, &vhost.name))?;
            self.check_exclusive(&q, conn)?;
            Dest::Queue(q)
        };
        Ok((source, dest))
    }

    fn record_of(vhost: &VHost, b: &BindSpec, source: &Exchange, dest: &Dest) -> BindingRecord {
        let dest_durable = match dest {
            Dest::Queue(q) => q.meta.durable && q.meta.exclusive_owner.is_none(),
            Dest::Exchange(e) => e.meta.durable,
        };
        BindingRecord {
            vhost: vhost.name.to_string(),
            source: b.source.clone(),
            dest_is_exchange: b.dest_is_exchange,
            dest: b.dest.clone(),
            routing_key: b.routing_key.clone(),
            arguments: b.arguments.clone(),
            durable: source.meta.durable && dest_durable,
        }
    }

    pub fn bind(&self, vhost: &VHost, conn: ConnectionId, b: &BindSpec) -> Result<(), BrokerError> {
        let _g = self.meta_lock.lock();
        let (source, dest) = self.binding_ends(vhost, conn, b)?;
        if source.meta.kind == ExchangeKind::Headers {
            headers::validate_binding_args(&b.arguments).map_err(BrokerError::Precondition)?;
        }
        self.log.record(&MetaChange::Bind(Self::record_of(vhost, b, &source, &dest)))?;
        source.add_binding(Binding { dest, routing_key: b.routing_key.clone(), arguments: b.arguments.clone() });
        Ok(())
    }

    pub fn unbind(&self, vhost: &VHost, conn: ConnectionId, b: &BindSpec) -> Result<(), BrokerError> {
        let _g = self.meta_lock.lock();
        let (source, dest) = match self.binding_ends(vhost, conn, b) {
            Ok(ends) => ends,
            // RabbitMQ 3.x: unbinding from or to something that does not exist is done.
            Err(BrokerError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.log.record(&MetaChange::Unbind(Self::record_of(vhost, b, &source, &dest)))?;
        if source.remove_binding(&dest, &b.routing_key, &b.arguments)
            && source.meta.auto_delete
            && !source.has_bindings()
        {
            self.remove_exchange(vhost, &source)?;
        }
        Ok(())
    }
}
