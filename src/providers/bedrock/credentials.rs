//! AWS credentials for Bedrock: `model.config.aws_config`, the default credential chain, and
//! STS AssumeRole with its credentials in a [`TokenCache`] (renewed before they expire, one STS
//! call at a time; docs/mlflow-compat.md#fix-11: MLflow re-assumes the role on every call and
//! silently ignores a partial `aws_config`).
//!
//! `aws_config` is exactly one of
//! * `{aws_bearer_token, aws_region?}`: a Bedrock API key, sent as `Authorization: Bearer`;
//! * `{aws_role_arn, session_length_seconds = 900, aws_region?}`: STS AssumeRole, signed with
//!   the default chain's keys; the role's credentials are kept until shortly before they expire;
//! * `{aws_access_key_id, aws_secret_access_key, aws_session_token?, aws_region?}`;
//! * `{aws_region?}`: the default chain, resolved at first use (not at load): the environment
//!   (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`), then
//!   `AWS_BEARER_TOKEN_BEDROCK`, then the AWS SDK's default chain (`aws-config`: profiles in the
//!   shared config and credentials files with `source_profile`/`role_arn`, `credential_process`
//!   and SSO; web identity; the ECS/EKS container endpoint; IMDSv2), its calls sent through
//!   aigw's upstream client ([`super::aws_http`]) and its credentials renewed in the background
//!   (docs/credentials.md).
//!
//! Secret values go through [`ConfigMap::secret`], so `$VAR`, `${VAR}` and files work.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::aws_http::AwsHttp;
use super::sigv4;
use crate::config::BaseUrl;
use crate::config::url::encode_unreserved;
use crate::config::{ConfigMap, FieldError, Secret};
use crate::error::{ErrorKind, GatewayError};
use crate::providers::token_cache::{Fresh, TokenCache};
use crate::upstream::{UpstreamRequest, Upstreams, secret_header};

/// MLflow's default `session_length_seconds`.
pub const DEFAULT_SESSION_SECONDS: u64 = 900;
/// The session name MLflow uses for AssumeRole.
pub const ROLE_SESSION_NAME: &str = "ai-gateway-bedrock";
/// Credentials that carry no expiry (keys in the environment or a file) are looked up again
/// after this long, so rotated files are picked up.
const RECHECK: Duration = Duration::from_secs(600);

