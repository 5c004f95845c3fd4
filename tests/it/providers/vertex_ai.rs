//! `vertex_ai` end to end through the real binary, with one mock upstream playing Google's
//! OAuth token endpoint and another playing Vertex AI.
//!
//! There is no MLflow fixture for Vertex AI. Its three model classes reuse other providers'
//! translations, so the `gemini-*`, `anthropic-*` and `openai-*` fixtures are replayed against a
//! `vertex_ai` endpoint instead: same client request, same upstream answer, and the expected
//! upstream body and client answer adjusted for Vertex
//! (docs/mlflow-compat.md#provider-translations) where noted. On top:
//! the signed JWT the token endpoint receives, the bearer token on every Vertex call, token
//! caching and renewal, Application Default Credentials, workload identity federation
//! (`external_account`: file- and URL-sourced subject tokens exchanged at a mock STS, with and
//! without service account impersonation at a mock IAM Credentials endpoint), token and Vertex
//! failures, 501s and configuration errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;
use crate::common::replay::{default_reply, expected_events};
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, assert_json_eq, fixture, sse_data, yaml};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The test-only RSA key (generated with openssl for these tests; it guards nothing).
const TEST_KEY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/providers/vertex_ai/testdata/test-only-rsa-key.pem"));
const TEST_PUBLIC_KEY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/providers/vertex_ai/testdata/test-only-rsa-key.pub.pem"));
const CLIENT_EMAIL: &str = "aigw-test@my-project.iam.gserviceaccount.com";
/// A fragment of the private key that must never appear in an answer or a log line.
fn key_fragment() -> &'static str {
    TEST_KEY.lines().nth(3).unwrap()
}

/// Google's token endpoint: answers token `ya29.token-<n>` for the n-th request.
struct TokenServer {
    mock: MockUpstream,
    issued: Arc<AtomicUsize>,
}

impl TokenServer {
    async fn start(expires_in: u64) -> TokenServer {
        let mock = MockUpstream::start().await;
        let issued = Arc::new(AtomicUsize::new(0));
        let n = issued.clone();
        mock.handle(move |_| {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::Json(
                200,
                json!({"access_token": format!("ya29.token-{i}"), "expires_in": expires_in, "token_type": "Bearer"}),
            )
        });
        TokenServer { mock, issued }
    }

    fn uri(&self) -> String {
        format!("{}/token", self.mock.url())
    }

    fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

fn service_account(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "0123456789abcdef",
        "private_key": TEST_KEY,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

fn endpoint(name: &str, ty: &str, model: &str, vertex: &str, config: Value) -> Value {
    let mut c = json!({"vertex_project": "my-project", "vertex_api_base": vertex});
    for (k, v) in config.as_object().unwrap() {
        c[k] = v.clone();
    }
    json!({"name": name, "endpoint_type": ty, "model": {"provider": "vertex_ai", "name": model, "config": c}})
}

fn hi(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn gemini_answer(text: &str) -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
           "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}})
}

// ---- other providers' fixtures through vertex_ai ----

/// A fixture of another provider replayed against a `vertex_ai` endpoint.
struct Borrowed {
    fixture: &'static str,
    /// `model.name` for the Vertex endpoint (default: the fixture's).
    model: Option<&'static str>,
    /// The expected upstream path below `http://<mock>`.
    path: &'static str,
    /// Adjust the fixture's expected upstream body for Vertex.
    payload: fn(&mut Value),
    /// Answer keys ignored (time-derived).
    ignore: &'static [&'static str],
}

fn vertex_claude_payload(p: &mut Value) {
    // docs/mlflow-compat.md#provider-translations: the model is in the URL, and Vertex requires
    // `anthropic_version` in the body.
    p.as_object_mut().unwrap().remove("model");
    p["anthropic_version"] = json!("vertex-2023-10-16");
}

fn maas_payload(p: &mut Value) {
    p["model"] = json!("meta/llama-3.3-70b-instruct-maas");
}

fn same(_: &mut Value) {}

/// The fixture's expected answer for a vertex_ai endpoint: `provider` is `vertex_ai`.
fn vertex_answer(v: &mut Value) {
    if let Some(p) = v.get_mut("provider") {
        *p = json!("vertex_ai");
    }
}

async fn replay_borrowed(case: Borrowed) {
    let fx = fixture(&format!("{}.json", case.fixture));
    let streamed = fx["upstream_response"].is_array();
    let splits: &[Option<u64>] = if streamed { &[None, Some(1), Some(2)] } else { &[None] };
    for &split in splits {
        let tokens = TokenServer::start(3599).await;
        let vertex = MockUpstream::start().await;
        let ep = &fx["endpoint_config"];
        let model = case.model.unwrap_or_else(|| ep["model"]["name"].as_str().unwrap());
        let ep = endpoint(
            ep["name"].as_str().unwrap(),
            ep["endpoint_type"].as_str().unwrap(),
            model,
            &vertex.url(),
            json!({"vertex_credentials": service_account(&tokens.uri()), "vertex_location": "us-east5"}),
        );
        let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
        vertex.push(default_reply(&fx, split));
        let path = fx["client_path"].as_str().unwrap();
        let (status, ct, text) = gw.post_text(path, &fx["client_request"]).await;
        let ctx = format!("{} (split {split:?})", case.fixture);
        assert_eq!(status, fx["expected_client_status"].as_u64().unwrap() as u16, "{ctx}: {text}");

        let requests = vertex.requests();
        assert_eq!(requests.len(), 1, "{ctx}");
        let req = &requests[0];
        assert_eq!(req.target, case.path, "{ctx}");
        assert_eq!(req.header("authorization"), Some("Bearer ya29.token-1"), "{ctx}");
        assert_eq!(req.header("content-type"), Some("application/json"), "{ctx}");
        assert_eq!(req.header("x-api-key"), None, "{ctx}");
        assert_eq!(req.header("x-goog-api-key"), None, "{ctx}");
        let mut payload = fx["expected_upstream_payload"].clone();
        (case.payload)(&mut payload);
        assert_json_eq(&req.json(), &payload, &[]);
        assert_eq!(tokens.issued(), 1, "{ctx}");

        if streamed {
            assert!(ct.starts_with("text/event-stream"), "{ctx}: {ct}");
            let mut events = sse_data(&text);
            assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{ctx}: streams end with [DONE]: {text}");
            let got: Vec<Value> = events.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            let mut expected = expected_events(&fx);
            expected.iter_mut().for_each(vertex_answer);
            assert_eq!(got.len(), expected.len(), "{ctx}: {text}");
            for (g, e) in got.iter().zip(&expected) {
                assert_json_eq(g, e, case.ignore);
            }
        } else {
            let mut expected = fx["expected_client_response"].clone();
            vertex_answer(&mut expected);
            assert_json_eq(&serde_json::from_str(&text).unwrap(), &expected, case.ignore);
        }
        assert!(!gw.logs().contains(key_fragment()));
    }
}

const GEMINI_GENERATE: &str =
    "/v1/projects/my-project/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent";
const GEMINI_STREAM: &str = "/v1/projects/my-project/locations/us-east5/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse";
/// Gemini answers carry clock-derived ids (`gemini-chat-<now>`); see providers::gemini.
const TIME: &[&str] = &["created", "id"];

macro_rules! borrowed_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay_borrowed($case).await;
        }
    )*};
}

