//! Amazon Bedrock (`provider: bedrock` or `amazon-bedrock`).
//!
//! * chat → Converse (`POST /model/<id>/converse`) and, streamed, ConverseStream
//!   (`/converse-stream`, AWS event-stream frames decoded as they arrive): [`converse`];
//! * completions → InvokeModel (`/model/<id>/invoke`) with the model vendor's own body
//!   (Anthropic legacy, Titan, AI21, Cohere); not streamed (501): [`invoke`];
//! * embeddings → one Titan InvokeModel call per input, made concurrently: [`invoke`].
//!
//! Requests are signed with SigV4 (service `bedrock`) over the final body in
//! [`Provider::authorize`], or carry `Authorization: Bearer` for a Bedrock API key;
//! credentials come from `model.config.aws_config` ([`credentials`]).
//!
//! The base URL is `https://bedrock-runtime.<region>.amazonaws.com`, overridden by
//! `model.config.bedrock_api_base`, else `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, else
//! `AWS_ENDPOINT_URL`. The region is `aws_config.aws_region`, else `AWS_REGION`, else
//! `AWS_DEFAULT_REGION`. The model id is percent-encoded as one path segment (`:` → `%3A`), as
//! the AWS SDKs send it.

pub mod aws_http;
pub mod converse;
pub mod credentials;
pub mod invoke;
pub mod sigv4;

use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::Value;

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::url::encode_unreserved;
use crate::config::{ConfigMap, FieldError};
use crate::error::{Detail, GatewayError};
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, Upstreams};
use credentials::{Auth, Resolved};
use invoke::Vendor;

const DISPLAY: &str = "Amazon Bedrock";

/// The `bedrock` / `amazon-bedrock` provider.
pub struct Bedrock {
    model: Option<String>,
    /// `model.name` percent-encoded as one path segment.
    model_segment: Option<String>,
    region: Option<String>,
    /// None when neither an override nor a region is known (each call answers 400).
    base: Option<BaseUrl>,
    auth: Auth,
}

/// The environment lookup the provider uses (a parameter for tests).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Bedrock {
    /// Build from `model.config`: `aws_config` (see [`credentials`]) and `bedrock_api_base`.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Bedrock, FieldError> {
        Self::build(spec, cfg, &process_env)
    }

    fn build(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>, env: Env<'_>) -> Result<Bedrock, FieldError> {
        let aws = credentials::parse_aws_config(cfg)?;
        let region = match aws.region {
            Some(r) => Some(r),
            None => env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        }
        .map(|r| r.trim().to_owned());
        if let Some(r) = &region
            && !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(cfg.error("aws_config.aws_region", format!("'{r}' is not an AWS region name")));
        }
        let configured = cfg.url("bedrock_api_base")?;
        let env_url = |names: &[&str], field: &str| -> Result<Option<BaseUrl>, FieldError> {
            for name in names {
                if let Some(v) = env(name) {
                    return BaseUrl::parse(&v).map(Some).map_err(|m| cfg.error(field, format!("{name}: {m}")));
                }
            }
            Ok(None)
        };
        let base = match configured {
            Some(b) => Some(b),
            None => match env_url(&["AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"], "bedrock_api_base")? {
                Some(b) => Some(b),
                None => match &region {
                    Some(r) => Some(
                        BaseUrl::parse(&format!("https://bedrock-runtime.{r}.amazonaws.com"))
                            .map_err(|m| cfg.error("aws_config.aws_region", m))?,
                    ),
                    None => None,
                },
            },
        };
        let sts = match env_url(&["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"], "aws_config.aws_role_arn")? {
            Some(b) => b,
            None => {
                let host = match &region {
                    Some(r) => format!("https://sts.{r}.amazonaws.com"),
                    None => "https://sts.amazonaws.com".to_owned(),
                };
                BaseUrl::parse(&host).map_err(|m| cfg.error("aws_config.aws_region", m))?
            }
        };
        let auth_field = match &aws.auth {
            credentials::AuthConfig::Bearer(_) => "aws_config.aws_bearer_token",
            _ => "aws_config",
        };
        let auth = Auth::new(aws.auth, region.clone(), sts).map_err(|m| cfg.error(auth_field, m))?;
        let model = spec.model_name.map(str::to_owned);
        // A model id (or ARN) is one URI path segment: `:` and `/` are `%XX` too.
        let model_segment = model.as_deref().map(encode_unreserved);
        Ok(Bedrock { model, model_segment, region, base, auth })
    }

    fn region_required() -> GatewayError {
        GatewayError::bad_request(
            "aws_region_name is required for Amazon Bedrock: set model.config.aws_config.aws_region or the \
             AWS_REGION environment variable",
        )
    }

    /// The upstream request for `model/<id>/<action>`.
    fn request(&self, action: &str, body: Vec<u8>) -> Result<UpstreamRequest, GatewayError> {
        let base = self.base.as_ref().ok_or_else(Self::region_required)?;
        let Some(segment) = &self.model_segment else {
            return Err(invoke::unknown_vendor());
        };
        Ok(UpstreamRequest::post_json(base, &format!("model/{segment}/{action}"), body))
    }
}

