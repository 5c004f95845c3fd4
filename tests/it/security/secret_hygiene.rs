//! Secret hygiene: distinctive secrets for every provider and gateway key, an upstream that
//! echoes every credential it receives inside its error messages (as JSON and in the middle of a
//! stream), and every error path driven — bad config, invalid reload, upstream errors, auth
//! failures, a contained panic. No secret may appear in any response, log line, audit line,
//! metric or `Debug` output.

use std::time::Duration;

use crate::common;
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, served_providers, yaml};
use serde_json::{Value, json};

/// Distinctive secrets, generated per run (nothing secret-looking is committed).
struct Secrets {
    vars: Vec<(String, String)>,
}

impl Secrets {
    fn new() -> Secrets {
        let tag = format!("{:016x}", rand::random::<u64>());
        let names = [
            "OPENAI",
            "AZURE",
            "ANTHROPIC",
            "GEMINI",
            "PALM",
            "MISTRAL",
            "TOGETHER",
            "COHERE",
            "MOSAIC",
            "AI21",
            "GROQ",
            "DEEPSEEK",
            "XAI",
            "OPENROUTER",
            "OLLAMA",
            "PORTKEY",
            "PORTKEY_PROVIDER",
            "DATABRICKS",
            "DBX_CLIENT_SECRET",
            "AWS_AKID",
            "AWS_SECRET",
            "AWS_SESSION",
            "AWS_BEARER",
            "GW_KEY_ONE",
            // Not configuration: what the mock token endpoint hands out at run time, and the
            // Vertex AI authorized-user credentials (inline JSON).
            "OAUTH_TOKEN",
            "VERTEX_CLIENT_SECRET",
            "VERTEX_REFRESH_TOKEN",
        ];
        let vars = names
            .iter()
            .map(|n| (format!("HYG_{n}"), format!("hyg-{}-{tag}-secret", n.to_ascii_lowercase().replace('_', "-"))))
            .collect();
        Secrets { vars }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn value(&self, name: &str) -> &str {
        &self.vars.iter().find(|(k, _)| k == &format!("HYG_{name}")).unwrap().1
    }

    #[track_caller]
    fn assert_absent(&self, text: &str, place: &str) {
        for (name, value) in &self.vars {
            assert!(!text.contains(value.as_str()), "{name} leaked into {place}:\n{text}");
        }
        assert!(!text.contains("file-held-gateway-key"), "the file-held gateway key leaked into {place}");
    }
}

/// An upstream that answers every call with an error quoting each header it received; its
/// token endpoints hand out `token`.
fn echo_credentials(upstream: &MockUpstream, token: String) {
    upstream.handle(move |req: &Recorded| {
        if req.target.contains("/oidc/v1/token") || req.target.ends_with("/token") {
            return Reply::Json(200, json!({"access_token": token, "expires_in": 3600, "token_type": "Bearer"}));
        }
        let quoted: Vec<String> = req.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let message = format!("Invalid credentials: {}", quoted.join("; "));
        if req.body.windows(13).any(|w| w == b"\"stream\":true") {
            // An error event in the middle of a stream, echoing too.
            let first = b"data: {\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n".to_vec();
            let err = format!("data: {}\n\n", json!({"error": {"message": message, "type": "auth"}})).into_bytes();
            return Reply::sse(vec![first, err], Duration::ZERO);
        }
        Reply::Json(401, json!({"error": {"message": message, "type": "invalid_request_error"}, "message": message}))
    });
}

fn endpoints(base: &str, key_file: &str, secrets: &Secrets) -> Value {
    let ep = |name: &str, t: &str, provider: &str, model: &str, config: Value| json!({"name": name, "endpoint_type": t, "model": {"provider": provider, "name": model, "config": config}});
    let chat = "llm/v1/chat";
    json!([
        ep("openai", chat, "openai", "gpt", json!({"openai_api_key": "$HYG_OPENAI", "openai_api_base": base})),
        ep(
            "azure",
            chat,
            "openai",
            "gpt",
            json!({"openai_api_type": "azure", "openai_api_key": "${HYG_AZURE}",
            "openai_api_base": base, "openai_deployment_name": "d", "openai_api_version": "v1"})
        ),
        ep(
            "anthropic",
            chat,
            "anthropic",
            "claude-x",
            json!({"anthropic_api_key": "$HYG_ANTHROPIC", "anthropic_api_base": base})
        ),
        ep("gemini", chat, "gemini", "gemini-x", json!({"gemini_api_key": "$HYG_GEMINI", "gemini_api_base": base})),
        ep("palm", chat, "palm", "chat-bison", json!({"palm_api_key": "$HYG_PALM", "palm_api_base": base})),
        ep("mistral", chat, "mistral", "m", json!({"mistral_api_key": "$HYG_MISTRAL", "mistral_api_base": base})),
        ep(
            "together",
            chat,
            "togetherai",
            "m",
            json!({"togetherai_api_key": "$HYG_TOGETHER", "togetherai_api_base": base})
        ),
        ep("cohere", chat, "cohere", "command", json!({"cohere_api_key": "$HYG_COHERE", "cohere_api_base": base})),
        ep(
            "mosaic",
            chat,
            "mosaicml",
            "llama2-70b",
            json!({"mosaicml_api_key": "$HYG_MOSAIC", "mosaicml_api_base": base})
        ),
        ep(
            "ai21",
            "llm/v1/completions",
            "ai21labs",
            "j2-ultra",
            json!({"ai21labs_api_key": "$HYG_AI21", "ai21labs_api_base": base})
        ),
        ep("groq", chat, "groq", "m", json!({"api_key": "$HYG_GROQ", "api_base": base})),
        ep("deepseek", chat, "deepseek", "m", json!({"api_key": "$HYG_DEEPSEEK", "api_base": base})),
        ep("xai", chat, "xai", "m", json!({"api_key": "$HYG_XAI", "api_base": base})),
        ep("openrouter", chat, "openrouter", "m", json!({"api_key": "$HYG_OPENROUTER", "api_base": base})),
        ep("ollama", chat, "ollama", "m", json!({"api_key": "$HYG_OLLAMA", "api_base": base})),
        ep(
            "portkey",
            chat,
            "portkey",
            "m",
            json!({"api_key": "$HYG_PORTKEY", "provider_api_key": "$HYG_PORTKEY_PROVIDER", "api_base": base})
        ),
        ep("databricks", chat, "databricks", "m", json!({"host": base, "token": "$HYG_DATABRICKS"})),
        ep(
            "databricks-oauth",
            chat,
            "databricks",
            "m",
            json!({"host": base, "client_id": "cid", "client_secret": "$HYG_DBX_CLIENT_SECRET"})
        ),
        ep(
            "bedrock",
            chat,
            "bedrock",
            "anthropic.claude-v2",
            json!({"bedrock_api_base": base,
            "aws_config": {"aws_region": "us-east-1", "aws_access_key_id": "$HYG_AWS_AKID",
                           "aws_secret_access_key": "$HYG_AWS_SECRET", "aws_session_token": "$HYG_AWS_SESSION"}})
        ),
        ep(
            "bedrock-bearer",
            chat,
            "bedrock",
            "anthropic.claude-v2",
            json!({"bedrock_api_base": base,
            "aws_config": {"aws_region": "us-east-1", "aws_bearer_token": "$HYG_AWS_BEARER"}})
        ),
        ep(
            "amazon-bedrock",
            chat,
            "amazon-bedrock",
            "anthropic.claude-v2",
            json!({"bedrock_api_base": base,
            "aws_config": {"aws_region": "us-east-1", "aws_access_key_id": "$HYG_AWS_AKID",
                           "aws_secret_access_key": "$HYG_AWS_SECRET"}})
        ),
        ep(
            "azure-alias",
            chat,
            "azure",
            "gpt",
            json!({"openai_api_type": "azure", "openai_api_key": "$HYG_AZURE",
            "openai_api_base": base, "openai_deployment_name": "d", "openai_api_version": "v1"})
        ),
        ep(
            "databricks-serving",
            chat,
            "databricks-model-serving",
            "m",
            json!({"host": base, "token": "$HYG_DATABRICKS"})
        ),
        ep("hf", "llm/v1/completions", "huggingface-text-generation-inference", "m", json!({"hf_server_url": base})),
        ep("mlflow-serving", chat, "mlflow-model-serving", "m", json!({"model_server_url": base})),
        ep(
            "vertex",
            chat,
            "vertex_ai",
            "gemini-2.0-flash",
            json!({"vertex_project": "p", "vertex_location": "us-central1", "vertex_api_base": base,
            "vertex_credentials": json!({"type": "authorized_user", "client_id": "cid.apps.example",
                "client_secret": secrets.value("VERTEX_CLIENT_SECRET"),
                "refresh_token": secrets.value("VERTEX_REFRESH_TOKEN"),
                "token_uri": format!("{base}/token")}).to_string()})
        ),
        // An upstream that cannot be reached (connection refused): the error names no secret.
        ep(
            "unreachable",
            chat,
            "openai",
            "gpt",
            json!({"openai_api_key": "$HYG_OPENAI", "openai_api_base": "http://127.0.0.1:9/v1"})
        ),
        // The file-held gateway key is configured below; key_file is only used there.
        ep("mock", chat, "mock", "m", json!({"reply": key_file.len().to_string()})),
    ])
}

/// The endpoints below hold one for every provider aigw serves (derived from the registry, see
/// `common::served_providers`): a new provider's credentials are checked too, or this fails.
#[test]
fn the_endpoints_cover_every_provider() {
    let endpoints = endpoints("http://127.0.0.1:9", "key-file", &Secrets::new());
    let configured: Vec<&str> =
        endpoints.as_array().unwrap().iter().map(|e| e["model"]["provider"].as_str().unwrap()).collect();
    let missing: Vec<&str> =
        served_providers().iter().map(|p| p.as_str()).filter(|p| !configured.contains(p)).collect();
    assert!(missing.is_empty(), "providers without an endpoint in secret_hygiene::endpoints: {missing:?}");
}

#[tokio::test]
async fn no_secret_in_any_answer_log_audit_line_or_metric() {
    let secrets = Secrets::new();
    let upstream = MockUpstream::start().await;
    echo_credentials(&upstream, secrets.value("OAUTH_TOKEN").to_owned());
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("gateway.key");
    std::fs::write(&key_file, "file-held-gateway-key\n").unwrap();
    let audit = dir.path().join("audit.log");
    let config = json!({
        "endpoints": endpoints(&upstream.url(), key_file.to_str().unwrap(), &secrets),
        "aigw": {"audit": {"path": audit}, "auth": {"keys": [
            {"name": "one", "key": "$HYG_GW_KEY_ONE"},
            {"name": "two", "key": key_file.to_str().unwrap()}]}}
    });
    let gw = Gateway::start_with(&yaml(&config), &secrets.env(), &[]).await;
    let auth = format!("Bearer {}", secrets.value("GW_KEY_ONE"));
    let mut answers = String::new();

    // Upstream errors echoing credentials, for every provider, native and /v1, whole and streamed.
    let names: Vec<String> =
        config["endpoints"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    for name in &names {
        let completions = config["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == name.as_str() && e["endpoint_type"] == "llm/v1/completions");
        let (body, v1_path) = if completions {
            (json!({"prompt": "hi", "max_tokens": 5}), "/v1/completions")
        } else {
            (json!({"messages": [{"role": "user", "content": "hi"}]}), "/v1/chat/completions")
        };
        for stream in [false, true] {
            let mut native = body.clone();
            if stream {
                native["stream"] = json!(true);
            }
            let mut v1 = native.clone();
            v1["model"] = json!(name);
            for (path, payload) in [(format!("/endpoints/{name}/invocations"), &native), (v1_path.to_owned(), &v1)] {
                let r =
                    gw.client.post(gw.url(&path)).header("authorization", &auth).json(payload).send().await.unwrap();
                let head = format!("{:?}", r.headers());
                let text = r.text().await.unwrap();
                secrets.assert_absent(&head, &format!("the headers of {path} ({name})"));
                secrets.assert_absent(&text, &format!("the answer of {path} ({name}, stream {stream})"));
                answers.push_str(&text);
            }
        }
    }
    // The upstream really did receive the secrets (so the echo was a real test).
    let seen: String =
        upstream.requests().iter().flat_map(|r| r.headers.iter().map(|(_, v)| v.clone())).collect::<Vec<_>>().join(" ");
    for n in [
        "OPENAI",
        "ANTHROPIC",
        "GEMINI",
        "MISTRAL",
        "DATABRICKS",
        "AWS_AKID",
        "AWS_SESSION",
        "AWS_BEARER",
        "PORTKEY",
        "OAUTH_TOKEN",
    ] {
        assert!(seen.contains(secrets.value(n)), "{n} never reached the upstream");
    }
    assert!(answers.contains("***"), "echoed credentials are scrubbed, not dropped silently");

    // Auth failures with provider secrets and wrong gateway keys as presented keys.
    for presented in [secrets.value("OPENAI"), "file-held-gateway-key-nope", secrets.value("AWS_SECRET")] {
        for header in ["authorization", "x-api-key"] {
            let value = if header == "authorization" { format!("Bearer {presented}") } else { presented.to_owned() };
            let r = gw
                .client
                .post(gw.url("/endpoints/openai/invocations"))
                .header(header, value)
                .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401);
            secrets.assert_absent(&r.text().await.unwrap(), "a 401 answer");
        }
    }
    // The file-held gateway key works, and is trimmed.
    let r = gw
        .client
        .post(gw.url("/endpoints/mock/invocations"))
        .header("x-api-key", "file-held-gateway-key")
        .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A contained panic.
    let r = gw
        .client
        .post(gw.url("/endpoints/mock/invocations"))
        .header("authorization", &auth)
        .header("x-aigw-test-panic", "1")
        .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    secrets.assert_absent(&r.text().await.unwrap(), "the panic's answer");

    // An invalid reload whose file carries secrets as literals.
    let mut bad = config.clone();
    bad["endpoints"][0]["model"]["config"]["openai_api_key"] = json!(secrets.value("OPENAI"));
    bad["endpoints"][0]["model"]["config"]["openai_api_type"] = json!("bogus");
    bad["endpoints"][2]["model"]["config"]["anthropic_api_key"] = json!(secrets.value("ANTHROPIC"));
    bad["aigw"]["limits"] = json!({"nonsense": secrets.value("GROQ")});
    std::fs::write(&gw.config_path, yaml(&bad)).unwrap();
    common::wait_until(Duration::from_secs(10), "the invalid reload is logged", || {
        gw.logs().contains("reload rejected")
    })
    .await;

    // Metrics.
    let metrics =
        gw.client.get(gw.url("/metrics")).header("authorization", &auth).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aigw_requests_total"));
    secrets.assert_absent(&metrics, "/metrics");

    // The log and the audit log, once the audit writer has written the last request's line
    // (the scrape above; lines are written in the order requests end).
    common::wait_until(Duration::from_secs(10), "the audit line of the metrics scrape", || {
        std::fs::read_to_string(&audit).unwrap_or_default().contains("\"path\":\"/metrics\"")
    })
    .await;
    let logs = gw.logs();
    assert!(
        logs.contains("Invalid credentials") || logs.contains("***") || logs.contains("401"),
        "the errors were logged"
    );
    secrets.assert_absent(&logs, "the gateway's log");
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert!(audit_text.lines().count() > names.len());
    secrets.assert_absent(&audit_text, "the audit log");

    // A bad config at start (aigw -t), with secrets in it.
    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(&bad_file, yaml(&bad)).unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["-t", "--config-path"])
        .arg(&bad_file)
        .envs(secrets.env())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid gateway configuration"));
    secrets.assert_absent(&stderr, "aigw -t's error");
    secrets.assert_absent(&String::from_utf8_lossy(&out.stdout), "aigw -t's output");

    // Debug output of the loaded configuration.
    let good_file = dir.path().join("good.yaml");
    std::fs::write(&good_file, yaml(&config)).unwrap();
    // Loaded in a child process so this test's environment stays untouched.
    let loaded = std::process::Command::new(common::binary())
        .args(["-t", "--config-path"])
        .arg(&good_file)
        .envs(secrets.env())
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    let literal = aigw::snapshot::Snapshot::parse(
        &yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "config": {"openai_api_key": secrets.value("OPENAI")}}}],
        "aigw": {"auth": {"keys": [{"name": "k", "key": secrets.value("GW_KEY_ONE")}]}}})),
        std::path::Path::new("x.yaml"),
    )
    .unwrap()
    .config;
    secrets.assert_absent(&format!("{literal:?}"), "Debug of the configuration");
    assert_eq!(literal.redact(&format!("echo {}", secrets.value("OPENAI"))).as_deref(), Some("echo ***"));
}