borrowed_tests! {
    gemini_chat => Borrowed { fixture: "gemini-chat", model: None, path: GEMINI_GENERATE,
        payload: same, ignore: TIME };
    gemini_chat_tools => Borrowed { fixture: "gemini-chat-tools", model: None, path: GEMINI_GENERATE,
        payload: same, ignore: TIME };
    gemini_chat_stream => Borrowed { fixture: "gemini-chat-stream", model: None,
        path: GEMINI_STREAM, payload: same, ignore: TIME };
    gemini_completions => Borrowed { fixture: "gemini-completions", model: None, path: GEMINI_GENERATE,
        payload: same, ignore: &["created"] };
    gemini_completions_stream => Borrowed { fixture: "gemini-completions-stream", model: None,
        path: GEMINI_STREAM, payload: same, ignore: TIME };
    claude_chat => Borrowed { fixture: "anthropic-chat", model: None,
        path: "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-2.1:rawPredict",
        payload: vertex_claude_payload, ignore: &["created"] };
    claude_chat_tools => Borrowed { fixture: "anthropic-chat-tools", model: None,
        path: "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-2.1:rawPredict",
        payload: vertex_claude_payload, ignore: &["created"] };
    claude_chat_stream => Borrowed { fixture: "anthropic-chat-stream", model: None,
        path: "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-2.1:streamRawPredict",
        payload: vertex_claude_payload, ignore: &["created"] };
    claude_chat_stream_tools => Borrowed { fixture: "anthropic-chat-stream-tools", model: None,
        path: "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-2.1:streamRawPredict",
        payload: vertex_claude_payload, ignore: &["created"] };
    openai_compatible_chat => Borrowed { fixture: "openai-chat", model: Some("meta/llama-3.3-70b-instruct-maas"),
        path: "/v1/projects/my-project/locations/us-east5/endpoints/openapi/chat/completions",
        payload: maas_payload, ignore: &[] };
    openai_compatible_chat_tools => Borrowed { fixture: "openai-chat-tools", model: Some("meta/llama-3.3-70b-instruct-maas"),
        path: "/v1/projects/my-project/locations/us-east5/endpoints/openapi/chat/completions",
        payload: maas_payload, ignore: &[] };
    openai_compatible_chat_stream => Borrowed { fixture: "openai-chat-stream", model: Some("meta/llama-3.3-70b-instruct-maas"),
        path: "/v1/projects/my-project/locations/us-east5/endpoints/openapi/chat/completions",
        payload: maas_payload, ignore: &[] };
}

/// Gemini tool calls on Vertex: the `id` of `functionCall` / `functionResponse` parts is left
/// out (Vertex refuses it), the rest of the body is the Gemini provider's.
#[tokio::test]
async fn gemini_tool_ids_are_stripped() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let ep = endpoint(
        "g",
        "llm/v1/chat",
        "gemini-2.0-flash",
        &vertex.url(),
        json!({"vertex_credentials": service_account(&tokens.uri())}),
    );
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    vertex.push(Reply::Json(200, gemini_answer("Sunny, 31 degrees.")));
    let request = json!({"messages": [
        {"role": "user", "content": "Weather in Singapore?"},
        {"role": "assistant", "tool_calls": [{"id": "call_001", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\": \"Singapore\"}"}},
            {"id": "call_002", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_001", "content": "{\"temperature\": 31.2}"},
        {"role": "tool", "tool_call_id": "call_002", "content": "{\"temperature\": 18.0}"}]});
    let (status, body) = gw.post("/endpoints/g/invocations", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("Sunny, 31 degrees."));
    assert_eq!(body["provider"], json!("vertex_ai"));
    let sent = vertex.last().json();
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Singapore?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"location": "Singapore"}}},
                {"functionCall": {"name": "get_weather", "args": {"location": "Tokyo"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 31.2}}},
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 18.0}}}]}
        ])
    );
    assert_eq!(
        vertex.last().target,
        "/v1/projects/my-project/locations/global/publishers/google/models/gemini-2.0-flash:generateContent"
    );
}

/// Gemini models on Vertex AI take the client APIs' extensions as the `gemini` provider does:
/// a Gemini 3 model gets `reasoning.effort` as its `thinkingLevel`, `top_k` as `topK`; a
/// partner (OpenAI-compatible) model refuses them with a 400 naming the field.
#[tokio::test]
async fn gemini_extensions() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let creds = json!({"vertex_credentials": service_account(&tokens.uri())});
    let gemini = endpoint("g3", "llm/v1/chat", "gemini-3-pro-preview", &vertex.url(), creds.clone());
    let partner = endpoint("maas", "llm/v1/chat", "meta/llama-4-maverick-17b-128e-instruct-maas", &vertex.url(), creds);
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [gemini, partner] }))).await;
    vertex.push(Reply::Json(200, gemini_answer("Hi")));
    let (status, body) =
        gw.post("/v1/responses", &json!({"model": "g3", "input": "Hi", "reasoning": {"effort": "low"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        vertex.last().json()["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "low", "includeThoughts": true})
    );
    vertex.push(Reply::Json(200, gemini_answer("Hi")));
    let messages =
        json!({"model": "g3", "max_tokens": 64, "top_k": 5, "messages": [{"role": "user", "content": "Hi"}]});
    let (status, body) = gw.post("/v1/messages", &messages).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vertex.last().json()["generationConfig"]["topK"], json!(5));

    let calls = vertex.requests().len();
    let (status, body) =
        gw.post("/v1/responses", &json!({"model": "maas", "input": "Hi", "reasoning": {"effort": "low"}})).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("reasoning.effort")), "{body}");
    assert_eq!(vertex.requests().len(), calls);
}

