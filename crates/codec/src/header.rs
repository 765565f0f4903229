//! Content header frames: the exact bytes received, checked, plus the one property the hot
//! path needs.

use crate::error::{erl_binary, CodecError};
use crate::nesting;
use crate::writer::generate;
use crate::FRAME_HEADER;
use amq_protocol::frame::ParserError;
use amq_protocol::protocol::basic::{gen_properties, parse_properties};
use amq_protocol::protocol::BasicProperties;
use bytes::{BufMut, Bytes, BytesMut};

/// class-id (2) + weight (2) + body-size (8), before the property flags.
const FIXED_FIELDS: usize = 12;

/// A content header.
///
/// Every message in a queue holds one, so it keeps only the raw bytes and delivery-mode:
/// amq-protocol's parsed `BasicProperties` is ~300 bytes of options and strings, which made
/// a queued 128-byte message cost ~670 bytes of memory. The rare users of other properties
/// (headers exchanges, the user-id check) parse them again with [`ContentHeader::properties`].
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    delivery_mode: u8,
    /// The whole header-frame payload exactly as received (class, weight, size, flags,
    /// properties), so a delivery re-sends it byte for byte without re-encoding. Re-encoding
    /// would not be faithful anyway: amq-protocol keeps header tables in a sorted map.
    pub raw: Bytes,
}

impl ContentHeader {
    /// Builds one from properties (for messages the broker creates itself), encoding `raw` via
    /// amq-protocol.
    pub fn new(class_id: u16, body_size: u64, properties: BasicProperties) -> ContentHeader {
        let mut raw = BytesMut::with_capacity(FIXED_FIELDS + 2 + 64);
        raw.put_u16(class_id);
        raw.put_u16(0); // weight, always 0
        raw.put_u64(body_size);
        generate(&mut raw, gen_properties(&properties));
        let delivery_mode = properties.delivery_mode().unwrap_or(0);
        ContentHeader { class_id, body_size, delivery_mode, raw: raw.freeze() }
    }

    /// The delivery-mode property (2 = persistent), 0 if absent.
    pub fn delivery_mode(&self) -> u8 {
        self.delivery_mode
    }

    /// The properties, parsed again from the raw bytes (which were checked when decoded).
    pub fn properties(&self) -> BasicProperties {
        match parse_properties(&self.raw[FIXED_FIELDS..]) {
            Ok((_, p)) => p,
            Err(_) => BasicProperties::default(),
        }
    }

    /// The user-id property, parsed only when its flag says it is there (the common case
    /// costs a bit test, not a parse).
    pub fn user_id(&self) -> Option<String> {
        self.has_user_id().then(|| self.properties().user_id().as_ref().map(|u| u.to_string())).flatten()
    }

    /// Whether the user-id property is present (a flag test: no parsing).
    pub fn has_user_id(&self) -> bool {
        const USER_ID_FLAG: u8 = 1 << 4;
        self.raw.get(FIXED_FIELDS + 1).is_some_and(|low| low & USER_ID_FLAG != 0)
    }

    /// The weight field as received. The spec says it must be 0; RabbitMQ closes the connection
    /// with 505 UNEXPECTED_FRAME otherwise, which is the channel layer's check to make.
    pub fn weight(&self) -> u16 {
        u16::from_be_bytes([self.raw[2], self.raw[3]])
    }

    /// Decodes a content-header frame payload.
    pub fn decode(raw: Bytes) -> Result<ContentHeader, CodecError> {
        if raw.len() < FIXED_FIELDS {
            // RabbitMQ's analyze_frame cannot find the fixed fields: "unknown_frame".
            return Err(CodecError::UnknownFrameType(FRAME_HEADER));
        }
        let class_id = u16::from_be_bytes([raw[0], raw[1]]);
        let body_size = u64::from_be_bytes(raw[4..12].try_into().expect("8 bytes"));
        let props = &raw[FIXED_FIELDS..];
        if nesting::check_properties(props) == Err(nesting::Stop::TooDeep) {
            let why = format!("headers nested deeper than {} levels", nesting::MAX_NESTING);
            return Err(bad_properties(props, &why));
        }
        let properties = match parse_properties(props) {
            Ok(([], p)) => p,
            Ok(_) => return Err(bad_properties(props, "trailing bytes after properties")),
            Err(e) => return Err(bad_properties(props, describe(&e))),
        };
        let delivery_mode = properties.delivery_mode().unwrap_or(0);
        Ok(ContentHeader { class_id, body_size, delivery_mode, raw })
    }
}

