//! The HTTP client the AWS SDK's credential providers (IMDS, the container endpoint, STS, SSO)
//! send their calls through: aigw's own upstream client ([`Upstreams`]), so they share its
//! connection pool, DNS cache, TLS roots and time limits, and no second HTTP or TLS stack is
//! built into the binary (docs/credentials.md).
//!
//! Each call gets one deadline: the connect and read timeouts the SDK asks for added up, or
//! [`REFRESH_TIMEOUT`] when it names none. Bodies are capped at 1 MiB like every side call.
//! Errors carry the gateway's message (host and cause), never a header or body.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use std::time::Duration;

use crate::config::BaseUrl;
use crate::error::GatewayError;
use crate::providers::token_cache::REFRESH_TIMEOUT;
use crate::upstream::{UpstreamRequest, Upstreams};

/// Largest body the SDK's credential calls may answer with.
const BODY_CAP: usize = 1 << 20;

/// aigw's upstream client as the AWS SDK's HTTP client.
#[derive(Clone)]
pub struct AwsHttp {
    upstreams: Upstreams,
}

impl std::fmt::Debug for AwsHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsHttp")
    }
}

impl AwsHttp {
    /// A client sending through `upstreams` (a clone sharing its pool).
    pub fn new(upstreams: Upstreams) -> Self {
        AwsHttp { upstreams }
    }
}

/// One connector per timeout setting the SDK asks for.
#[derive(Debug)]
struct Connector {
    http: AwsHttp,
    timeout: Duration,
}

impl HttpClient for AwsHttp {
    fn http_connector(&self, settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        let timeout = match (settings.connect_timeout(), settings.read_timeout()) {
            (None, None) => REFRESH_TIMEOUT,
            (c, r) => (c.unwrap_or_default() + r.unwrap_or_default()).min(REFRESH_TIMEOUT),
        };
        SharedHttpConnector::new(Connector { http: self.clone(), timeout })
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let upstreams = self.http.upstreams.clone();
        let timeout = self.timeout;
        HttpConnectorFuture::new(async move {
            let req = to_upstream(&request).map_err(|e| ConnectorError::other(Box::new(e), None))?;
            let mut resp = upstreams.send(&req, None, timeout).await.map_err(connector_error)?;
            let body = resp.body(BODY_CAP).await.map_err(connector_error)?;
            let status = StatusCode::try_from(resp.status).map_err(|e| ConnectorError::other(Box::new(e), None))?;
            let mut out = HttpResponse::new(status, SdkBody::from(body));
            for (name, value) in resp.headers() {
                if let Ok(v) = value.to_str() {
                    out.headers_mut().append(name.as_str().to_owned(), v.to_owned());
                }
            }
            upstreams.release(resp).await;
            Ok(out)
        })
    }
}

/// The SDK's request as an aigw upstream request. The target is kept exactly (IMDS paths end
/// with `/`).
fn to_upstream(request: &HttpRequest) -> Result<UpstreamRequest, GatewayError> {
    let uri: http::Uri = request
        .uri()
        .parse()
        .map_err(|_| GatewayError::internal("the AWS credential chain built a request with an unusable URI"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(GatewayError::internal("the AWS credential chain built a request without a host"));
    };
    let base = BaseUrl::parse(&format!("{scheme}://{authority}")).map_err(GatewayError::internal)?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let method = http::Method::from_bytes(request.method().as_bytes())
        .map_err(|_| GatewayError::internal("the AWS credential chain built a request with an unusable method"))?;
    let mut headers = Vec::with_capacity(8);
    for (name, value) in request.headers() {
        let (Ok(name), Ok(mut value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        else {
            return Err(GatewayError::internal("the AWS credential chain built a header that is not valid HTTP"));
        };
        // Tokens and signatures: never logged by the HTTP layer.
        value.set_sensitive(true);
        headers.push((name, value));
    }
    let body = match request.body().bytes() {
        Some(b) => Bytes::copy_from_slice(b),
        None => return Err(GatewayError::internal("the AWS credential chain sent a streaming body")),
    };
    Ok(UpstreamRequest { origin: base.origin, method, target, headers, body })
}

/// The gateway's error as the SDK's: timeouts as timeouts (the SDK retries or moves on), the
/// rest as I/O failures. The message names the host and the cause, never a credential.
fn connector_error(e: GatewayError) -> ConnectorError {
    let timed_out = e.status == 504;
    let source: Box<dyn std::error::Error + Send + Sync> = e.message().into();
    if timed_out { ConnectorError::timeout(source) } else { ConnectorError::io(source) }
}
