//! The 42 configuration cases recorded from MLflow 3.17.2
//! (tests/fixtures/mlflow/config-validation.json): aigw accepts and rejects exactly as MLflow
//! does, except where docs/mlflow-compat.md decides otherwise (each such case names the decision).
//! Messages may be clearer than MLflow's, but every one names the file, the entry and the field.

use crate::common;
use crate::common::{fixture, yaml};
use aigw::config::GatewayConfig;
use aigw::snapshot::Snapshot;
use serde_json::json;

/// What aigw does with a case.
enum Want {
    /// Accepted; the closure checks the loaded configuration.
    Accept(fn(&GatewayConfig)),
    /// Rejected; these fragments appear in the message (the first is MLflow's wording or ours).
    Reject(&'static [&'static str]),
}

fn expectation(index: usize) -> Want {
    use Want::*;
    match index {
        0 => Accept(|c| assert_eq!(c.endpoints[0].name, "a.b-c_D1")),
        1 => Reject(&["'a/b' is invalid", "endpoints[0]", "name"]),
        2 => Reject(&["'a b' is invalid", "name"]),
        3 => Reject(&["Duplicate names found", "endpoints[1]"]),
        4 => Reject(&["Duplicate names found", "routes[0]"]),
        5 => Reject(&["traffic percentage sum of destinations must be 100", "route 'r'"]),
        6 => Reject(&["must have endpoint type 'llm/v1/completions' but got endpoint type 'llm/v1/chat'"]),
        7 => Reject(&["invalid destination name 'nope'", "destinations[0].name"]),
        // aigw adds `routing_strategy: FALLBACK` (README: Traffic routes, fallback and retries;
        // MLflow accepts only TRAFFIC_SPLIT).
        8 => Accept(|c| assert_eq!(c.route("r").unwrap().routing_strategy.as_str(), "FALLBACK")),
        // docs/mlflow-compat.md#fix-12: route names are validated like endpoint names (MLflow accepts "r b").
        9 => Reject(&["'r b' is invalid", "routes[0]", "name"]),
        10 => Reject(&["traffic percentage must between 0 and 100", "traffic_percentage"]),
        11 => Accept(|c| {
            let r = c.route("r").unwrap();
            assert_eq!(r.destinations.len(), 2);
            assert!(r.destinations.iter().all(|d| d.traffic_percentage == 50));
        }),
        12 => Reject(&["'route_type' configuration key is not supported", "Use 'endpoint_type' instead"]),
        13 => Reject(&["The route_type 'llm/v1/foo' is not supported.", "endpoint_type"]),
        14 => Reject(&["The provider 'my_provider' is not supported.", "model.provider"]),
        15 => Accept(|c| assert_eq!(c.endpoints[0].provider_name.as_str(), "amazon-bedrock")),
        16 => Reject(&["'openai_deployment_name'", "Found type: 'openai'", "model.config.openai_deployment_name"]),
        17 => Reject(&["must specify 'openai_api_base', 'openai_deployment_name', and 'openai_api_version'"]),
        18 => Reject(&["'openai_organization' if 'openai_api_type' is 'OpenAIAPIType.OPENAI'"]),
        19 => Reject(&["Invalid OpenAI API type 'foo'", "model.config.openai_api_type"]),
        20 => Reject(&[
            "A config must be supplied when setting a provider. The provider entry for Provider.OPENAI is incorrect.",
        ]),
        21 => Reject(&["model.config.openai_api_key", "Field required"]),
        22 => Reject(&["The api key provided is not a string"]),
        // docs/mlflow-compat.md#fix-5: request parameters under model.config are model defaults (MLflow drops them).
        23 => Accept(|c| {
            assert_eq!(c.endpoints[0].defaults.get("temperature"), Some(&json!(0.7)));
            assert_eq!(c.endpoints[0].defaults.get("max_tokens"), Some(&json!(10)));
        }),
        24 => Accept(|c| assert_eq!(c.endpoints[0].model_name, None)),
        25 => Reject(&["Failed to parse the rate limit configuration", "limit.renewal_period"]),
        26 => Accept(|c| {
            let l = c.endpoints[0].limit.as_ref().unwrap();
            assert_eq!((l.calls, l.renewal_period.as_str(), l.period_secs), (Some(10), "2 minutes", 120));
        }),
        27 => Accept(|c| assert_eq!(c.endpoints[0].limit.as_ref().unwrap().key.as_deref(), Some("user"))),
        28 => Accept(|c| assert_eq!(c.endpoints.len(), 1)),
        29 => Reject(&["endpoints", "Field required"]),
        30 => Accept(|c| assert!(c.endpoints.is_empty() && c.routes.is_empty())),
        31 => Accept(|_| {}), // key value checked on the wire below
        32 => Reject(&["Environment variable 'GW_NOT_SET_123' is not set", "model.config.openai_api_key"]),
        // docs/mlflow-compat.md#fix-12: ${VAR} works like $VAR (MLflow looks up a variable named "{GW_TEST_KEY}").
        33 => Accept(|_| {}),
        34 => Accept(|_| {}),
        35 => Reject(&["An invalid model has been specified for the chat route. 'mpt-7b'", "llama2"]),
        36 => Reject(&["An Unsupported AI21Labs model has been specified: 'j2-foo'"]),
        37 => Accept(|c| assert_eq!(c.endpoints[0].endpoint_type.as_str(), "llm/v1/embeddings")),
        38 => Accept(|c| assert_eq!(c.endpoints[0].provider_name.as_str(), "bedrock")),
        // docs/mlflow-compat.md#fix-11: a partial aws_config is a config error (MLflow silently
        // uses the default chain).
        39 => Reject(&["aws_config", "aws_access_key_id"]),
        40 => Accept(|c| assert_eq!(c.endpoints[0].provider_name.as_str(), "groq")),
        // docs/mlflow-compat.md#fix-12: key files are trimmed (checked on the wire below).
        41 => Accept(|_| {}),
        other => panic!("no expectation for case {other}"),
    }
}