/// Gemini models on Vertex AI answer as the `gemini` provider does in MLflow 3.18: all text
/// parts joined, `content_filter` finish reasons, a blocked prompt one `content_filter` choice
/// (streams too, ending in `[DONE]`), and thinking tokens counted as completion tokens.
#[tokio::test]
async fn gemini_answers_follow_mlflow_3_18() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let creds = json!({"vertex_credentials": service_account(&tokens.uri())});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), creds)
    ]})))
    .await;

    vertex.push(Reply::Json(
        200,
        json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "Hel"}, {"text": "lo"}]}, "finishReason": "STOP"},
            {"finishReason": "SPII"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "thoughtsTokenCount": 4, "totalTokenCount": 7}}),
    ));
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("Hello"));
    assert_eq!(
        (&body["choices"][1]["index"], &body["choices"][1]["message"]["content"], &body["choices"][1]["finish_reason"]),
        (&json!(1), &Value::Null, &json!("content_filter"))
    );
    assert_eq!(
        (&body["usage"]["completion_tokens"], &body["usage"]["completion_tokens_details"]),
        (&json!(5), &json!({"reasoning_tokens": 4}))
    );

    let blocked = json!({"promptFeedback": {"blockReason": "BLOCKLIST"}, "usageMetadata": {"promptTokenCount": 2}});
    vertex.push(Reply::sse(vec![format!("data: {blocked}\r\n\r\n").into_bytes()], Duration::ZERO));
    let (status, _, text) = gw.post_text("/endpoints/g/invocations", &hi(true)).await;
    assert_eq!(status, 200, "{text}");
    let mut events = sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
    let chunk: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(chunk["choices"][0]["finish_reason"], json!("content_filter"), "{text}");
    assert!(vertex.last().target.ends_with(":streamGenerateContent?alt=sse"), "{}", vertex.last().target);

    // An error event mid-stream: the chunks so far, one error event, no `[DONE]`.
    vertex.push(Reply::sse(
        vec![
            format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})).into_bytes(),
            b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"
                .to_vec(),
        ],
        Duration::ZERO,
    ));
    let (status, _, text) = gw.post_text("/endpoints/g/invocations", &hi(true)).await;
    assert_eq!(status, 200, "{text}");
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    let err: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(err["error"]["message"], json!("The model is overloaded."), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}

/// Embeddings: one input → `:embedContent` (the `gemini-embeddings-single` fixture); several
/// → one `:embedContent` call per input, concurrently, because Vertex has no
/// `:batchEmbedContents` (MLflow sends that method, which Vertex does not serve). The client
/// answer is the fixture's.
#[tokio::test]
async fn gemini_embeddings() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let ep = endpoint(
        "gemini-emb",
        "llm/v1/embeddings",
        "text-embedding-004",
        &vertex.url(),
        json!({"vertex_credentials": service_account(&tokens.uri())}),
    );
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    let path = "/v1/projects/my-project/locations/global/publishers/google/models/text-embedding-004:embedContent";

    let fx = fixture("gemini-embeddings-single.json");
    vertex.push(Reply::Json(200, fx["upstream_response"].clone()));
    let (status, body) = gw.post("/endpoints/gemini-emb/invocations", &fx["client_request"]).await;
    assert_eq!(status, 200, "{body}");
    assert_json_eq(&body, &fx["expected_client_response"], &[]);
    let req = vertex.last();
    assert_eq!(req.target, path);
    assert_json_eq(&req.json(), &fx["expected_upstream_payload"], &[]);

    let fx = fixture("gemini-embeddings-batch.json");
    let inputs: Vec<String> =
        fx["client_request"]["input"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    let vectors = fx["upstream_response"]["embeddings"].clone();
    let by_text = inputs.clone();
    // The calls run concurrently: answer each by its text, not by arrival order.
    vertex.handle(move |r: &Recorded| {
        let text = r.json()["content"]["parts"][0]["text"].as_str().unwrap_or_default().to_owned();
        match by_text.iter().position(|t| *t == text) {
            Some(i) => Reply::Json(200, json!({"embedding": vectors[i].clone()})),
            None => Reply::Json(400, json!({"error": {"code": 400, "message": "unexpected input"}})),
        }
    });
    vertex.clear();
    let (status, body) = gw.post("/v1/embeddings", &json!({"model": "gemini-emb", "input": inputs})).await;
    assert_eq!(status, 200, "{body}");
    assert_json_eq(&body, &fx["expected_client_response"], &[]);
    let requests = vertex.requests();
    assert_eq!(requests.len(), 2);
    let mut texts: Vec<Value> = requests
        .iter()
        .map(|r| {
            assert_eq!(r.target, path);
            assert_eq!(r.header("authorization"), Some("Bearer ya29.token-1"));
            r.json()["content"]["parts"][0]["text"].clone()
        })
        .collect();
    texts.sort_by_key(|t| t.to_string());
    assert_eq!(texts, vec![json!("How does the brain work?"), json!("What is the meaning of life?")]);
    assert_eq!(tokens.issued(), 1);
}

// ---- tokens ----

fn public_key_der() -> Vec<u8> {
    let b64: String = TEST_PUBLIC_KEY
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).unwrap()
}

