//! Errors found while splitting and decoding inbound frames.

use crate::reply::ReplyCode;
use std::fmt::Write as _;

/// A protocol violation in the inbound byte stream. Every variant is fatal to the connection
/// (see [`CodecError::reply_code`]); convert it with `AmqpError::from` to send connection.close.
///
/// Reply codes follow what RabbitMQ 3.x actually sends, checked against a running broker:
/// frame-level problems and undecodable method arguments are 501 FRAME_ERROR (RabbitMQ closes
/// with "FRAME_ERROR - cannot decode <<...>>" for truncated or over-long arguments), a heartbeat
/// on a non-zero channel is 505 UNEXPECTED_FRAME, and an unknown class/method is 540
/// NOT_IMPLEMENTED (RabbitMQ itself just drops the TCP connection there).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A frame header declared a payload larger than the negotiated frame_max allows.
    #[error("frame payload size {size} exceeds frame_max {max}")]
    FrameTooLarge { size: u32, max: u32 },
    /// The octet after the payload was not 0xCE.
    #[error("invalid frame end marker {0:#04x}")]
    BadFrameEnd(u8),
    /// A frame RabbitMQ classifies as `unknown_frame`: an unknown type octet, or a known type
    /// whose payload is too short to hold its fixed fields (a method frame under 4 bytes, a
    /// content header under 12, a heartbeat with a payload).
    #[error("unknown frame (type {0})")]
    UnknownFrameType(u8),
    /// A heartbeat frame on a channel other than 0.
    #[error("heartbeat frame on channel {0}")]
    HeartbeatOnChannel(u16),
    /// A method frame whose (class, method) is not an AMQP 0-9-1 method RabbitMQ knows.
    #[error("unknown method (class {class_id}, method {method_id})")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A known method with malformed or trailing arguments, or a malformed content header.
    /// `detail` is the RabbitMQ-style explanation, e.g. "cannot decode <<0,0,3,97,98>>".
    #[error("{detail}")]
    Syntax { class_id: u16, method_id: u16, detail: String },
}

impl CodecError {
    /// The reply code of the connection.close this error calls for.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            CodecError::FrameTooLarge { .. }
            | CodecError::BadFrameEnd(_)
            | CodecError::UnknownFrameType(_)
            | CodecError::Syntax { .. } => ReplyCode::FrameError,
            CodecError::HeartbeatOnChannel(_) => ReplyCode::UnexpectedFrame,
            CodecError::UnknownMethod { .. } => ReplyCode::NotImplemented,
        }
    }

    /// The (class, method) to report as failing in connection.close; (0, 0) for frame-level errors.
    pub fn class_method(&self) -> (u16, u16) {
        match self {
            CodecError::UnknownMethod { class_id, method_id } | CodecError::Syntax { class_id, method_id, .. } => {
                (*class_id, *method_id)
            }
            _ => (0, 0),
        }
    }
}

/// Longest prefix of a binary that [`erl_binary`] spells out. A reply text is cut to 255 bytes
/// anyway, so formatting more would only be thrown away.
const ERL_BINARY_MAX: usize = 96;

/// Formats bytes the way Erlang's `~w` prints a binary (`<<0,0,3,97,98>>`), which is how
/// RabbitMQ shows undecodable method arguments in its reply texts.
pub(crate) fn erl_binary(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(4 + bytes.len().min(ERL_BINARY_MAX) * 4);
    s.push_str("<<");
    for (i, b) in bytes.iter().take(ERL_BINARY_MAX).enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{b}");
    }
    if bytes.len() > ERL_BINARY_MAX {
        s.push_str(",...");
    }
    s.push_str(">>");
    s
}

/// The error for arguments of a known method that do not decode.
pub(crate) fn cannot_decode(class_id: u16, method_id: u16, args: &[u8]) -> CodecError {
    CodecError::Syntax { class_id, method_id, detail: format!("cannot decode {}", erl_binary(args)) }
}

/// Field tables nested past [`crate::nesting::MAX_NESTING`] (a limit of ours; RabbitMQ has none).
pub(crate) fn too_deep(class_id: u16, method_id: u16) -> CodecError {
    CodecError::Syntax {
        class_id,
        method_id,
        detail: format!("field tables or arrays nested deeper than {} levels", crate::nesting::MAX_NESTING),
    }
}

/// The error for a short string that is not UTF-8; RabbitMQ's text for this case.
pub(crate) fn malformed_utf8(class_id: u16, method_id: u16) -> CodecError {
    CodecError::Syntax { class_id, method_id, detail: "Malformed UTF-8 in shortstr".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_match_rabbitmq() {
        let frame_errors = [
            CodecError::FrameTooLarge { size: 9, max: 8 },
            CodecError::BadFrameEnd(0),
            CodecError::UnknownFrameType(9),
            cannot_decode(60, 40, b"\0"),
        ];
        for e in frame_errors {
            assert_eq!(e.reply_code(), ReplyCode::FrameError, "{e}");
        }
        assert_eq!(CodecError::HeartbeatOnChannel(1).reply_code(), ReplyCode::UnexpectedFrame);
        let unknown = CodecError::UnknownMethod { class_id: 99, method_id: 1 };
        assert_eq!(unknown.reply_code(), ReplyCode::NotImplemented);
        assert_eq!(unknown.class_method(), (99, 1));
        assert_eq!(CodecError::BadFrameEnd(0).class_method(), (0, 0));
    }

    #[test]
    fn display_texts() {
        assert_eq!(
            CodecError::FrameTooLarge { size: 200000, max: 131072 }.to_string(),
            "frame payload size 200000 exceeds frame_max 131072"
        );
        assert_eq!(CodecError::BadFrameEnd(0).to_string(), "invalid frame end marker 0x00");
        let e = cannot_decode(60, 40, &[0, 0, 3, 97, 98]);
        assert_eq!(e.to_string(), "cannot decode <<0,0,3,97,98>>");
        assert_eq!(e.class_method(), (60, 40));
    }

    #[test]
    fn erl_binary_formats_like_erlang_and_caps_length() {
        assert_eq!(erl_binary(b""), "<<>>");
        assert_eq!(erl_binary(&[0, 255]), "<<0,255>>");
        let long = erl_binary(&[7; 1000]);
        assert!(long.ends_with(",...>>"));
        assert_eq!(long.matches('7').count(), ERL_BINARY_MAX);
    }
}
