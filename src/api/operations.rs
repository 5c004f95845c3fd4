//! The operation table: every method and path the gateway answers (OpenAPI's "operations"),
//! matched without allocation. ("Route" in aigw means an MLflow traffic route only.)
//!
//! | method | path | operation |
//! |---|---|---|
//! | GET | `/` | 307 to `/docs` |
//! | GET | `/docs`, `/redoc`, `/openapi.json`, `/favicon.ico` | docs |
//! | GET | `/health` | health |
//! | GET | `/api/2.0/endpoints/` | list endpoints (paged) |
//! | GET | `/api/2.0/endpoints/{name}` | get endpoint |
//! | GET | `/api/2.0/gateway/routes/`, `/api/2.0/gateway/routes/{name}` | legacy listing/get |
//! | GET | `/api/3.0/gateway/endpoint/{name}`, `/api/3.0/gateway/route/{name}` | 3.0 gets |
//! | GET | `/api/2.0/endpoints/limits/{name}`, `/api/2.0/gateway/limits/{name}` | 501 |
//! | POST | `/api/2.0/endpoints/limits/`, `/api/2.0/gateway/limits/` | 501 |
//! | POST | `/endpoints/{name}/invocations`, `/gateway/{name}/invocations` | invoke |
//! | POST | `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` | OpenAI-compatible |
//! | GET | `/v1/models` | OpenAI model list |
//! | POST | `/v1/messages` | Anthropic Messages API |
//! | POST | `/v1/messages/count_tokens` | Anthropic token counting |
//! | POST | `/v1/responses` | OpenAI Responses API (stateless) |
//! | POST | `/gateway/{name}/mlflow/invocations` | as `/gateway/{name}/invocations` (MLflow 3's server gateway) |
//! | POST | `/gateway/mlflow/v1/chat/completions`, GET `/gateway/mlflow/v1/models` | as `/v1/chat/completions`, `/v1/models` |
//! | POST | `/gateway/openai/v1/chat/completions`, `/gateway/openai/v1/embeddings` | OpenAI's body, forwarded as sent to an OpenAI endpoint |
//! | POST | `/gateway/openai/v1/responses`, `/gateway/anthropic/v1/messages` | as `/v1/responses`, `/v1/messages` |
//! | POST | `/gateway/gemini/v1beta/models/{endpoint}:generateContent`, `…:streamGenerateContent` | Gemini's generateContent API |
//! | any of GET, POST, PUT, PATCH, DELETE | `/gateway/proxy/{endpoint}/{path}` | raw proxy to the endpoint's provider (Pingora's proxy pipeline) |
//! | GET | `/metrics` | Prometheus metrics |
//! | GET | `/aigw/usage` | budgets' spend and limited endpoints' counts (same access as `/metrics`) |
//!
//! A path that matches only with its trailing slash added or removed is redirected (307), as
//! Starlette does (MLflow's tracking-server proxy relies on it for `/api/2.0/endpoints`).

use crate::schema::EndpointType;

