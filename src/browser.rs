//! What a web browser may do with the gateway (docs/security.md, "Browsers").
//!
//! A web page can make its visitor's browser send requests to any address, the developer's
//! loopback included. Three rules keep such pages from using the gateway (and spending its
//! provider keys) unless the operator lets them:
//!
//! * **Content types.** A page may send a POST to another origin without asking first (no
//!   CORS preflight) only with a "simple" content type: `text/plain`,
//!   `application/x-www-form-urlencoded`, `multipart/form-data`, or none. Invocation bodies
//!   must therefore be declared JSON (`application/json`, or any `application/*+json`,
//!   parameters such as `charset` allowed, case-insensitive); anything else, no content type
//!   included (docs/mlflow-compat.md#fix-14), is refused before any upstream call, with
//!   MLflow's 422 on MLflow's routes and 415 in the client API's shape elsewhere
//!   ([`invocation_refusal`]). The raw proxy route
//!   never reads its bodies, so there a POST, PUT or PATCH must be declared JSON whatever its
//!   body ([`proxy_refusal`]), unless the endpoint sets `proxy_any_content_type: true`.
//! * **CORS** (`aigw.cors`): preflights answered per the Fetch standard ([`preflight`]), and
//!   the answers to the listed origins readable by their pages ([`allowed_origin`], the headers
//!   themselves are written by `server::write`). Without `aigw.cors` no CORS header is sent and
//!   `OPTIONS` is 405.
//! * **Hosts** (against DNS rebinding): without gateway keys, a request must name a loopback
//!   host (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`) or one of `aigw.allowed_hosts`
//!   in its `Host` (HTTP/2: `:authority`); anything else is 421 ([`check_host`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};
use pingora::http::RequestHeader;
use serde_json::{Value, json};

use crate::api::Reply;
use crate::config::CorsSettings;
use crate::error::{ErrorKind, Family, GatewayError, Reject};
use crate::schema::ValidationErrors;

