//! The official OpenAI Python SDK (`openai` package) talking to the real gateway. The SDK is
//! installed under target/ on first use when the machine does not have it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Gateway;

/// A Python path where `import openai` works, installing the package once if needed.
fn openai_sdk() -> Option<PathBuf> {
    let ok = |path: Option<&Path>| {
        let mut c = Command::new("python3");
        c.args(["-c", "import openai"]);
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
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&dir)
            .arg("openai>=1.40,<3")
            .status()
            .expect("python3 -m pip");
        assert!(status.success(), "installing the openai package failed");
    }
    assert!(ok(Some(&dir)), "the openai package is not importable");
    Some(dir)
}

#[tokio::test]
async fn official_openai_python_sdk() {
    let config = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.yaml")).unwrap();
    let gw = Gateway::start(&config).await;
    let path = openai_sdk();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai_smoke.py");
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