/// Run this module's test `name` alone in a child process of the test binary with
/// `GW_TEST_KEY=secret-from-env`, and assert that it ran and passed.
fn run_in_child_with_test_key(name: &str) {
    let module = module_path!().split_once("::").map_or(module_path!(), |(_, m)| m);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([format!("{module}::{name}").as_str(), "--exact", "--test-threads=1"])
        .env("GW_TEST_KEY", "secret-from-env")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("test result: ok. 1 passed"), "{module}::{name} in a child:\n{text}");
}

#[test]
fn mlflow_config_cases() {
    // Cases 31, 33 and 34 read `$GW_TEST_KEY`. Setting it here would race with the other tests of
    // this binary reading the environment (why `set_var` is unsafe), so the cases run in a child
    // process of this test binary that has the variable from its start.
    if std::env::var("GW_TEST_KEY").as_deref() != Ok("secret-from-env") {
        run_in_child_with_test_key("mlflow_config_cases");
        return;
    }
    let fx = fixture("config-validation.json");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, "file-secret\n").unwrap();

    for (i, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let desc = case["description"].as_str().unwrap();
        let text = yaml(&case["config"]).replace("<tmp>/key.txt", key_file.to_str().unwrap());
        let path = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&path, &text).unwrap();
        let result = Snapshot::load(&path).map(|s| s.config);
        match (expectation(i), result) {
            (Want::Accept(check), Ok(cfg)) => check(&cfg),
            (Want::Reject(fragments), Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(&path.display().to_string()),
                    "case {i} ({desc}): message must name the file: {msg}"
                );
                for f in fragments {
                    assert!(msg.contains(f), "case {i} ({desc}): {msg:?} lacks {f:?}");
                }
                assert!(!msg.contains("secret-from-env") && !msg.contains("file-secret"), "case {i}: secret in {msg}");
            }
            (Want::Accept(_), Err(e)) => panic!("case {i} ({desc}) must load: {e}"),
            (Want::Reject(_), Ok(_)) => panic!("case {i} ({desc}) must be rejected"),
        }
    }
}

/// `aigw -t` with no configuration at all is a failed check (exit 1) that says what is missing.
#[test]
fn dash_t_without_a_configuration_fails() {
    let out =
        std::process::Command::new(common::binary()).arg("-t").env_remove("MLFLOW_GATEWAY_CONFIG").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no gateway configuration") && stderr.contains("--config-path"), "{stderr}");
}