/// Whether a `Content-Type` value declares JSON: `application/json` or `application/<x>+json`,
/// with any parameters, in any case (FastAPI's rule: the main type `application`, the subtype
/// `json` or ending in `+json`).
pub fn is_json(value: &[u8]) -> bool {
    let essence = value.split(|b| *b == b';').next().unwrap_or(value);
    let essence = essence.trim_ascii();
    let Some(slash) = essence.iter().position(|b| *b == b'/') else { return false };
    let (main, sub) = (essence[..slash].trim_ascii(), essence[slash + 1..].trim_ascii());
    main.eq_ignore_ascii_case(b"application")
        && (sub.eq_ignore_ascii_case(b"json") || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Whether the request's body is declared JSON.
pub fn declares_json(req: &RequestHeader) -> bool {
    req.headers.get(CONTENT_TYPE).is_some_and(|v| is_json(v.as_bytes()))
}

/// How a refused `Content-Type` is named in messages.
fn described(content_type: Option<&HeaderValue>) -> String {
    match content_type {
        Some(v) => format!("Content-Type '{}'", String::from_utf8_lossy(v.as_bytes())),
        None => "no Content-Type".to_owned(),
    }
}

/// The refusal of a non-empty invocation body that is not declared JSON. On MLflow's routes,
/// FastAPI's 422 for a body it did not parse as JSON (the body, as text, is the `input`); on
/// the other client APIs a 415 in their shape.
pub fn invocation_refusal(family: Family, content_type: Option<&HeaderValue>, body: &[u8]) -> GatewayError {
    let e = match family {
        Family::Native => GatewayError::validation(ValidationErrors(vec![json!({
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": Value::String(String::from_utf8_lossy(body).into_owned()),
        })])),
        _ => unsupported(format!(
            "The request body was sent with {}; send it as JSON (Content-Type: application/json)",
            described(content_type)
        )),
    };
    e.rejected(Reject::ContentType)
}

/// Whether the raw proxy route needs `method`'s request declared JSON: the methods that carry
/// a body (POST being the one a page may send to another origin without a preflight).
pub fn proxy_checks(method: &Method) -> bool {
    method == Method::POST || method == Method::PUT || method == Method::PATCH
}

/// The raw proxy route's refusal of a POST, PUT or PATCH not declared JSON (its body is never
/// read, so its size does not matter): 415.
pub fn proxy_refusal(content_type: Option<&HeaderValue>) -> GatewayError {
    unsupported(format!(
        "The raw proxy route forwards only bodies declared JSON (Content-Type: application/json), and this \
         request has {}; the endpoint's operator can allow any content type with proxy_any_content_type: true",
        described(content_type)
    ))
    .rejected(Reject::ContentType)
}

fn unsupported(message: String) -> GatewayError {
    GatewayError::new(415, ErrorKind::InvalidRequest, message).with_code("unsupported_media_type")
}

/// The `Access-Control-Allow-Origin` value for a request, when `aigw.cors` lets its `Origin`
/// read the answer: `*` for `allow_origins: ['*']` (without credentials), else the origin
/// itself. `None` without an `Origin` or for one not listed.
pub fn allowed_origin(cors: &CorsSettings, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    if cors.any_origin {
        return Some(HeaderValue::from_static("*"));
    }
    let o = origin.as_bytes();
    cors.allow_origins.iter().any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(o)).then(|| origin.clone())
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answer a preflight for an operation that accepts `methods` (`"POST"`, `"GET, HEAD"`):
/// 204 with the methods, the requested headers and the cache time, when the origin, the
/// method and every requested header are allowed (`Access-Control-Allow-Origin` and
/// `-Credentials` are added by the writer, as on every answer); otherwise a 403 naming what
/// is not allowed, which carries no `Access-Control-Allow-*` header, so the browser stops.
pub fn preflight(cors: &CorsSettings, headers: &HeaderMap, methods: &'static str) -> Result<Reply, GatewayError> {
    let refuse = |why: String| {
        Err(GatewayError::new(403, ErrorKind::Forbidden, format!("CORS preflight refused: {why}"))
            .with_code("cors_refused")
            .rejected(Reject::CorsPreflight))
    };
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    match headers.get(ORIGIN) {
        None => return refuse("the request has no Origin".into()),
        Some(_) if allowed_origin(cors, headers).is_some() => {}
        Some(o) => return refuse(format!("the origin '{}' is not in aigw.cors.allow_origins", text(o))),
    }
    let method = headers.get(ACCESS_CONTROL_REQUEST_METHOD).map(text).unwrap_or_default();
    if !methods.split(", ").any(|m| m == method) {
        return refuse(format!("this path does not accept {method} (it accepts {methods})"));
    }
    let requested = headers.get(ACCESS_CONTROL_REQUEST_HEADERS).map(text).unwrap_or_default();
    for name in requested.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !cors.allows_header(name) {
            return refuse(format!("the header '{name}' is not in aigw.cors.allow_headers"));
        }
    }
    let mut reply_headers = vec![
        ("access-control-allow-methods", methods.to_owned()),
        ("access-control-max-age", cors.max_age_s.to_string()),
        ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_owned()),
    ];
    if !requested.trim().is_empty() {
        reply_headers.push(("access-control-allow-headers", requested));
    }
    Ok(Reply { status: 204, content_type: None, body: bytes::Bytes::new(), headers: reply_headers })
}

/// The host a request names: HTTP/2's `:authority` (or an absolute request target's), else
/// the `Host` header. `None` when it names none (no browser sends such a request).
fn authority(req: &RequestHeader) -> Option<&[u8]> {
    match req.uri.authority() {
        Some(a) => Some(a.as_str().as_bytes()),
        None => req.headers.get(HOST).map(HeaderValue::as_bytes),
    }
}