fn jwt_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The token request is the JWT bearer grant with an RS256 JWT signed by the service-account
/// key; the token is fetched once and reused by every later and concurrent call.
#[tokio::test]
async fn service_account_token_is_signed_cached_and_shared() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    vertex.handle(|_| Reply::Delay(Duration::from_millis(20), Box::new(Reply::Json(200, gemini_answer("ok")))));
    let ep = endpoint(
        "g",
        "llm/v1/chat",
        "gemini-2.0-flash",
        &vertex.url(),
        json!({"vertex_credentials": service_account(&tokens.uri())}),
    );
    let gw = Arc::new(Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await);

    // Concurrent first calls share one token request (single flight).
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let calls = (0..8).map(|_| {
        let gw = gw.clone();
        tokio::spawn(async move { gw.post("/endpoints/g/invocations", &hi(false)).await })
    });
    for c in futures_util::future::join_all(calls).await {
        let (status, body) = c.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..4 {
        let (status, _) = gw
            .post("/v1/chat/completions", &json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(tokens.issued(), 1, "one token for all calls");
    let requests = vertex.requests();
    assert_eq!(requests.len(), 12);
    assert!(requests.iter().all(|r| r.header("authorization") == Some("Bearer ya29.token-1")));

    // The token request itself.
    let token_req = tokens.mock.last();
    assert_eq!((token_req.method.as_str(), token_req.target.as_str()), ("POST", "/token"));
    assert_eq!(token_req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(token_req.header("authorization"), None);
    let body = String::from_utf8(token_req.body.clone()).unwrap();
    let assertion = body
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .unwrap_or_else(|| panic!("JWT bearer grant expected: {body}"));
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(jwt_part(parts[0]), json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"}));
    let claims = jwt_part(parts[1]);
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat >= t0 && iat <= t0 + 10, "iat {iat} near {t0}");
    assert_eq!(
        claims,
        json!({"iss": CLIENT_EMAIL, "scope": "https://www.googleapis.com/auth/cloud-platform",
               "aud": tokens.uri(), "iat": iat, "exp": iat + 3600})
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public_key_der());
    public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).expect("the JWT signature verifies");
    assert!(!gw.logs().contains(assertion), "the assertion is never logged");
}

/// A token is renewed once it is past the renewal point (half its lifetime for short-lived
/// tokens, five minutes before expiry otherwise); until then it is reused. A failed renewal
/// keeps using the current token while it has not expired.
#[tokio::test]
async fn token_is_renewed_before_it_expires() {
    let tokens = TokenServer::start(2).await;
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let ep = endpoint(
        "g",
        "llm/v1/chat",
        "gemini-2.0-flash",
        &vertex.url(),
        json!({"vertex_credentials": service_account(&tokens.uri())}),
    );
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    assert_eq!(gw.post("/endpoints/g/invocations", &hi(false)).await.0, 200);
    assert_eq!(gw.post("/endpoints/g/invocations", &hi(false)).await.0, 200);
    assert_eq!(tokens.issued(), 1);
    // Past the renewal point (1 s), before expiry (2 s): the renewal fails, the token still works.
    // (The subject: real time passing; the token cache reads the system clock.)
    tokio::time::sleep(Duration::from_millis(1200)).await;
    tokens.mock.push(Reply::Json(503, json!({"error": "temporarily_unavailable"})));
    assert_eq!(gw.post("/endpoints/g/invocations", &hi(false)).await.0, 200);
    assert_eq!(tokens.mock.requests().len(), 2, "a renewal was attempted");
    // The next call renews.
    assert_eq!(gw.post("/endpoints/g/invocations", &hi(false)).await.0, 200);
    assert_eq!(tokens.issued(), 2);
    let auth: Vec<String> =
        vertex.requests().iter().map(|r| r.header("authorization").unwrap_or_default().to_owned()).collect();
    assert_eq!(auth, ["Bearer ya29.token-1", "Bearer ya29.token-1", "Bearer ya29.token-1", "Bearer ya29.token-2"]);
    assert!(gw.logs().contains("token renewal failed, using the current token"), "{}", gw.logs());
}

/// The token endpoint refusing the credentials, failing, or being unreachable is a 502 JSON
/// error naming the token endpoint and the OAuth error, before any Vertex call, with nothing
/// secret in it; a stream request gets the same error instead of a stream. Once the endpoint
/// recovers, calls succeed.
#[tokio::test]
async fn token_failures_are_clean_502s() {
    let tokens = MockUpstream::start().await;
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let closed_port = common::free_port();
    let ep = |name: &str, uri: &str| {
        endpoint(
            name,
            "llm/v1/chat",
            "gemini-2.0-flash",
            &vertex.url(),
            json!({"vertex_credentials": service_account(uri)}),
        )
    };
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [
        ep("g", &format!("{}/token", tokens.url())),
        ep("unreachable", &format!("http://127.0.0.1:{closed_port}/token")),
    ]})))
    .await;

    tokens.push(Reply::Json(400, json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})));
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 502);
    let host = tokens.addr.to_string();
    assert_eq!(
        body,
        json!({"detail": format!(
            "Vertex AI: the token endpoint {host} refused the credentials (HTTP 400: invalid_grant: Invalid JWT Signature.)"
        )})
    );

    tokens.push(Reply::Json(401, json!({"error": "unauthorized_client"})));
    let (status, ct, text) = gw.post_text("/endpoints/g/invocations", &hi(true)).await;
    assert_eq!(status, 502, "a stream refused before its first byte is an HTTP error: {text}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(text.contains("unauthorized_client"), "{text}");

    tokens.push(Reply::body(500, "text/html", "<html>backend error</html>"));
    let (status, body) =
        gw.post("/v1/chat/completions", &json!({"model": "g", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(status, 502);
    assert_eq!(
        body["error"]["message"],
        json!(format!("Vertex AI: the token endpoint {host} refused the credentials (HTTP 500)"))
    );

    tokens.push(Reply::Json(200, json!({"token_type": "Bearer"})));
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 502);
    assert!(body["detail"].as_str().unwrap().contains("without a usable access token (no access_token)"), "{body}");

    let (status, body) = gw.post("/endpoints/unreachable/invocations", &hi(false)).await;
    assert_eq!(status, 502, "{body}");
    let message = body["detail"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Vertex AI: cannot get an access token from 127.0.0.1:{closed_port}")),
        "{message}"
    );

    assert!(vertex.requests().is_empty(), "no Vertex call without a token");
    let logs = gw.logs();
    assert!(!logs.contains(key_fragment()));
    assert!(!logs.contains("assertion="), "the signed assertion is never logged");

    // Recovery: no failure is cached.
    tokens.handle(|_| Reply::Json(200, json!({"access_token": "ya29.recovered", "expires_in": 3599})));
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vertex.last().header("authorization"), Some("Bearer ya29.recovered"));
}

// ---- other credential sources ----

/// No `vertex_credentials`: the service-account file named by GOOGLE_APPLICATION_CREDENTIALS.
#[tokio::test]
async fn application_default_credentials_file() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa.json");
    std::fs::write(&sa, service_account(&tokens.uri())).unwrap();
    let ep = endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({}));
    let gw = Gateway::start_with(
        &yaml(&json!({ "endpoints": [ep] })),
        &[("GOOGLE_APPLICATION_CREDENTIALS", sa.to_str().unwrap())],
        &[],
    )
    .await;
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vertex.last().header("authorization"), Some("Bearer ya29.token-1"));
    assert!(String::from_utf8_lossy(&tokens.mock.last().body).contains("jwt-bearer"));
}

