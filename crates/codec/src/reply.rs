//! AMQP reply codes and the protocol exceptions sent as channel.close / connection.close.

use crate::error::CodecError;
use std::fmt;

/// AMQP 0-9-1 reply codes (the spec's constants, as RabbitMQ names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    Success = 200,
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    const ALL: [ReplyCode; 19] = [
        ReplyCode::Success,
        ReplyCode::ContentTooLarge,
        ReplyCode::NoRoute,
        ReplyCode::NoConsumers,
        ReplyCode::ConnectionForced,
        ReplyCode::InvalidPath,
        ReplyCode::AccessRefused,
        ReplyCode::NotFound,
        ReplyCode::ResourceLocked,
        ReplyCode::PreconditionFailed,
        ReplyCode::FrameError,
        ReplyCode::SyntaxError,
        ReplyCode::CommandInvalid,
        ReplyCode::ChannelError,
        ReplyCode::UnexpectedFrame,
        ReplyCode::ResourceError,
        ReplyCode::NotAllowed,
        ReplyCode::NotImplemented,
        ReplyCode::InternalError,
    ];

    /// The numeric code sent on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one of the spec's reply codes.
    pub fn from_code(code: u16) -> Option<ReplyCode> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The name RabbitMQ puts at the start of reply texts, e.g. "NOT_FOUND".
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::Success => "SUCCESS",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Whether the spec makes this a hard error, i.e. one that closes the whole connection.
    pub fn is_connection_error(self) -> bool {
        matches!(
            self,
            ReplyCode::ConnectionForced
                | ReplyCode::InvalidPath
                | ReplyCode::FrameError
                | ReplyCode::SyntaxError
                | ReplyCode::CommandInvalid
                | ReplyCode::ChannelError
                | ReplyCode::UnexpectedFrame
                | ReplyCode::ResourceError
                | ReplyCode::NotAllowed
                | ReplyCode::NotImplemented
                | ReplyCode::InternalError
        )
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest reply text: it travels as a short string.
const MAX_REPLY_TEXT: usize = 255;

/// A protocol exception to send as channel.close or connection.close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?} {text}")]
pub struct AmqpError {
    pub code: ReplyCode,
    /// The complete reply text, "NAME - detail", at most 255 bytes.
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    /// An exception whose reply text is "NAME - detail", formatted exactly as RabbitMQ does
    /// (e.g. "NOT_FOUND - no queue 'q' in vhost '/'"). Like RabbitMQ, a text over 255 bytes is
    /// cut to its first 252 bytes plus "..." (here at a char boundary, so it stays UTF-8).
    /// The failing class/method is 0/0 until [`AmqpError::on`] sets it.
    pub fn new(code: ReplyCode, detail: impl fmt::Display) -> AmqpError {
        let mut text = format!("{} - {}", code.name(), detail);
        if text.len() > MAX_REPLY_TEXT {
            let mut cut = MAX_REPLY_TEXT - 3;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        AmqpError { code, text, class_id: 0, method_id: 0 }
    }

    /// Sets the method that failed.
    pub fn on(mut self, class_id: u16, method_id: u16) -> AmqpError {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Whether this closes the connection (rather than just the channel).
    pub fn is_connection_error(&self) -> bool {
        self.code.is_connection_error()
    }
}

impl From<CodecError> for AmqpError {
    fn from(e: CodecError) -> AmqpError {
        let (class_id, method_id) = e.class_method();
        AmqpError::new(e.reply_code(), &e).on(class_id, method_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names() {
        assert_eq!(ReplyCode::NotFound.code(), 404);
        assert_eq!(ReplyCode::NotFound.name(), "NOT_FOUND");
        assert_eq!(ReplyCode::PreconditionFailed.name(), "PRECONDITION_FAILED");
        assert_eq!(ReplyCode::from_code(406), Some(ReplyCode::PreconditionFailed));
        assert_eq!(ReplyCode::from_code(999), None);
        for c in ReplyCode::ALL {
            assert_eq!(ReplyCode::from_code(c.code()), Some(c));
        }
    }

    #[test]
    fn hard_and_soft_errors() {
        let hard: Vec<u16> =
            ReplyCode::ALL.into_iter().filter(|c| c.is_connection_error()).map(ReplyCode::code).collect();
        assert_eq!(hard, [320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541]);
    }

    #[test]
    fn text_is_formatted_like_rabbitmq() {
        let e = AmqpError::new(ReplyCode::NotFound, "no queue 'q' in vhost '/'").on(50, 10);
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!((e.class_id, e.method_id), (50, 10));
        assert!(!e.is_connection_error());
        assert_eq!(e.to_string(), "NotFound NOT_FOUND - no queue 'q' in vhost '/'");
    }

    #[test]
    fn long_text_is_cut_to_255_bytes_with_ellipsis() {
        let e = AmqpError::new(ReplyCode::PreconditionFailed, "x".repeat(400));
        assert_eq!(e.text.len(), 255);
        assert!(e.text.ends_with("xxx..."));
        // A multi-byte char straddling byte 252 is dropped whole rather than split.
        let e = AmqpError::new(ReplyCode::NotFound, "é".repeat(200));
        assert!(e.text.len() <= 255 && e.text.ends_with("..."));
        let exact = AmqpError::new(ReplyCode::NotFound, "y".repeat(255 - "NOT_FOUND - ".len()));
        assert_eq!(exact.text.len(), 255);
        assert!(!exact.text.ends_with("..."));
    }

    #[test]
    fn from_codec_error_keeps_code_text_and_method() {
        let e =
            AmqpError::from(CodecError::Syntax { class_id: 60, method_id: 40, detail: "cannot decode <<0>>".into() });
        assert_eq!(e.code, ReplyCode::FrameError);
        assert_eq!(e.text, "FRAME_ERROR - cannot decode <<0>>");
        assert_eq!((e.class_id, e.method_id), (60, 40));
        assert!(e.is_connection_error());
        let e = AmqpError::from(CodecError::FrameTooLarge { size: 200000, max: 131072 });
        assert_eq!(e.text, "FRAME_ERROR - frame payload size 200000 exceeds frame_max 131072");
        assert_eq!((e.class_id, e.method_id), (0, 0));
    }
}