#[async_trait]
impl Provider for Bedrock {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = converse::request_body(&req, converse::is_claude(self.model.as_deref()))?;
        let model = self.model.clone();
        let (provider, created) = (call.provider_label(), call.created);
        if stream {
            let upstream =
                self.request("converse-stream", body)?.header("accept", "application/vnd.amazon.eventstream");
            return Ok(Exchange::call(
                upstream,
                Decoder::Stream(Box::new(converse::ConverseStream::new(provider, model, created))),
            ));
        }
        Ok(Exchange::call(
            self.request("converse", body)?.header("accept", "application/json"),
            Decoder::Json(Box::new(move |b| converse::decode(b, model, provider, created))),
        ))
    }

    /// Claude models take `top_k`, `thinking` and `reasoning.effort` (as Anthropic's fields in
    /// Converse's `additionalModelRequestFields`); other model families none.
    fn accepts(&self, extension: Extension) -> bool {
        let _ = extension;
        converse::is_claude(self.model.as_deref())
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let vendor = Vendor::of_model(self.model.as_deref()).ok_or_else(invoke::unknown_vendor)?;
        let body = invoke::completions_body(vendor, &req)?;
        let (model, created) = (self.model.clone(), call.created);
        Ok(Exchange::call(
            self.request("invoke", body)?.header("accept", "application/json"),
            Decoder::Json(Box::new(move |b| invoke::decode_completions(vendor, b, model, created))),
        ))
    }

    fn embeddings(&self, req: Request, _call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let inputs = invoke::embedding_inputs(&req)?;
        let requests = inputs
            .iter()
            .map(|text| Ok(self.request("invoke", invoke::embedding_body(text)?)?.header("accept", "application/json")))
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let model = self.model.clone();
        Ok(Exchange::fan_out(requests, Box::new(move |bodies| invoke::decode_embeddings(bodies, model))))
    }

    async fn authorize(&self, req: &mut UpstreamRequest, http: &Upstreams) -> Result<(), GatewayError> {
        match self.auth.resolve(http).await? {
            Resolved::Bearer(value) => {
                req.headers.retain(|(n, _)| n != http::header::AUTHORIZATION);
                req.headers.push((http::header::AUTHORIZATION, value));
                Ok(())
            }
            Resolved::Keys(creds) => {
                let region = self.region.as_deref().ok_or_else(Self::region_required)?;
                sigv4::sign_request(req, &creds, region, "bedrock", SystemTime::now())
            }
        }
    }

    /// Bedrock answers errors as `{"message": "..."}` (the error type travels in the
    /// `x-amzn-errortype` header): the detail is the message, with the upstream status.
    fn error_answer(&self, status: u16, content_type: &str, body: &[u8]) -> GatewayError {
        let mut err = super::default_error_answer(status, content_type, body);
        let message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let o = v.as_object()?;
            if o.contains_key("error") {
                return None;
            }
            o.get("message").or_else(|| o.get("Message")).and_then(Value::as_str).map(str::to_owned)
        });
        if let Some(m) = message {
            err.detail = Detail::Text(m);
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::schema::EndpointType;
    use serde_json::json;

    fn spec(model: Option<&str>) -> EndpointSpec<'_> {
        EndpointSpec {
            index: 0,
            name: "b",
            endpoint_type: EndpointType::Chat,
            model_name: model,
            provider_name: ProviderName::Bedrock,
        }
    }

    fn build(config: Value, env: &[(&str, &str)]) -> Result<Bedrock, FieldError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let map = config.as_object().unwrap().clone();
        let mut cfg = ConfigMap::new(&map, "model.config");
        Bedrock::build(&spec(Some("anthropic.claude-3-5-sonnet-20240620-v1:0")), &mut cfg, &lookup)
    }

    #[test]
    fn base_url_and_region() {
        let b = build(json!({"aws_config": {"aws_region": "eu-west-3"}}), &[("AWS_REGION", "us-west-2")]).unwrap();
        let r = b.request("converse", b"{}".to_vec()).unwrap();
        assert_eq!(
            r.url(),
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );

        let b = build(json!({"aws_config": {}}), &[("AWS_DEFAULT_REGION", "ap-south-1")]).unwrap();
        assert_eq!(b.region.as_deref(), Some("ap-south-1"));
        let b = build(json!({"aws_config": {}}), &[("AWS_REGION", "us-west-2"), ("AWS_DEFAULT_REGION", "x")]).unwrap();
        assert_eq!(b.region.as_deref(), Some("us-west-2"));

        let b = build(
            json!({"aws_config": {"aws_region": "us-east-1"}}),
            &[("AWS_ENDPOINT_URL", "http://generic:1"), ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://runtime:2/p")],
        )
        .unwrap();
        assert_eq!(
            b.request("invoke", vec![]).unwrap().url(),
            "http://runtime:2/p/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke"
        );
        let b = build(json!({"aws_config": {"aws_region": "us-east-1"}}), &[("AWS_ENDPOINT_URL", "http://generic:1")])
            .unwrap();
        assert!(b.request("invoke", vec![]).unwrap().url().starts_with("http://generic:1/model/"));
        let b = build(
            json!({"aws_config": {}, "bedrock_api_base": "http://cfg:3"}),
            &[("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://runtime:2")],
        )
        .unwrap();
        assert!(b.request("invoke", vec![]).unwrap().url().starts_with("http://cfg:3/model/"));

        // No region anywhere: loads, and each call is a 400.
        let b = build(json!({"aws_config": {}}), &[]).unwrap();
        let e = b.request("converse", vec![]).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message().starts_with("aws_region_name is required"));

        let e = build(json!({"aws_config": {}}), &[("AWS_ENDPOINT_URL", "ftp://x")]).err().unwrap();
        assert!(e.message.contains("AWS_ENDPOINT_URL"), "{e:?}");
        let e = build(json!({"aws_config": {"aws_region": "us east/1"}}), &[]).err().unwrap();
        assert_eq!(e.field, "model.config.aws_config.aws_region");
    }

    #[test]
    fn segments() {
        assert_eq!(encode_unreserved("anthropic.claude-v2:1"), "anthropic.claude-v2%3A1");
        assert_eq!(
            encode_unreserved("arn:aws:bedrock:us-east-1:1:inference-profile/us.x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x"
        );
    }

    #[test]
    fn bedrock_error_bodies() {
        let b = build(json!({"aws_config": {"aws_region": "us-east-1"}}), &[]).unwrap();
        let e = b.error_answer(400, "application/json", br#"{"message":"Malformed input request"}"#);
        assert_eq!((e.status, e.detail.clone()), (400, Detail::Text("Malformed input request".into())));
        let e = b.error_answer(403, "application/json", br#"{"Message":"User is not authorized"}"#);
        assert_eq!(e.detail, Detail::Text("User is not authorized".into()));
        let e = b.error_answer(500, "text/plain", b"oops");
        assert_eq!(e.detail, Detail::Json(Box::new(json!({"message": "oops"}))));
    }

    #[test]
    fn no_model_name() {
        let map = json!({"aws_config": {"aws_region": "us-east-1"}}).as_object().unwrap().clone();
        let mut cfg = ConfigMap::new(&map, "model.config");
        let b = Bedrock::build(&spec(None), &mut cfg, &|_| None).unwrap();
        assert_eq!(b.request("converse", vec![]).unwrap_err().status, 422);
    }
}
