//! MLflow 3's raw proxy route, `/gateway/proxy/{endpoint}/{path}`, through Pingora's own proxy
//! pipeline: the upstream is known from the URL and the body needs no translation, so this is
//! where Pingora's design fits as it is (docs/architecture.md, "The raw proxy route").
//!
//! * `request_filter` authenticates, resolves the endpoint, checks the caller's permission and
//!   the endpoint's limits, and plans the upstream call ([`plan`]): the provider's base URL and
//!   credential headers (`Provider::raw_upstream`, with `Provider::authorize` for tokens), the
//!   address from the gateway's DNS cache. It then lets the request go on (`Ok(false)`).
//! * `upstream_peer` returns the planned peer (TLS with SNI = the host, pooled by Pingora;
//!   through the forward proxy's tunnel when one is configured, checked by the egress guard).
//! * `upstream_request_filter` sets the path (the provider's base path, then the rest of the
//!   client's path and its query), `Host`, and the provider's credentials; the client's own
//!   credentials are removed.
//! * `response_filter` and `response_body_filter` record the status and the bytes, and read
//!   the token usage on the way ([`UsageTap`]: SSE usage events, or the `usage` of a JSON
//!   body), without holding the body back: bodies stream through untouched, at any size.
//!
//! Client disconnects are Pingora's own downstream handling (the upstream connection is
//! dropped). A provider whose requests are signed over their body (Bedrock's SigV4) cannot be
//! proxied: 400.

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use serde_json::Value;

use super::{RequestCtx, State};
use crate::browser;
use crate::config::{ApiKey, Origin};
use crate::error::GatewayError;
use crate::framing::sse::SseParser;
use crate::schema::Usage;
use crate::snapshot::Snapshot;
use crate::upstream::UpstreamRequest;

/// A planned raw proxy call.
pub struct ProxyPlan {
    /// Where to connect.
    pub origin: std::sync::Arc<Origin>,
    /// How: the address (or the forward proxy's tunnel), checked by the egress guard.
    pub peer: HttpPeer,
    /// The request target upstream: the provider's base path, the rest of the client's path,
    /// the query.
    pub target: String,
    /// Headers the provider wants (credentials, versions).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Headers that carry a client's credentials: never forwarded.
const CLIENT_CREDENTIALS: &[&str] =
    &["authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie"];

/// Plan the raw proxy call of `rest` (and the client's query) to `endpoint_name`'s provider.
pub async fn plan(
    session: &Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    key: Option<&ApiKey>,
    endpoint_name: &str,
    rest: &str,
) -> Result<ProxyPlan, GatewayError> {
    let config = &snapshot.config;
    let endpoint = config.endpoint(endpoint_name).ok_or_else(GatewayError::not_found)?;
    super::invoke::allowed(state, key, &endpoint.name)?;
    // Its body is never read: a method that carries one must declare JSON, unless the
    // endpoint opts out (docs/security.md, "Content types").
    let req = session.req_header();
    if browser::proxy_checks(&req.method) && !endpoint.proxy_any_content_type && !browser::declares_json(req) {
        return Err(browser::proxy_refusal(req.headers.get(http::header::CONTENT_TYPE)));
    }
    ctx.target = Some(endpoint.name.clone());
    ctx.endpoint = Some(endpoint.name.clone());
    ctx.provider = Some(endpoint.provider_name.as_str());
    ctx.model.clone_from(&endpoint.model_name);
    super::invoke::admit_raw(session, state, snapshot, endpoint, ctx).await?;
    let provider = snapshot.provider(endpoint)?;
    let mut template: UpstreamRequest = provider.raw_upstream()?;
    provider.authorize(&mut template, &state.upstreams).await?;
    let timeout = endpoint.timeout.unwrap_or(state.upstreams.route_timeout);
    let peer = state.upstreams.peer_for(&template.origin, timeout).await?;
    let (base_path, base_query) = match template.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (template.target.as_str(), None),
    };
    let mut target = String::with_capacity(base_path.len() + rest.len() + 64);
    target.push_str(base_path.trim_end_matches('/'));
    target.push('/');
    target.push_str(rest);
    let queries = [base_query, session.req_header().uri.query()];
    let mut separator = '?';
    for q in queries.into_iter().flatten().filter(|q| !q.is_empty()) {
        target.push(separator);
        target.push_str(q);
        separator = '&';
    }
    if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(GatewayError::bad_request("The proxied path may not contain spaces or control characters"));
    }
    let headers = template.headers.into_iter().filter(|(name, _)| name != http::header::CONTENT_TYPE).collect();
    Ok(ProxyPlan { origin: template.origin, peer, target, headers })
}

