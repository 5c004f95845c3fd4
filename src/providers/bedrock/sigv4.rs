//! SigV4 signing of a finished [`UpstreamRequest`] with the `aws-sigv4` crate.
//!
//! The signature covers the method, the path and query exactly as sent (double-encoded in the
//! canonical request, as every AWS service but S3 expects), the `host` and `content-type`
//! headers, `x-amz-date`, `x-amz-security-token` for session credentials, and the SHA-256 of
//! the whole body, which is already in memory, whatever its size.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::error::GatewayError;
use crate::upstream::UpstreamRequest;

/// Sign `req` in place for `service` in `region`, at `time`.
pub fn sign_request(
    req: &mut UpstreamRequest,
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), GatewayError> {
    let failed = |e: &dyn std::fmt::Display| GatewayError::internal(format!("cannot sign the request with SigV4: {e}"));
    let scheme = if req.origin.tls { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", req.origin.authority, req.target);
    // Headers the gateway adds later (Content-Length, Accept-Encoding, x-request-id) are not
    // signed; `host` is what the upstream client sends.
    let mut headers: Vec<(&str, &str)> = vec![("host", req.origin.authority.as_str())];
    for (name, value) in &req.headers {
        if name == http::header::CONTENT_TYPE
            && let Ok(v) = value.to_str()
        {
            headers.push((name.as_str(), v));
        }
    }
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let signable = SignableRequest::new(req.method.as_str(), uri, headers.into_iter(), SignableBody::Bytes(&req.body))
        .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| failed(&e))?.into_parts();
    let (new_headers, _params) = instructions.into_parts();
    for h in new_headers {
        let mut value = http::HeaderValue::from_str(h.value()).map_err(|e| failed(&e))?;
        value.set_sensitive(h.sensitive() || h.name().eq_ignore_ascii_case("authorization"));
        let name = http::HeaderName::from_static(h.name());
        req.headers.retain(|(n, _)| n != name);
        req.headers.push((name, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BaseUrl;
    use std::time::{Duration, UNIX_EPOCH};

    fn header<'a>(req: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
        req.headers.iter().find(|(n, _)| n.as_str() == name).and_then(|(_, v)| v.to_str().ok())
    }

    /// AWS's published SigV4 test suite, case `get-vanilla`.
    #[test]
    fn aws_test_vector_get_vanilla() {
        let base = BaseUrl::parse("https://example.amazonaws.com").unwrap();
        let mut req = UpstreamRequest {
            origin: base.origin.clone(),
            method: http::Method::GET,
            target: "/".into(),
            headers: Vec::new(),
            body: bytes::Bytes::new(),
        };
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        // 20150830T123600Z
        let time = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        sign_request(&mut req, &creds, "us-east-1", "service", time).unwrap();
        assert_eq!(header(&req, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&req, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert!(req.headers.iter().any(|(n, v)| n == "authorization" && v.is_sensitive()));
    }

    #[test]
    fn session_token_and_content_type_are_signed() {
        let base = BaseUrl::parse("http://127.0.0.1:9000").unwrap();
        let mut req = UpstreamRequest::post_json(&base, "model/a.b%3A0/converse", b"{}".to_vec());
        let creds = Credentials::new("ASIAX", "secret", Some("tok".into()), None, "test");
        sign_request(&mut req, &creds, "eu-west-1", "bedrock", SystemTime::now()).unwrap();
        assert_eq!(header(&req, "x-amz-security-token"), Some("tok"));
        let auth = header(&req, "authorization").unwrap();
        assert!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"), "{auth}");
        // Signing twice (a retry) replaces the headers instead of duplicating them.
        sign_request(&mut req, &creds, "eu-west-1", "bedrock", SystemTime::now()).unwrap();
        assert_eq!(req.headers.iter().filter(|(n, _)| n == "authorization").count(), 1);
    }
}
