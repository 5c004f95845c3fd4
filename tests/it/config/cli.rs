//! The configuration on the command line and on the wire: `aigw -t`, secrets resolved from the
//! environment and files as they reach the upstream, and every shipped example loading.

use std::path::Path;

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, yaml};
use aigw::config::ProviderName;
use serde_json::{Value, json};

/// Cases 31, 33 and 41 resolve a key; check what actually goes upstream.
#[test]
fn resolved_keys_go_upstream() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key.txt");
        std::fs::write(&key_file, "file-secret\n").unwrap();
        let upstream = MockUpstream::start().await;
        upstream.always_json(200, json!({"object": "list", "data": [], "model": "m", "usage": {"prompt_tokens": 0, "total_tokens": 0}}));
        let ep = |name: &str, key: &str| {
            json!({"name": name, "endpoint_type": "llm/v1/embeddings",
                   "model": {"provider": "openai", "name": "m", "config": {"openai_api_key": key, "openai_api_base": upstream.url()}}})
        };
        let cfg = json!({"endpoints": [
            ep("env", "$AIGW_TEST_KEY_A"), ep("braced", "${AIGW_TEST_KEY_A}"), ep("file", key_file.to_str().unwrap()),
            ep("literal", "/not/a/real/path"),
        ]});
        let gw = Gateway::start_with(&yaml(&cfg), &[("AIGW_TEST_KEY_A", "secret-from-env")], &[]).await;
        for (name, want) in [
            ("env", "Bearer secret-from-env"),
            ("braced", "Bearer secret-from-env"),
            ("file", "Bearer file-secret"),
            ("literal", "Bearer /not/a/real/path"),
        ] {
            let (status, body) = gw.post(&format!("/endpoints/{name}/invocations"), &json!({"input": "x"})).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(upstream.last().header("authorization"), Some(want), "{name}");
        }
    });
}

/// `aigw -t` validates everything and exits 0/1 with a clear message.
#[test]
fn dash_t_validates() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        yaml(&json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}}]})),
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        yaml(&json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "openai", "config": {"openai_api_key": "sk-should-not-leak", "openai_api_type": "nope"}}}]})),
    )
    .unwrap();
    let run =
        |p: &Path| std::process::Command::new(common::binary()).args(["-t", "--config-path"]).arg(p).output().unwrap();
    let out = run(&good);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("endpoint 'chat'") && err.contains("openai_api_type"), "{err}");
    assert!(!err.contains("sk-should-not-leak"), "{err}");
    let out = run(&dir.path().join("missing.yaml"));
    assert_eq!(out.status.code(), Some(1));
    // No configuration at all: config::validation (exit 1 with -t).

    // Every example configuration loads.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut n = 0;
    let mut configured: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(examples.join("examples"))
        .into_iter()
        .flatten()
        .flatten()
        .chain(std::fs::read_dir(&examples).unwrap().flatten())
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "yaml") && p.file_name().is_some_and(|f| f != "pingora.yaml") {
            // Give every `$VAR` / `${VAR}` the example references a dummy value, and TLS paths
            // real files.
            let mut text = std::fs::read_to_string(&p).unwrap();
            if text.contains("/etc/aigw/tls/") {
                let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
                std::fs::write(dir.path().join("fullchain.pem"), cert.cert.pem()).unwrap();
                std::fs::write(dir.path().join("privkey.pem"), cert.key_pair.serialize_pem()).unwrap();
                text = text.replace("/etc/aigw/tls/", &format!("{}/", dir.path().display()));
            }
            let p = if text == std::fs::read_to_string(&p).unwrap() {
                p.clone()
            } else {
                let copy = dir.path().join(p.file_name().unwrap());
                std::fs::write(&copy, &text).unwrap();
                copy
            };
            let mut cmd = std::process::Command::new(common::binary());
            cmd.args(["-t", "--config-path"]).arg(&p);
            for var in env_refs(&text) {
                cmd.env(var, "example-value-0123456789");
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
            n += 1;
            let doc: Value = serde_saphyr::from_str(&text).unwrap();
            for e in doc["endpoints"].as_array().into_iter().flatten() {
                configured.extend(e["model"]["provider"].as_str().map(str::to_owned));
            }
        }
    }
    assert!(n >= 1);
    // An example for every provider aigw serves (README: one example config per provider),
    // checked against the registry (`common::served_providers`).
    let missing: Vec<&str> =
        common::served_providers().iter().map(|p| p.as_str()).filter(|p| !configured.iter().any(|c| c == p)).collect();
    assert!(missing.is_empty(), "providers no file under conf/ configures: {missing:?}");
}