/// The peer of a planned call.
pub fn peer(plan: &ProxyPlan) -> HttpPeer {
    plan.peer.clone()
}

/// Rewrite the request going upstream: target, `Host`, credentials, request id.
pub fn upstream_request(plan: &ProxyPlan, request_id: &str, req: &mut RequestHeader) -> pingora::Result<()> {
    let uri: http::Uri = plan
        .target
        .parse()
        .map_err(|_| pingora::Error::explain(pingora::ErrorType::InternalError, "unusable proxy target"))?;
    req.set_uri(uri);
    for name in CLIENT_CREDENTIALS {
        req.remove_header(*name);
    }
    req.insert_header(http::header::HOST, plan.origin.authority.as_str())?;
    for (name, value) in &plan.headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    req.insert_header("x-request-id", request_id)?;
    Ok(())
}

/// Reads the token usage of an answer passing through, without holding it back: the usage
/// events of an SSE stream, or the `usage` (`usageMetadata`) of a JSON body (parsed whole when
/// small, else from its last 64 KiB, where providers put it).
#[derive(Debug, Default)]
pub struct UsageTap {
    mode: TapMode,
    /// SSE: the parser; JSON: unused.
    parser: Option<SseParser>,
    /// JSON: the body so far, or its last bytes once it grew large.
    tail: Vec<u8>,
    /// Whether `tail` lost the start of the body.
    truncated: bool,
    /// Anthropic-style usage is spread over several events; the counts so far.
    parts: serde_json::Map<String, Value>,
    usage: Option<Usage>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum TapMode {
    #[default]
    Off,
    Sse,
    Json,
}

/// How much of a JSON body the tap keeps.
const TAIL: usize = 64 * 1024;

impl UsageTap {
    /// A tap for an answer of `content_type`.
    pub fn for_content_type(content_type: &str) -> UsageTap {
        let media = crate::framing::media_type(content_type);
        if media.eq_ignore_ascii_case("text/event-stream") {
            UsageTap { mode: TapMode::Sse, parser: Some(SseParser::new()), ..UsageTap::default() }
        } else if crate::framing::is_json(content_type) {
            UsageTap { mode: TapMode::Json, ..UsageTap::default() }
        } else {
            UsageTap::default()
        }
    }