/// The host part of an authority (`host`, `host:port`, `[v6]`, `[v6]:port`), without the
/// brackets of an IPv6 address; `None` if it is malformed (a port that is not a number,
/// userinfo).
fn host_part(authority: &[u8]) -> Option<&[u8]> {
    if authority.contains(&b'@') {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix(b"[") {
        let end = rest.iter().position(|b| *b == b']')?;
        let port = &rest[end + 1..];
        (&rest[..end], if port.is_empty() { None } else { Some(port.strip_prefix(b":")?) })
    } else {
        match authority.iter().rposition(|b| *b == b':') {
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        }
    };
    if port.is_some_and(|p| !p.iter().all(u8::is_ascii_digit)) || host.is_empty() {
        return None;
    }
    Some(host)
}

/// Whether `host` (lower or upper case, a trailing dot allowed) is a loopback name or
/// address: `localhost`, a name under `.localhost` (RFC 6761: resolved to loopback by the
/// browser itself), `127.0.0.0/8`, `::1` (also IPv4-mapped).
fn is_loopback(host: &[u8]) -> bool {
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.first().is_some_and(u8::is_ascii_digit)
        && let Some(ip) = std::str::from_utf8(host).ok().and_then(|h| h.parse::<Ipv4Addr>().ok())
    {
        return ip.is_loopback();
    }
    if host.contains(&b':') {
        return std::str::from_utf8(host)
            .ok()
            .and_then(|h| h.parse::<Ipv6Addr>().ok())
            .is_some_and(|ip| ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
    }
    host.eq_ignore_ascii_case(b"localhost")
        || host.len() > 10 && host[host.len() - 10..].eq_ignore_ascii_case(b".localhost")
}

/// Whether `host` is one of `allowed` (`aigw.allowed_hosts`, lower case, `*.suffix` for any
/// name under `suffix`).
fn is_listed(host: &[u8], allowed: &[String]) -> bool {
    let host = host.strip_suffix(b".").unwrap_or(host);
    allowed.iter().any(|a| match a.strip_prefix('*') {
        Some(suffix) => {
            host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        }
        None => host.eq_ignore_ascii_case(a.as_bytes()),
    })
}

/// Whether `authority` (a `Host` or `:authority` value) names a host this gateway serves
/// without keys: a loopback name or address, or one of `allowed`.
pub fn host_allowed(authority: &[u8], allowed: &[String]) -> bool {
    host_part(authority).is_some_and(|h| is_loopback(h) || is_listed(h, allowed))
}

/// The Host rule of a gateway without keys (DNS rebinding: a page whose own name now resolves
/// to this machine can send requests here, but they still name the page's host): `Ok` for a
/// loopback name or address or one of `allowed`, or a request that names no host; else 421.
pub fn check_host(req: &RequestHeader, allowed: &[String]) -> Result<(), GatewayError> {
    match authority(req) {
        None => Ok(()),
        Some(a) if host_allowed(a, allowed) => Ok(()),
        Some(a) => Err(GatewayError::new(
            421,
            ErrorKind::Misdirected,
            format!(
                "This gateway has no API keys, so it answers only requests addressed to a loopback name or \
                 address (localhost, 127.0.0.1, [::1]) or to a host in aigw.allowed_hosts; '{}' is neither",
                String::from_utf8_lossy(a)
            ),
        )
        .rejected(Reject::HostNotAllowed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/vnd.api+json",
            "application/merge-patch+JSON; x=y",
        ] {
            assert!(is_json(ok.as_bytes()), "{ok}");
        }
        for no in [
            "",
            "text/plain",
            "text/plain;charset=UTF-8",
            "text/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-seq",
            "json",
            "application",
            "application/",
            "application/xjson",
            "application/+json",
        ] {
            assert!(!is_json(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn native_refusal_is_fastapis_422() {
        let ct = HeaderValue::from_static("text/plain;charset=UTF-8");
        let e = invocation_refusal(Family::Native, Some(&ct), br#"{"messages": []}"#);
        assert_eq!((e.status_for(Family::Native), e.reject), (422, Some(Reject::ContentType)));
        let body: Value = serde_json::from_slice(&e.body(Family::Native)).unwrap();
        assert_eq!(
            body,
            json!({"detail": [{"type": "model_attributes_type", "loc": ["body"],
                               "msg": "Input should be a valid dictionary or object to extract fields from",
                               "input": "{\"messages\": []}"}]})
        );
        for family in [Family::OpenAi, Family::Anthropic, Family::Responses] {
            let e = invocation_refusal(family, None, b"{}");
            assert_eq!(e.status_for(family), 415, "{family:?}");
            assert!(e.message().contains("no Content-Type"), "{}", e.message());
        }
        let body: Value =
            serde_json::from_slice(&invocation_refusal(Family::Anthropic, Some(&ct), b"{}").body(Family::Anthropic))
                .unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].as_str().unwrap().contains("'text/plain;charset=UTF-8'"), "{body}");
    }

    #[test]
    fn hosts() {
        let allowed = vec![
            "gateway.internal".to_owned(),
            "*.corp.example".to_owned(),
            "10.0.0.5".to_owned(),
            "fd00::1".to_owned(),
        ];
        for ok in [
            "localhost",
            "LOCALHOST:5000",
            "localhost.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:5000",
            "[::ffff:127.0.0.1]:5000",
            "gateway.internal:5000",
            "Gateway.Internal",
            "a.corp.example",
            "a.b.corp.example:443",
            "10.0.0.5:5000",
            "[fd00::1]:5000",
            "1password.localhost",
        ] {
            assert!(host_allowed(ok.as_bytes(), &allowed), "{ok}");
        }
        for no in [
            "evil.test",
            "evil.test:5000",
            "localhost.evil.test",
            "evillocalhost",
            "corp.example",
            "xcorp.example",
            "127.0.0.1.evil.test",
            "10.0.0.6",
            "[fd00::2]",
            "::1",
            "localhost:abc",
            "user@localhost",
            "",
            ":5000",
            "0.0.0.0",
        ] {
            assert!(!host_allowed(no.as_bytes(), &allowed), "{no}");
        }
    }
}
