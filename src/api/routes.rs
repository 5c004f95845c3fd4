//! The route table: every path the gateway answers, matched without allocation.
//!
//! | method | path | route |
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
//! | GET | `/metrics` | Prometheus metrics |
//!
//! A path that matches only with its trailing slash added or removed is redirected (307), as
//! Starlette does (MLflow's tracking-server proxy relies on it for `/api/2.0/endpoints`).

use crate::schema::EndpointType;

/// A matched route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
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
    /// `GET /v1/models`
    Models,
    /// `GET /v1/models/{id}`
    Model(&'a str),
    /// `GET /metrics`
    Metrics,
}

impl Route<'_> {
    /// The methods the route accepts (for 405 and `Allow`).
    pub fn allow(&self) -> &'static str {
        match self {
            Route::SetLimits | Route::Invoke(_) | Route::OpenAi(_) => "POST",
            _ => "GET, HEAD",
        }
    }

    /// Whether `method` is accepted.
    pub fn accepts(&self, method: &str) -> bool {
        match self.allow() {
            "POST" => method == "POST",
            _ => method == "GET" || method == "HEAD",
        }
    }
}

/// The result of matching a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match<'a> {
    /// A route.
    Found(Route<'a>),
    /// Redirect to this path (trailing slash toggled).
    Redirect(String),
    /// Nothing.
    NotFound,
}

/// Match `path` (without the query string).
pub fn match_path(path: &str) -> Match<'_> {
    if let Some(r) = route(path) {
        return Match::Found(r);
    }
    let toggled = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_owned(),
        Some(_) => return Match::NotFound,
        None => format!("{path}/"),
    };
    if route(&toggled).is_some() { Match::Redirect(toggled) } else { Match::NotFound }
}

fn name_segment(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains('/')).then_some(s)
}

fn route(path: &str) -> Option<Route<'_>> {
    Some(match path {
        "/" => Route::Index,
        "/docs" => Route::Docs,
        "/redoc" => Route::Redoc,
        "/openapi.json" => Route::OpenApi,
        "/favicon.ico" => Route::Favicon,
        "/health" => Route::Health,
        "/api/2.0/endpoints/" => Route::ListEndpoints,
        "/api/2.0/gateway/routes/" => Route::ListLegacyRoutes,
        "/api/2.0/endpoints/limits/" | "/api/2.0/gateway/limits/" => Route::SetLimits,
        "/v1/chat/completions" => Route::OpenAi(EndpointType::Chat),
        "/v1/completions" => Route::OpenAi(EndpointType::Completions),
        "/v1/embeddings" => Route::OpenAi(EndpointType::Embeddings),
        "/v1/models" => Route::Models,
        "/metrics" => Route::Metrics,
        _ => {
            if let Some(rest) = path.strip_prefix("/api/2.0/endpoints/limits/") {
                name_segment(rest)?;
                Route::GetLimits
            } else if let Some(rest) = path.strip_prefix("/api/2.0/gateway/limits/") {
                name_segment(rest)?;
                Route::GetLimits
            } else if let Some(rest) = path.strip_prefix("/api/2.0/endpoints/") {
                Route::GetEndpoint(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/api/3.0/gateway/endpoint/") {
                Route::GetEndpoint(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/api/2.0/gateway/routes/") {
                Route::GetLegacyRoute(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/api/3.0/gateway/route/") {
                Route::GetTrafficRoute(name_segment(rest)?)
            } else if let Some(rest) = path.strip_prefix("/v1/models/") {
                Route::Model(name_segment(rest)?)
            } else {
                let rest = path.strip_prefix("/endpoints/").or_else(|| path.strip_prefix("/gateway/"))?;
                Route::Invoke(name_segment(rest.strip_suffix("/invocations")?)?)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(match_path("/health"), Match::Found(Route::Health));
        assert_eq!(match_path("/api/2.0/endpoints/chat"), Match::Found(Route::GetEndpoint("chat")));
        assert_eq!(match_path("/api/2.0/endpoints"), Match::Redirect("/api/2.0/endpoints/".into()));
        assert_eq!(match_path("/api/2.0/endpoints/chat/"), Match::Redirect("/api/2.0/endpoints/chat".into()));
        assert_eq!(match_path("/endpoints/chat/invocations"), Match::Found(Route::Invoke("chat")));
        assert_eq!(match_path("/gateway/a.b-c/invocations"), Match::Found(Route::Invoke("a.b-c")));
        assert_eq!(match_path("/endpoints/a/b/invocations"), Match::NotFound);
        assert_eq!(match_path("/api/2.0/endpoints/limits/chat"), Match::Found(Route::GetLimits));
        assert_eq!(match_path("/v1/chat/completions"), Match::Found(Route::OpenAi(EndpointType::Chat)));
        assert_eq!(match_path("/nope"), Match::NotFound);
        assert!(Route::Invoke("x").accepts("POST"));
        assert!(!Route::Invoke("x").accepts("GET"));
        assert!(Route::Health.accepts("HEAD"));
    }
}
