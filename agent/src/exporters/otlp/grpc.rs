//! The gRPC protocol around an OTLP export, as the agent's HTTP client speaks it over h2: one
//! length-prefixed message in the request body, the answer's status read from the trailers (or
//! from the headers of a trailers-only answer), the answer's one message unwrapped.
//!
//! Written here rather than through tonic (issue 20): tonic's channel passed each request
//! through a buffer task and streamed the body, ending the stream with an empty DATA frame of
//! its own write; a whole body handed to hyper's h2 client goes out in three writes (headers,
//! then each DATA frame, the last one ending the stream). Host collectors exporting every 1 s
//! tick to rotel: 0.84-0.87 → 0.65-0.70 ms of CPU per tick (bench/README.md, seventh round).

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

/// The 5-byte prefix of a gRPC message: a compressed flag and the length, big-endian.
const PREFIX: usize = 5;

/// A gRPC status code (grpc/doc/statuscodes.md), as the server sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub u32);

impl Code {
    pub const OK: Code = Code(0);
    pub const UNKNOWN: Code = Code(2);
    pub const PERMISSION_DENIED: Code = Code(7);
    pub const UNIMPLEMENTED: Code = Code(12);
    pub const INTERNAL: Code = Code(13);
    pub const UNAVAILABLE: Code = Code(14);
    pub const UNAUTHENTICATED: Code = Code(16);

    /// The code's name in the gRPC documentation's words.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 17] = [
            "OK",
            "Cancelled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("an unknown code")
    }

    /// The code a non-200 HTTP status stands for, per grpc/doc/http-grpc-status-mapping.md: a
    /// proxy in front of the collector answering for it.
    pub fn from_http(status: StatusCode) -> Code {
        match status.as_u16() {
            400 => Code::INTERNAL,
            401 => Code::UNAUTHENTICATED,
            403 => Code::PERMISSION_DENIED,
            404 => Code::UNIMPLEMENTED,
            429 | 502 | 503 | 504 => Code::UNAVAILABLE,
            _ => Code::UNKNOWN,
        }
    }
}

/// Frames the message in `buf` in place (already gzipped when `compressed`, which the
/// `grpc-encoding` header must say): the prefix goes in front and the message moves up by its
/// length (a copy within the buffer, which keeps its allocation, instead of a new buffer of the
/// whole request every export).
pub fn frame_in_place(buf: &mut BytesMut, compressed: bool) -> Result<(), String> {
    let len = buf.len();
    let wire_len =
        u32::try_from(len).map_err(|_| format!("a {len}-byte message is too long for gRPC"))?;
    let [a, b, c, d] = wire_len.to_be_bytes();
    let head = [u8::from(compressed), a, b, c, d];
    buf.put_slice(&head);
    buf.copy_within(0..len, PREFIX);
    if let Some(front) = buf.get_mut(..PREFIX) {
        front.copy_from_slice(&head);
    }
    Ok(())
}

/// The one message of an answer's body (empty for a trailers-only answer). The agent asks for
/// no compressed answers, so a compressed one is refused, as is a body that is not exactly
/// one whole message.
pub fn unframe(body: &Bytes) -> Result<Bytes, String> {
    if body.is_empty() {
        return Ok(Bytes::new());
    }
    let Some((&[flag, a, b, c, d], rest)) = body.split_first_chunk::<PREFIX>() else {
        return Err(format!(
            "a {}-byte answer is shorter than its prefix",
            body.len()
        ));
    };
    if flag != 0 {
        return Err("the answer is compressed, which the agent did not ask for".to_owned());
    }
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if rest.len() != len {
        return Err(format!(
            "the answer's prefix says {len} bytes but {} follow",
            rest.len()
        ));
    }
    Ok(body.slice(PREFIX..))
}

