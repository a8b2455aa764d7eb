//! Sends an encoded `ExportMetricsServiceRequest` over gRPC (tonic) or http/protobuf (the
//! agent's HTTP client, sys/http.rs).
//!
//! gRPC goes through `tonic::client::Grpc` with a codec that writes the bytes we already
//! encoded (the generated `MetricsServiceClient` would take the message by value and drop the
//! buffers the encoder reuses), on the same method path the generated client uses.

use std::io::Write;

use bytes::{BufMut, Bytes};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request as GrpcRequest, Status};

use crate::exporters::diagnosis::chain;
use crate::exporters::http_client::DiagnosedClient;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the gRPC server returned {code:?}: {reason}")]
    Grpc { code: tonic::Code, reason: String },
    #[error("the HTTP request failed: {0}")]
    Http(String),
    #[error("the server answered HTTP status {0}")]
    Status(u16),
    #[error("cannot gzip the request body: {0}")]
    Gzip(std::io::Error),
}

/// Where encoded requests go: one per configured protocol.
pub enum Sender {
    Grpc {
        client: tonic::client::Grpc<Channel>,
        metadata: MetadataMap,
    },
    Http {
        client: DiagnosedClient,
        url: Uri,
        headers: HeaderMap,
        gzip: bool,
    },
}

impl Sender {
    /// A gRPC sender over `channel` (lazily connected, TLS and timeout already set).
    pub fn grpc(channel: Channel, headers: HeaderMap, gzip: bool) -> Sender {
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        Sender::Grpc {
            client,
            metadata: MetadataMap::from_headers(headers),
        }
    }

    /// An http/protobuf sender posting to `url` (the signal URL, `/v1/metrics` included).
    pub fn http(client: DiagnosedClient, url: Uri, headers: HeaderMap, gzip: bool) -> Sender {
        Sender::Http {
            client,
            url,
            headers,
            gzip,
        }
    }

    /// Sends one request body. Not bounded here: the caller applies the timeout.
    pub async fn send(&mut self, body: Bytes) -> Result<(), SendError> {
        match self {
            Sender::Grpc { client, metadata } => {
                let grpc_error = |s: Status| SendError::Grpc {
                    code: s.code(),
                    reason: status_reason(&s),
                };
                client.ready().await.map_err(|e| SendError::Grpc {
                    code: tonic::Code::Unavailable,
                    reason: chain(&e),
                })?;
                let mut request = GrpcRequest::new(body);
                *request.metadata_mut() = metadata.clone();
                let path = PathAndQuery::from_static(EXPORT_PATH);
                let response = client
                    .unary(request, path, PreEncoded)
                    .await
                    .map_err(grpc_error)?;
                partial_success(response.get_ref());
                Ok(())
            }
            Sender::Http {
                client,
                url,
                headers,
                gzip,
            } => {
                let body = if *gzip { gzipped(&body)? } else { body };
                let mut request = Request::new(body);
                *request.method_mut() = Method::POST;
                *request.uri_mut() = url.clone();
                let h = request.headers_mut();
                h.clone_from(headers);
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                if *gzip {
                    h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                let response = client
                    .send_bytes(request)
                    .await
                    .map_err(|e| SendError::Http(chain(&e)))?;
                let status = response.status();
                if !status.is_success() {
                    return Err(SendError::Status(status.as_u16()));
                }
                if let Ok(r) = ExportMetricsServiceResponse::decode(response.into_body()) {
                    partial_success(&r);
                }
                Ok(())
            }
        }
    }
}

/// The status's message and the transport error under it (the TLS or connection reason,
/// which `Diagnosis` sorts into a cause), without tonic's metadata dump.
fn status_reason(s: &Status) -> String {
    let mut reason = s.message().to_owned();
    if let Some(source) = std::error::Error::source(s) {
        let detail = chain(source);
        if !reason.contains(&detail) {
            if !reason.is_empty() {
                reason.push_str(": ");
            }
            reason.push_str(&detail);
        }
    }
    reason
}

/// A receiver may accept a request but reject some points (OTLP's partial success): the request
/// is not retried (nor would the SDK's exporter), so it is only worth a debug line.
fn partial_success(r: &ExportMetricsServiceResponse) {
    if let Some(p) = &r.partial_success
        && (p.rejected_data_points > 0 || !p.error_message.is_empty())
    {
        tracing::debug!(
            rejected = p.rejected_data_points,
            reason = %p.error_message,
            "The OTLP receiver rejected some metric points."
        );
    }
}

fn gzipped(body: &[u8]) -> Result<Bytes, SendError> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    gz.write_all(body).map_err(SendError::Gzip)?;
    gz.finish().map(Bytes::from).map_err(SendError::Gzip)
}

/// Requests go out as the bytes `Encoder` produced; responses are decoded with prost.
struct PreEncoded;

struct BytesOut;

struct ResponseIn;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportMetricsServiceResponse;
    type Encoder = BytesOut;
    type Decoder = ResponseIn;

    fn encoder(&mut self) -> BytesOut {
        BytesOut
    }
    fn decoder(&mut self) -> ResponseIn {
        ResponseIn
    }
}

impl Encoder for BytesOut {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseIn {
    type Item = ExportMetricsServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        Message::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot decode the export response: {e}")))
    }
}