/// No `vertex_credentials`, no GOOGLE_APPLICATION_CREDENTIALS, no gcloud file: the metadata
/// server (here at GCE_METADATA_HOST).
#[tokio::test]
async fn metadata_server_token() {
    let metadata = MockUpstream::start().await;
    metadata.always_json(200, json!({"access_token": "ya29.metadata", "expires_in": 3599, "token_type": "Bearer"}));
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let home = tempfile::tempdir().unwrap();
    let ep = endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({}));
    let host = metadata.addr.to_string();
    let gw = Gateway::start_with(
        &yaml(&json!({ "endpoints": [ep] })),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", ""),
            ("CLOUDSDK_CONFIG", ""),
            ("HOME", home.path().to_str().unwrap()),
            ("GCE_METADATA_HOST", &host),
        ],
        &[],
    )
    .await;
    for _ in 0..2 {
        let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
        assert_eq!(status, 200, "{body}");
    }
    let requests = metadata.requests();
    assert_eq!(requests.len(), 1, "cached");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].target,
        "/computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
    );
    assert_eq!(requests[0].header("metadata-flavor"), Some("Google"));
    assert_eq!(vertex.last().header("authorization"), Some("Bearer ya29.metadata"));
}

/// `vertex_credentials` naming an `authorized_user` file (gcloud application-default login)
/// through `${VAR}`: the refresh-token grant.
#[tokio::test]
async fn authorized_user_credentials_from_a_path_in_a_variable() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adc.json");
    let user = json!({"type": "authorized_user", "client_id": "123.apps.googleusercontent.com",
                      "client_secret": "d-secret", "refresh_token": "1//refresh", "token_uri": tokens.uri()});
    std::fs::write(&file, user.to_string()).unwrap();
    let ep = endpoint(
        "g",
        "llm/v1/chat",
        "gemini-2.0-flash",
        &vertex.url(),
        json!({"vertex_credentials": "${VERTEX_ADC_FILE}"}),
    );
    let gw =
        Gateway::start_with(&yaml(&json!({ "endpoints": [ep] })), &[("VERTEX_ADC_FILE", file.to_str().unwrap())], &[])
            .await;
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        String::from_utf8_lossy(&tokens.mock.last().body),
        "grant_type=refresh_token&client_id=123.apps.googleusercontent.com&client_secret=d-secret&refresh_token=1%2F%2Frefresh"
    );
    assert_eq!(vertex.last().header("authorization"), Some("Bearer ya29.token-1"));
}

// ---- workload identity federation (external_account) ----

const AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/aigw/providers/k8s";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const SUBJECT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWlndyJ9.c3ViamVjdA";
const SA: &str = "vertex-caller@my-project.iam.gserviceaccount.com";

/// The form fields of a token exchange request.
fn form(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Google's STS (`POST /v1/token`, the RFC 8693 token exchange): the n-th exchange of
/// `subject` gives `ya29.federated-<n>`; any other subject token is refused.
struct Sts {
    mock: MockUpstream,
    exchanged: Arc<AtomicUsize>,
}

impl Sts {
    async fn start(subject: &'static str) -> Sts {
        let mock = MockUpstream::start().await;
        let exchanged = Arc::new(AtomicUsize::new(0));
        let n = exchanged.clone();
        mock.handle(move |r| {
            let f = form(&r.body);
            if r.target != "/v1/token" || f.get("subject_token").map(String::as_str) != Some(subject) {
                return Reply::Json(
                    400,
                    json!({"error": "invalid_grant", "error_description": "The subject token could not be verified."}),
                );
            }
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::Json(
                200,
                json!({"access_token": format!("ya29.federated-{i}"), "token_type": "Bearer", "expires_in": 3599,
                       "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}),
            )
        });
        Sts { mock, exchanged }
    }

    fn url(&self) -> String {
        format!("{}/v1/token", self.mock.url())
    }

    fn exchanged(&self) -> usize {
        self.exchanged.load(Ordering::SeqCst)
    }
}

/// IAM Credentials' `generateAccessToken` for [`SA`]: with `Bearer ya29.federated-<n>`, answers
/// `ya29.impersonated-<n>`; anything else is 403 in Google's error shape.
async fn impersonation_mock() -> (MockUpstream, String) {
    let mock = MockUpstream::start().await;
    mock.handle(|r| {
        let path = format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken");
        match r.header("authorization").and_then(|a| a.strip_prefix("Bearer ya29.federated-")) {
            Some(n) if r.target == path && r.method == "POST" => {
                let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
                let expire_time = expires.format(&time::format_description::well_known::Rfc3339).unwrap();
                Reply::Json(200, json!({"accessToken": format!("ya29.impersonated-{n}"), "expireTime": expire_time}))
            }
            _ => Reply::Json(
                403,
                json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
                       "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."}}),
            ),
        }
    });
    let url = format!("{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", mock.url());
    (mock, url)
}

/// An `external_account` document (what `gcloud iam workload-identity-pools create-cred-config`
/// writes).
fn external_account(token_url: &str, source: Value, impersonation_url: Option<&str>) -> String {
    let mut doc = json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "token_url": token_url,
        "credential_source": source,
    });
    if let Some(url) = impersonation_url {
        doc["service_account_impersonation_url"] = json!(url);
    }
    doc.to_string()
}

/// Check a token exchange request: RFC 8693's grant for the cloud-platform scope.
#[track_caller]
fn check_exchange(r: &Recorded, subject: &str) {
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/v1/token"));
    assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    let f = form(&r.body);
    let field = |k: &str| f.get(k).map(String::as_str);
    assert_eq!(field("grant_type"), Some("urn:ietf:params:oauth:grant-type:token-exchange"));
    assert_eq!(field("audience"), Some(AUDIENCE));
    assert_eq!(field("scope"), Some("https://www.googleapis.com/auth/cloud-platform"));
    assert_eq!(field("requested_token_type"), Some("urn:ietf:params:oauth:token-type:access_token"));
    assert_eq!(field("subject_token_type"), Some(JWT_TYPE));
    assert_eq!(field("subject_token"), Some(subject));
}

/// A file-sourced subject token (a Kubernetes projected service-account token, say) exchanged
/// at the STS; the federated token is used as it is, cached; the file is read again only when
/// the token is renewed.
#[tokio::test]
async fn external_account_file_sourced_token_exchange() {
    let sts = Sts::start(SUBJECT).await;
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{SUBJECT}\n")).unwrap();
    let creds = external_account(&sts.url(), json!({"file": token_file.to_str().unwrap()}), None);
    let ep = endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({"vertex_credentials": creds}));
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    for _ in 0..3 {
        let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(sts.exchanged(), 1, "cached");
    check_exchange(&sts.mock.last(), SUBJECT);
    assert_eq!(sts.mock.last().header("authorization"), None);
    assert!(vertex.requests().iter().all(|r| r.header("authorization") == Some("Bearer ya29.federated-1")));
    assert!(!gw.logs().contains(SUBJECT), "the subject token is never logged");
}

