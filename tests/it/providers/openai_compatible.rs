//! The OpenAI-compatible family (`groq`, `deepseek`, `xai`, `openrouter`, `ollama`, `portkey`)
//! (`src/providers/openai_compatible.rs`): non-streaming chat replayed from MLflow's fixtures, and
//! a streamed chat and an embeddings call for each, on `/v1` and on the native route, checking
//! the exact upstream path (each provider's default base path, kept under `api_base`), the
//! credentials headers and the exact payload, and the exact client answer. The stream's upstream
//! answer and expected events are `openai-chat-stream.json`'s (docs/mlflow-compat.md#provider-translations:
//! exactly as OpenAI type `openai`), with `provider` the family member's name.

use crate::common::replay::{Case, default_reply, expected_events, replay_tests};
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, assert_json_eq, fixture, sse_data, yaml};
use serde_json::{Value, json};

fn compat(provider: &str) -> (&'static str, &'static str) {
    match provider {
        "groq" => ("api_base", "https://api.groq.com/openai/v1"),
        "deepseek" => ("api_base", "https://api.deepseek.com/v1"),
        "xai" => ("api_base", "https://api.x.ai/v1"),
        "openrouter" => ("api_base", "https://openrouter.ai/api/v1"),
        _ => ("api_base", "http://localhost:11434/v1"),
    }
}

// Non-streaming chat, replayed from MLflow's fixtures (see tests/it/common/replay.rs).
replay_tests! {
    groq_chat => Case::new("groq-chat", compat("groq"));
    deepseek_chat => Case::new("deepseek-chat", compat("deepseek"));
    xai_chat => Case::new("xai-chat", compat("xai"));
    openrouter_chat => Case::new("openrouter-chat", compat("openrouter"));
    ollama_chat => Case::new("ollama-chat", compat("ollama"));
}

/// A family member as configured, with the headers its upstream must (not) see.
struct Member {
    name: &'static str,
    provider: &'static str,
    /// The provider's default base path (docs/mlflow-compat.md#provider-translations), appended
    /// to the mock's URL as `api_base`.
    base_path: &'static str,
    /// `model.config` besides `api_base`.
    config: Value,
    /// Headers that must be present with exactly this value.
    headers: Vec<(&'static str, &'static str)>,
    /// Headers that must be absent.
    absent: Vec<&'static str>,
}

fn members() -> Vec<Member> {
    vec![
        Member {
            name: "groq",
            provider: "groq",
            base_path: "/openai/v1",
            config: json!({"api_key": "gsk-1"}),
            headers: vec![("authorization", "Bearer gsk-1")],
            absent: vec![],
        },
        Member {
            name: "deepseek",
            provider: "deepseek",
            base_path: "/v1",
            config: json!({"api_key": "ds-1"}),
            headers: vec![("authorization", "Bearer ds-1")],
            absent: vec![],
        },
        Member {
            name: "xai",
            provider: "xai",
            base_path: "/v1",
            config: json!({"api_key": "xai-1"}),
            headers: vec![("authorization", "Bearer xai-1")],
            absent: vec![],
        },
        Member {
            name: "openrouter",
            provider: "openrouter",
            base_path: "/api/v1",
            config: json!({"api_key": "or-1"}),
            headers: vec![("authorization", "Bearer or-1")],
            absent: vec![],
        },
        Member {
            // No key: Ollama's default, no Authorization header at all.
            name: "ollama",
            provider: "ollama",
            base_path: "/v1",
            config: json!({}),
            headers: vec![],
            absent: vec!["authorization"],
        },
        Member {
            // The placeholder key MLflow defaults to is not sent either.
            name: "ollama-default-key",
            provider: "ollama",
            base_path: "/v1",
            config: json!({"api_key": "ollama"}),
            headers: vec![],
            absent: vec!["authorization"],
        },
        Member {
            // A real key (e.g. an Ollama behind an authenticating proxy) is sent as a bearer.
            name: "ollama-keyed",
            provider: "ollama",
            base_path: "/v1",
            config: json!({"api_key": "proxy-key"}),
            headers: vec![("authorization", "Bearer proxy-key")],
            absent: vec![],
        },
        Member {
            name: "portkey",
            provider: "portkey",
            base_path: "/v1",
            config: json!({"api_key": "pk-live-1", "provider": "openai", "config": "pc-config-1",
                           "virtual_key": "vk-openai-1", "provider_api_key": "sk-provider-1"}),
            headers: vec![
                ("x-portkey-api-key", "pk-live-1"),
                ("x-portkey-provider", "openai"),
                ("x-portkey-config", "pc-config-1"),
                ("x-portkey-virtual-key", "vk-openai-1"),
                ("authorization", "Bearer sk-provider-1"),
            ],
            absent: vec![],
        },
        Member {
            // Only the Portkey key: no Authorization header (the provider key is optional).
            name: "portkey-key-only",
            provider: "portkey",
            base_path: "/v1",
            config: json!({"api_key": "pk-live-2"}),
            headers: vec![("x-portkey-api-key", "pk-live-2")],
            absent: vec!["authorization", "x-portkey-provider", "x-portkey-config", "x-portkey-virtual-key"],
        },
    ]
}

