//! The configuration on the command line and on the wire: `aigw -t`, secrets resolved from the
//! environment and files as they reach the upstream, and every shipped example loading.

mod common;

use std::path::Path;

use common::upstream::MockUpstream;
use common::{Gateway, yaml};
use serde_json::json;

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
    let out =
        std::process::Command::new(common::binary()).arg("-t").env_remove("MLFLOW_GATEWAY_CONFIG").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no config given");

    // Every example configuration loads.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut n = 0;
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
        }
    }
    assert!(n >= 1);
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
