//! Binding bookkeeping: duplicates, bindings that differ only by arguments, and removals.
use crate::{BindSpec, Broker, BrokerSettings, ExchangeDeclare, InMemoryOnly, Message, QueueDeclare};
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;
use warren_codec::ContentHeader;

fn args(v: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-tag".into(), AMQPValue::LongString(v.into()));
    t
}

#[test]
fn same_binding_twice_is_one_and_arguments_make_another() {
    let broker = Broker::new(BrokerSettings::default(), Box::new(InMemoryOnly), None);
    let vhost = broker.add_vhost("/").unwrap();
    for kind in ["direct", "topic", "fanout"] {
        let ex = broker
            .declare_exchange(&vhost, &ExchangeDeclare { name: kind.into(), kind: kind.into(), ..Default::default() })
            .unwrap();
        let q = format!("{kind}-q");
        broker.declare_queue(&vhost, 1, &QueueDeclare { name: q.clone(), ..Default::default() }).unwrap();
        let spec = |a: &str| BindSpec {
            source: kind.into(),
            dest: q.clone(),
            routing_key: "k".into(),
            arguments: args(a),
            ..Default::default()
        };
        let msg = Message {
            exchange: Bytes::copy_from_slice(kind.as_bytes()),
            routing_key: Bytes::from_static(b"k"),
            header: ContentHeader::new(60, 0, BasicProperties::default()),
            body: Bytes::new(),
        };
        let routed = || {
            let mut out = Vec::new();
            vhost.route(&ex, &msg, &mut out);
            out.len()
        };
        broker.bind(&vhost, 1, &spec("a")).unwrap();
        broker.bind(&vhost, 1, &spec("a")).unwrap();
        assert_eq!(ex.bindings().len(), 1, "{kind}: binding twice is a no-op");
        broker.bind(&vhost, 1, &spec("b")).unwrap();
        assert_eq!(ex.bindings().len(), 2, "{kind}: other arguments, another binding");
        broker.unbind(&vhost, 1, &spec("a")).unwrap();
        assert_eq!(routed(), 1, "{kind}: the other binding still routes");
        broker.unbind(&vhost, 1, &spec("b")).unwrap();
        assert_eq!((ex.bindings().len(), routed()), (0, 0), "{kind}: nothing left");
        broker.bind(&vhost, 1, &spec("a")).unwrap();
        assert_eq!(routed(), 1, "{kind}: binding again after removing works");
    }
}
