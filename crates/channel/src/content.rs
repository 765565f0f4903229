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
        if header.body_size > max_size {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!("message size {} is larger than configured max size {}", header.body_size, max_size),
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