const KNOWN_KEYS: &[&str] = &[
    "aws_region",
    "aws_bearer_token",
    "aws_role_arn",
    "session_length_seconds",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// How the endpoint authenticates, as configured.
#[derive(Debug)]
pub enum AuthConfig {
    /// A Bedrock API key.
    Bearer(Secret),
    /// STS AssumeRole.
    Role {
        /// The role to assume.
        arn: String,
        /// `DurationSeconds`.
        session_seconds: u64,
    },
    /// Static keys.
    Keys {
        /// Access key id.
        id: Secret,
        /// Secret access key.
        secret: Secret,
        /// Session token of temporary keys.
        token: Option<Secret>,
    },
    /// The default credential chain.
    Chain,
}

/// `model.config.aws_config`, parsed.
#[derive(Debug)]
pub struct AwsConfig {
    /// `aws_region`.
    pub region: Option<String>,
    /// The credential source.
    pub auth: AuthConfig,
}

/// Parse `model.config.aws_config` (required, a mapping).
pub fn parse_aws_config(cfg: &mut ConfigMap<'_>) -> Result<AwsConfig, FieldError> {
    let map: &Map<String, Value> = match cfg.map("aws_config")? {
        Some(m) => m,
        None => return Err(cfg.error("aws_config", crate::config::fields::FIELD_REQUIRED)),
    };
    let mut m = ConfigMap::new(map, cfg.path("aws_config"));
    if let Some(key) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(
            m.error(key, format!("unknown aws_config key '{key}'; aws_config accepts {}", KNOWN_KEYS.join(", ")))
        );
    }
    let region = m.string("aws_region")?.filter(|r| !r.trim().is_empty());

    let bearer = m.has("aws_bearer_token");
    let role = m.has("aws_role_arn") || m.has("session_length_seconds");
    let keys = m.has("aws_access_key_id") || m.has("aws_secret_access_key") || m.has("aws_session_token");
    let conflict = |m: &ConfigMap<'_>, key: &str| {
        m.error(
            key,
            "aws_config must use only one way to authenticate: aws_bearer_token, aws_role_arn \
             (with session_length_seconds), or aws_access_key_id with aws_secret_access_key",
        )
    };
    let auth = if bearer {
        if role {
            return Err(conflict(&m, "aws_role_arn"));
        }
        if keys {
            return Err(conflict(&m, "aws_access_key_id"));
        }
        AuthConfig::Bearer(non_empty(&mut m, "aws_bearer_token")?)
    } else if role {
        if keys {
            return Err(conflict(&m, "aws_access_key_id"));
        }
        if !m.has("aws_role_arn") {
            return Err(
                m.error("aws_role_arn", "Field required: aws_config sets session_length_seconds but not aws_role_arn")
            );
        }
        let arn = m.required_string("aws_role_arn")?;
        if arn.trim().is_empty() {
            return Err(m.error("aws_role_arn", "must not be empty"));
        }
        let session_seconds = m.u64("session_length_seconds")?.unwrap_or(DEFAULT_SESSION_SECONDS);
        if !(900..=43_200).contains(&session_seconds) {
            return Err(m.error(
                "session_length_seconds",
                format!("must be between 900 and 43200 seconds (AWS STS limits), got {session_seconds}"),
            ));
        }
        AuthConfig::Role { arn, session_seconds }
    } else if keys {
        let has_id = m.has("aws_access_key_id");
        let has_secret = m.has("aws_secret_access_key");
        if !has_id {
            let given = if has_secret { "aws_secret_access_key" } else { "aws_session_token" };
            return Err(m.error(
                "aws_access_key_id",
                format!(
                    "Field required: aws_config sets {given} but not aws_access_key_id (give both \
                     aws_access_key_id and aws_secret_access_key, or neither to use the default AWS \
                     credential chain)"
                ),
            ));
        }
        if !has_secret {
            return Err(m.error(
                "aws_secret_access_key",
                "Field required: aws_config sets aws_access_key_id but not aws_secret_access_key \
                 (give both, or neither to use the default AWS credential chain)",
            ));
        }
        let id = non_empty(&mut m, "aws_access_key_id")?;
        let secret = non_empty(&mut m, "aws_secret_access_key")?;
        let token = match m.secret("aws_session_token")? {
            Some(t) if t.is_empty() => None,
            other => other,
        };
        AuthConfig::Keys { id, secret, token }
    } else {
        AuthConfig::Chain
    };
    Ok(AwsConfig { region, auth })
}

fn non_empty(m: &mut ConfigMap<'_>, key: &str) -> Result<Secret, FieldError> {
    let s = m.required_secret(key)?;
    if s.is_empty() {
        return Err(m.error(key, "must not be empty"));
    }
    Ok(s)
}

/// What a request is authenticated with.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// `Authorization: Bearer <token>` (prebuilt, sensitive).
    Bearer(http::HeaderValue),
    /// SigV4 keys.
    Keys(Credentials),
}

/// A bearer header from a token.
pub fn bearer_header(token: &str) -> Option<http::HeaderValue> {
    secret_header(&format!("Bearer {token}"))
}

/// A credential source ready to serve requests.
#[derive(Debug)]
pub enum Auth {
    /// Fixed: a bearer token or static keys.
    Fixed(Resolved),
    /// STS AssumeRole.
    Role(Box<RoleProvider>),
    /// The default chain.
    Chain(ChainProvider),
}

