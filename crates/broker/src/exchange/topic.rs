//! Topic-exchange matching, as RabbitMQ does it (`rabbit_exchange_type_topic` and its trie in
//! `rabbit_db_topic_exchange`).
//!
//! Binding keys and routing keys are split into words on `.`. In a binding key, `*` matches
//! exactly one word and `#` matches zero or more words; every other word (including the empty
//! word) matches only itself, and `*`/`#` are wildcards only as whole words (`a#` is literal).
//! Splitting follows RabbitMQ's `split_topic_key` exactly: the empty string has **zero** words
//! (so `""` matches the keys `""`, `#`, `#.#` but not `*`), while `"a..b"` has three words and
//! `"."` two empty words.
//!
//! RabbitMQ walks its trie by backtracking over every way each `#` can absorb words, which is
//! exponential in the number of `#` (3.10 spins for minutes on `#.#.#.#.#.#.#.#.a` against 40
//! words). The set of matching bindings only depends on which trie nodes are reachable after
//! each word, so this module instead runs the trie as an NFA: it keeps the set of live nodes
//! (de-duplicated) and advances it one word at a time. The cost is O(words × live nodes), never
//! worse than O(words × trie size), whatever the patterns.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;

/// Index of a node in [`TopicTrie::nodes`]; the root is node 0.
type NodeId = u32;
/// Index of an interned destination in [`TopicTrie::dests`].
type DestId = u32;

const ROOT: NodeId = 0;

#[derive(Default)]
struct Node {
    /// Children through a literal word. Empty maps do not allocate, and most nodes are leaves.
    words: HashMap<Box<str>, NodeId>,
    /// Child through `*`.
    star: Option<NodeId>,
    /// Child through `#`.
    hash: Option<NodeId>,
    /// True when this node is reached through a `#` edge: such a node may absorb any number of
    /// further words while staying where it is.
    is_hash: bool,
    /// Destinations bound with exactly the pattern that ends at this node. Usually a handful, so
    /// a vector (linear membership checks on bind/unbind, none on the routing path).
    dests: Vec<DestId>,
}