fn check_headers(m: &Member, req: &Recorded, ctx: &str) {
    for (name, value) in &m.headers {
        assert_eq!(req.header(name), Some(*value), "{ctx}: header {name}; sent {:?}", req.headers);
    }
    for name in &m.absent {
        assert_eq!(req.header(name), None, "{ctx}: header {name} must not be sent");
    }
    assert_eq!(req.header("content-type"), Some("application/json"), "{ctx}");
    assert_eq!(req.header("accept-encoding"), Some("identity"), "{ctx}");
    assert_eq!(req.method, "POST", "{ctx}");
}

struct Family {
    gw: Gateway,
    /// One mock upstream per member, in `members()` order.
    upstreams: Vec<MockUpstream>,
    members: Vec<Member>,
}

async fn family() -> Family {
    let members = members();
    let mut upstreams = Vec::new();
    let mut endpoints = Vec::new();
    for m in &members {
        let u = MockUpstream::start().await;
        let mut config = m.config.clone();
        config["api_base"] = json!(format!("{}{}", u.url(), m.base_path));
        endpoints.push(json!({"name": format!("{}-chat", m.name), "endpoint_type": "llm/v1/chat",
                              "model": {"provider": m.provider, "name": format!("{}-chat-model", m.name), "config": config}}));
        endpoints.push(json!({"name": format!("{}-emb", m.name), "endpoint_type": "llm/v1/embeddings",
                              "model": {"provider": m.provider, "name": format!("{}-emb-model", m.name), "config": config}}));
        upstreams.push(u);
    }
    let gw = Gateway::start(&yaml(&json!({ "endpoints": endpoints }))).await;
    Family { gw, upstreams, members }
}