impl Auth {
    /// Build from the parsed config (no I/O). `region` and `sts` serve AssumeRole.
    pub fn new(auth: AuthConfig, region: Option<String>, sts: BaseUrl) -> Result<Auth, String> {
        Ok(match auth {
            AuthConfig::Bearer(token) => Auth::Fixed(Resolved::Bearer(
                bearer_header(token.expose()).ok_or("the token contains characters not allowed in an HTTP header")?,
            )),
            AuthConfig::Keys { id, secret, token } => Auth::Fixed(Resolved::Keys(Credentials::new(
                id.expose(),
                secret.expose(),
                token.map(|t| t.expose().to_owned()),
                None,
                "aws_config",
            ))),
            AuthConfig::Role { arn, session_seconds } => Auth::Role(Box::new(RoleProvider {
                arn,
                session_seconds,
                base: ChainProvider::new(region.clone()),
                region,
                sts,
                cache: TokenCache::new("Amazon Bedrock", "role credentials"),
            })),
            AuthConfig::Chain => Auth::Chain(ChainProvider::new(region)),
        })
    }

    /// The credentials for the next request.
    pub async fn resolve(&self, http: &Upstreams) -> Result<Resolved, GatewayError> {
        match self {
            Auth::Fixed(r) => Ok(r.clone()),
            Auth::Chain(c) => c.resolve(http).await,
            Auth::Role(r) => r.credentials(http).await.map(Resolved::Keys),
        }
    }
}

// ---- the default chain ----

/// The default credential chain: aigw's own first steps (the environment's keys, then
/// `AWS_BEARER_TOKEN_BEDROCK`), then the AWS SDK's default chain (`aws-config`): the shared
/// config and credentials files with profiles (`source_profile`/`role_arn` chains,
/// `credential_process`, SSO with its cached token), web identity (IRSA), the ECS/EKS container
/// endpoint and the EC2 instance metadata service (IMDSv2). Resolved at first use, never at
/// load; what it finds is kept in a [`TokenCache`] and renewed before it expires in a
/// background task, while requests are served the current credentials.
#[derive(Debug)]
pub struct ChainProvider {
    region: Option<String>,
    cache: Arc<TokenCache<Resolved>>,
}

impl ChainProvider {
    /// A chain for an endpoint in `region` (the SDK looks for one itself when `None`).
    pub fn new(region: Option<String>) -> Self {
        ChainProvider { region, cache: Arc::new(TokenCache::new("Amazon Bedrock", "default-chain credentials")) }
    }

    /// The chain's credentials: from the cache (renewed in the background when due), or
    /// resolved while the caller waits when there are none yet or they are no longer usable.
    pub async fn resolve(&self, http: &Upstreams) -> Result<Resolved, GatewayError> {
        if let Some(fresh) = self.cache.fresh() {
            return Ok(fresh);
        }
        let (region, http) = (self.region.clone(), http.clone());
        let route_timeout = http.route_timeout;
        self.cache.get_renewing_in_background(route_timeout, move |timeout| chain_fetch(region, http, timeout)).await
    }
}

/// One resolution of the chain (owned arguments: it may run in a background task).
async fn chain_fetch(
    region: Option<String>,
    http: Upstreams,
    timeout: Duration,
) -> Result<Fresh<Resolved>, GatewayError> {
    if let Some(found) = from_env(&|k| std::env::var(k).ok())? {
        return Ok(Fresh { value: found, lifetime: RECHECK });
    }
    // Built afresh for each resolution (a few per hour at most): rotated files and a
    // changed SSO cache are read again, as the old hand-written chain did.
    let mut conf = ProviderConfig::without_region().with_http_client(AwsHttp::new(http));
    let mut chain = DefaultCredentialsChain::builder();
    if let Some(r) = &region {
        conf = conf.with_region(Some(Region::new(r.clone())));
        chain = chain.region(Region::new(r.clone()));
    }
    let chain = chain.configure(conf).build().await;
    let started = SystemTime::now();
    let creds = match tokio::time::timeout(timeout, chain.provide_credentials()).await {
        Err(_) => {
            return Err(GatewayError::timeout(format!(
                "AWS credentials for Amazon Bedrock: the default credential chain found none within {} s",
                timeout.as_secs_f64()
            )));
        }
        Ok(Err(e)) => return Err(chain_error(&e)),
        Ok(Ok(c)) => c,
    };
    let lifetime = match creds.expiry() {
        // Already expired: serves this request, replaced on the next.
        Some(t) => t.duration_since(started).unwrap_or_default(),
        None => RECHECK,
    };
    Ok(Fresh { value: Resolved::Keys(creds), lifetime })
}

