//! A published message as the broker holds it.
use bytes::Bytes;
use warren_codec::ContentHeader;

/// One message, shared by every queue it was routed to (`Arc<Message>`).
///
/// The exchange and routing key are the raw short-string bytes of the basic.publish frame,
/// and the body is a slice of the connection's read buffer when it arrived in one frame:
/// nothing is copied between the socket that received it and the sockets that deliver it.
#[derive(Debug, Clone)]
pub struct Message {
    pub exchange: Bytes,
    pub routing_key: Bytes,
    /// Kept with its raw bytes, so deliveries re-send the header exactly as published.
    pub header: ContentHeader,
    pub body: Bytes,
}

impl Message {
    /// delivery_mode 2, as RabbitMQ defines persistence.
    pub fn is_persistent(&self) -> bool {
        self.header.delivery_mode() == 2
    }

    /// Approximate bytes this message holds in memory (the struct and its allocation, body,
    /// raw header, names), for the queues' memory windows.
    pub fn memory_size(&self) -> usize {
        const FIXED: usize = std::mem::size_of::<Message>() + 64;
        FIXED + self.body.len() + self.header.raw.len() + self.exchange.len() + self.routing_key.len()
    }

    pub fn routing_key_str(&self) -> &str {
        // The codec validated both as UTF-8 short strings when it parsed basic.publish.
        std::str::from_utf8(&self.routing_key).unwrap_or("")
    }

    pub fn exchange_str(&self) -> &str {
        std::str::from_utf8(&self.exchange).unwrap_or("")
    }
}
