//! Frames in: decoding, channel lifecycle, connection-level methods, and the mapping of
//! errors to channel.close or connection.close.
use super::transport::Transport;
use super::{Connection, Phase, Slot, CLOSE_TIMEOUT};
use amq_protocol::protocol::{channel, connection, AMQPClass};
use std::time::Instant;
use warren_channel::{Channel, Io};
use warren_codec::{decode_frame, encode_method, AmqpError, Frame, Method, ReplyCode};

fn unexpected_channel(detail: String) -> AmqpError {
    AmqpError::new(ReplyCode::ChannelError, detail)
}

impl<S: Transport> Connection<S> {
    /// Handles every whole frame in the read buffer. Returns a close reason if the
    /// connection is ending.
    pub(super) fn handle_input(&mut self) -> Option<String> {
        let mut ended = None;
        // One load per pass: an alarm raised during the pass blocks at the next one.
        let alarmed = self.throttle.alarms.any();
        // Whether a flow gate may stop parsing: not on a connection that consumes, whose acks
        // further on in the buffer may be what drains the queue. Asked once, when first needed.
        let mut may_pause: Option<bool> = None;
        loop {
            if self.phase == Phase::Done {
                self.inbuf.clear();
                break;
            }
            if self.throttle.is_blocked() && self.phase == Phase::Open {
                break;
            }
            let frame = match decode_frame(&mut self.inbuf, self.ctx.frame_max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let e: AmqpError = e.into();
                    ended = Some(format!("{} - {}", e.code.code(), e.text));
                    self.connection_error(e);
                    // The stream cannot be resynchronised after a framing error.
                    self.inbuf.clear();
                    break;
                }
            };
            let content = alarmed && matches!(frame, Frame::Header { .. } | Frame::Body { .. });
            if let Err(e) = self.handle_frame(frame) {
                ended = Some(format!("{} - {}", e.code.code(), e.text));
                self.connection_error(e);
            }
            // RabbitMQ blocks a publisher on the content frame that finds an alarm on; the
            // rest of the buffer waits (its `recvloop` parses nothing while blocked).
            if content && self.phase == Phase::Open && self.throttle.block(&mut self.out) {
                tracing::debug!(peer = %self.peer, conn = self.ctx.id, "connection blocked by a resource alarm");
                break;
            }
            // A queue's flow gate closed on a publish: parse no further (the rest of the buffer
            // waits for the gate), or a read pass of up to 512 KiB would all go into queues
            // that are already behind — a thousand gated publishers, half a million messages.
            if !self.blocked.is_empty()
                && self.phase == Phase::Open
                && *may_pause.get_or_insert_with(|| !self.consumes())
            {
                break;
            }
        }
        // One confirm ack per channel per pass, covering everything this pass published.
        let mut io = Io { out: &mut self.out, blocked: &mut self.blocked };
        for slot in self.channels.values_mut() {
            slot.chan.flush(&mut io);
        }
        ended
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), AmqpError> {
        if self.phase != Phase::Open {
            // After we sent connection.close only close and close-ok matter.
            if let Frame::Method { channel: 0, method: Method::Other(AMQPClass::Connection(m)) } = frame {
                match m {
                    connection::AMQPMethod::CloseOk(_) => self.phase = Phase::Done,
                    connection::AMQPMethod::Close(_) => {
                        self.send_connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
                        self.phase = Phase::Done;
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        match frame {
            Frame::Heartbeat => Ok(()),
            Frame::Method { channel: 0, method } => self.connection_method(method),
            Frame::Header { channel: 0, .. } | Frame::Body { channel: 0, .. } => {
                Err(AmqpError::new(ReplyCode::UnexpectedFrame, "content frame on channel 0"))
            }
            Frame::Method { channel, method } => self.channel_method(channel, method),
            Frame::Header { channel, header } => {
                self.on_open_channel(channel, |chan, ctx, io| chan.handle_header(ctx, header, io))
            }
            Frame::Body { channel, payload } => {
                self.on_open_channel(channel, |chan, ctx, io| chan.handle_body(ctx, payload, io))
            }
        }
    }

    fn connection_method(&mut self, method: Method) -> Result<(), AmqpError> {
        let (class_id, method_id) = method.class_method();
        match method {
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                tracing::debug!(peer = %self.peer, code = c.reply_code, text = c.reply_text.as_str(), "client closed the connection");
                self.send_connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
                self.phase = Phase::Done;
                Ok(())
            }
            // A client confirming a close it did not receive: nothing to do.
            Method::Other(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => Ok(()),
            _ => Err(AmqpError::new(ReplyCode::ChannelError, "unexpected method in connection state running")
                .on(class_id, method_id)),
        }
    }

    fn channel_method(&mut self, ch: u16, method: Method) -> Result<(), AmqpError> {
        let (class_id, method_id) = method.class_method();
        let is = |m: &Method, want: fn(&channel::AMQPMethod) -> bool| matches!(m, Method::Other(AMQPClass::Channel(c)) if want(c));
        let open = is(&method, |c| matches!(c, channel::AMQPMethod::Open(_)));
        let close = is(&method, |c| matches!(c, channel::AMQPMethod::Close(_)));
        let close_ok = is(&method, |c| matches!(c, channel::AMQPMethod::CloseOk(_)));
        let open_count = self.channels.len();
        match self.channels.get_mut(&ch) {
            // channel_max bounds how many channels are open, not their numbers (RabbitMQ).
            None if open && open_count >= self.channel_max as usize => Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!(
                    "number of channels opened ({open_count}) has reached the negotiated channel_max ({})",
                    self.channel_max
                ),
            )),
            None if open => {
                self.channels.insert(ch, Slot { chan: Channel::new(ch), closing: false });
                self.send_channel(ch, channel::AMQPMethod::OpenOk(channel::OpenOk {}));
                Ok(())
            }
            None => Err(unexpected_channel("expected 'channel.open'".to_string()).on(class_id, method_id)),
            Some(slot) if slot.closing => {
                // RabbitMQ drops everything on a closing channel but the close handshake.
                if close_ok {
                    self.channels.remove(&ch);
                } else if close {
                    self.send_channel(ch, channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                }
                Ok(())
            }
            Some(_) if open => {
                Err(unexpected_channel("second 'channel.open' seen".to_string()).on(class_id, method_id))
            }
            Some(slot) if close => {
                slot.chan.release(&self.ctx);
                self.channels.remove(&ch);
                self.send_channel(ch, channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                Ok(())
            }
            Some(_) if close_ok => Ok(()),
            Some(_) => self.on_open_channel(ch, |chan, ctx, io| chan.handle_method(ctx, method, io)),
        }
    }

    /// Runs `f` on an open channel; a channel-level error closes just that channel.
    fn on_open_channel(
        &mut self,
        ch: u16,
        f: impl FnOnce(&mut Channel, &warren_channel::ConnCtx, &mut Io) -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let Some(slot) = self.channels.get_mut(&ch) else {
            return Err(unexpected_channel("expected 'channel.open'".to_string()));
        };
        if slot.closing {
            return Ok(());
        }
        let mut io = Io { out: &mut self.out, blocked: &mut self.blocked };
        match f(&mut slot.chan, &self.ctx, &mut io) {
            Ok(()) => Ok(()),
            Err(e) if e.is_connection_error() => Err(e),
            Err(e) => {
                self.channel_error(ch, e);
                Ok(())
            }
        }
    }

    /// Closes one channel with a channel exception: its consumers go, its unacked messages
    /// are requeued, and it ignores everything but close/close-ok until the client answers.
    pub(super) fn channel_error(&mut self, ch: u16, e: AmqpError) {
        if e.is_connection_error() {
            return self.connection_error(e);
        }
        let Some(slot) = self.channels.get_mut(&ch) else { return };
        tracing::info!(peer = %self.peer, conn = self.ctx.id, channel = ch, code = e.code.code(), reason = %e.text, "channel error");
        slot.chan.release(&self.ctx);
        slot.closing = true;
        let close = channel::Close {
            reply_code: e.code.code(),
            reply_text: e.text.into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        self.send_channel(ch, channel::AMQPMethod::Close(close));
    }

    /// Sends connection.close and waits (in the main loop) for close-ok.
    pub(super) fn connection_error(&mut self, e: AmqpError) {
        if self.phase != Phase::Open {
            return;
        }
        tracing::warn!(peer = %self.peer, conn = self.ctx.id, code = e.code.code(), reason = %e.text, "closing connection");
        self.release_all();
        let close = connection::Close {
            reply_code: e.code.code(),
            reply_text: e.text.into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        self.send_connection(connection::AMQPMethod::Close(close));
        self.phase = Phase::Closing;
        self.close_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
    }

    fn send_connection(&mut self, m: connection::AMQPMethod) {
        encode_method(self.out.tail(), 0, &AMQPClass::Connection(m));
    }

    fn send_channel(&mut self, ch: u16, m: channel::AMQPMethod) {
        encode_method(self.out.tail(), ch, &AMQPClass::Channel(m));
    }
}