/// The SDK chain's failure as the gateway's: none found is the usual 500 naming the sources;
/// a source that failed is a 502 with its reason (the SDK's messages name files, hosts and
/// statuses, never a secret; capped in length).
fn chain_error(e: &CredentialsError) -> GatewayError {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => no_credentials(),
        CredentialsError::ProviderTimedOut(_) => {
            GatewayError::timeout("AWS credentials for Amazon Bedrock: a source of the default chain timed out")
        }
        _ => {
            // The error and its causes, each once.
            let mut why = String::new();
            let mut next: Option<&dyn std::error::Error> = Some(e);
            while let Some(err) = next {
                let text = err.to_string();
                if !why.contains(&text) {
                    if !why.is_empty() {
                        why.push_str(": ");
                    }
                    why.push_str(&text);
                }
                next = err.source();
            }
            if why.len() > 600 {
                let mut cut = 600;
                while !why.is_char_boundary(cut) {
                    cut -= 1;
                }
                why.truncate(cut);
                why.push('…');
            }
            GatewayError::bad_gateway(format!("AWS credentials for Amazon Bedrock could not be loaded: {why}"))
        }
    }
}

fn no_credentials() -> GatewayError {
    GatewayError::new(
        500,
        ErrorKind::Internal,
        "no AWS credentials found for Amazon Bedrock: set model.config.aws_config, or \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_BEARER_TOKEN_BEDROCK, or a profile in \
         the shared config or credentials file (~/.aws/config, ~/.aws/credentials, AWS_PROFILE), or \
         web identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), or run where the ECS/EKS \
         container endpoint or the EC2 instance metadata service gives a role",
    )
}

/// aigw's own first steps of the chain, from an environment lookup: the keys
/// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`), then
/// `AWS_BEARER_TOKEN_BEDROCK`; `None` when neither is set (the SDK's chain goes on).
fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Resolved>, GatewayError> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let creds = Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        return Ok(Some(Resolved::Keys(creds)));
    }
    if let Some(token) = var("AWS_BEARER_TOKEN_BEDROCK") {
        let header = bearer_header(&token).ok_or_else(|| {
            GatewayError::internal("AWS_BEARER_TOKEN_BEDROCK contains characters not allowed in an HTTP header")
        })?;
        return Ok(Some(Resolved::Bearer(header)));
    }
    Ok(None)
}

// ---- STS AssumeRole ----

/// Assumes a role with STS and keeps its credentials in a [`TokenCache`] until shortly before
/// they expire. Concurrent requests share one STS call.
#[derive(Debug)]
pub struct RoleProvider {
    arn: String,
    session_seconds: u64,
    region: Option<String>,
    sts: BaseUrl,
    base: ChainProvider,
    cache: TokenCache<Credentials>,
}

impl RoleProvider {
    /// The role's credentials, from the cache or a fresh AssumeRole call.
    pub async fn credentials(&self, http: &Upstreams) -> Result<Credentials, GatewayError> {
        self.cache.get(http.route_timeout, |timeout| self.assume(http, timeout)).await
    }

