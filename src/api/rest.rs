//! The gateway's own REST answers: health, endpoint listing (MLflow page tokens), endpoint and
//! route lookups, the 501 limits API, `/v1/models`, and the API docs.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Reply;
use crate::config::{ApiKey, Endpoint, GatewayConfig, Limit, Target, TrafficRoute};
use crate::error::GatewayError;

/// Whether the authenticated key (if any) may see `name`.
fn visible(key: Option<&ApiKey>, name: &str) -> bool {
    key.is_none_or(|k| k.allows(name))
}

/// Endpoints per page (`MLFLOW_DEPLOYMENTS_LIST_ENDPOINTS_PAGE_SIZE`, default 3000).
pub fn page_size() -> usize {
    std::env::var("MLFLOW_DEPLOYMENTS_LIST_ENDPOINTS_PAGE_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3000)
}

/// `GET /health`
pub fn health() -> Reply {
    Reply::json(200, &json!({"status": "OK"}))
}

fn limit_json(limit: &Option<Limit>) -> Value {
    match limit {
        None => Value::Null,
        Some(l) => json!({"calls": l.calls, "key": l.key, "renewal_period": l.renewal_period}),
    }
}

/// The endpoint object of the REST API (never includes `model.config`).
pub fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "name": e.name,
        "endpoint_type": e.endpoint_type.as_str(),
        "model": {"name": e.model_name, "provider": e.provider_name.as_str()},
        "endpoint_url": format!("/gateway/{}/invocations", e.name),
        "limit": limit_json(&e.limit),
    })
}

fn legacy_route_json(e: &Endpoint) -> Value {
    json!({
        "name": e.name,
        "route_type": e.endpoint_type.as_str(),
        "model": {"name": e.model_name, "provider": e.provider_name.as_str()},
        "route_url": format!("/gateway/{}/invocations", e.name),
        "limit": limit_json(&e.limit),
    })
}

/// The traffic route object of `GET /api/3.0/gateway/route/{name}`.
pub fn traffic_route_json(r: &TrafficRoute) -> Value {
    json!({
        "name": r.name,
        "task_type": r.task_type.as_str(),
        "destinations": r.destinations.iter()
            .map(|d| json!({"name": d.name, "traffic_percentage": d.traffic_percentage}))
            .collect::<Vec<_>>(),
        "routing_strategy": r.routing_strategy.as_str(),
    })
}

/// MLflow's page token: standard base64 of `{"index": N}` (with the space).
pub fn encode_page_token(index: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"index\": {index}}}"))
}

/// Decode a page token; malformed → 400 (docs/mlflow-compat.md#fix-13; MLflow answers 500).
pub fn decode_page_token(token: &str) -> Result<usize, GatewayError> {
    let bad = || GatewayError::bad_request(format!("Invalid page token: '{token}'")).with_param("page_token");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token.trim()))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    v.get("index").and_then(Value::as_u64).and_then(|i| usize::try_from(i).ok()).ok_or_else(bad)
}

fn page(
    cfg: &GatewayConfig,
    query: Option<&str>,
    list_key: &str,
    item: fn(&Endpoint) -> Value,
    key: Option<&ApiKey>,
) -> Result<Reply, GatewayError> {
    let start = match query_param(query, "page_token") {
        Some(t) if !t.is_empty() => decode_page_token(&t)?,
        _ => 0,
    };
    let size = page_size();
    let shown: Vec<&std::sync::Arc<Endpoint>> = cfg.endpoints.iter().filter(|e| visible(key, &e.name)).collect();
    let items: Vec<Value> = shown.iter().skip(start).take(size).map(|e| item(e)).collect();
    let next = (start.saturating_add(size) < shown.len()).then(|| encode_page_token(start + size));
    Ok(Reply::json(200, &json!({ list_key: items, "next_page_token": next })))
}

/// `GET /api/2.0/endpoints/`
pub fn list_endpoints(cfg: &GatewayConfig, query: Option<&str>, key: Option<&ApiKey>) -> Result<Reply, GatewayError> {
    page(cfg, query, "endpoints", endpoint_json, key)
}