/// A file-sourced subject token in a JSON document, exchanged, then traded for a service
/// account's token (impersonation): Vertex gets the service account's token.
#[tokio::test]
async fn external_account_file_sourced_with_impersonation() {
    let sts = Sts::start(SUBJECT).await;
    let (iam, impersonation_url) = impersonation_mock().await;
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token.json");
    std::fs::write(&token_file, json!({"id_token": SUBJECT, "expires_on": 1}).to_string()).unwrap();
    let source = json!({"file": token_file.to_str().unwrap(),
                        "format": {"type": "json", "subject_token_field_name": "id_token"}});
    let creds = external_account(&sts.url(), source, Some(&impersonation_url));
    let ep = endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({"vertex_credentials": creds}));
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    for _ in 0..2 {
        let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
        assert_eq!(status, 200, "{body}");
    }
    check_exchange(&sts.mock.last(), SUBJECT);
    let r = iam.last();
    assert_eq!(iam.requests().len(), 1, "cached");
    assert_eq!(r.header("authorization"), Some("Bearer ya29.federated-1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"}));
    assert!(vertex.requests().iter().all(|r| r.header("authorization") == Some("Bearer ya29.impersonated-1")));
    let logs = gw.logs();
    assert!(!logs.contains(SUBJECT) && !logs.contains("ya29.federated-1"), "{logs}");
}

/// A URL-sourced subject token (an identity endpoint such as Azure's instance metadata, with its
/// headers), as text, found through GOOGLE_APPLICATION_CREDENTIALS (Application Default
/// Credentials); no impersonation.
#[tokio::test]
async fn external_account_url_sourced_through_adc() {
    let sts = Sts::start(SUBJECT).await;
    let idp = MockUpstream::start().await;
    idp.handle(|r| {
        if r.target == "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Faigw"
            && r.header("metadata") == Some("True")
        {
            Reply::body(200, "text/plain", SUBJECT)
        } else {
            Reply::Json(400, json!({"error": "bad request"}))
        }
    });
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let source = json!({"url": format!("{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Faigw", idp.url()),
                        "headers": {"Metadata": "True"}});
    let dir = tempfile::tempdir().unwrap();
    let adc = dir.path().join("wif.json");
    std::fs::write(&adc, external_account(&sts.url(), source, None)).unwrap();
    let ep = endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({}));
    let gw = Gateway::start_with(
        &yaml(&json!({ "endpoints": [ep] })),
        &[("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap())],
        &[],
    )
    .await;
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.requests().len(), 1);
    assert_eq!(idp.last().method, "GET");
    check_exchange(&sts.mock.last(), SUBJECT);
    assert_eq!(vertex.last().header("authorization"), Some("Bearer ya29.federated-1"));
}

/// A URL-sourced subject token read from a JSON answer, with impersonation.
#[tokio::test]
async fn external_account_url_sourced_json_with_impersonation() {
    let sts = Sts::start(SUBJECT).await;
    let (iam, impersonation_url) = impersonation_mock().await;
    let idp = MockUpstream::start().await;
    idp.always_json(200, json!({"access_token": SUBJECT, "expires_in": "3599", "token_type": "Bearer"}));
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("ok"));
    let source = json!({"url": format!("{}/token", idp.url()),
                        "format": {"type": "json", "subject_token_field_name": "access_token"}});
    let creds = external_account(&sts.url(), source, Some(&impersonation_url));
    let ep = endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({"vertex_credentials": creds}));
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    let (status, body) =
        gw.post("/v1/chat/completions", &json!({"model": "g", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(status, 200, "{body}");
    check_exchange(&sts.mock.last(), SUBJECT);
    assert_eq!(iam.last().header("authorization"), Some("Bearer ya29.federated-1"));
    assert_eq!(vertex.last().header("authorization"), Some("Bearer ya29.impersonated-1"));
}

/// Each step's failure is a clean error naming the step, before any Vertex call, never showing
/// a token: the subject token file missing (500), the STS refusing the subject token (502 with
/// the OAuth error), impersonation refused (502 with Google's message), the subject token URL
/// failing (502).
#[tokio::test]
async fn external_account_failures_are_clean_errors() {
    let sts = Sts::start(SUBJECT).await;
    let (_iam, impersonation_url) = impersonation_mock().await;
    let idp = MockUpstream::start().await;
    idp.always_json(503, json!({"error": "unavailable"}));
    let vertex = MockUpstream::start().await;
    vertex.always_json(200, gemini_answer("never"));
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "eyJ.wrong-subject-token.sig").unwrap();
    let right = dir.path().join("right");
    std::fs::write(&right, SUBJECT).unwrap();
    let missing = dir.path().join("missing");
    let ep = |name: &str, creds: String| {
        endpoint(name, "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), json!({"vertex_credentials": creds}))
    };
    // The impersonation endpoint refuses whatever it is given when the federated token is not
    // one of the STS mock's (here: an STS that is the impersonation mock itself).
    let (denying, denying_url) = impersonation_mock().await;
    denying.always_json(403, json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied", "status": "PERMISSION_DENIED"}}));
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [
        ep("missing", external_account(&sts.url(), json!({"file": missing.to_str().unwrap()}), None)),
        ep("refused", external_account(&sts.url(), json!({"file": wrong.to_str().unwrap()}), None)),
        ep("denied", external_account(&sts.url(), json!({"file": right.to_str().unwrap()}), Some(&denying_url))),
        ep("url", external_account(&sts.url(), json!({"url": format!("{}/token", idp.url())}), Some(&impersonation_url))),
    ]})))
    .await;

    let (status, body) = gw.post("/endpoints/missing/invocations", &hi(false)).await;
    assert_eq!(status, 500, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("Vertex AI: cannot read the subject token file '{}'", missing.display())),
        "{detail}"
    );

    let (status, body) = gw.post("/endpoints/refused/invocations", &hi(false)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["detail"],
        json!(format!(
            "Vertex AI: the token endpoint {} refused the subject token (HTTP 400: invalid_grant: The subject token could not be verified.)",
            sts.mock.addr
        ))
    );

    let (status, body) = gw.post("/endpoints/denied/invocations", &hi(false)).await;
    assert_eq!(status, 502, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail
            .contains("refused the federated token (HTTP 403: Permission 'iam.serviceAccounts.getAccessToken' denied"),
        "{detail}"
    );

    let (status, body) = gw.post("/endpoints/url/invocations", &hi(false)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["detail"], json!(format!("Vertex AI: the subject token URL {} answered HTTP 503", idp.addr)));

    assert!(vertex.requests().is_empty(), "no Vertex call without a token");
    let logs = gw.logs();
    for secret in [SUBJECT, "eyJ.wrong-subject-token.sig", "ya29.federated-"] {
        assert!(!logs.contains(secret), "{secret} in the log");
    }
    gw.assert_alive().await;
}