/// A matched operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// `GET /`
    Index,
    /// `GET /docs`
    Docs,
    /// `GET /redoc`
    Redoc,
    /// `GET /openapi.json`
    OpenApi,
    /// `GET /favicon.ico`
    Favicon,
    /// `GET /health`
    Health,
    /// `GET /api/2.0/endpoints/`
    ListEndpoints,
    /// `GET /api/2.0/endpoints/{name}`, `GET /api/3.0/gateway/endpoint/{name}`
    GetEndpoint(&'a str),
    /// `GET /api/2.0/gateway/routes/`
    ListLegacyRoutes,
    /// `GET /api/2.0/gateway/routes/{name}`
    GetLegacyRoute(&'a str),
    /// `GET /api/3.0/gateway/route/{name}`
    GetTrafficRoute(&'a str),
    /// `GET …/limits/{name}`
    GetLimits,
    /// `POST …/limits/`
    SetLimits,
    /// `POST /endpoints/{name}/invocations`, `/gateway/{name}/invocations`
    Invoke(&'a str),
    /// `POST /v1/chat/completions` etc.
    OpenAi(EndpointType),
    /// `POST /v1/messages` (Anthropic's Messages API)
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
    /// `POST /v1/responses` (OpenAI's Responses API)
    Responses,
    /// `POST /gateway/openai/v1/chat/completions`, `/gateway/openai/v1/embeddings`: OpenAI's
    /// own body, forwarded as sent to an OpenAI endpoint, translated for others.
    OpenAiPassthrough(EndpointType),
    /// `/gateway/gemini/v1beta/models/{endpoint}:generateContent` (`stream: false`) and
    /// `…:streamGenerateContent` (`stream: true`): Gemini's own body, forwarded as sent to a
    /// Gemini endpoint, translated for others.
    Gemini {
        /// The endpoint or traffic route.
        endpoint: &'a str,
        /// `:streamGenerateContent`.
        stream: bool,
    },
    /// `/gateway/proxy/{endpoint}/{path}`: the rest of the path (and the query) to the
    /// endpoint's provider, bodies untouched both ways.
    Proxy {
        /// The endpoint.
        endpoint: &'a str,
        /// The path after the endpoint's name (without its leading `/`).
        rest: &'a str,
    },
    /// `GET /v1/models`
    Models,
    /// `GET /v1/models/{id}`
    Model(&'a str),
    /// `GET /metrics`
    Metrics,
    /// `GET /aigw/usage`
    Usage,
}

impl Operation<'_> {
    /// The methods the operation accepts (for 405 and `Allow`).
    pub fn allow(&self) -> &'static str {
        match self {
            Operation::SetLimits
            | Operation::Invoke(_)
            | Operation::OpenAi(_)
            | Operation::Messages
            | Operation::CountTokens
            | Operation::Responses
            | Operation::OpenAiPassthrough(_)
            | Operation::Gemini { .. } => "POST",
            Operation::Proxy { .. } => "GET, POST, PUT, PATCH, DELETE",
            _ => "GET, HEAD",
        }
    }

    /// Whether `method` is accepted.
    pub fn accepts(&self, method: &str) -> bool {
        self.allow().split(", ").any(|m| m == method)
    }
}

/// The result of matching a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match<'a> {
    /// An operation.
    Found(Operation<'a>),
    /// Redirect to this path (trailing slash toggled).
    Redirect(String),
    /// Nothing.
    NotFound,
}

/// Match `path` (without the query string).
pub fn match_path(path: &str) -> Match<'_> {
    if let Some(r) = operation(path) {
        return Match::Found(r);
    }
    let toggled = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_owned(),
        Some(_) => return Match::NotFound,
        None => format!("{path}/"),
    };
    if operation(&toggled).is_some() { Match::Redirect(toggled) } else { Match::NotFound }
}

fn name_segment(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains('/')).then_some(s)
}

