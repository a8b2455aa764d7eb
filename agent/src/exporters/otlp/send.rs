//! Sends an encoded OTLP export request (metrics or logs) over gRPC (tonic) or http/protobuf.
//!
//! gRPC goes through `tonic::client::Grpc` with a codec that writes the bytes we already
//! encoded (a generated service client would take the message by value and drop the buffers an
//! encoder reuses), on the same method path the generated client uses. The response is decoded
//! per signal, for its partial success.

use std::io::Write;

use bytes::{Buf, BufMut, Bytes};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request as GrpcRequest, Status};

use crate::exporters::diagnosis::chain;
use crate::exporters::http_client::DiagnosedClient;

/// Which OTLP service a sender exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
}

impl Signal {
    /// As errors and logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The gRPC method (the http/protobuf URL path is part of the configured signal URL).
    fn export_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }

    /// What the receiver rejected, from an export response: (count, message), if anything.
    fn rejected(self, response: &[u8]) -> Result<Option<(i64, String)>, prost::DecodeError> {
        let (count, message) = match self {
            Signal::Metrics => ExportMetricsServiceResponse::decode(response)?
                .partial_success
                .map(|p| (p.rejected_data_points, p.error_message)),
            Signal::Logs => ExportLogsServiceResponse::decode(response)?
                .partial_success
                .map(|p| (p.rejected_log_records, p.error_message)),
        }
        .unwrap_or_default();
        Ok((count > 0 || !message.is_empty()).then_some((count, message)))
    }

    fn items(self) -> &'static str {
        match self {
            Signal::Metrics => "metric points",
            Signal::Logs => "log records",
        }
    }
}

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

/// Where a signal's encoded requests go.
pub struct Sender {
    signal: Signal,
    transport: Transport,
}

/// One per configured protocol.
enum Transport {
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
    pub fn grpc(signal: Signal, channel: Channel, headers: HeaderMap, gzip: bool) -> Sender {
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        Sender {
            signal,
            transport: Transport::Grpc {
                client,
                metadata: MetadataMap::from_headers(headers),
            },
        }
    }

    /// An http/protobuf sender posting to `url` (the signal URL, `/v1/metrics` or `/v1/logs`
    /// included).
    pub fn http(
        signal: Signal,
        client: DiagnosedClient,
        url: Uri,
        headers: HeaderMap,
        gzip: bool,
    ) -> Sender {
        Sender {
            signal,
            transport: Transport::Http {
                client,
                url,
                headers,
                gzip,
            },
        }
    }

    /// Sends one request body. Not bounded here: the caller applies the timeout.
    pub async fn send(&mut self, body: Bytes) -> Result<(), SendError> {
        let signal = self.signal;
        match &mut self.transport {
            Transport::Grpc { client, metadata } => {
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
                let path = PathAndQuery::from_static(signal.export_path());
                let response = client
                    .unary(request, path, PreEncoded)
                    .await
                    .map_err(grpc_error)?;
                // A gRPC answer that is not the service's response is a failed export.
                let rejected =
                    signal
                        .rejected(response.get_ref())
                        .map_err(|e| SendError::Grpc {
                            code: tonic::Code::Internal,
                            reason: format!("cannot decode the export response: {e}"),
                        })?;
                partial_success(signal, rejected);
                Ok(())
            }
            Transport::Http {
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
                // A 2xx is a delivery; an unreadable body only loses the partial-success detail.
                if let Ok(rejected) = signal.rejected(response.body()) {
                    partial_success(signal, rejected);
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

/// A receiver may accept a request but reject some points or records (OTLP's partial success):
/// the request is not retried (nor was it by the SDK's exporters), so it is only worth a debug
/// line.
fn partial_success(signal: Signal, rejected: Option<(i64, String)>) {
    if let Some((count, reason)) = rejected {
        tracing::debug!(
            rejected = count,
            reason = %reason,
            "The OTLP receiver rejected some {}.",
            signal.items()
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

/// Requests go out as the bytes an encoder produced; responses come back as bytes, decoded per
/// signal by `Signal::rejected`.
struct PreEncoded;

struct BytesOut;

struct ResponseIn;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = Bytes;
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
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;

    use super::*;

    #[test]
    fn each_signal_reads_its_own_partial_success() {
        let metrics = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 3,
                error_message: "bad points".into(),
            }),
        }
        .encode_to_vec();
        let logs = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: String::new(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            Signal::Metrics.rejected(&metrics).unwrap(),
            Some((3, "bad points".into()))
        );
        assert_eq!(
            Signal::Logs.rejected(&logs).unwrap(),
            Some((2, String::new()))
        );
        // A full success: an empty response, or a partial success that rejected nothing.
        assert_eq!(Signal::Logs.rejected(&[]).unwrap(), None);
        let nothing = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess::default()),
        }
        .encode_to_vec();
        assert_eq!(Signal::Logs.rejected(&nothing).unwrap(), None);
        // Not a response at all.
        assert!(Signal::Metrics.rejected(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn each_signal_calls_its_own_service() {
        assert_eq!(
            Signal::Metrics.export_path(),
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        );
        assert_eq!(
            Signal::Logs.export_path(),
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        );
    }
}