/// The environment variable names referenced as `$NAME` or `${NAME}` in a config text.
fn env_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices('$') {
        let rest = text[i + 1..].trim_start_matches('{');
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

fn dash_t(yaml_text: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml_text).unwrap();
    let mut cmd = std::process::Command::new(common::binary());
    cmd.args(["-t", "--config-path"])
        .arg(&path)
        .env_remove("MLFLOW_GATEWAY_CONFIG")
        .env_remove("MLFLOW_GATEWAY_ALLOWED_PROVIDERS")
        .env("RUST_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `provider: litellm` (MLflow runs the LiteLLM Python library in-process) is refused at load,
/// and the message says how to reach a LiteLLM proxy instead; so are MLflow's server-only
/// providers. Neither `aigw -t` nor the server accepts them.
#[tokio::test]
async fn litellm_and_server_only_providers_are_rejected_at_load() {
    let litellm = yaml(&json!({"endpoints": [{"name": "llm", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "litellm", "name": "anthropic/claude-3-5-sonnet",
                  "config": {"litellm_provider": "anthropic", "litellm_auth_config": {"api_key": "sk-litellm-secret"}}}}]}));
    let out = dash_t(&litellm, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in
        ["endpoint 'llm'", "model.provider", "litellm", "LiteLLM proxy", "provider: openai", "openai_api_base"]
    {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(!err.contains("sk-litellm-secret"), "{err}");
    // MLflow's spellings of the name are matched like any provider's.
    let out = dash_t(&litellm.replace("\"litellm\"", "\"LiteLLM\""), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("openai_api_base"));

    // Exactly these registry names are refused at load: the per-provider tables of the other
    // tests cover `common::served_providers()`, the registry without them.
    let refused: Vec<&str> =
        ProviderName::ALL.iter().filter(|p| common::refused_at_load(**p)).map(|p| p.as_str()).collect();
    assert_eq!(refused, ["litellm", "sap-ai-core", "typesafe"]);
    for provider in ["sap-ai-core", "typesafe"] {
        let cfg = yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/chat",
            "model": {"provider": provider, "name": "m", "config": {}}}]}));
        let out = dash_t(&cfg, &[]);
        assert_eq!(out.status.code(), Some(1), "{provider}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(provider) && err.contains("does not serve it"), "{provider}: {err}");
    }

    // The server refuses to start on it too (and says why).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, &litellm).unwrap();
    let out = std::process::Command::new(common::binary())
        .arg("--config-path")
        .arg(&path)
        .args(["--port", &common::free_port().to_string()])
        .env_remove("MLFLOW_GATEWAY_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("openai_api_base"), "{all}");
}