fn operation(path: &str) -> Option<Operation<'_>> {
    Some(match path {
        "/" => Operation::Index,
        "/docs" => Operation::Docs,
        "/redoc" => Operation::Redoc,
        "/openapi.json" => Operation::OpenApi,
        "/favicon.ico" => Operation::Favicon,
        "/health" => Operation::Health,
        "/api/2.0/endpoints/" => Operation::ListEndpoints,
        "/api/2.0/gateway/routes/" => Operation::ListLegacyRoutes,
        "/api/2.0/endpoints/limits/" | "/api/2.0/gateway/limits/" => Operation::SetLimits,
        "/v1/chat/completions" => Operation::OpenAi(EndpointType::Chat),
        "/v1/completions" => Operation::OpenAi(EndpointType::Completions),
        "/v1/embeddings" => Operation::OpenAi(EndpointType::Embeddings),
        "/v1/messages" => Operation::Messages,
        "/v1/messages/count_tokens" => Operation::CountTokens,
        "/v1/responses" | "/gateway/openai/v1/responses" => Operation::Responses,
        "/v1/models" | "/gateway/mlflow/v1/models" => Operation::Models,
        "/gateway/mlflow/v1/chat/completions" => Operation::OpenAi(EndpointType::Chat),
        "/gateway/openai/v1/chat/completions" => Operation::OpenAiPassthrough(EndpointType::Chat),
        "/gateway/openai/v1/embeddings" => Operation::OpenAiPassthrough(EndpointType::Embeddings),
        "/gateway/anthropic/v1/messages" => Operation::Messages,
        "/metrics" => Operation::Metrics,
        "/aigw/usage" => Operation::Usage,
        _ => {
            if let Some(rest) = path.strip_prefix("/api/2.0/endpoints/limits/") {
                name_segment(rest)?;
                Operation::GetLimits
            } else if let Some(rest) = path.strip_prefix("/api/2.0/gateway/limits/") {
                name_segment(rest)?;
                Operation::GetLimits
            } else if let Some(rest) = path.strip_prefix("/api/2.0/endpoints/") {
                Operation::GetEndpoint(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/api/3.0/gateway/endpoint/") {
                Operation::GetEndpoint(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/api/2.0/gateway/routes/") {
                Operation::GetLegacyRoute(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/api/3.0/gateway/route/") {
                Operation::GetTrafficRoute(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/gateway/proxy/") {
                let (endpoint, rest) = rest.split_once('/').unwrap_or((rest, ""));
                Operation::Proxy { endpoint: name_segment(endpoint)?, rest }
            } else if let Some(rest) = path.strip_prefix("/gateway/gemini/v1beta/models/") {
                // `{endpoint}:{method}`: endpoint names never contain `:` (`config::is_valid_name`).
                let (endpoint, method) = rest.rsplit_once(':')?;
                let stream = match method {
                    "generateContent" => false,
                    "streamGenerateContent" => true,
                    _ => return None,
                };
                Operation::Gemini { endpoint: name_segment(endpoint)?, stream }
            } else if let Some(rest) = path.strip_prefix("/v1/models/") {
                Operation::Model(name_segment(rest)?)
            } else {
                let rest = path.strip_prefix("/endpoints/").or_else(|| path.strip_prefix("/gateway/"))?;
                let rest = rest.strip_suffix("/invocations")?;
                // MLflow 3's server gateway: `/gateway/{name}/mlflow/invocations`.
                let name = match rest.strip_suffix("/mlflow") {
                    Some(name) if path.starts_with("/gateway/") => name,
                    _ => rest,
                };
                Operation::Invoke(name_segment(name)?)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(match_path("/health"), Match::Found(Operation::Health));
        assert_eq!(match_path("/api/2.0/endpoints/chat"), Match::Found(Operation::GetEndpoint("chat")));
        assert_eq!(match_path("/api/2.0/endpoints"), Match::Redirect("/api/2.0/endpoints/".into()));
        assert_eq!(match_path("/api/2.0/endpoints/chat/"), Match::Redirect("/api/2.0/endpoints/chat".into()));
        assert_eq!(match_path("/endpoints/chat/invocations"), Match::Found(Operation::Invoke("chat")));
        assert_eq!(match_path("/gateway/a.b-c/invocations"), Match::Found(Operation::Invoke("a.b-c")));
        assert_eq!(match_path("/endpoints/a/b/invocations"), Match::NotFound);
        assert_eq!(match_path("/api/2.0/endpoints/limits/chat"), Match::Found(Operation::GetLimits));
        assert_eq!(match_path("/v1/chat/completions"), Match::Found(Operation::OpenAi(EndpointType::Chat)));
        assert_eq!(match_path("/v1/messages"), Match::Found(Operation::Messages));
        assert_eq!(match_path("/v1/messages/count_tokens"), Match::Found(Operation::CountTokens));
        assert_eq!(match_path("/v1/responses"), Match::Found(Operation::Responses));
        assert!(Operation::Messages.accepts("POST") && !Operation::Responses.accepts("GET"));
        // MLflow 3's server-gateway routes.
        assert_eq!(match_path("/gateway/chat/mlflow/invocations"), Match::Found(Operation::Invoke("chat")));
        assert_eq!(match_path("/endpoints/chat/mlflow/invocations"), Match::NotFound);
        assert_eq!(
            match_path("/gateway/mlflow/v1/chat/completions"),
            Match::Found(Operation::OpenAi(EndpointType::Chat))
        );
        assert_eq!(match_path("/gateway/mlflow/v1/models"), Match::Found(Operation::Models));
        assert_eq!(
            match_path("/gateway/openai/v1/embeddings"),
            Match::Found(Operation::OpenAiPassthrough(EndpointType::Embeddings))
        );
        assert_eq!(match_path("/gateway/openai/v1/responses"), Match::Found(Operation::Responses));
        assert_eq!(match_path("/gateway/anthropic/v1/messages"), Match::Found(Operation::Messages));
        assert_eq!(
            match_path("/gateway/proxy/chat/v1/files/abc"),
            Match::Found(Operation::Proxy { endpoint: "chat", rest: "v1/files/abc" })
        );
        assert_eq!(match_path("/gateway/proxy/chat"), Match::Found(Operation::Proxy { endpoint: "chat", rest: "" }));
        assert_eq!(
            match_path("/gateway/gemini/v1beta/models/chat:generateContent"),
            Match::Found(Operation::Gemini { endpoint: "chat", stream: false })
        );
        assert_eq!(
            match_path("/gateway/gemini/v1beta/models/a.b-c:streamGenerateContent"),
            Match::Found(Operation::Gemini { endpoint: "a.b-c", stream: true })
        );
        for nope in [
            "/gateway/gemini/v1beta/models/chat:countTokens",
            "/gateway/gemini/v1beta/models/chat",
            "/gateway/gemini/v1beta/models/:generateContent",
            "/gateway/gemini/v1beta/models/a/b:generateContent",
            "/gateway/gemini/v1/models/chat:generateContent",
        ] {
            assert_eq!(match_path(nope), Match::NotFound, "{nope}");
        }
        assert!(Operation::Gemini { endpoint: "c", stream: true }.accepts("POST"));
        let proxy = Operation::Proxy { endpoint: "c", rest: "" };
        assert!(proxy.accepts("DELETE") && proxy.accepts("GET") && !proxy.accepts("OPTIONS"));
        assert_eq!(match_path("/nope"), Match::NotFound);
        assert_eq!(match_path("/aigw/usage"), Match::Found(Operation::Usage));
        assert!(Operation::Invoke("x").accepts("POST"));
        assert!(!Operation::Invoke("x").accepts("GET"));
        assert!(Operation::Health.accepts("HEAD"));
    }
}