/// Streamed chat: `stream_options.include_usage` injected upstream, the events exactly as the
/// OpenAI fixture's with `provider` = the member's name, usage relayed, `[DONE]` last on both routes.
#[tokio::test]
async fn streaming_chat_for_every_member() {
    let f = family().await;
    let fx = fixture("openai-chat-stream.json");
    for (m, upstream) in f.members.iter().zip(&f.upstreams) {
        for v1 in [true, false] {
            let ctx = format!("{} {}", m.name, if v1 { "/v1" } else { "native" });
            upstream.clear();
            upstream.push(default_reply(&fx, None));
            let endpoint = format!("{}-chat", m.name);
            let mut request = json!({"messages": [{"role": "user", "content": "Tell me a joke"}], "stream": true,
                                     "temperature": 0.3});
            let path = if v1 {
                request["model"] = json!(endpoint);
                "/v1/chat/completions".to_owned()
            } else {
                format!("/endpoints/{endpoint}/invocations")
            };
            let (status, ct, text) = f.gw.post_text(&path, &request).await;
            assert_eq!(status, 200, "{ctx}: {text}");
            assert!(ct.starts_with("text/event-stream"), "{ctx}: {ct}");

            let sent = upstream.requests();
            assert_eq!(sent.len(), 1, "{ctx}");
            assert_eq!(sent[0].target, format!("{}/chat/completions", m.base_path), "{ctx}");
            check_headers(m, &sent[0], &ctx);
            assert_json_eq(
                &sent[0].json(),
                &json!({"model": format!("{}-chat-model", m.name), "n": 1, "stream": true, "temperature": 0.3,
                        "messages": [{"role": "user", "content": "Tell me a joke"}],
                        "stream_options": {"include_usage": true}}),
                &[],
            );

            let mut events = sse_data(&text);
            // Every route ends a stream with one `[DONE]` (MLflow 3.18).
            assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{ctx}: {text}");
            assert!(!events.iter().any(|e| e == "[DONE]"), "{ctx}: [DONE] only at the end: {text}");
            let mut expected = expected_events(&fx);
            for e in &mut expected {
                e["provider"] = json!(m.provider);
            }
            let got: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
            assert_eq!(got.len(), expected.len(), "{ctx}: {text}");
            for (g, e) in got.iter().zip(&expected) {
                assert_json_eq(g, e, &[]);
            }
            assert_eq!(
                got.last().unwrap()["usage"],
                json!({"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}),
                "{ctx}: the usage chunk is relayed"
            );
        }
    }
    f.gw.assert_alive().await;
}

/// A client's own `stream_options` is kept and `include_usage` added to it; a client that
/// turned usage off explicitly keeps it off.
#[tokio::test]
async fn client_stream_options_are_merged() {
    let f = family().await;
    let fx = fixture("openai-chat-stream.json");
    let upstream = &f.upstreams[0];
    for (options, want) in [
        (json!({"continuous_usage_stats": true}), json!({"continuous_usage_stats": true, "include_usage": true})),
        (json!({"include_usage": false}), json!({"include_usage": false})),
    ] {
        upstream.clear();
        upstream.push(default_reply(&fx, None));
        let request = json!({"model": "groq-chat", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                             "stream_options": options});
        let (status, _, text) = f.gw.post_text("/v1/chat/completions", &request).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(upstream.last().json()["stream_options"], want);
        assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
    }
}

/// Embeddings: `{model, input}` to `<base>/embeddings` with the member's credentials, the
/// answer exactly OpenAI's (`openai-embeddings.json`), on `/v1` and native.
#[tokio::test]
async fn embeddings_for_every_member() {
    let f = family().await;
    let fx = fixture("openai-embeddings.json");
    for (m, upstream) in f.members.iter().zip(&f.upstreams) {
        for v1 in [true, false] {
            let ctx = format!("{} {}", m.name, if v1 { "/v1" } else { "native" });
            upstream.clear();
            upstream.push(Reply::Json(200, fx["upstream_response"].clone()));
            let endpoint = format!("{}-emb", m.name);
            let mut request = json!({"input": ["1", "2"]});
            let path = if v1 {
                request["model"] = json!(endpoint);
                "/v1/embeddings".to_owned()
            } else {
                format!("/endpoints/{endpoint}/invocations")
            };
            let (status, body) = f.gw.post(&path, &request).await;
            assert_eq!(status, 200, "{ctx}: {body}");
            assert_json_eq(&body, &fx["expected_client_response"], &[]);

            let sent = upstream.requests();
            assert_eq!(sent.len(), 1, "{ctx}");
            assert_eq!(sent[0].target, format!("{}/embeddings", m.base_path), "{ctx}");
            check_headers(m, &sent[0], &ctx);
            assert_json_eq(
                &sent[0].json(),
                &json!({"model": format!("{}-emb-model", m.name), "input": ["1", "2"]}),
                &[],
            );
        }
    }
}

/// The family serves no completions: 501 before any call, on both client APIs.
#[tokio::test]
async fn no_completions() {
    let members = members();
    let upstream = MockUpstream::start().await;
    let endpoints: Vec<Value> = members
        .iter()
        .map(|m| {
            let mut config = m.config.clone();
            config["api_base"] = json!(upstream.url());
            json!({"name": m.name, "endpoint_type": "llm/v1/completions",
                   "model": {"provider": m.provider, "name": "x", "config": config}})
        })
        .collect();
    let gw = Gateway::start(&yaml(&json!({ "endpoints": endpoints }))).await;
    for m in &members {
        let (status, body) = gw.post(&format!("/endpoints/{}/invocations", m.name), &json!({"prompt": "hi"})).await;
        assert_eq!(status, 501, "{}: {body}", m.name);
        assert!(body["detail"].as_str().unwrap().contains("completions route is not implemented"), "{body}");
        let (status, body) =
            gw.post("/v1/completions", &json!({"model": m.name, "prompt": "hi", "stream": true})).await;
        assert_eq!(status, 501, "{}: {body}", m.name);
        assert!(body["error"]["message"].as_str().unwrap().contains("not implemented"), "{body}");
    }
    assert!(upstream.requests().is_empty());
}

/// `/v1/responses` with `reasoning.effort`: `reasoning_effort` upstream for the members whose
/// chat API documents it (all but Portkey), a 400 naming the field (and no call) for Portkey.
#[tokio::test]
async fn reasoning_effort_where_documented() {
    let f = family().await;
    for (m, upstream) in f.members.iter().zip(&f.upstreams) {
        upstream.clear();
        upstream.push(Reply::Json(200, crate::common::upstream::openai_answer("/chat/completions")));
        let request = json!({"model": format!("{}-chat", m.name), "input": "Hi", "reasoning": {"effort": "low"}});
        let (status, body) = f.gw.post("/v1/responses", &request).await;
        if m.provider == "portkey" {
            assert_eq!(
                (status, body["error"]["param"].as_str()),
                (400, Some("reasoning.effort")),
                "{}: {body}",
                m.name
            );
            assert!(upstream.requests().is_empty(), "{}", m.name);
        } else {
            assert_eq!(status, 200, "{}: {body}", m.name);
            assert_eq!(upstream.last().json()["reasoning_effort"], json!("low"), "{}", m.name);
        }
    }
}