// ---- Vertex answers, 501s, betas ----

/// Vertex's error answers keep their status and message; 501s answer before any call.
#[tokio::test]
async fn vertex_errors_and_not_implemented() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let creds = json!({"vertex_credentials": service_account(&tokens.uri())});
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [
        endpoint("g", "llm/v1/chat", "gemini-2.0-flash", &vertex.url(), creds.clone()),
        endpoint("claude-completions", "llm/v1/completions", "claude-sonnet-4-5@20251101", &vertex.url(), creds.clone()),
        endpoint("claude-emb", "llm/v1/embeddings", "claude-sonnet-4-5@20251101", &vertex.url(), creds.clone()),
        endpoint("maas-completions", "llm/v1/completions", "mistral-large-2411", &vertex.url(), creds.clone()),
        endpoint("maas-emb", "llm/v1/embeddings", "meta/llama-3.3-70b-instruct-maas", &vertex.url(), creds.clone()),
    ]})))
    .await;

    vertex.push(Reply::Json(
        403,
        json!({"error": {"code": 403, "message": "Permission 'aiplatform.endpoints.predict' denied", "status": "PERMISSION_DENIED"}}),
    ));
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(false)).await;
    assert_eq!((status, body), (403, json!({"detail": "Permission 'aiplatform.endpoints.predict' denied"})));
    vertex.push(Reply::Json(
        429,
        json!([{"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}]),
    ));
    let (status, body) = gw.post("/endpoints/g/invocations", &hi(true)).await;
    assert_eq!((status, body), (429, json!({"detail": "Resource exhausted"})));

    let before = (vertex.requests().len(), tokens.issued());
    let cases = [
        (
            "claude-completions",
            json!({"prompt": "p"}),
            "The completions route is not implemented for Vertex AI Claude models.",
        ),
        (
            "claude-completions",
            json!({"prompt": "p", "stream": true}),
            "The completions route is not implemented for Vertex AI Claude models.",
        ),
        ("claude-emb", json!({"input": "a"}), "The embeddings route is not implemented for Vertex AI Claude models."),
        (
            "maas-completions",
            json!({"prompt": "p"}),
            "The completions route is not implemented for Vertex AI partner (OpenAI-compatible) models.",
        ),
        (
            "maas-emb",
            json!({"input": "a"}),
            "The embeddings route is not implemented for Vertex AI partner (OpenAI-compatible) models.",
        ),
    ];
    for (name, request, message) in cases {
        let (status, body) = gw.post(&format!("/endpoints/{name}/invocations"), &request).await;
        assert_eq!((status, body), (501, json!({"detail": message})), "{name}");
    }
    assert_eq!((vertex.requests().len(), tokens.issued()), before, "501s make no call");
    gw.assert_alive().await;
}

/// Claude on Vertex: `vertex_anthropic_betas` becomes the `anthropic-beta` header; a `/v1`
/// stream ends with `[DONE]`; an Anthropic error event mid-stream ends it with an error event.
#[tokio::test]
async fn claude_betas_and_streams() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let ep = endpoint(
        "claude",
        "llm/v1/chat",
        "claude-sonnet-4-5@20251101",
        &vertex.url(),
        json!({"vertex_credentials": service_account(&tokens.uri()), "vertex_location": "europe-west1",
               "vertex_anthropic_betas": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]}),
    );
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    let events = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_v\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20251101\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    vertex.push(Reply::sse(events.iter().map(|e| e.as_bytes().to_vec()).collect(), Duration::from_millis(1)));
    let request = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let (status, _, text) = gw.post_text("/v1/chat/completions", &request).await;
    assert_eq!(status, 200, "{text}");
    let mut data = sse_data(&text);
    assert_eq!(data.pop().as_deref(), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks.len(), 3, "{text}");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], json!("Hello"));
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], json!("stop"));
    assert_eq!(chunks[2]["usage"], json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}));
    assert_eq!(chunks[2]["provider"], json!("vertex_ai"));

    let req = vertex.last();
    assert_eq!(
        req.target,
        "/v1/projects/my-project/locations/europe-west1/publishers/anthropic/models/claude-sonnet-4-5@20251101:streamRawPredict"
    );
    assert_eq!(req.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14,context-1m-2025-08-07"));
    assert_eq!(req.header("anthropic-version"), None);
    assert_eq!(
        req.json(),
        json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 8192,
               "anthropic_version": "vertex-2023-10-16"})
    );

    vertex.push(Reply::sse(
        vec![
            events[0].as_bytes().to_vec(),
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".to_vec(),
        ],
        Duration::from_millis(1),
    ));
    let (status, _, text) = gw.post_text("/endpoints/claude/invocations", &hi(true)).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["message"], json!("Overloaded"), "{text}");
    assert!(!text.contains("[DONE]"), "a stream that failed has no [DONE]: {text}");
}

/// MLflow 3.18 on Claude through Vertex AI (the Anthropic translation,
/// docs/mlflow-compat.md#mlflow-318-provider-translations): a tool without properties is valid
/// and goes as an object schema; `refusal` is `content_filter` (MLflow 3.17: `stop`).
#[tokio::test]
async fn claude_takes_parameterless_tools_and_reports_refusals() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let ep = endpoint(
        "claude",
        "llm/v1/chat",
        "claude-sonnet-4-5@20251101",
        &vertex.url(),
        json!({"vertex_credentials": service_account(&tokens.uri())}),
    );
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [ep] }))).await;
    vertex.push(Reply::Json(
        200,
        json!({"id": "msg_v", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "ok"}], "stop_reason": "refusal",
               "usage": {"input_tokens": 3, "output_tokens": 1}}),
    ));
    let mut req = hi(false);
    req["tools"] = json!([{"type": "function", "function": {"name": "now", "parameters": {}}},
                          {"type": "function", "function": {"name": "tick", "parameters": {"type": "object"}}}]);
    let (status, body) = gw.post("/endpoints/claude/invocations", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], json!("content_filter"), "{body}");
    let sent = vertex.last().json();
    let empty = json!({"type": "object", "properties": {}});
    assert_eq!(sent["tools"], json!([{"name": "now", "input_schema": empty}, {"name": "tick", "input_schema": empty}]));
}

// ---- configuration ----