/// The call's status: `grpc-status` and `grpc-message` from the trailers, or from the headers
/// when the server sent no body (a trailers-only answer). A missing or unreadable status is a
/// failure, as gRPC clients treat it.
pub fn status(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> (Code, String) {
    let from = trailers
        .filter(|t| t.contains_key("grpc-status"))
        .unwrap_or(headers);
    let code = from
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    let message = from
        .get("grpc-message")
        .map(|v| percent_decoded(v.as_bytes()))
        .unwrap_or_default();
    match code {
        Some(c) => (Code(c), message),
        None => (
            Code::INTERNAL,
            "the answer carries no grpc-status".to_owned(),
        ),
    }
}

/// `grpc-message` is percent-encoded UTF-8; a malformed escape is kept as it is.
fn percent_decoded(raw: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escaped = (b == b'%')
            .then(|| Some((hex(*raw.get(i + 1)?)?, hex(*raw.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_message_is_prefixed_with_its_flag_and_length() {
        let mut buf = BytesMut::from(&b"abc"[..]);
        frame_in_place(&mut buf, false).unwrap();
        assert_eq!(&buf[..], b"\0\0\0\0\x03abc");
        let mut empty = BytesMut::new();
        frame_in_place(&mut empty, true).unwrap();
        assert_eq!(&empty[..], b"\x01\0\0\0\0");
        let mut gz = BytesMut::from(&[0u8; 300][..]);
        frame_in_place(&mut gz, true).unwrap();
        assert_eq!(gz[..5], [1, 0, 0, 1, 44]);
        let mut long = BytesMut::from(&[7u8; 70_000][..]);
        frame_in_place(&mut long, false).unwrap();
        let body = long.freeze();
        assert_eq!(&unframe(&body).unwrap()[..], &[7u8; 70_000][..]);
    }

    #[test]
    fn an_answer_that_is_not_one_whole_uncompressed_message_is_refused() {
        assert_eq!(unframe(&Bytes::new()).unwrap(), Bytes::new());
        let short = unframe(&Bytes::from_static(b"\0\0\0")).unwrap_err();
        assert!(short.contains("shorter than its prefix"), "{short}");
        let long = unframe(&Bytes::from_static(b"\0\0\0\0\x01ab")).unwrap_err();
        assert!(long.contains("says 1 bytes but 2 follow"), "{long}");
        let gz = unframe(&Bytes::from_static(b"\x01\0\0\0\0")).unwrap_err();
        assert!(gz.contains("compressed"), "{gz}");
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn the_status_comes_from_the_trailers_or_a_trailers_only_answer() {
        let trailers = map(&[("grpc-status", "0")]);
        assert_eq!(
            status(&map(&[]), Some(&trailers)),
            (Code::OK, String::new())
        );
        let only = map(&[
            ("grpc-status", "14"),
            ("grpc-message", "upstream%20connect%20error%3A%20100%25"),
        ]);
        assert_eq!(
            status(&only, None),
            (Code::UNAVAILABLE, "upstream connect error: 100%".to_owned())
        );
        let (code, why) = status(&map(&[]), Some(&map(&[])));
        assert_eq!(code, Code::INTERNAL);
        assert!(why.contains("no grpc-status"), "{why}");
        let bad = map(&[("grpc-status", "x"), ("grpc-message", "50%zz%")]);
        assert_eq!(status(&bad, None).0, Code::INTERNAL);
        assert_eq!(percent_decoded(b"50%zz%"), "50%zz%");
        assert_eq!(percent_decoded(b"caf%C3%A9"), "café");
    }

    #[test]
    fn codes_are_named_and_http_statuses_mapped_as_grpc_documents() {
        assert_eq!(Code(14).name(), "Unavailable");
        assert_eq!(Code(16).name(), "Unauthenticated");
        assert_eq!(Code(99).name(), "an unknown code");
        assert_eq!(Code::from_http(StatusCode::BAD_GATEWAY), Code::UNAVAILABLE);
        assert_eq!(
            Code::from_http(StatusCode::UNAUTHORIZED).name(),
            "Unauthenticated"
        );
        assert_eq!(
            Code::from_http(StatusCode::NOT_FOUND).name(),
            "Unimplemented"
        );
        assert_eq!(Code::from_http(StatusCode::IM_A_TEAPOT), Code::UNKNOWN);
    }
}
