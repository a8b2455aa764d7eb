//! Protobuf wire-format primitives for the encoders that write OTLP messages straight from our
//! own types (`metrics::encode`): tags, varints, fixed64 and length-delimited fields, as the
//! protobuf encoding spec defines them and prost writes them. Every OTLP field we write has a
//! number below 16, so each tag is one byte. Varints are prost's own (`prost::encoding`).

use bytes::{BufMut, BytesMut};
pub use prost::encoding::{encode_varint, encoded_len_varint as varint_len};

/// Wire type of varint fields (int64, uint32, bool, enums).
const VARINT: u8 = 0;
/// Wire type of fixed64, sfixed64 and double fields.
const I64: u8 = 1;
/// Wire type of length-delimited fields (strings, bytes, messages).
const LEN: u8 = 2;

const fn tag(field: u8, wire_type: u8) -> u8 {
    assert!(field > 0 && field < 16, "a one-byte tag");
    (field << 3) | wire_type
}

/// The tag of a varint field.
pub const fn varint_tag(field: u8) -> u8 {
    tag(field, VARINT)
}

/// The tag of a fixed64, sfixed64 or double field.
pub const fn fixed64_tag(field: u8) -> u8 {
    tag(field, I64)
}

/// The tag of a length-delimited field.
pub const fn len_tag(field: u8) -> u8 {
    tag(field, LEN)
}

/// Bytes of a one-byte tag and a fixed64 value.
pub const FIXED64_FIELD_LEN: usize = 9;

/// Bytes of a length-delimited field (one-byte tag) whose body is `body` bytes.
pub const fn len_field_len(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

/// Bytes of a proto3 string field holding `s`: nothing when empty (the default is omitted).
pub const fn string_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_field_len(s.len())
    }
}

/// A length-delimited field's tag and length; its body follows.
pub fn put_len(out: &mut BytesMut, tag: u8, body: usize) {
    out.put_u8(tag);
    encode_varint(body as u64, out);
}

/// A fixed64, sfixed64 or double field: tag, then the eight bytes little-endian.
pub fn put_fixed64(out: &mut BytesMut, tag: u8, bits: u64) {
    out.put_u8(tag);
    out.put_u64_le(bits);
}

/// A proto3 string field; nothing when `s` is empty.
pub fn put_string(out: &mut BytesMut, tag: u8, s: &str) {
    if !s.is_empty() {
        put_len(out, tag, s.len());
        out.put_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_field_number_and_wire_type() {
        assert_eq!(len_tag(1), 0x0a);
        assert_eq!(len_tag(7), 0x3a);
        assert_eq!(fixed64_tag(2), 0x11);
        assert_eq!(fixed64_tag(6), 0x31);
        assert_eq!(varint_tag(3), 0x18);
    }
}
