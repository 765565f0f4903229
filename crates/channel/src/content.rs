//! Assembling a published message from its method, header and body frames.
use bytes::{Bytes, BytesMut};
use warren_codec::{AmqpError, ContentHeader, Publish, ReplyCode};

/// A basic.publish waiting for the rest of its content.
pub struct Pending {
    pub publish: Publish,
    header: Option<ContentHeader>,
    /// The body when it came in one frame: a zero-copy slice of the read buffer.
    first: Option<Bytes>,
    /// The body being concatenated when it spans frames (the one copy we cannot avoid
    /// while a message is a single contiguous body).
    rest: Option<BytesMut>,
    received: u64,
}

/// A complete message: the publish, its header and its body.
pub struct Complete {
    pub publish: Publish,
    pub header: ContentHeader,
    pub body: Bytes,
}

/// RabbitMQ's hard ceiling on `max_message_size` (?MAX_MSG_SIZE, 512 MiB): a larger setting
/// is lowered to it.
pub const MAX_MESSAGE_SIZE: u64 = 512 * 1024 * 1024;

fn unexpected(detail: &str) -> AmqpError {
    AmqpError::new(ReplyCode::UnexpectedFrame, detail)
}

impl Pending {
    pub fn new(publish: Publish) -> Self {
        Pending { publish, header: None, first: None, rest: None, received: 0 }
    }

    pub fn expects_header(&self) -> bool {
        self.header.is_none()
    }

    /// Takes the content header. Returns whether the message is complete (an empty body).
    ///
    /// Pending is filled in place, not passed by value: moving it (and a `Result` around it)
    /// through every frame cost ~10% of broker CPU in memcpy in the transient benchmark.
    pub fn header(&mut self, header: ContentHeader, max_size: u64) -> Result<bool, AmqpError> {
        if header.class_id != 60 {
            return Err(unexpected(&format!("expected content header for class 60, got class {}", header.class_id)));
        }
        let max_size = max_size.min(MAX_MESSAGE_SIZE);
        if header.body_size > max_size {
            // RabbitMQ's two wordings: at its ceiling the limit is not "configured".
            let configured = if max_size == MAX_MESSAGE_SIZE { "" } else { "configured " };
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!("message size {} is larger than {configured}max size {max_size}", header.body_size),
            )
            .on(60, 40));
        }
        let done = header.body_size == 0;
        self.header = Some(header);
        Ok(done)
    }

    /// Takes one body frame. Returns whether the declared size has now arrived.
    pub fn body(&mut self, payload: Bytes) -> Result<bool, AmqpError> {
        let size = self.header.as_ref().map_or(0, |h| h.body_size);
        self.received += payload.len() as u64;
        if self.received > size {
            return Err(unexpected("content body frames exceed the size given in the content header"));
        }
        match (&mut self.first, &mut self.rest) {
            (None, None) => self.first = Some(payload),
            (Some(first), None) => {
                let mut buf = BytesMut::with_capacity(size as usize);
                buf.extend_from_slice(first);
                buf.extend_from_slice(&payload);
                self.first = None;
                self.rest = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&payload),
        }
        Ok(self.received == size)
    }

    /// The message, once [`Pending::header`] or [`Pending::body`] said it is complete.
    pub fn finish(self) -> Complete {
        let body = match (self.first, self.rest) {
            (Some(b), _) => b,
            (None, Some(buf)) => buf.freeze(),
            (None, None) => Bytes::new(),
        };
        Complete { publish: self.publish, header: self.header.expect("finish after header"), body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(size: u64, max: u64) -> Result<bool, AmqpError> {
        let publish = Publish {
            exchange: Bytes::new(),
            routing_key: Bytes::from_static(b"q"),
            mandatory: false,
            immediate: false,
        };
        Pending::new(publish).header(ContentHeader::new(60, size, Default::default()), max)
    }

    #[test]
    fn body_over_the_configured_max_is_406_on_basic_publish() {
        assert!(header_of(10, 10).is_ok());
        let e = header_of(11, 10).unwrap_err();
        assert_eq!(e.code, ReplyCode::PreconditionFailed);
        assert_eq!(e.text, "PRECONDITION_FAILED - message size 11 is larger than configured max size 10");
        assert_eq!((e.class_id, e.method_id), (60, 40));
    }

    #[test]
    fn a_larger_setting_is_capped_at_rabbitmqs_ceiling() {
        assert!(header_of(MAX_MESSAGE_SIZE, u64::MAX).is_ok());
        let e = header_of(MAX_MESSAGE_SIZE + 1, u64::MAX).unwrap_err();
        assert_eq!(e.text, "PRECONDITION_FAILED - message size 536870913 is larger than max size 536870912");
    }
}
