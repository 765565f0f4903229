//! Blocking a publishing connection while a resource alarm is on (RabbitMQ's
//! `rabbit_reader` throttle).
//!
//! RabbitMQ's rule: a connection is blocked when a content frame (a publish's header or body)
//! arrives while an alarm is on; from then on it reads nothing more from its socket, not even
//! the frames already buffered, until every alarm has cleared. If the client advertised the
//! `connection.blocked` capability it is told (`connection.blocked` with the reason, once per
//! blocking) and then `connection.unblocked`. Connections that never publish during an alarm
//! are never blocked, so consumers keep acking and memory can drain.
use crate::alarm::Alarms;
use amq_protocol::protocol::{connection, AMQPClass};
use std::sync::Arc;
use warren_codec::{encode_method, OutBuf};

pub(crate) struct Throttle {
    pub alarms: Arc<Alarms>,
    /// The client asked for connection.blocked / connection.unblocked.
    notify: bool,
    /// Not reading until every alarm clears.
    blocked: bool,
    /// connection.blocked went out; connection.unblocked is owed.
    told: bool,
}

impl Throttle {
    pub fn new(alarms: Arc<Alarms>, notify: bool) -> Throttle {
        Throttle { alarms, notify, blocked: false, told: false }
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// A content frame arrived in a read pass that found an alarm on: stop reading, and say
    /// why if asked. False (and nothing changes) if the alarm has cleared since.
    pub fn block(&mut self, out: &mut OutBuf) -> bool {
        let Some(reason) = self.alarms.reason() else { return false };
        self.blocked = true;
        if self.notify && !self.told {
            self.told = true;
            let blocked = connection::Blocked { reason: reason.into() };
            encode_method(out.tail(), 0, &AMQPClass::Connection(connection::AMQPMethod::Blocked(blocked)));
        }
        true
    }

    /// Every alarm has cleared: read again, and say so if we said we blocked.
    pub fn unblock(&mut self, out: &mut OutBuf) {
        self.blocked = false;
        if std::mem::take(&mut self.told) {
            let unblocked = connection::AMQPMethod::Unblocked(connection::Unblocked {});
            encode_method(out.tail(), 0, &AMQPClass::Connection(unblocked));
        }
    }
}