    async fn assume(&self, http: &Upstreams, timeout: Duration) -> Result<Fresh<Credentials>, GatewayError> {
        let base = match self.base.resolve(http).await? {
            Resolved::Keys(k) => k,
            Resolved::Bearer(_) => {
                return Err(GatewayError::internal(
                    "aws_role_arn needs AWS keys to call STS, but the default credential chain only \
                     found AWS_BEARER_TOKEN_BEDROCK",
                ));
            }
        };
        let body = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={ROLE_SESSION_NAME}&DurationSeconds={}",
            encode_unreserved(&self.arn),
            self.session_seconds
        );
        let mut req = UpstreamRequest {
            origin: self.sts.origin.clone(),
            method: http::Method::POST,
            target: self.sts.target(""),
            headers: vec![(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
            )],
            body: bytes::Bytes::from(body),
        };
        let region = self.region.as_deref().unwrap_or("us-east-1");
        sigv4::sign_request(&mut req, &base, region, "sts", SystemTime::now())?;
        let (status, body) = http.fetch(&req, timeout).await?;
        let text = String::from_utf8_lossy(&body);
        if !(200..300).contains(&status) {
            let code = xml_tag(&text, "Code").unwrap_or_default();
            let message = xml_tag(&text, "Message").unwrap_or_else(|| text.chars().take(300).collect());
            return Err(GatewayError::bad_gateway(format!(
                "AWS STS AssumeRole for {} failed with status {status}: {code}{}{message}",
                self.arn,
                if code.is_empty() { "" } else { ": " }
            )));
        }
        let unreadable =
            |what: &str| GatewayError::bad_gateway(format!("AWS STS AssumeRole answered without a readable {what}"));
        let id = xml_tag(&text, "AccessKeyId").ok_or_else(|| unreadable("AccessKeyId"))?;
        let secret = xml_tag(&text, "SecretAccessKey").ok_or_else(|| unreadable("SecretAccessKey"))?;
        let token = xml_tag(&text, "SessionToken").ok_or_else(|| unreadable("SessionToken"))?;
        let expires =
            xml_tag(&text, "Expiration").as_deref().and_then(parse_rfc3339).ok_or_else(|| unreadable("Expiration"))?;
        // Credentials that arrive already expired (lifetime zero) serve this request and are
        // replaced on the next.
        let lifetime = expires.duration_since(SystemTime::now()).unwrap_or_default();
        Ok(Fresh { value: Credentials::new(id, secret, Some(token), Some(expires), "sts"), lifetime })
    }
}

