//! The bindings of one exchange, indexed for its type.
use super::headers::headers_match;
use super::topic::TopicTrie;
use super::{Dest, ExchangeKind};
use crate::message::Message;
use amq_protocol::types::FieldTable;
use std::collections::HashMap;

/// A binding from an exchange to a destination.
#[derive(Clone)]
pub struct Binding {
    pub dest: Dest,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl Binding {
    fn same(&self, dest: &Dest, routing_key: &str, arguments: &FieldTable) -> bool {
        self.dest == *dest && self.routing_key == routing_key && self.arguments == *arguments
    }
}

/// Per-type index, so routing a message costs a hash lookup (direct), a walk of the list
/// (fanout), a trie walk (topic) or a scan with header matching (headers).
enum Index {
    Direct(HashMap<String, Vec<Dest>>),
    Fanout(Vec<Dest>),
    Topic(TopicTrie<Dest>),
    Headers,
}

pub(crate) struct Bindings {
    list: Vec<Binding>,
    index: Index,
    /// Bindings per (destination, routing key) and per destination, so that adding a binding
    /// and keeping the index right after a removal do not scan the whole list (with 100,000
    /// bindings, binding them one by one was quadratic).
    per_key: HashMap<(Dest, String), u32>,
    per_dest: HashMap<Dest, u32>,
}

impl Bindings {
    pub fn new(kind: ExchangeKind) -> Self {
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(HashMap::new()),
            ExchangeKind::Fanout => Index::Fanout(Vec::new()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::new()),
            ExchangeKind::Headers => Index::Headers,
        };
        Bindings { list: Vec::new(), index, per_key: HashMap::new(), per_dest: HashMap::new() }
    }

    pub fn list(&self) -> &[Binding] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds a binding; binding twice is a no-op, as in RabbitMQ.
    pub fn add(&mut self, b: Binding) {
        let key = (b.dest.clone(), b.routing_key.clone());
        // Only bindings with the same destination and key can be the same binding; the list is
        // scanned only when there are some (they differ by arguments, which is rare).
        if self.per_key.contains_key(&key) && self.list.iter().any(|x| x.same(&b.dest, &b.routing_key, &b.arguments)) {
            return;
        }
        *self.per_key.entry(key).or_default() += 1;
        *self.per_dest.entry(b.dest.clone()).or_default() += 1;
        match &mut self.index {
            Index::Direct(map) => {
                let dests = map.entry(b.routing_key.clone()).or_default();
                if !dests.contains(&b.dest) {
                    dests.push(b.dest.clone());
                }
            }
            Index::Fanout(dests) => {
                if !dests.contains(&b.dest) {
                    dests.push(b.dest.clone());
                }
            }
            Index::Topic(trie) => {
                trie.insert(&b.routing_key, b.dest.clone());
            }
            Index::Headers => {}
        }
        self.list.push(b);
    }

    /// Removes one binding; returns whether it existed.
    pub fn remove(&mut self, dest: &Dest, routing_key: &str, arguments: &FieldTable) -> bool {
        let Some(i) = self.list.iter().position(|x| x.same(dest, routing_key, arguments)) else {
            return false;
        };
        self.list.remove(i);
        self.forget(dest, routing_key);
        self.reindex_one(dest, routing_key);
        true
    }

    /// Removes every binding to `dest`; returns how many went.
    pub fn remove_dest(&mut self, dest: &Dest) -> usize {
        let before = self.list.len();
        let keys: Vec<String> = self.list.iter().filter(|b| b.dest == *dest).map(|b| b.routing_key.clone()).collect();
        self.list.retain(|b| b.dest != *dest);
        for k in &keys {
            self.forget(dest, k);
        }
        for k in keys {
            self.reindex_one(dest, &k);
        }
        before - self.list.len()
    }

    /// Takes one binding of (`dest`, `routing_key`) off the counts.
    fn forget(&mut self, dest: &Dest, routing_key: &str) {
        let key = (dest.clone(), routing_key.to_string());
        if let Some(n) = self.per_key.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_key.remove(&key);
            }
        }
        if let Some(n) = self.per_dest.get_mut(dest) {
            *n -= 1;
            if *n == 0 {
                self.per_dest.remove(dest);
            }
        }
    }

    /// After a removal, drops `dest` under `routing_key` from the index unless another
    /// binding (same key, other arguments) still puts it there.
    fn reindex_one(&mut self, dest: &Dest, routing_key: &str) {
        let still_fanout = self.per_dest.contains_key(dest);
        let still_keyed = self.per_key.contains_key(&(dest.clone(), routing_key.to_string()));
        match &mut self.index {
            Index::Direct(map) => {
                if !still_keyed {
                    if let Some(v) = map.get_mut(routing_key) {
                        v.retain(|d| d != dest);
                        if v.is_empty() {
                            map.remove(routing_key);
                        }
                    }
                }
            }
            Index::Fanout(dests) => {
                if !still_fanout {
                    dests.retain(|d| d != dest);
                }
            }
            Index::Topic(trie) => {
                if !still_keyed {
                    trie.remove(routing_key, dest);
                }
            }
            Index::Headers => {}
        }
    }

    /// Calls `f` for each destination the message matches (a destination may repeat when
    /// several bindings match; the caller de-duplicates queues).
    pub fn for_each_match(&self, msg: &Message, mut f: impl FnMut(&Dest)) {
        match &self.index {
            Index::Direct(map) => {
                if let Some(dests) = map.get(msg.routing_key_str()) {
                    dests.iter().for_each(f);
                }
            }
            Index::Fanout(dests) => dests.iter().for_each(f),
            Index::Topic(trie) => trie.for_each_match(msg.routing_key_str(), f),
            Index::Headers => {
                // Parsed per message: only headers exchanges pay for it.
                let props = msg.header.properties();
                let headers = props.headers().as_ref();
                for b in &self.list {
                    if headers_match(&b.arguments, headers) {
                        f(&b.dest);
                    }
                }
            }
        }
    }
}