fn describe(e: &ParserError) -> &'static str {
    // As in method.rs: MapRes is amq-protocol's short-string UTF-8 check.
    if format!("{e:?}").contains("MapRes") {
        "Malformed UTF-8 in shortstr"
    } else {
        "truncated or malformed"
    }
}

/// The failing method is left as 0/0: the codec does not know which method the content
/// belongs to (the channel layer can re-attribute it to basic.publish with `AmqpError::on`).
fn bad_properties(props: &[u8], why: &str) -> CodecError {
    CodecError::Syntax {
        class_id: 0,
        method_id: 0,
        detail: format!("cannot decode content header properties ({why}) {}", erl_binary(props)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{full_properties, header_payload_with_all_field_types};
    use amq_protocol::frame::parsing::parse_content_header;

    #[test]
    fn new_encodes_like_amq_protocol_and_decodes_back() {
        let props = full_properties();
        let h = ContentHeader::new(60, 12345, props.clone());
        let (rest, reference) = parse_content_header(&h.raw[..]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(reference.class_id, 60);
        assert_eq!(reference.body_size, 12345);
        assert_eq!(reference.properties, props);
        assert_eq!(h.delivery_mode(), 2);
        assert_eq!(h.properties(), props);
        assert!(h.has_user_id());
        assert_eq!(h.weight(), 0);
        assert_eq!(ContentHeader::decode(h.raw.clone()).unwrap(), h);
    }

    #[test]
    fn every_field_type_rabbitmq_uses_is_decoded_and_raw_is_kept_verbatim() {
        let raw = header_payload_with_all_field_types();
        let h = ContentHeader::decode(raw.clone()).unwrap();
        assert_eq!(h.raw, raw);
        assert_eq!(h.class_id, 60);
        assert_eq!(h.body_size, 3);
        let props = h.properties();
        let headers = props.headers().as_ref().unwrap();
        // 17 type tags, each under its own key.
        assert_eq!(headers.inner().len(), 17);
        assert_eq!(props.content_type().as_ref().unwrap().as_str(), "text/plain");
        assert_eq!(h.has_user_id(), props.user_id().is_some());
        assert_eq!(h.user_id(), props.user_id().as_ref().map(|u| u.to_string()));
    }

    #[test]
    fn absent_delivery_mode_is_zero() {
        let h = ContentHeader::new(60, 0, BasicProperties::default());
        assert_eq!(h.delivery_mode(), 0);
        assert!(!h.has_user_id());
        assert_eq!(&h.raw[..], &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn malformed_headers() {
        // Too short for the fixed fields: RabbitMQ's "unknown_frame".
        assert!(matches!(ContentHeader::decode(Bytes::from_static(&[0, 60, 0])), Err(CodecError::UnknownFrameType(2))));
        // content-type flag set, string truncated.
        let bad = Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 5, b'a']);
        let err = ContentHeader::decode(bad).unwrap_err();
        assert!(matches!(err, CodecError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().contains("truncated"), "{err}");
        // No property flags at all.
        let bare = Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(ContentHeader::decode(bare), Err(CodecError::Syntax { .. })));
        // Trailing bytes after the properties.
        let trailing = Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(ContentHeader::decode(trailing), Err(CodecError::Syntax { .. })));
        // content-type 0xFF is not UTF-8.
        let utf8 = Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 1, 0xFF]);
        let err = ContentHeader::decode(utf8).unwrap_err();
        assert!(err.to_string().contains("Malformed UTF-8 in shortstr"), "{err}");
    }

    #[test]
    fn weight_is_reported_as_received() {
        let h = ContentHeader::decode(Bytes::from_static(&[0, 60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).unwrap();
        assert_eq!(h.weight(), 1);
    }
}
