//! Metadata records as stored (JSON: small, rare, and readable when debugging a data dir).
use amq_protocol::types::FieldTable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warren_broker::exchange::{ExchangeKind, ExchangeMeta};
use warren_broker::queue::QueueMeta;
use warren_broker::BindingRecord;

#[derive(Serialize, Deserialize)]
pub struct ExchangeRow {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Serialize, Deserialize)]
pub struct QueueRow {
    pub id: u64,
    pub vhost: String,
    pub name: String,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Serialize, Deserialize)]
pub struct BindingRow {
    pub vhost: String,
    pub source: String,
    pub dest_is_exchange: bool,
    pub dest: String,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl ExchangeRow {
    pub fn from_meta(m: &ExchangeMeta) -> Self {
        ExchangeRow {
            vhost: m.vhost.to_string(),
            name: m.name.to_string(),
            kind: m.kind.as_str().into(),
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments.clone(),
        }
    }

    pub fn into_meta(self) -> Option<ExchangeMeta> {
        Some(ExchangeMeta {
            name: self.name.into(),
            vhost: self.vhost.into(),
            kind: ExchangeKind::parse(&self.kind)?,
            durable: true,
            auto_delete: self.auto_delete,
            internal: self.internal,
            arguments: self.arguments,
        })
    }
}

impl QueueRow {
    pub fn from_meta(m: &QueueMeta) -> Self {
        QueueRow {
            id: m.id,
            vhost: m.vhost.to_string(),
            name: m.name.to_string(),
            auto_delete: m.auto_delete,
            arguments: m.arguments.clone(),
        }
    }

    pub fn into_meta(self) -> QueueMeta {
        QueueMeta {
            id: self.id,
            name: Arc::from(self.name),
            vhost: Arc::from(self.vhost),
            durable: true,
            exclusive_owner: None,
            auto_delete: self.auto_delete,
            arguments: self.arguments,
        }
    }
}

impl BindingRow {
    pub fn from_record(b: &BindingRecord) -> Self {
        BindingRow {
            vhost: b.vhost.clone(),
            source: b.source.clone(),
            dest_is_exchange: b.dest_is_exchange,
            dest: b.dest.clone(),
            routing_key: b.routing_key.clone(),
            arguments: b.arguments.clone(),
        }
    }

    pub fn into_record(self) -> BindingRecord {
        BindingRecord {
            vhost: self.vhost,
            source: self.source,
            dest_is_exchange: self.dest_is_exchange,
            dest: self.dest,
            routing_key: self.routing_key,
            arguments: self.arguments,
            durable: true,
        }
    }
}
