//! Sends an encoded OTLP export request (metrics or logs) over gRPC or http/protobuf, both
//! through the agent's HTTP client (h2 for gRPC, grpc.rs; HTTP/1.1 for http/protobuf). The
//! response is decoded per signal, for its partial success.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, TE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;

use super::grpc::{self, Code};
use crate::exporters::diagnosis::chain;
use crate::exporters::http_client::DiagnosedClient;

/// gRPC's header naming the request body's compression.
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

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
    #[error("the gRPC server returned {}: {reason}", .code.name())]
    Grpc { code: Code, reason: String },
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
    client: DiagnosedClient,
    /// The signal URL (http/protobuf), or the endpoint with the service's method path (gRPC).
    url: Uri,
    /// The configured headers and the protocol's own, set once.
    headers: HeaderMap,
    gzip: bool,
    grpc: bool,
}

impl Sender {
    /// A gRPC sender to `endpoint`'s host (its path, if any, is replaced by the method's);
    /// `client` must speak h2 (`http_client::grpc_client`).
    pub fn grpc(
        signal: Signal,
        client: DiagnosedClient,
        endpoint: Uri,
        mut headers: HeaderMap,
        gzip: bool,
    ) -> Result<Sender, String> {
        let mut parts = endpoint.into_parts();
        parts.path_and_query = Some(PathAndQuery::from_static(signal.export_path()));
        let url = Uri::from_parts(parts).map_err(|e| e.to_string())?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        if gzip {
            headers.insert(GRPC_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(Sender {
            signal,
            client,
            url,
            headers,
            gzip,
            grpc: true,
        })
    }

    /// An http/protobuf sender posting to `url` (the signal URL, `/v1/metrics` or `/v1/logs`
    /// included).
    pub fn http(
        signal: Signal,
        client: DiagnosedClient,
        url: Uri,
        mut headers: HeaderMap,
        gzip: bool,
    ) -> Sender {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Sender {
            signal,
            client,
            url,
            headers,
            gzip,
            grpc: false,
        }
    }

    /// Sends the request an encoder wrote into `buf`, taking it (`buf` gets its allocation
    /// back for the next encoding once the request is dropped). Not bounded here: the caller
    /// applies the timeout.
    pub async fn send(&mut self, buf: &mut BytesMut) -> Result<(), SendError> {
        let body = self.body(buf)?;
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        request.headers_mut().clone_from(&self.headers);
        let (response, trailers) = self
            .client
            .send_for_trailers(request)
            .await
            .map_err(|e| SendError::Http(chain(&e)))?;
        let status = response.status();
        if !self.grpc {
            if !status.is_success() {
                return Err(SendError::Status(status.as_u16()));
            }
            // A 2xx is a delivery; an unreadable body only loses the partial-success detail.
            if let Ok(rejected) = self.signal.rejected(response.body()) {
                partial_success(self.signal, rejected);
            }
            return Ok(());
        }
        if status != StatusCode::OK {
            return Err(SendError::Grpc {
                code: Code::from_http(status),
                reason: format!("HTTP status {}", status.as_u16()),
            });
        }
        let (code, reason) = grpc::status(response.headers(), trailers.as_ref());
        if code != Code::OK {
            return Err(SendError::Grpc { code, reason });
        }
        // A gRPC answer that is not the service's response is a failed export.
        let internal = |reason: String| SendError::Grpc {
            code: Code::INTERNAL,
            reason: format!("cannot decode the export response: {reason}"),
        };
        let message = grpc::unframe(response.body()).map_err(internal)?;
        let rejected = self
            .signal
            .rejected(&message)
            .map_err(|e| internal(e.to_string()))?;
        partial_success(self.signal, rejected);
        Ok(())
    }

    /// The request body: the encoded message as it is, or gzipped; for gRPC behind its prefix.
    fn body(&self, buf: &mut BytesMut) -> Result<Bytes, SendError> {
        let mut gz;
        let body = if self.gzip {
            gz = gzipped(buf)?;
            &mut gz
        } else {
            buf
        };
        if self.grpc {
            grpc::frame_in_place(body, self.gzip).map_err(|reason| SendError::Grpc {
                code: Code::INTERNAL,
                reason,
            })?;
        }
        Ok(body.split().freeze())
    }
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

fn gzipped(body: &[u8]) -> Result<BytesMut, SendError> {
    let mut gz = flate2::write::GzEncoder::new(
        BytesMut::with_capacity(body.len() / 4).writer(),
        flate2::Compression::default(),
    );
    gz.write_all(body).map_err(SendError::Gzip)?;
    gz.finish()
        .map(bytes::buf::Writer::into_inner)
        .map_err(SendError::Gzip)
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
