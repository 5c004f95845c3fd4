//! Helpers shared by the Bedrock tests: an AWS event-stream encoder (the mock upstream's side of
//! ConverseStream), an independent SigV4 verifier written from AWS's published algorithm (it
//! does not use the `aws-sigv4` crate the gateway signs with), and a fixture replay that expects
//! the model id percent-encoded in the path as the AWS SDKs send it.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::upstream::{Recorded, Reply};
use super::{Gateway, split_points, yaml};

/// The fixtures' access key.
pub const AKID: &str = "AKIAEXAMPLE";
/// The fixtures' secret key.
pub const SECRET: &str = "secret";

// ---- event stream ----

/// One event-stream message with string headers.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (k, v) in headers {
        h.push(k.len() as u8);
        h.extend_from_slice(k.as_bytes());
        h.push(7);
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A ConverseStream `event` message: `{"<type>": <payload>}` as boto3 shows it, on the wire
/// as `:event-type: <type>` with the inner object as the payload.
pub fn event_frame(event: &Value) -> Vec<u8> {
    let (kind, payload) = event.as_object().and_then(|o| o.iter().next()).expect("one event type per event");
    frame(
        &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
        payload.to_string().as_bytes(),
    )
}

/// A ConverseStream exception message.
pub fn exception_frame(kind: &str, message: &str) -> Vec<u8> {
    frame(
        &[(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

/// An event-stream answer, one chunk per piece.
pub fn event_stream_reply(pieces: Vec<Vec<u8>>) -> Reply {
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/vnd.amazon.eventstream".into())],
        pieces: pieces.into_iter().map(|p| (p, Duration::from_millis(1))).collect(),
        chunked: true,
    }
}

/// The mock reply for `bedrock-chat-stream.json`: its events as frames, one chunk per frame
/// (split `None`) or the whole body split at random byte positions.
pub fn stream_fixture_reply(fx: &Value, split: Option<u64>) -> Reply {
    let frames: Vec<Vec<u8>> =
        fx["upstream_response"]["event_stream"].as_array().expect("event_stream").iter().map(event_frame).collect();
    let pieces = match split {
        None => frames,
        Some(seed) => split_points(&frames.concat(), seed, 16),
    };
    event_stream_reply(pieces)
}

// ---- paths ----

/// A model id as one percent-encoded path segment.
pub fn encode_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The fixture's REST path with the model id encoded as the AWS SDKs send it.
pub fn wire_path(fx: &Value, path: &str) -> String {
    let model = fx["endpoint_config"]["model"]["name"].as_str().unwrap();
    path.replace(model, &encode_segment(model))
}

// ---- SigV4, independently ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding of everything but unreserved characters (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug)]
pub struct SigV4Header {
    pub akid: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse and check the structure of a SigV4 `Authorization` header.
pub fn parse_authorization(value: &str) -> SigV4Header {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").unwrap_or_else(|| panic!("not SigV4: {value}"));
    let parts: Vec<&str> = rest.split(", ").collect();
    assert_eq!(parts.len(), 3, "{value}");
    let credential = parts[0].strip_prefix("Credential=").expect("Credential=");
    let scope: Vec<&str> = credential.split('/').collect();
    assert_eq!(scope.len(), 5, "{credential}");
    assert_eq!(scope[4], "aws4_request");
    assert!(scope[1].len() == 8 && scope[1].bytes().all(|b| b.is_ascii_digit()), "{credential}");
    let signed = parts[1].strip_prefix("SignedHeaders=").expect("SignedHeaders=");
    let signature = parts[2].strip_prefix("Signature=").expect("Signature=");
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");
    SigV4Header {
        akid: scope[0].into(),
        date: scope[1].into(),
        region: scope[2].into(),
        service: scope[3].into(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.into(),
    }
}

/// Verify a received request's SigV4 signature from scratch (canonical request with the path
/// encoded once more, as AWS does for every service but S3; the body's SHA-256; HMAC chain).
/// Returns the parsed header.
#[track_caller]
pub fn verify_sigv4(req: &Recorded, secret: &str, region: &str, service: &str) -> SigV4Header {
    let auth = parse_authorization(req.header("authorization").expect("authorization header"));
    assert_eq!((auth.region.as_str(), auth.service.as_str()), (region, service));
    let amz_date = req.header("x-amz-date").expect("x-amz-date");
    assert_eq!(&amz_date[..8], auth.date, "scope date");
    // x-amz-date is the signing time: close to now.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let signed_at = parse_amz_date(amz_date);
    assert!(now.abs_diff(signed_at) < 300, "x-amz-date {amz_date} is not now");
    for must in ["host", "x-amz-date"] {
        assert!(auth.signed_headers.iter().any(|h| h == must), "{must} not signed: {:?}", auth.signed_headers);
    }
    if req.header("x-amz-security-token").is_some() {
        assert!(auth.signed_headers.iter().any(|h| h == "x-amz-security-token"));
    }
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    assert_eq!(sorted, auth.signed_headers, "SignedHeaders must be sorted");

    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let canonical_uri = uri_encode(path, true);
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(k, false), uri_encode(v, false))
        })
        .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let value = req.header(name).unwrap_or_else(|| panic!("signed header {name} was not received"));
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical = format!(
        "{}\n{canonical_uri}\n{}\n{canonical_headers}\n{}\n{}",
        req.method,
        canonical_query.join("&"),
        auth.signed_headers.join(";"),
        hex(&Sha256::digest(&req.body))
    );
    let scope = format!("{}/{region}/{service}/aws4_request", auth.date);
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let k = hmac(format!("AWS4{secret}").as_bytes(), &auth.date);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    let expected = hex(&hmac(&k, &to_sign));
    assert_eq!(auth.signature, expected, "signature mismatch; canonical request:\n{canonical}");
    auth
}

fn parse_amz_date(s: &str) -> u64 {
    // yyyymmddThhmmssZ
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) as u64
}

/// The fixture SigV4 check: access key `AKIAEXAMPLE`, region us-east-1, service `bedrock`,
/// no session token.
pub fn check_fixture_sigv4(requests: &[Recorded]) {
    assert!(!requests.is_empty());
    for r in requests {
        let auth = verify_sigv4(r, SECRET, "us-east-1", "bedrock");
        assert_eq!(auth.akid, AKID);
        assert_eq!(r.header("x-amz-security-token"), None);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

// ---- replay ----

// ---- configs and canned answers ----

/// One endpoint entry.
pub fn endpoint(name: &str, endpoint_type: &str, model: &str, config: Value) -> Value {
    json!({"name": name, "endpoint_type": endpoint_type,
           "model": {"provider": "bedrock", "name": model, "config": config}})
}

/// A gateway config with these endpoints.
pub fn config(endpoints: &[Value]) -> String {
    yaml(&json!({ "endpoints": endpoints }))
}

/// A minimal Converse answer.
pub fn converse_ok(text: &str) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
           "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}})
}

/// A one-message chat request.
pub fn chat(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

/// `yyyy-mm-ddThh:mm:ssZ` for a Unix time (whole seconds, as STS writes it).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An STS AssumeRole answer.
pub fn sts_answer(akid: &str, secret: &str, token: &str, expires: SystemTime) -> Reply {
    sts_answer_for("AssumeRole", akid, secret, token, expires)
}

/// An STS answer to `action` (`AssumeRole`, `AssumeRoleWithWebIdentity`) carrying these
/// credentials.
pub fn sts_answer_for(action: &str, akid: &str, secret: &str, token: &str, expires: SystemTime) -> Reply {
    let xml = format!(
        r#"<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <{action}Result>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bedrock/ai-gateway-bedrock</Arn>
      <AssumedRoleId>AROA:ai-gateway-bedrock</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{akid}</AccessKeyId>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <SessionToken>{token}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
  </{action}Result>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</{action}Response>"#,
        rfc3339(expires)
    );
    Reply::body(200, "text/xml", xml)
}

/// The form fields of an STS (AWS query protocol) request body, decoded.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// One form field of an STS request body, decoded.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_fields(body).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Environment that hides any real AWS credentials of the machine from the gateway, and keeps
/// the default chain away from the real metadata services. A variable given as "" is removed
/// from the gateway's environment by [`start`] (aws-config, unlike aigw, takes an empty
/// variable for a set one).
pub const NO_AMBIENT_AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", ""),
    ("AWS_SECRET_ACCESS_KEY", ""),
    ("AWS_SESSION_TOKEN", ""),
    ("AWS_BEARER_TOKEN_BEDROCK", ""),
    ("AWS_PROFILE", ""),
    ("AWS_DEFAULT_PROFILE", ""),
    ("AWS_REGION", ""),
    ("AWS_DEFAULT_REGION", ""),
    ("AWS_ENDPOINT_URL", ""),
    ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", ""),
    ("AWS_ENDPOINT_URL_STS", ""),
    ("AWS_ENDPOINT_URL_SSO", ""),
    ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aigw-test-credentials"),
    ("AWS_CONFIG_FILE", "/nonexistent/aigw-test-config"),
    ("AWS_WEB_IDENTITY_TOKEN_FILE", ""),
    ("AWS_ROLE_ARN", ""),
    ("AWS_ROLE_SESSION_NAME", ""),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", ""),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ""),
    ("AWS_CONTAINER_AUTHORIZATION_TOKEN", ""),
    ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", ""),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", ""),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// [`NO_AMBIENT_AWS`] with some variables set ("" to remove one).
pub fn env_with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = NO_AMBIENT_AWS
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    out
}

/// Start a gateway with owned environment pairs; a pair with an empty value removes the
/// variable.
pub async fn start(yaml: &str, env: &[(String, String)]) -> Gateway {
    let set: Vec<(&str, &str)> =
        env.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let unset: Vec<&str> = env.iter().filter(|(_, v)| v.is_empty()).map(|(k, _)| k.as_str()).collect();
    Gateway::start_with_unset(yaml, &set, &unset, &[]).await
}