fn check_config(config: Value, envs: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    let doc = json!({"endpoints": [{"name": "v", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "vertex_ai", "name": "gemini-2.0-flash", "config": config}}]});
    std::fs::write(&path, yaml(&doc)).unwrap();
    let mut cmd = std::process::Command::new(common::binary());
    cmd.args(["-t", "--config-path"]).arg(&path).env_remove("GOOGLE_APPLICATION_CREDENTIALS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Configuration errors name the field and never show key material.
#[test]
fn configuration_errors() {
    let sa = service_account("https://oauth2.googleapis.com/token");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sa.json");
    std::fs::write(&file, &sa).unwrap();
    let file = file.to_str().unwrap();

    let (ok, out) = check_config(json!({"vertex_credentials": sa}), &[]);
    assert!(!ok && out.contains("vertex_project") && out.contains("Field required"), "{out}");

    for good in [json!(sa), json!(file), json!("$VERTEX_SA"), json!("${VERTEX_SA_PATH}")] {
        let (ok, out) = check_config(
            json!({"vertex_project": "p", "vertex_credentials": good}),
            &[("VERTEX_SA", &sa), ("VERTEX_SA_PATH", file)],
        );
        assert!(ok, "{good}: {out}");
    }

    let broken_key = sa.replace(key_fragment(), "!!!!");
    let bad = [
        (json!("{\"type\": \"service_account\", \"client_email\": \"a@b\"}"), "no 'private_key'"),
        (json!("{not json"), "not valid JSON"),
        (json!(broken_key), "'private_key' is not a usable RSA private key"),
        (json!("/etc/no/such/sa.json"), "not JSON and names no file"),
        (json!("$VERTEX_UNSET_VAR"), "Environment variable 'VERTEX_UNSET_VAR' is not set"),
        (
            json!(
                json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
                         "credential_source": {"executable": {"command": "/bin/get-token"}}})
                .to_string()
            ),
            "'executable' (subject tokens from a program) is not supported",
        ),
        (
            json!(
                json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
                         "credential_source": {"environment_id": "aws1"}})
                .to_string()
            ),
            "'environment_id' (subject tokens from AWS) is not supported",
        ),
    ];
    for (value, want) in bad {
        let (ok, out) = check_config(json!({"vertex_project": "p", "vertex_credentials": value}), &[]);
        assert!(!ok, "{value}");
        assert!(out.contains("vertex_credentials") && out.contains(want), "{value}: {out}");
        assert!(!out.contains(key_fragment()) && !out.contains("!!!!"), "no key material: {out}");
    }

    let (ok, out) =
        check_config(json!({"vertex_project": "p"}), &[("GOOGLE_APPLICATION_CREDENTIALS", "/etc/no/such/adc.json")]);
    assert!(!ok && out.contains("GOOGLE_APPLICATION_CREDENTIALS names '/etc/no/such/adc.json'"), "{out}");
    let (ok, out) =
        check_config(json!({"vertex_project": "p", "vertex_credentials": sa, "vertex_location": "us central"}), &[]);
    assert!(!ok && out.contains("vertex_location"), "{out}");
}

/// `vertex_location` is checked as MLflow 3.18 checks it: lower-case letters, digits and
/// hyphens, else a load error with MLflow's message (3.17 loaded `US-central1`); an empty value
/// means the default location.
#[test]
fn locations_are_validated_at_load() {
    let sa = service_account("https://oauth2.googleapis.com/token");
    for bad in ["US-central1", "europe-west4.evil.com"] {
        let (ok, out) =
            check_config(json!({"vertex_project": "p", "vertex_credentials": sa, "vertex_location": bad}), &[]);
        assert!(!ok, "{bad}: {out}");
        let want = format!("vertex_location must contain only lowercase letters, digits, and hyphens; got '{bad}'");
        assert!(out.contains("vertex_location") && out.contains(&want), "{bad}: {out}");
    }
    for good in ["", "us-central1", "europe-west4"] {
        let (ok, out) =
            check_config(json!({"vertex_project": "p", "vertex_credentials": sa, "vertex_location": good}), &[]);
        assert!(ok, "{good:?}: {out}");
    }
}

/// Gemini's generateContent (`/gateway/gemini/v1beta/models/{endpoint}:…`) to a Gemini model
/// on Vertex AI goes natively: the client's body as sent to the model's `:generateContent` (or
/// `:streamGenerateContent?alt=sse`) with the OAuth token, the answer relayed; a Claude model on
/// Vertex AI gets it translated into Anthropic's Messages API.
#[tokio::test]
async fn gemini_generate_content_is_native_for_gemini_models() {
    let tokens = TokenServer::start(3599).await;
    let vertex = MockUpstream::start().await;
    let creds = json!({"vertex_credentials": service_account(&tokens.uri())});
    let gemini = endpoint("g", "llm/v1/chat", "gemini-2.5-flash", &vertex.url(), creds.clone());
    let claude = endpoint("c", "llm/v1/chat", "claude-sonnet-4-5", &vertex.url(), creds);
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [gemini, claude] }))).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "tools": [{"googleSearch": {}}],
                      "generationConfig": {"maxOutputTokens": 10}});
    let answer = serde_json::to_vec(&gemini_answer("Hello")).unwrap();
    vertex.push(Reply::body(200, "application/json", answer.clone()));
    let r = gw.client.post(gw.url("/gateway/gemini/v1beta/models/g:generateContent")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), answer, "relayed unchanged");
    let sent = vertex.last();
    assert_eq!(
        sent.target,
        "/v1/projects/my-project/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(sent.header("authorization"), Some("Bearer ya29.token-1"));
    assert_eq!(sent.json(), body, "the body as sent, Google's built-in tool included");

    let event = format!("data: {}\r\n\r\n", gemini_answer("Hello"));
    vertex.push(Reply::sse(vec![event.clone().into_bytes()], std::time::Duration::from_millis(1)));
    let (status, _, text) = gw.post_text("/gateway/gemini/v1beta/models/g:streamGenerateContent?alt=sse", &body).await;
    assert_eq!((status, text), (200, event));
    assert!(
        vertex.last().target.ends_with("gemini-2.5-flash:streamGenerateContent?alt=sse"),
        "{}",
        vertex.last().target
    );

    // Claude on Vertex AI: translated, so Google's built-in tool is refused before any call.
    let calls = vertex.requests().len();
    let (status, error) = gw.post("/gateway/gemini/v1beta/models/c:generateContent", &body).await;
    assert_eq!((status, &error["error"]["status"]), (400, &json!("INVALID_ARGUMENT")), "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("tools.googleSearch"), "{error}");
    assert_eq!(vertex.requests().len(), calls);
}