/// `GET /api/2.0/gateway/routes/` (deprecated shape).
pub fn list_legacy_routes(
    cfg: &GatewayConfig,
    query: Option<&str>,
    key: Option<&ApiKey>,
) -> Result<Reply, GatewayError> {
    page(cfg, query, "routes", legacy_route_json, key)
}

/// `GET /api/2.0/endpoints/{name}` and `/api/3.0/gateway/endpoint/{name}`.
pub fn get_endpoint(cfg: &GatewayConfig, name: &str, key: Option<&ApiKey>) -> Result<Reply, GatewayError> {
    match cfg.endpoint(name).filter(|e| visible(key, &e.name)) {
        Some(e) => Ok(Reply::json(200, &endpoint_json(e))),
        None => Err(GatewayError::new(
            404,
            crate::error::ErrorKind::NotFound,
            format!("The endpoint '{name}' is not present or active on the server. Please verify the endpoint name."),
        )),
    }
}

fn route_not_found(name: &str) -> GatewayError {
    GatewayError::new(
        404,
        crate::error::ErrorKind::NotFound,
        format!("The route '{name}' is not present or active on the server. Please verify the route name."),
    )
}

/// `GET /api/2.0/gateway/routes/{name}`
pub fn get_legacy_route(cfg: &GatewayConfig, name: &str, key: Option<&ApiKey>) -> Result<Reply, GatewayError> {
    cfg.endpoint(name)
        .filter(|e| visible(key, &e.name))
        .map(|e| Reply::json(200, &legacy_route_json(e)))
        .ok_or_else(|| route_not_found(name))
}

/// `GET /api/3.0/gateway/route/{name}`
pub fn get_traffic_route(cfg: &GatewayConfig, name: &str, key: Option<&ApiKey>) -> Result<Reply, GatewayError> {
    cfg.route(name)
        .filter(|r| visible(key, &r.name))
        .map(|r| Reply::json(200, &traffic_route_json(r)))
        .ok_or_else(|| route_not_found(name))
}

/// The limits API MLflow never implemented.
pub fn limits(set: bool) -> GatewayError {
    let what = if set { "set_limits" } else { "get_limits" };
    GatewayError::new(501, crate::error::ErrorKind::NotImplemented, format!("The {what} API is not available yet."))
}

fn model_json(target: Target<'_>) -> Value {
    match target {
        Target::Endpoint(e) => json!({
            "id": e.name, "object": "model", "created": 0, "owned_by": e.provider_name.as_str(),
            "endpoint_type": e.endpoint_type.as_str(),
        }),
        Target::Route(r) => json!({
            "id": r.name, "object": "model", "created": 0, "owned_by": "aigw-traffic-route",
            "endpoint_type": r.task_type.as_str(),
        }),
    }
}

