//! The official Python SDKs, `openai` (3.x), `anthropic` (2.x) and `google-genai` (3.x), and
//! the OpenAI Agents SDK (`openai-agents` 0.24.x), talking to the real gateway. They are
//! installed under target/ on first use when the machine does not have these versions.

mod anthropic_messages;
mod gemini_generate;
mod openai_responses;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common;
use crate::common::replay::{Case, default_reply, point_at};
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, bedrock, fixture, yaml};
use serde_json::{Value, json};

/// The packages the SDK tests run against: the current major versions (for the Agents SDK,
/// still at 0.x, where a minor release may break its API, the current minor). One pip call
/// installs them all into the same private directory.
const PACKAGES: [&str; 4] = ["openai>=3,<4", "anthropic>=2,<3", "google-genai>=3,<4", "openai-agents>=0.24,<0.25"];

/// Whether `python3` imports the SDKs at the wanted versions (with `path` first on
/// `PYTHONPATH`).
const CHECK: &str = "import openai, anthropic, agents\n\
                     from google import genai\n\
                     assert openai.__version__.split('.')[0] == '3', openai.__version__\n\
                     assert anthropic.__version__.split('.')[0] == '2', anthropic.__version__\n\
                     assert genai.__version__.split('.')[0] == '3', genai.__version__\n\
                     assert agents.__version__.split('.')[:2] == ['0', '24'], agents.__version__";

/// A Python path where `import openai`, `anthropic`, `google.genai` and `agents` give the wanted versions,
/// installing them once if needed (`None`: the machine's own packages will do).
///
/// The tests of this module run in parallel: the first caller installs, the others wait for it
/// (`OnceLock`). The packages go into a private directory first and are renamed into place, so
/// even two test processes never see a half-installed tree. An older tree there (or an older
/// `openai` on the machine) is replaced: the major versions are checked, not importability.
pub fn python_sdks() -> Option<PathBuf> {
    static SDK: OnceLock<Option<PathBuf>> = OnceLock::new();
    SDK.get_or_init(install_python_sdks).clone()
}

fn install_python_sdks() -> Option<PathBuf> {
    let ok = |path: Option<&Path>| {
        let mut c = Command::new("python3");
        c.args(["-c", CHECK]);
        if let Some(p) = path {
            c.env("PYTHONPATH", p);
        }
        c.output().map(|o| o.status.success()).unwrap_or(false)
    };
    if ok(None) {
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/.tools/python");
    if !ok(Some(&dir)) {
        let staging = dir.with_extension(format!("staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-conflicts",
                "--root-user-action=ignore",
                "--target",
            ])
            .arg(&staging)
            .args(PACKAGES)
            .status()
            .expect("python3 -m pip");
        assert!(status.success(), "installing {PACKAGES:?} failed");
        // Another process may have finished first; its copy is as good as ours.
        if !ok(Some(&dir)) {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&staging, &dir).expect("moving the Python SDKs into place");
        } else {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    assert!(ok(Some(&dir)), "the Python SDKs {PACKAGES:?} are not importable from {}", dir.display());
    Some(dir)
}

#[tokio::test]
async fn official_openai_python_sdk() {
    let config = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.yaml")).unwrap();
    let gw = Gateway::start(&config).await;
    let path = python_sdks();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/sdk/openai_smoke.py");
    let url = gw.url("");
    let out = tokio::task::spawn_blocking(move || {
        let mut c = Command::new("python3");
        c.arg(script).arg(url).env("NO_PROXY", "127.0.0.1");
        if let Some(p) = path {
            c.env("PYTHONPATH", p);
        }
        c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK smoke test failed:\n{stdout}\n{stderr}\ngateway log:\n{}", gw.logs());
    assert!(stdout.contains("openai SDK smoke test: OK"));
}

/// Run a Python SDK script with arguments; assert it succeeded and printed `ok_line`. Its
/// standard output.
async fn run_sdk(script: &str, args: Vec<String>, ok_line: &str, gw: &Gateway) -> String {
    let path = python_sdks();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/sdk").join(script);
    let out = tokio::task::spawn_blocking(move || {
        let mut c = Command::new("python3");
        c.arg(script).args(args).env("NO_PROXY", "127.0.0.1");
        if let Some(p) = path {
            c.env("PYTHONPATH", p);
        }
        c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK script failed:\n{stdout}\n{stderr}\ngateway log:\n{}", gw.logs());
    assert!(stdout.contains(ok_line), "{stdout}");
    stdout.into_owned()
}

/// The SDK's view of streams translated from Anthropic, Gemini, Mistral, Cohere (NDJSON) and
/// Bedrock (binary event stream), each provider played by a mock replaying its recorded stream.
#[tokio::test]
async fn translated_streams_through_the_sdk() {
    let cases: [(&str, (&'static str, &'static str)); 5] = [
        ("anthropic-chat-stream", ("anthropic_api_base", "https://api.anthropic.com/v1")),
        ("gemini-chat-stream", ("gemini_api_base", "https://generativelanguage.googleapis.com/v1beta/models")),
        ("mistral-chat-stream", ("mistral_api_base", "https://api.mistral.ai/v1")),
        ("cohere-chat-stream", ("cohere_api_base", "https://api.cohere.ai/v1")),
        ("bedrock-chat-stream", ("bedrock_api_base", "https://bedrock-runtime.us-east-1.amazonaws.com")),
    ];
    let mut endpoints = Vec::new();
    let mut expectations = Vec::new();
    let mut upstreams = Vec::new();
    for (name, base) in cases {
        let fx = fixture(&format!("{name}.json"));
        let upstream = MockUpstream::start().await;
        upstream.push(if name.starts_with("bedrock") {
            bedrock::stream_fixture_reply(&fx, None)
        } else {
            default_reply(&fx, Some(7))
        });
        let mut endpoint = fx["endpoint_config"].clone();
        point_at(&mut endpoint, &Case::new(name, base), &upstream.url());
        endpoint["name"] = Value::from(name);
        endpoints.push(endpoint);
        // What MLflow's stream carried: the text and whether usage was reported.
        let events: Vec<Value> = common::replay::expected_events(&fx);
        let text: String = events.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
        let usage = events.iter().any(|e| e["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0));
        expectations.push(json!({"model": name, "text": text, "usage": usage}));
        upstreams.push(upstream);
    }
    let gw = Gateway::start_with(
        &yaml(&json!({ "endpoints": endpoints })),
        &[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret"), ("AWS_REGION", "us-east-1")],
        &[],
    )
    .await;
    run_sdk(
        "translated_streams.py",
        vec![gw.url(""), serde_json::to_string(&expectations).unwrap()],
        "translated streams through the openai SDK: OK",
        &gw,
    )
    .await;
    for u in &upstreams {
        assert_eq!(u.requests().len(), 1);
    }
}