impl Node {
    fn is_prunable(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

/// An interned destination: the value and how many patterns bind it.
struct DestSlot<D> {
    dest: D,
    patterns: u32,
}

/// Bindings of one topic exchange: pattern → destinations, matched against routing keys.
/// `D` is the destination id (a small `Clone + Eq + Hash` value).
///
/// Destinations are interned to small integers so that matching can de-duplicate them with an
/// epoch-stamped array instead of a hash set.
pub struct TopicTrie<D> {
    /// Node arena; `free_nodes` lists slots of pruned nodes for reuse.
    nodes: Vec<Node>,
    free_nodes: Vec<NodeId>,
    dests: Vec<Option<DestSlot<D>>>,
    dest_ids: HashMap<D, DestId>,
    free_dests: Vec<DestId>,
    /// Number of (pattern, destination) pairs.
    len: usize,
}

impl<D: Clone + Eq + Hash> Default for TopicTrie<D> {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-thread scratch for [`TopicTrie::for_each_match`], so routing does not allocate once the
/// vectors have grown to the largest trie and key seen on this thread.
///
/// Kept as a small stack rather than a single value: a callback may route again (an exchange
/// bound to another topic exchange) while the outer match is still running, and each nesting
/// level then takes its own scratch instead of panicking on a double borrow.
#[derive(Default)]
struct Scratch {
    /// Live nodes before and after the current word.
    cur: Vec<NodeId>,
    next: Vec<NodeId>,
    /// `node_mark[n] == epoch` means node `n` is already in the set being built.
    node_mark: Vec<u32>,
    /// `dest_mark[d] == epoch` means destination `d` was already reported.
    dest_mark: Vec<u32>,
    epoch: u32,
}

impl Scratch {
    /// Starts a new de-duplication round; clears the marks when the counter wraps.
    fn bump(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.node_mark.iter_mut().for_each(|m| *m = 0);
            self.dest_mark.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        self.epoch
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

/// Splits a topic key into words exactly as RabbitMQ does: the empty key has no words.
fn words(key: &str) -> impl Iterator<Item = &str> {
    let mut it = key.split('.');
    if key.is_empty() {
        it.next();
    }
    it
}

impl<D: Clone + Eq + Hash> TopicTrie<D> {
    pub fn new() -> Self {
        TopicTrie {
            nodes: vec![Node::default()],
            free_nodes: Vec::new(),
            dests: Vec::new(),
            dest_ids: HashMap::new(),
            free_dests: Vec::new(),
            len: 0,
        }
    }

    /// True when no binding is left.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of (pattern, destination) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    fn alloc_node(&mut self, is_hash: bool) -> NodeId {
        let node = Node { is_hash, ..Node::default() };
        if let Some(id) = self.free_nodes.pop() {
            self.nodes[id as usize] = node;
            id
        } else {
            self.nodes.push(node);
            NodeId::try_from(self.nodes.len() - 1).expect("topic trie exceeds u32 nodes")
        }
    }

    fn child(&self, node: NodeId, word: &str) -> Option<NodeId> {
        let n = &self.nodes[node as usize];
        match word {
            "*" => n.star,
            "#" => n.hash,
            w => n.words.get(w).copied(),
        }
    }

    fn child_or_insert(&mut self, node: NodeId, word: &str) -> NodeId {
        if let Some(c) = self.child(node, word) {
            return c;
        }
        let c = self.alloc_node(word == "#");
        let n = &mut self.nodes[node as usize];
        match word {
            "*" => n.star = Some(c),
            "#" => n.hash = Some(c),
            w => {
                n.words.insert(w.into(), c);
            }
        }
        c
    }

    fn intern(&mut self, dest: D) -> DestId {
        if let Some(&id) = self.dest_ids.get(&dest) {
            return id;
        }
        let slot = Some(DestSlot { dest: dest.clone(), patterns: 0 });
        let id = if let Some(id) = self.free_dests.pop() {
            self.dests[id as usize] = slot;
            id
        } else {
            self.dests.push(slot);
            DestId::try_from(self.dests.len() - 1).expect("topic trie exceeds u32 destinations")
        };
        self.dest_ids.insert(dest, id);
        id
    }

    /// Binds `dest` with `pattern`; returns false if that pair was already bound.
    pub fn insert(&mut self, pattern: &str, dest: D) -> bool {
        let mut node = ROOT;
        for w in words(pattern) {
            node = self.child_or_insert(node, w);
        }
        let id = self.intern(dest);
        let n = &mut self.nodes[node as usize];
        if n.dests.contains(&id) {
            return false;
        }
        n.dests.push(id);
        if let Some(slot) = self.dests[id as usize].as_mut() {
            slot.patterns += 1;
        }
        self.len += 1;
        true
    }

    /// Unbinds `dest` from `pattern`; returns false if that pair was not bound. Nodes left with
    /// neither destinations nor children are freed.
    pub fn remove(&mut self, pattern: &str, dest: &D) -> bool {
        let Some(&id) = self.dest_ids.get(dest) else {
            return false;
        };
        // The path from the root, to prune bottom-up afterwards (unbinding is off the hot path).
        let mut path: Vec<(NodeId, &str)> = Vec::new();
        let mut node = ROOT;
        for w in words(pattern) {
            let Some(c) = self.child(node, w) else {
                return false;
            };
            path.push((node, w));
            node = c;
        }
        let n = &mut self.nodes[node as usize];
        let Some(pos) = n.dests.iter().position(|&d| d == id) else {
            return false;
        };
        n.dests.swap_remove(pos);
        self.len -= 1;

        let slot = self.dests[id as usize].as_mut().expect("interned destination has a slot");
        slot.patterns -= 1;
        if slot.patterns == 0 {
            self.dests[id as usize] = None;
            self.dest_ids.remove(dest);
            self.free_dests.push(id);
        }

        while let Some((parent, w)) = path.pop() {
            if !self.nodes[node as usize].is_prunable() {
                break;
            }
            let p = &mut self.nodes[parent as usize];
            match w {
                "*" => p.star = None,
                "#" => p.hash = None,
                w => {
                    p.words.remove(w);
                }
            }
            self.nodes[node as usize] = Node::default();
            self.free_nodes.push(node);
            node = parent;
        }
        true
    }

    /// Calls `f` once per distinct destination whose pattern matches `routing_key`, even when
    /// several patterns of the same destination match. Order is unspecified.
    ///
    /// Allocation: the working sets live in a thread-local scratch that is reused, so after the
    /// first calls on a thread (which size it to the largest trie seen) a match allocates
    /// nothing. `f` may itself call `for_each_match` (on this or another trie).
    pub fn for_each_match(&self, routing_key: &str, f: impl FnMut(&D)) {
        if self.is_empty() {
            return;
        }
        let mut scratch = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
        self.for_each_match_in(routing_key, &mut scratch, f);
        SCRATCH.with(|s| s.borrow_mut().push(scratch));
    }

    fn for_each_match_in(&self, routing_key: &str, s: &mut Scratch, mut f: impl FnMut(&D)) {
        if s.node_mark.len() < self.nodes.len() {
            s.node_mark.resize(self.nodes.len(), 0);
        }
        if s.dest_mark.len() < self.dests.len() {
            s.dest_mark.resize(self.dests.len(), 0);
        }
        s.cur.clear();
        let epoch = s.bump();
        self.add_closure(ROOT, &mut s.cur, &mut s.node_mark, epoch);

        for word in words(routing_key) {
            let epoch = s.bump();
            s.next.clear();
            for i in 0..s.cur.len() {
                let n = &self.nodes[s.cur[i] as usize];
                // A `#` node absorbs this word and stays live.
                if n.is_hash {
                    self.add_closure(s.cur[i], &mut s.next, &mut s.node_mark, epoch);
                }
                // A literal lookup also follows a `*` or `#` edge when the routing key itself has
                // that word, as RabbitMQ's trie lookup does; it changes nothing, since those edges
                // accept any word anyway.
                if let Some(&c) = n.words.get(word) {
                    self.add_closure(c, &mut s.next, &mut s.node_mark, epoch);
                }
                if let Some(c) = n.star {
                    self.add_closure(c, &mut s.next, &mut s.node_mark, epoch);
                }
            }
            std::mem::swap(&mut s.cur, &mut s.next);
            if s.cur.is_empty() {
                return;
            }
        }

        let epoch = s.bump();
        for &node in &s.cur {
            for &d in &self.nodes[node as usize].dests {
                if s.dest_mark[d as usize] != epoch {
                    s.dest_mark[d as usize] = epoch;
                    if let Some(slot) = &self.dests[d as usize] {
                        f(&slot.dest);
                    }
                }
            }
        }
    }

    /// Adds `node` and everything reachable from it through `#` edges (a `#` may match zero
    /// words) to `set`, skipping nodes already marked in this round.
    fn add_closure(&self, mut node: NodeId, set: &mut Vec<NodeId>, mark: &mut [u32], epoch: u32) {
        loop {
            if mark[node as usize] == epoch {
                return;
            }
            mark[node as usize] = epoch;
            set.push(node);
            match self.nodes[node as usize].hash {
                Some(h) => node = h,
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(trie: &TopicTrie<String>, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        trie.for_each_match(key, |d| out.push(d.clone()));
        let n = out.len();
        out.sort();
        out.dedup();
        assert_eq!(n, out.len(), "a destination was reported twice for {key:?}");
        out
    }

    fn single(pattern: &str, key: &str) -> bool {
        let mut t = TopicTrie::new();
        t.insert(pattern, "q".to_string());
        !matches(&t, key).is_empty()
    }

    fn sorted(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// The bindings of RabbitMQ's tutorial 5 ("Topics").
    #[test]
    fn tutorial_bindings() {
        let mut t = TopicTrie::new();
        assert!(t.insert("*.orange.*", "Q1".to_string()));
        assert!(t.insert("*.*.rabbit", "Q2".to_string()));
        assert!(t.insert("lazy.#", "Q2".to_string()));
        let cases: &[(&str, &[&str])] = &[
            ("quick.orange.rabbit", &["Q1", "Q2"]),
            ("lazy.orange.elephant", &["Q1", "Q2"]),
            ("quick.orange.fox", &["Q1"]),
            ("lazy.brown.fox", &["Q2"]),
            // Matches both Q2 patterns, delivered once.
            ("lazy.pink.rabbit", &["Q2"]),
            ("quick.brown.fox", &[]),
            ("orange", &[]),
            ("quick.orange.new.rabbit", &[]),
            ("lazy.orange.new.rabbit", &["Q2"]),
            ("lazy", &["Q2"]),
        ];
        for (key, want) in cases {
            assert_eq!(matches(&t, key), sorted(want), "key {key:?}");
        }
    }

    /// The bindings named in the task brief: `A.error.*`, `B.#`, `*.*.email`.
    #[test]
    fn brief_bindings() {
        let mut t = TopicTrie::new();
        t.insert("A.error.*", "errors".to_string());
        t.insert("B.#", "b-all".to_string());
        t.insert("*.*.email", "email".to_string());
        let cases: &[(&str, &[&str])] = &[
            ("A.error.disk", &["errors"]),
            ("A.error.email", &["email", "errors"]),
            ("A.error", &[]),
            ("A.error.disk.full", &[]),
            ("B", &["b-all"]),
            ("B.x.email", &["b-all", "email"]),
            ("C.x.email", &["email"]),
            ("b.x", &[]),
            ("", &[]),
        ];
        for (key, want) in cases {
            assert_eq!(matches(&t, key), sorted(want), "key {key:?}");
        }
    }

    /// The bindings of RabbitMQ's routing_SUITE (`topic1`).
    fn rabbit_suite_trie() -> TopicTrie<String> {
        let bindings = [
            ("a.b.c", "t1"),
            ("a.*.c", "t2"),
            ("a.#.b", "t3"),
            ("a.b.b.c", "t4"),
            ("#", "t5"),
            ("#.#", "t6"),
            ("#.b", "t7"),
            ("*.*", "t8"),
            ("a.*", "t9"),
            ("*.b.c", "t10"),
            ("a.#", "t11"),
            ("a.#.#", "t12"),
            ("b.b.c", "t13"),
            ("a.b.b", "t14"),
            ("a.b", "t15"),
            ("b.c", "t16"),
            ("", "t17"),
            ("*.*.*", "t18"),
            ("vodka.martini", "t19"),
            ("a.b.c", "t20"),
            ("*.#", "t21"),
            ("#.*.#", "t22"),
            ("*.#.#", "t23"),
            ("#.#.#", "t24"),
            ("*", "t25"),
            ("#.b.#", "t26"),
            ("args-test", "t27"),
        ];
        let mut t = TopicTrie::new();
        for (p, d) in bindings {
            assert!(t.insert(p, d.to_string()), "{p} -> {d}");
        }
        // The suite binds t27 twice with different arguments; the trie holds the pair once
        // (the caller keeps the argument variants).
        assert!(!t.insert("args-test", "t27".to_string()));
        t
    }

    #[test]
    fn rabbitmq_routing_suite_vectors() {
        let mut t = rabbit_suite_trie();
        let before: &[(&str, &[&str])] = &[
            ("a.b.c", &["t1", "t2", "t5", "t6", "t10", "t11", "t12", "t18", "t20", "t21", "t22", "t23", "t24", "t26"]),
            ("a.b", &["t3", "t5", "t6", "t7", "t8", "t9", "t11", "t12", "t15", "t21", "t22", "t23", "t24", "t26"]),
            ("a.b.b", &["t3", "t5", "t6", "t7", "t11", "t12", "t14", "t18", "t21", "t22", "t23", "t24", "t26"]),
            ("", &["t5", "t6", "t17", "t24"]),
            ("b.c.c", &["t5", "t6", "t18", "t21", "t22", "t23", "t24", "t26"]),
            ("a.a.a.a.a", &["t5", "t6", "t11", "t12", "t21", "t22", "t23", "t24"]),
            ("vodka.gin", &["t5", "t6", "t8", "t21", "t22", "t23", "t24"]),
            ("vodka.martini", &["t5", "t6", "t8", "t19", "t21", "t22", "t23", "t24"]),
            ("b.b.c", &["t5", "t6", "t10", "t13", "t18", "t21", "t22", "t23", "t24", "t26"]),
            ("nothing.here.at.all", &["t5", "t6", "t21", "t22", "t23", "t24"]),
            ("oneword", &["t5", "t6", "t21", "t22", "t23", "t24", "t25"]),
            ("args-test", &["t5", "t6", "t21", "t22", "t23", "t24", "t25", "t27"]),
        ];
        for (key, want) in before {
            assert_eq!(matches(&t, key), sorted(want), "key {key:?}");
        }

        // The suite removes bindings 1, 5, 11, 19, 21 and 28 (the second t27 variant, which
        // leaves t27 routed through the first one, so it stays in the trie here).
        for (p, d) in [("a.b.c", "t1"), ("#", "t5"), ("a.#", "t11"), ("vodka.martini", "t19"), ("*.#", "t21")] {
            assert!(t.remove(p, &d.to_string()), "{p} -> {d}");
        }
        let after: &[(&str, &[&str])] = &[
            ("a.b.c", &["t2", "t6", "t10", "t12", "t18", "t20", "t22", "t23", "t24", "t26"]),
            ("a.b", &["t3", "t6", "t7", "t8", "t9", "t12", "t15", "t22", "t23", "t24", "t26"]),
            ("a.b.b", &["t3", "t6", "t7", "t12", "t14", "t18", "t22", "t23", "t24", "t26"]),
            ("", &["t6", "t17", "t24"]),
            ("b.c.c", &["t6", "t18", "t22", "t23", "t24", "t26"]),
            ("a.a.a.a.a", &["t6", "t12", "t22", "t23", "t24"]),
            ("vodka.gin", &["t6", "t8", "t22", "t23", "t24"]),
            ("vodka.martini", &["t6", "t8", "t22", "t23", "t24"]),
            ("b.b.c", &["t6", "t10", "t13", "t18", "t22", "t23", "t24", "t26"]),
            ("nothing.here.at.all", &["t6", "t22", "t23", "t24"]),
            ("oneword", &["t6", "t22", "t23", "t24", "t25"]),
            ("args-test", &["t6", "t22", "t23", "t24", "t25", "t27"]),
        ];
        for (key, want) in after {
            assert_eq!(matches(&t, key), sorted(want), "after removal, key {key:?}");
        }
    }

    /// Single pattern/key pairs, each checked against RabbitMQ 3.10.8 (a topic exchange with one
    /// binding, a mandatory publish, and whether it was returned).
    #[test]
    fn edge_cases_confirmed_against_rabbitmq() {
        let cases: &[(&str, &str, bool)] = &[
            // The empty routing key has zero words.
            ("#", "", true),
            ("*", "", false),
            ("", "", true),
            ("#.#", "", true),
            ("*.#", "", false),
            ("#.*", "", false),
            ("", "a", false),
            (".", "", false),
            // `#` may match zero words at the end.
            ("a.#", "a", true),
            ("a.#", "a.", true),
            ("a.*", "a.", true),
            ("a.*", "a", false),
            // Empty words are words.
            ("*", ".", false),
            ("*.*", ".", true),
            ("#", ".", true),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("a.#.b", "a..b", true),
            ("a.b", "a..b", false),
            ("*", "a", true),
            // Several `#` in a row.
            ("a.#.#.b", "a.b", true),
            ("#.#.#.a", "b.b.b.b.b.b.b.b.b.a", true),
            ("#.#.#.a", "b.b.b.b.b.b.b.b.b.b", false),
            ("#.a.#.a", "a.a", true),
            ("#.a.#.a", "a", false),
            // Wildcards only as whole words; wildcard characters in routing keys are literal.
            ("a#", "a#", true),
            ("a#", "ab", false),
            ("a*", "ab", false),
            ("#a", "a", false),
            ("a.#", "a.#", true),
            ("*", "*", true),
            ("a.*", "a.#", true),
        ];
        for &(pattern, key, want) in cases {
            assert_eq!(single(pattern, key), want, "pattern {pattern:?} key {key:?}");
        }
    }

    /// Many `#` must not make matching exponential: RabbitMQ's backtracking would explore
    /// C(48, 8) ≈ 3.8e8 paths here. The NFA walk visits at most 9 live nodes per word, so this
    /// finishes at once; a regression to backtracking would hang the test.
    #[test]
    fn many_hashes_do_not_backtrack_exponentially() {
        let mut t = TopicTrie::new();
        t.insert("#.#.#.#.#.#.#.#.a", "q".to_string());
        t.insert("#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z.#.#.#.#.#.#.#.#.#.y", "r".to_string());
        let mut key = vec!["b"; 39];
        key.push("a");
        assert_eq!(matches(&t, &key.join(".")), vec!["q".to_string()]);
        key[39] = "b";
        assert!(matches(&t, &key.join(".")).is_empty());
        let long = vec!["w"; 200].join(".");
        assert!(matches(&t, &format!("{long}.z.{long}.y")).contains(&"r".to_string()));
        assert!(matches(&t, &format!("{long}.y.{long}.z")).is_empty());
    }

    #[test]
    fn insert_reports_duplicates_and_same_dest_matches_once() {
        let mut t = TopicTrie::new();
        assert!(t.is_empty());
        assert!(t.insert("a.*", "q".to_string()));
        assert!(!t.insert("a.*", "q".to_string()));
        assert!(t.insert("a.#", "q".to_string()));
        assert!(t.insert("#", "q".to_string()));
        assert!(t.insert("a.*", "other".to_string()));
        assert_eq!(t.len(), 4);
        let mut calls = 0;
        t.for_each_match("a.b", |d| {
            calls += 1;
            assert!(d == "q" || d == "other");
        });
        assert_eq!(calls, 2);
    }

    #[test]
    fn remove_prunes_and_keeps_other_bindings() {
        let mut t = TopicTrie::new();
        t.insert("a.b.c", "q1".to_string());
        t.insert("a.b.#", "q2".to_string());
        t.insert("a.*.c", "q1".to_string());
        assert!(!t.remove("a.b.c", &"q2".to_string()), "pair never bound");
        assert!(!t.remove("x.y", &"q1".to_string()), "pattern never bound");
        assert!(!t.remove("a.b.c", &"nobody".to_string()), "unknown destination");

        assert!(t.remove("a.b.c", &"q1".to_string()));
        assert!(!t.remove("a.b.c", &"q1".to_string()), "already removed");
        assert_eq!(matches(&t, "a.b.c"), sorted(&["q1", "q2"]), "q1 still bound via a.*.c");
        assert!(t.remove("a.*.c", &"q1".to_string()));
        assert_eq!(matches(&t, "a.b.c"), sorted(&["q2"]));
        assert!(t.remove("a.b.#", &"q2".to_string()));
        assert!(t.is_empty());
        assert!(matches(&t, "a.b.c").is_empty());

        // Everything but the root was pruned, and the freed slots are reused.
        let live = t.nodes.len() - t.free_nodes.len();
        assert_eq!(live, 1);
        let arena = t.nodes.len();
        t.insert("a.b.c", "q3".to_string());
        t.insert("a.b.#", "q3".to_string());
        assert_eq!(t.nodes.len(), arena);
        assert_eq!(matches(&t, "a.b.c"), sorted(&["q3"]));
        assert_eq!(t.dest_ids.len(), 1, "unbound destinations are forgotten");
    }

    #[test]
    fn remove_keeps_shared_prefix_nodes() {
        let mut t = TopicTrie::new();
        t.insert("a.b", "q1".to_string());
        t.insert("a.b.c", "q2".to_string());
        t.insert("a", "q3".to_string());
        assert!(t.remove("a.b.c", &"q2".to_string()));
        assert_eq!(matches(&t, "a.b"), sorted(&["q1"]));
        assert_eq!(matches(&t, "a"), sorted(&["q3"]));
        assert!(t.remove("a.b", &"q1".to_string()));
        assert_eq!(matches(&t, "a"), sorted(&["q3"]));
        assert!(matches(&t, "a.b").is_empty());
        assert_eq!(t.nodes.len() - t.free_nodes.len(), 2, "root and `a` remain");
    }

    #[test]
    fn callback_may_match_again() {
        let mut inner = TopicTrie::new();
        inner.insert("x.#", "inner".to_string());
        let mut outer = TopicTrie::new();
        outer.insert("x.*", "outer".to_string());
        let mut seen = Vec::new();
        outer.for_each_match("x.y", |d| {
            seen.push(d.clone());
            inner.for_each_match("x.y", |d2| seen.push(d2.clone()));
        });
        assert_eq!(seen, vec!["outer".to_string(), "inner".to_string()]);
    }

    /// Compares the trie with a direct recursive matcher over many generated patterns and keys.
    #[test]
    fn agrees_with_reference_matcher() {
        fn reference(p: &[&str], k: &[&str]) -> bool {
            match p.split_first() {
                None => k.is_empty(),
                Some((&"#", rest)) => (0..=k.len()).any(|i| reference(rest, &k[i..])),
                Some((&"*", rest)) => !k.is_empty() && reference(rest, &k[1..]),
                Some((w, rest)) => k.first() == Some(w) && reference(rest, &k[1..]),
            }
        }
        let alphabet = ["a", "b", "", "*", "#"];
        // Every pattern of up to 4 words over the alphabet, plus the empty pattern.
        let mut patterns = vec![String::new()];
        let mut frontier = vec![String::new()];
        for len in 1..=4 {
            let mut next = Vec::new();
            for p in &frontier {
                for w in alphabet {
                    let q = if len == 1 { w.to_string() } else { format!("{p}.{w}") };
                    next.push(q);
                }
            }
            patterns.extend(next.iter().cloned());
            frontier = next;
        }
        let mut t = TopicTrie::new();
        for (i, p) in patterns.iter().enumerate() {
            // Two destinations per pattern class so dedup across patterns is exercised too.
            t.insert(p, (i % 97).to_string());
        }
        let key_alphabet = ["a", "b", ""];
        let mut keys = vec![String::new()];
        let mut frontier = vec![String::new()];
        for len in 1..=5 {
            let mut next = Vec::new();
            for k in &frontier {
                for w in key_alphabet {
                    next.push(if len == 1 { w.to_string() } else { format!("{k}.{w}") });
                }
            }
            keys.extend(next.iter().cloned());
            frontier = next;
        }
        let split = |s: &str| -> Vec<String> { words(s).map(str::to_string).collect() };
        for k in &keys {
            let kw = split(k);
            let kw: Vec<&str> = kw.iter().map(String::as_str).collect();
            let mut want: Vec<String> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    let pw = split(p);
                    let pw: Vec<&str> = pw.iter().map(String::as_str).collect();
                    reference(&pw, &kw)
                })
                .map(|(i, _)| (i % 97).to_string())
                .collect();
            want.sort();
            want.dedup();
            assert_eq!(matches(&t, k), want, "key {k:?}");
        }
        // Remove everything again; the trie must end empty and fully pruned.
        for (i, p) in patterns.iter().enumerate() {
            assert!(t.remove(p, &(i % 97).to_string()), "{p}");
        }
        assert!(t.is_empty());
        assert_eq!(t.nodes.len() - t.free_nodes.len(), 1);
        assert!(t.dest_ids.is_empty());
    }
}