/// `GET /v1/models`: endpoints and traffic routes, OpenAI list format.
pub fn models(cfg: &GatewayConfig, key: Option<&ApiKey>) -> Reply {
    let data: Vec<Value> = cfg
        .endpoints
        .iter()
        .filter(|e| visible(key, &e.name))
        .map(|e| model_json(Target::Endpoint(e)))
        .chain(cfg.routes.iter().filter(|r| visible(key, &r.name)).map(|r| model_json(Target::Route(r))))
        .collect();
    Reply::json(200, &json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`
pub fn model(cfg: &GatewayConfig, id: &str, key: Option<&ApiKey>) -> Result<Reply, GatewayError> {
    cfg.target(id).filter(|_| visible(key, id)).map(|t| Reply::json(200, &model_json(t))).ok_or_else(|| {
        GatewayError::new(404, crate::error::ErrorKind::NotFound, format!("The model '{id}' does not exist"))
            .with_param("model")
            .with_code("model_not_found")
    })
}

/// `GET /favicon.ico`
pub fn favicon() -> GatewayError {
    GatewayError::new(404, crate::error::ErrorKind::NotFound, "favicon.ico not found")
}

/// `GET /openapi.json`: the API described for Swagger UI and client generators.
pub fn openapi(cfg: &GatewayConfig) -> Reply {
    let invoke = json!({"post": {"summary": "Invoke an endpoint or traffic route",
        "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string",
            "enum": cfg.endpoints.iter().map(|e| e.name.as_str()).chain(cfg.routes.iter().map(|r| r.name.as_str())).collect::<Vec<_>>()}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "Unified answer (JSON, or SSE when `stream` is true)"}}}});
    let openai = |summary: &str| {
        json!({"post": {"summary": summary,
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["model"]}}}},
        "responses": {"200": {"description": "OpenAI-format answer"}}}})
    };
    let get = |summary: &str| json!({"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}});
    let spec = json!({
        "openapi": "3.1.0",
        "info": {"title": "aigw — MLflow AI Gateway compatible", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/health": get("Health check"),
            "/api/2.0/endpoints/": get("List endpoints (paged with page_token)"),
            "/api/2.0/endpoints/{name}": get("Get an endpoint"),
            "/api/3.0/gateway/route/{name}": get("Get a traffic route"),
            "/endpoints/{name}/invocations": invoke.clone(),
            "/gateway/{name}/invocations": invoke,
            "/v1/chat/completions": openai("OpenAI-compatible chat completions (model = endpoint or route name)"),
            "/v1/completions": openai("OpenAI-compatible completions"),
            "/v1/embeddings": openai("OpenAI-compatible embeddings"),
            "/v1/models": get("Endpoints and routes as OpenAI models"),
        }
    });
    Reply::json(200, &spec)
}

/// `GET /docs` (Swagger UI) and `/redoc`, loading their viewers from a CDN as FastAPI does.
pub fn docs_page(redoc: bool) -> Reply {
    let html = if redoc {
        "<!doctype html><html><head><title>aigw - ReDoc</title><meta charset=\"utf-8\"/></head><body>\
         <redoc spec-url=\"/openapi.json\"></redoc>\
         <script src=\"https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js\"></script></body></html>"
    } else {
        "<!doctype html><html><head><title>aigw - Swagger UI</title><meta charset=\"utf-8\"/>\
         <link rel=\"stylesheet\" href=\"https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css\"></head>\
         <body><div id=\"swagger-ui\"></div>\
         <script src=\"https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js\"></script>\
         <script>SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});</script></body></html>"
    };
    Reply {
        status: 200,
        content_type: Some("text/html; charset=utf-8"),
        body: Bytes::from_static(html.as_bytes()),
        headers: Vec::new(),
    }
}

/// The value of `key` in a query string, decoded as `application/x-www-form-urlencoded`
/// (`+` is a space, `%XX` a byte, invalid UTF-8 replaced, a malformed escape kept as it is).
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find_map(|(k, v)| (k == key).then(|| v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens() {
        assert_eq!(encode_page_token(2), "eyJpbmRleCI6IDJ9");
        assert_eq!(decode_page_token("eyJpbmRleCI6IDJ9").unwrap(), 2);
        assert_eq!(decode_page_token("garbage!").unwrap_err().status, 400);
        assert_eq!(decode_page_token("e30=").unwrap_err().status, 400); // {}
    }

    #[test]
    fn queries() {
        assert_eq!(query_param(Some("a=1&page_token=eyJ%3D"), "page_token").as_deref(), Some("eyJ="));
        assert_eq!(query_param(Some("a=1"), "page_token"), None);
        assert_eq!(query_param(None, "a"), None);
        assert_eq!(query_param(Some("a=%zz"), "a").as_deref(), Some("%zz"));
        assert_eq!(query_param(Some("a=%3"), "a").as_deref(), Some("%3"));
        assert_eq!(query_param(Some("a=x+y%20z&&b"), "a").as_deref(), Some("x y z"));
        assert_eq!(query_param(Some("b&a"), "a").as_deref(), Some(""));
        assert_eq!(query_param(Some("p%61ge=1"), "page").as_deref(), Some("1"));
        assert_eq!(query_param(Some("a=%C3%A9%FF"), "a").as_deref(), Some("é\u{fffd}"));
    }
}