/// cohere, mosaicml and palm are deprecated in MLflow: a warning naming the endpoint is logged
/// once per endpoint when the configuration loads, not per request.
#[tokio::test]
async fn deprecated_providers_warn_once_per_endpoint_at_load() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|r| {
        let answer = if r.target.ends_with("/embed") {
            json!({"id": "e", "embeddings": [[0.1, 0.2]], "texts": ["hi"]})
        } else if r.target.ends_with("/v1/predict") {
            json!({"outputs": ["hello"]})
        } else if r.target.ends_with(":generateText") {
            json!({"candidates": [{"output": "hello"}]})
        } else {
            json!({"response_id": "r", "text": "hello", "generation_id": "g",
                   "token_count": {"prompt_tokens": 1, "response_tokens": 1, "total_tokens": 2}})
        };
        common::upstream::Reply::Json(200, answer)
    });
    let base = upstream.url();
    let cfg = json!({"endpoints": [
        {"name": "cohere-one", "endpoint_type": "llm/v1/chat",
         "model": {"provider": "cohere", "name": "command", "config": {"cohere_api_key": "k", "cohere_api_base": format!("{base}/v1")}}},
        {"name": "cohere-two", "endpoint_type": "llm/v1/embeddings",
         "model": {"provider": "cohere", "name": "embed-english-v3.0", "config": {"cohere_api_key": "k", "cohere_api_base": format!("{base}/v1")}}},
        {"name": "mosaic-one", "endpoint_type": "llm/v1/completions",
         "model": {"provider": "mosaicml", "name": "mpt-7b-instruct", "config": {"mosaicml_api_key": "k", "mosaicml_api_base": base}}},
        {"name": "palm-one", "endpoint_type": "llm/v1/completions",
         "model": {"provider": "palm", "name": "text-bison", "config": {"palm_api_key": "k", "palm_api_base": format!("{base}/v1beta3/models")}}},
        {"name": "current", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}}
    ]});
    let deprecated =
        [("cohere-one", "cohere"), ("cohere-two", "cohere"), ("mosaic-one", "mosaicml"), ("palm-one", "palm")];
    // The warning lines that name `endpoint`.
    let warnings = |log: &str, endpoint: &str| -> usize {
        log.lines().filter(|l| l.contains("deprecated") && l.contains(&format!("endpoint '{endpoint}'"))).count()
    };

    // `aigw -t` prints each once too.
    let out = dash_t(&yaml(&cfg), &[]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for (endpoint, provider) in deprecated {
        assert_eq!(warnings(&err, endpoint), 1, "{endpoint}: {err}");
        let line = err.lines().find(|l| l.contains(&format!("endpoint '{endpoint}'"))).unwrap();
        assert!(line.contains(provider) && line.contains("WARN"), "{line}");
    }
    assert_eq!(warnings(&err, "current"), 0, "{err}");

    let gw = Gateway::start(&yaml(&cfg)).await;
    let at_start = gw.logs();
    for (endpoint, _) in deprecated {
        assert_eq!(warnings(&at_start, endpoint), 1, "{endpoint} at start-up:\n{at_start}");
    }
    let requests = [
        ("/endpoints/cohere-one/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})),
        ("/v1/chat/completions", json!({"model": "cohere-one", "messages": [{"role": "user", "content": "hi"}]})),
        ("/endpoints/cohere-two/invocations", json!({"input": "hi"})),
        ("/endpoints/mosaic-one/invocations", json!({"prompt": "hi"})),
        ("/v1/completions", json!({"model": "palm-one", "prompt": "hi"})),
        ("/endpoints/current/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})),
    ];
    for _ in 0..3 {
        for (path, body) in &requests {
            let (status, answer) = gw.post(path, body).await;
            assert_eq!(status, 200, "{path}: {answer}");
        }
    }
    assert_eq!(upstream.requests().len(), 15, "the deprecated endpoints really served");
    let after = gw.logs();
    for (endpoint, _) in deprecated {
        assert_eq!(warnings(&after, endpoint), 1, "{endpoint}: a warning per request?\n{after}");
    }
    assert_eq!(after.matches("deprecated").count(), at_start.matches("deprecated").count(), "{after}");
}

/// `MLFLOW_GATEWAY_ALLOWED_PROVIDERS` restricts the providers a config may use (MLflow's
/// message; aliases count as their canonical provider).
#[test]
fn allowed_providers_policy() {
    let cfg = |provider: &str, config: Value| {
        yaml(&json!({"endpoints": [{"name": "e", "endpoint_type": "llm/v1/chat",
            "model": {"provider": provider, "name": "m", "config": config}}]}))
    };
    let anthropic = cfg("anthropic", json!({"anthropic_api_key": "k"}));
    let out = dash_t(&anthropic, &[("MLFLOW_GATEWAY_ALLOWED_PROVIDERS", "openai, mock")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Provider 'anthropic' is not allowed by the current gateway provider policy"), "{err}");
    assert!(err.contains("endpoint 'e'") && err.contains("model.provider"), "{err}");

    // Listed (case and spaces as people write them): accepted.
    let out = dash_t(&anthropic, &[("MLFLOW_GATEWAY_ALLOWED_PROVIDERS", "openai, Anthropic")]);
    assert!(out.status.success(), "{out:?}");
    // An alias is allowed through its canonical name.
    let bedrock = cfg("amazon-bedrock", json!({"aws_config": {"aws_region": "us-east-1"}}));
    let out = dash_t(&bedrock, &[("MLFLOW_GATEWAY_ALLOWED_PROVIDERS", "bedrock")]);
    assert!(out.status.success(), "{out:?}");
    let out = dash_t(&bedrock, &[("MLFLOW_GATEWAY_ALLOWED_PROVIDERS", "openai")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Provider 'amazon-bedrock' is not allowed"));
    // Unset: everything aigw serves is allowed.
    assert!(dash_t(&anthropic, &[]).status.success());
}

/// A listen port already in use must stop aigw with an error, not leave a process that looks
/// alive and serves nothing.
#[test]
fn listen_port_in_use_is_a_start_up_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, "endpoints: [{name: chat, endpoint_type: llm/v1/chat, model: {provider: mock}}]").unwrap();
    let log = dir.path().join("aigw.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(common::binary())
        .arg("--config-path")
        .arg(&path)
        .args(["--port", &port.to_string()])
        .env_remove("MLFLOW_GATEWAY_CONFIG")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    // Generous: Pingora's own retries take 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    let status = status.unwrap_or_else(|| panic!("aigw still running on a port it could not bind:\n{text}"));
    assert!(!status.success(), "{text}");
    assert!(text.contains(&port.to_string()) && text.contains("in use"), "{text}");
    drop(held);
}

/// `aigw --help` describes every flag in aigw's own words: each option line is one aigw knows
/// and says what aigw means by it, and none of Pingora's internal doc comments shows through.
#[test]
fn help_describes_every_flag_in_aigws_words() {
    let out = std::process::Command::new(common::binary()).arg("--help").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    // flag as printed → words its description must contain.
    let expected: &[(&str, &str)] = &[
        ("--config-path", "gateway YAML"),
        ("--host", "Address to listen on"),
        ("--port", "Port to listen on"),
        ("-c, --conf", "Server settings file"),
        ("-d, --daemon", "Run in the background"),
        ("-u, --upgrade", "Take the listening sockets over from the running aigw"),
        ("-t, --test", "Check the gateway YAML"),
        ("-h, --help", "Print help"),
        ("-V, --version", "Print version"),
    ];
    let option_lines: Vec<&str> = help.lines().map(str::trim_start).filter(|l| l.starts_with('-')).collect();
    for line in &option_lines {
        let known = expected.iter().find(|(flag, _)| line.starts_with(flag));
        let Some((flag, words)) = known else { panic!("a flag this test does not know: {line}\n{help}") };
        assert!(line.contains(words), "{flag}: {line}");
    }
    for (flag, _) in expected {
        assert!(option_lines.iter().any(|l| l.starts_with(flag)), "{flag} missing from --help:\n{help}");
    }
    for pingora_phrase in [
        "pingora-based service",
        "This flag is useful",
        "Whether this server",
        "The path to the configuration file",
        "Not actually used",
        "calling `server.bootstrap()`",
    ] {
        assert!(!help.contains(pingora_phrase), "Pingora's doc text in --help: {pingora_phrase}\n{help}");
    }
}