    /// Look at the next piece of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        match self.mode {
            TapMode::Off => {}
            TapMode::Sse => {
                let Some(mut parser) = self.parser.take() else { return };
                // An over-long event only stops the tap, never the answer.
                let ok = parser.feed(chunk, |e| self.event(e.data)).is_ok();
                if ok {
                    self.parser = Some(parser);
                }
            }
            TapMode::Json => {
                self.tail.extend_from_slice(chunk);
                if self.tail.len() > 2 * TAIL {
                    let cut = self.tail.len() - TAIL;
                    self.tail.drain(..cut);
                    self.truncated = true;
                }
            }
        }
    }

    /// The body ended: the usage it reported, if any.
    pub fn finish(&mut self) -> Option<Usage> {
        match self.mode {
            TapMode::Off => None,
            TapMode::Sse => {
                if let Some(mut parser) = self.parser.take() {
                    let _ = parser.finish(|e| self.event(e.data));
                }
                self.usage.clone()
            }
            TapMode::Json => {
                if !self.truncated
                    && let Ok(v) = serde_json::from_slice::<Value>(&self.tail)
                {
                    self.take(&v);
                } else {
                    self.take_from_tail();
                }
                self.usage.clone()
            }
        }
    }

    fn event(&mut self, data: &str) {
        if !(data.contains("usage") || data.contains("Usage")) {
            return;
        }
        if let Ok(v) = serde_json::from_str::<Value>(data) {
            self.take(&v);
        }
    }

    /// Take the usage a JSON answer or event carries, in any provider's shape.
    fn take(&mut self, v: &Value) {
        let found = v
            .get("usage")
            .or_else(|| v.get("message").and_then(|m| m.get("usage")))
            .or_else(|| v.get("response").and_then(|r| r.get("usage")))
            .filter(|u| u.is_object());
        if let Some(Value::Object(u)) = found {
            self.usage = Some(if u.contains_key("input_tokens") || u.contains_key("output_tokens") {
                // Anthropic's (counts spread over message_start and message_delta) or the
                // Responses API's.
                for (k, val) in u {
                    if val.is_u64() {
                        self.parts.insert(k.clone(), val.clone());
                    }
                }
                let count = |k: &str| self.parts.get(k).and_then(Value::as_u64);
                let prompt = count("input_tokens").unwrap_or(0)
                    + count("cache_read_input_tokens").unwrap_or(0)
                    + count("cache_creation_input_tokens").unwrap_or(0);
                let completion = count("output_tokens");
                Usage::new(Some(prompt), completion)
            } else {
                Usage::from_openai(&Value::Object(u.clone()))
            });
        } else if let Some(m) = v.get("usageMetadata").filter(|m| m.is_object()) {
            let count = |k: &str| m.get(k).and_then(Value::as_u64);
            let completion = match (count("candidatesTokenCount"), count("thoughtsTokenCount")) {
                (None, None) => None,
                (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
            };
            self.usage = Some(Usage::new(count("promptTokenCount"), completion));
        }
    }

    /// A large JSON body: the last usage object in its tail.
    fn take_from_tail(&mut self) {
        for key in [&b"\"usage\":"[..], &b"\"usageMetadata\":"[..]] {
            if let Some(at) = memchr::memmem::rfind(&self.tail, key) {
                let mut values =
                    serde_json::Deserializer::from_slice(&self.tail[at + key.len()..]).into_iter::<Value>();
                if let Some(Ok(v)) = values.next() {
                    let name = std::str::from_utf8(&key[1..key.len() - 2]).unwrap_or("usage");
                    let mut wrapper = serde_json::Map::new();
                    wrapper.insert(name.to_owned(), v);
                    self.take(&Value::Object(wrapper));
                    return;
                }
            }
        }
    }
}

/// Record what passed through: bytes, the first byte's time, the usage.
pub fn tap_body(ctx: &mut RequestCtx, body: &Option<Bytes>, end_of_stream: bool) {
    if let Some(b) = body {
        if ctx.first_byte.is_none() && !b.is_empty() {
            ctx.first_byte = ctx.started.map(|s| s.elapsed());
        }
        ctx.bytes_out += b.len();
        if let Some(tap) = ctx.usage_tap.as_mut() {
            tap.feed(b);
        }
    }
    if end_of_stream && let Some(mut tap) = ctx.usage_tap.take() {
        ctx.usage = tap.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(content_type: &str, pieces: &[&[u8]]) -> Option<Usage> {
        let mut tap = UsageTap::for_content_type(content_type);
        for p in pieces {
            tap.feed(p);
        }
        tap.finish()
    }

    #[test]
    fn usage_from_every_shape() {
        let openai = br#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(run("application/json", &[&openai[..10], &openai[10..]]).unwrap().total_tokens, Some(7));
        let anthropic = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        let u = run("text/event-stream", &[&anthropic[..40], &anthropic[40..]]).unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(15), Some(9)));
        let gemini = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":3,"thoughtsTokenCount":4}}"#;
        let u = run("application/json; charset=UTF-8", &[gemini]).unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(2), Some(7)));
        let responses = b"data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":6,\"output_tokens\":2}}}\n\n";
        assert_eq!(run("text/event-stream", &[responses]).unwrap().completion_tokens, Some(2));
        assert!(run("application/octet-stream", &[openai]).is_none());
        assert!(run("application/json", &[b"{\"data\":[]}"]).is_none());
    }

    #[test]
    fn a_large_json_body_is_read_from_its_tail() {
        let mut body = br#"{"data":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 1 << 20));
        body.extend(br#"","usage":{"prompt_tokens":8,"total_tokens":8}}"#);
        let pieces: Vec<&[u8]> = body.chunks(7_000).collect();
        let mut tap = UsageTap::for_content_type("application/json");
        for p in &pieces {
            tap.feed(p);
            assert!(tap.tail.len() <= 2 * TAIL + 7_000, "the tap holds a bounded tail");
        }
        assert_eq!(tap.finish().unwrap().prompt_tokens, Some(8));
    }
}