/// The text of the first `<tag>…</tag>` (XML entities decoded).
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let raw = xml[start..end].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `2024-01-02T03:04:05Z`, with optional fractional seconds and a `Z` or `±hh:mm` offset.
/// `None` for anything else, and for a time before 1970. The text comes from an STS answer:
/// malformed input of any kind (multi-byte characters included) is `None`, never a panic.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    // RFC 3339 allows another separator between date and time; STS writes 'T', and only 'T',
    // 't' and a space are taken.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    (t >= OffsetDateTime::UNIX_EPOCH).then(|| SystemTime::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    fn parse(v: Value) -> Result<AwsConfig, FieldError> {
        let map = json!({ "aws_config": v });
        let map = map.as_object().unwrap();
        let mut cfg = ConfigMap::new(map, "model.config");
        parse_aws_config(&mut cfg)
    }

    #[test]
    fn the_four_shapes() {
        let c = parse(json!({"aws_bearer_token": "tok", "aws_region": "us-east-1"})).unwrap();
        assert!(matches!(c.auth, AuthConfig::Bearer(ref t) if t.expose() == "tok"));
        assert_eq!(c.region.as_deref(), Some("us-east-1"));

        let c = parse(json!({"aws_role_arn": "arn:aws:iam::1:role/x"})).unwrap();
        assert!(matches!(c.auth, AuthConfig::Role { session_seconds: 900, .. }));
        let c = parse(json!({"aws_role_arn": "arn:aws:iam::1:role/x", "session_length_seconds": 3600})).unwrap();
        assert!(matches!(c.auth, AuthConfig::Role { session_seconds: 3600, .. }));

        let c =
            parse(json!({"aws_access_key_id": "A", "aws_secret_access_key": "S", "aws_session_token": "T"})).unwrap();
        assert!(matches!(c.auth, AuthConfig::Keys { token: Some(_), .. }));

        let c = parse(json!({"aws_region": "eu-west-1"})).unwrap();
        assert!(matches!(c.auth, AuthConfig::Chain));
        let c = parse(json!({})).unwrap();
        assert!(matches!(c.auth, AuthConfig::Chain));
        assert_eq!(c.region, None);
    }

    #[test]
    fn secrets_resolve_from_the_environment() {
        // PATH is always set; no need to mutate the environment.
        let c = parse(json!({"aws_access_key_id": "$PATH", "aws_secret_access_key": "${PATH}"})).unwrap();
        let AuthConfig::Keys { id, secret, .. } = c.auth else { panic!() };
        assert_eq!(id.expose(), std::env::var("PATH").unwrap());
        assert_eq!(secret.expose(), std::env::var("PATH").unwrap());
        let e = parse(json!({"aws_bearer_token": "$AIGW_BEDROCK_TEST_UNSET"})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.aws_bearer_token");
        assert!(e.message.contains("AIGW_BEDROCK_TEST_UNSET"));
    }

    #[test]
    fn partial_configs_name_the_missing_field() {
        let e = parse(json!({"aws_secret_access_key": "S"})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.aws_access_key_id");
        assert!(e.message.contains("aws_config") && e.message.contains("aws_secret_access_key"), "{e:?}");
        assert!(!e.message.contains("\"S\""));

        let e = parse(json!({"aws_access_key_id": "A"})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.aws_secret_access_key");

        let e = parse(json!({"aws_session_token": "T", "aws_region": "us-east-1"})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.aws_access_key_id");
        assert!(e.message.contains("aws_session_token"));

        let e = parse(json!({"session_length_seconds": 900})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.aws_role_arn");

        let e = parse(json!({"aws_bearer_token": "t", "aws_access_key_id": "A", "aws_secret_access_key": "S"}))
            .unwrap_err();
        assert!(e.message.contains("only one way"), "{e:?}");

        let e = parse(json!({"aws_role_arn": "arn", "aws_secret_access_key": "S"})).unwrap_err();
        assert!(e.message.contains("only one way"), "{e:?}");

        let e = parse(json!({"aws_regoin": "us-east-1"})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.aws_regoin");

        let e = parse(json!({"aws_role_arn": "arn", "session_length_seconds": 60})).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config.session_length_seconds");

        let e = parse(json!({"aws_access_key_id": "", "aws_secret_access_key": "S"})).unwrap_err();
        assert!(e.message.contains("empty"));

        let map = json!({});
        let mut cfg = ConfigMap::new(map.as_object().unwrap(), "model.config");
        let e = parse_aws_config(&mut cfg).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config");

        let e = parse(json!("us-east-1")).unwrap_err();
        assert_eq!(e.field, "model.config.aws_config");
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// aigw's first steps: the keys, then the bearer token, then (None) the SDK's chain.
    #[test]
    fn environment_steps_come_first() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("AWS_SESSION_TOKEN", "ST"),
            ("AWS_BEARER_TOKEN_BEDROCK", "BT"),
        ]);
        let Some(Resolved::Keys(k)) = from_env(&env).unwrap() else { panic!("keys first") };
        assert_eq!((k.access_key_id(), k.secret_access_key(), k.session_token()), ("AKID", "SK", Some("ST")));

        let env = env_of(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_BEARER_TOKEN_BEDROCK", "BT")]);
        let Some(Resolved::Bearer(h)) = from_env(&env).unwrap() else { panic!("then the bearer token") };
        assert_eq!(h.to_str().unwrap(), "Bearer BT");
        assert!(h.is_sensitive());

        let env =
            env_of(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "SK"), ("AWS_BEARER_TOKEN_BEDROCK", "")]);
        assert!(from_env(&env).unwrap().is_none(), "empty variables count as unset");
        assert!(from_env(&env_of(&[("AWS_BEARER_TOKEN_BEDROCK", "a\nb")])).is_err());
    }

    /// The SDK's errors: none found is the 500 naming every source; a failing source a 502.
    #[test]
    fn chain_errors() {
        let e = chain_error(&CredentialsError::not_loaded("no providers in chain provided credentials"));
        assert_eq!(e.status, 500);
        assert!(
            e.message().starts_with("no AWS credentials found") && e.message().contains("AWS_WEB_IDENTITY_TOKEN_FILE")
        );
        let e = chain_error(&CredentialsError::provider_error("the container endpoint answered 500"));
        assert_eq!(e.status, 502);
        assert!(e.message().contains("AWS credentials") && e.message().contains("answered 500"), "{}", e.message());
        let e = chain_error(&CredentialsError::provider_error("\u{e9}".repeat(700)));
        assert!(e.message().len() < 800);
    }

    #[test]
    fn sts_xml() {
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalr/K7+MDENG</SecretAccessKey>
      <SessionToken>AQoD&amp;YXdz</SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;
        assert_eq!(xml_tag(xml, "AccessKeyId").as_deref(), Some("ASIAEXAMPLE"));
        assert_eq!(xml_tag(xml, "SessionToken").as_deref(), Some("AQoD&YXdz"));
        assert_eq!(xml_tag(xml, "Missing"), None);
        assert_eq!(encode_unreserved("arn:aws:iam::1:role/x y"), "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx%20y");
    }

    #[test]
    fn rfc3339() {
        let t = |s: &str| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(t("2019-11-09T13:34:41Z"), Some(1_573_306_481.0));
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(t("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(t("2023-11-14T22:13:20.5Z"), Some(1_700_000_000.5));
        assert_eq!(t("2023-11-15T00:13:20+02:00"), Some(1_700_000_000.0));
        assert_eq!(t("2024-02-29T00:00:00Z"), Some(1_709_164_800.0));
        assert_eq!(t("2023-13-01T00:00:00Z"), None);
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("2023-11-14T22:13:20"), None);
        assert_eq!(t("2023-11-14T22:13:20-05:30"), Some(1_700_019_800.0));
        let nanos = parse_rfc3339(" 2023-11-14t22:13:20.123456789z\n").map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(nanos, Some(Duration::new(1_700_000_000, 123_456_789)));
        assert_eq!(t("2023-11-14 22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(t("2023-11-14X22:13:20Z"), None);
        assert_eq!(t("1969-12-31T23:59:59Z"), None);
        assert_eq!(t("2023-11-14T22:13:20.Z"), None);
        assert_eq!(t("2023-11-14T22:13:20Zjunk"), None);
    }

    /// An STS answer is untrusted text: multi-byte UTF-8 anywhere in the timestamp (the offset
    /// above all, which used to be sliced by byte ranges) is malformed input, never a panic.
    #[test]
    fn rfc3339_multibyte_and_malformed() {
        for s in [
            "2023-11-14T22:13:20+0\u{e9}00",   // 'é' across the offset's byte 3..4
            "2023-11-14T22:13:20+00\u{e9}0",   // 'é' where the ':' belongs
            "2023-11-14T22:13:20+\u{e9}:00",   // 'é' as the hours
            "2023-11-14T22:13:20+00:\u{e9}",   // 'é' as the minutes
            "2023-11-14T22:13:20+\u{20ac}00",  // a three-byte '€'
            "2023-11-14T22:13:20.5\u{20ac}00", // after fractional seconds
            "2023-11-14T22:13:2\u{e9}Z",       // inside the seconds
            "2023-11-1\u{e9}22:13:20Z",        // where the 'T' belongs
            "\u{e9}\u{e9}23-11-14T22:13:20Z",  // in the year
            "2023-11-14T22:13:20+1:000",       // a one-digit hour
            "2023-11-14T22:13:20++1:00",       // a doubled sign
            "2023-11-14T22:13:20+24:00",       // out-of-range offset hours
            "2023-11-14T22:13:20+00:60",       // out-of-range offset minutes
            "+023-11-14T22:13:20Z",            // a sign in the year
            "2023-+1-14T22:13:20Z",            // a sign in the month
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }
}
