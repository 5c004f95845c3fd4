//! Outbound connections (`src/upstream/egress.rs`, `src/config/egress.rs`): the forward proxy,
//! a real tinyproxy the tests start (`common::tinyproxy`), and the egress guard.
//!
//! The upstreams listen on loopback, which is never reached through a proxy; they are named
//! by the machine's host name, which resolves to 127.0.0.1 ([`loopback_name`]): aigw sends
//! `CONNECT <name>:<port>` to the proxy, and the proxy resolves the name and connects.

use std::net::{IpAddr, ToSocketAddrs};

use super::{NATIVE, V1, chat, chat_ok, config, one_worker, tls_acceptor, v1_chat};
use crate::common::bedrock;
use crate::common::tinyproxy::Tinyproxy;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, free_port, yaml};
use base64::Engine as _;
use serde_json::{Value, json};

const PROXY_USER: &str = "aigw-proxy-user";
const PROXY_PASSWORD: &str = "Tp-pw-5f0c1e2d9a77";

/// A name other than `localhost` that resolves to 127.0.0.1: the machine's host name (Debian
/// and container images map it in /etc/hosts).
fn loopback_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let resolved: Vec<IpAddr> =
        (name.as_str(), 80).to_socket_addrs().map(|a| a.map(|a| a.ip()).collect()).unwrap_or_default();
    assert!(
        name != "localhost" && !resolved.is_empty() && resolved.iter().all(IpAddr::is_loopback),
        "these tests need the host name ('{name}') to resolve to loopback only, it resolves to {resolved:?}"
    );
    name
}

fn gemini_answer() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
           "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}})
}

/// A `vertex_ai` endpoint `g` at `api_base` whose tokens come from `token_uri` (a gcloud
/// `authorized_user` document: the refresh-token grant).
fn vertex(api_base: &str, token_uri: &str) -> Value {
    let credentials = json!({"type": "authorized_user", "client_id": "123.apps.googleusercontent.com",
                             "client_secret": "d-secret", "refresh_token": "1//refresh", "token_uri": token_uri});
    json!({"name": "g", "endpoint_type": "llm/v1/chat", "model": {"provider": "vertex_ai", "name": "gemini-2.0-flash",
           "config": {"vertex_project": "p", "vertex_api_base": api_base, "vertex_credentials": credentials.to_string()}}})
}

fn openai(name: &str, base: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat",
           "model": {"provider": "openai", "name": "gpt-4o-mini", "config": {"openai_api_key": "sk-test", "openai_api_base": base}}})
}

/// POST through the raw proxy route to `chat`'s `chat/completions`.
async fn raw_route(gw: &Gateway) -> (u16, String) {
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.post(gw.url("/gateway/proxy/chat/chat/completions")).json(&v1_chat(false)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

/// HTTPS through an authenticating proxy: a CONNECT tunnel per target with the credentials in
/// `Proxy-Authorization`, TLS to the provider end to end (its certificate verified against the
/// test CA, SNI = its name), the tunnel pooled and reused; the raw proxy route goes through it
/// too. The password appears in no log, answer or upstream request; wrong credentials are a 502
/// naming the proxy.
#[tokio::test]
async fn https_goes_through_an_authenticating_proxy_in_a_tunnel_per_target() {
    let name = loopback_name();
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca, sni) = tls_acceptor(dir.path(), &[&name]);
    let upstream = MockUpstream::start_tls(acceptor.clone()).await;
    upstream.always_json(200, chat_ok());
    let other = MockUpstream::start_tls(acceptor).await;
    other.always_json(200, chat_ok());
    let proxy = Tinyproxy::start_with(Some((PROXY_USER, PROXY_PASSWORD)));
    let (port, other_port) = (upstream.addr.port(), other.addr.port());
    let cfg = yaml(&json!({"endpoints": [
        openai("chat", &format!("https://{name}:{port}/v1")),
        openai("other", &format!("https://{name}:{other_port}/v1")),
    ]}));
    let pingora = one_worker(dir.path());
    let gw = Gateway::start_with(
        &cfg,
        &[("SSL_CERT_FILE", ca.to_str().unwrap()), ("HTTPS_PROXY", &proxy.url_with(PROXY_USER, PROXY_PASSWORD))],
        &["-c", pingora.to_str().unwrap()],
    )
    .await;

    for _ in 0..3 {
        let (status, body) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!(status, 200, "{body}\n{}\n{}", gw.logs(), proxy.log());
    }
    let (status, body) = gw.post(V1, &v1_chat(false)).await;
    assert_eq!(status, 200, "{body}");
    let target = format!("{name}:{port}");
    assert_eq!(proxy.connects(), std::slice::from_ref(&target), "one tunnel, pooled and reused:\n{}", proxy.log());
    assert_eq!(upstream.connections(), 1);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(r.header("host"), Some(target.as_str()));
        assert_eq!(r.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(r.header("proxy-authorization"), None, "the proxy's credentials stay with the proxy");
    }
    assert!(sni.lock().unwrap().iter().all(|s| s.as_deref() == Some(name.as_str())), "SNI is the provider's name");

    // Another target is another tunnel.
    let (status, body) = gw.post("/endpoints/other/invocations", &chat(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.connects(), [target.clone(), format!("{name}:{other_port}")]);

    // The raw proxy route (Pingora's proxy pipeline, its own pool) goes through the proxy too.
    let (status, text) = raw_route(&gw).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(upstream.requests().len(), 5);
    assert_eq!(proxy.connects().len(), 3, "{}", proxy.log());
    assert_eq!(proxy.connects()[2], target);

    let token = base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    for secret in [PROXY_PASSWORD, token.as_str()] {
        assert!(!gw.logs().contains(secret), "{}", gw.logs());
    }

    // No credentials: the proxy answers 407; wrong ones: tinyproxy answers 401. Either is a
    // 502 naming the proxy (never the password) on every route.
    let wrong = "Wr0ng-proxy-pw-31337";
    for (url, said) in [
        (proxy.url(), "with 407 Proxy Authentication Required (the proxy wants credentials"),
        (proxy.url_with(PROXY_USER, wrong), "with 401 Unauthorized (the proxy refused its credentials)"),
    ] {
        let gw =
            Gateway::start_with(&cfg, &[("SSL_CERT_FILE", ca.to_str().unwrap()), ("HTTPS_PROXY", &url)], &[]).await;
        let (status, _, text) = gw.post_text(NATIVE, &chat(false)).await;
        assert_eq!(status, 502, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        let named = format!("upstream {target}: proxy {}: refused CONNECT {target} {said}", proxy.url());
        assert!(detail(&body).contains(&named), "{body}");
        let (status, raw) = raw_route(&gw).await;
        assert_eq!(status, 502, "{raw}");
        let raw: Value = serde_json::from_str(&raw).unwrap();
        assert!(raw.to_string().contains(&format!("proxy {}: refused CONNECT {target} {said}", proxy.url())), "{raw}");
        let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("aigw_requests_total"), "{metrics}");
        for seen in [text, raw.to_string(), gw.logs(), metrics] {
            assert!(!seen.contains(wrong) && !seen.contains(PROXY_PASSWORD), "{seen}");
        }
        gw.assert_alive().await;
    }
    assert_eq!(upstream.requests().len(), 5, "nothing reached the provider");
}

/// `aigw.egress.proxy` (per gateway, a secret: `$VAR` works) at an address nothing listens on:
/// every route answers a JSON 502 that names the proxy without its credentials.
#[tokio::test]
async fn an_unreachable_proxy_is_a_502_naming_it() {
    let name = loopback_name();
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, chat_ok());
    let port = free_port();
    let cfg = yaml(&json!({"endpoints": [openai("chat", &format!("http://{name}:{}/v1", upstream.addr.port()))],
                           "aigw": {"egress": {"proxy": "$CORP_PROXY"}}}));
    let url = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}");
    let gw = Gateway::start_with(&cfg, &[("CORP_PROXY", &url)], &[]).await;
    let named = format!("proxy http://127.0.0.1:{port}: connection refused");

    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(detail(&body).contains(&named), "{body}");
    let (status, body) = gw.post(V1, &v1_chat(true)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "bad_gateway_error");
    assert!(body["error"]["message"].as_str().unwrap().contains(&named), "{body}");
    let (status, text) = raw_route(&gw).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains(&named), "{text}");
    assert!(upstream.requests().is_empty());
    assert!(!gw.logs().contains(PROXY_PASSWORD), "{}", gw.logs());
    gw.assert_alive().await;

    // Without credentials, written in the YAML: named all the same (the URL is not a secret).
    let cfg = yaml(&json!({"endpoints": [openai("chat", &format!("http://{name}:{}/v1", upstream.addr.port()))],
                           "aigw": {"egress": {"proxy": format!("http://127.0.0.1:{port}")}}}));
    let gw = Gateway::start(&cfg).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(detail(&body).contains(&named), "{body}");
}

/// Token endpoints go through the proxy like every other call (Vertex AI's OAuth refresh-token
/// exchange, Bedrock's STS AssumeRole, then the call itself; all plain HTTP here: CONNECT to
/// non-443 ports).
#[tokio::test]
async fn token_endpoints_go_through_the_proxy() {
    let name = loopback_name();
    let tokens = MockUpstream::start().await;
    tokens.always_json(200, json!({"access_token": "ya29.proxied", "expires_in": 3599, "token_type": "Bearer"}));
    let api = MockUpstream::start().await;
    api.always_json(200, gemini_answer());
    let proxy = Tinyproxy::start();
    let (token_target, api_target) = (format!("{name}:{}", tokens.addr.port()), format!("{name}:{}", api.addr.port()));
    let ep = vertex(&format!("http://{api_target}"), &format!("http://{token_target}/token"));
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": [ep]})), &[("http_proxy", &proxy.url())], &[]).await;
    let (status, body) = gw.post("/endpoints/g/invocations", &chat(false)).await;
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    assert_eq!(proxy.connects(), [token_target, api_target], "the token call, then the model call");
    assert_eq!(tokens.requests().len(), 1);
    assert_eq!(api.last().header("authorization"), Some("Bearer ya29.proxied"));

    // Bedrock's STS AssumeRole, then the signed call.
    let sts = MockUpstream::start().await;
    sts.push(bedrock::sts_answer("ASIAPROXIED", "proxied-secret", "proxied-token", expires()));
    let runtime = MockUpstream::start().await;
    runtime.always_json(200, bedrock::converse_ok("ok"));
    let proxy = Tinyproxy::start();
    let (sts_target, runtime_target) =
        (format!("{name}:{}", sts.addr.port()), format!("{name}:{}", runtime.addr.port()));
    let cfg = bedrock::config(&[bedrock::endpoint(
        "b",
        "llm/v1/chat",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        json!({"aws_config": {"aws_role_arn": "arn:aws:iam::123456789012:role/bedrock", "aws_region": "us-east-1"},
               "bedrock_api_base": format!("http://{runtime_target}")}),
    )]);
    let sts_url = format!("http://{sts_target}");
    let env = bedrock::env_with(&[
        ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
        ("AWS_SECRET_ACCESS_KEY", "basesecret"),
        ("AWS_ENDPOINT_URL_STS", &sts_url),
        ("HTTP_PROXY", &proxy.url()),
    ]);
    let gw = bedrock::start(&cfg, &env).await;
    let (status, body) = gw.post("/endpoints/b/invocations", &chat(false)).await;
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    assert_eq!(proxy.connects(), [sts_target, runtime_target], "STS, then Bedrock");
    assert_eq!(runtime.last().header("x-amz-security-token"), Some("proxied-token"));
}

fn expires() -> std::time::SystemTime {
    std::time::SystemTime::now() + std::time::Duration::from_secs(3600)
}

/// `NO_PROXY` (either case): a matching upstream is reached directly, the proxy sees nothing;
/// a CIDR matches addresses written as such, not names that resolve into it.
#[tokio::test]
async fn no_proxy_sends_matching_upstreams_directly() {
    let name = loopback_name();
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, chat_ok());
    let proxy = Tinyproxy::start();
    let target = format!("{name}:{}", upstream.addr.port());
    let cfg = config(&format!("http://{target}/v1"));
    let direct = [
        ("NO_PROXY", name.clone()),
        ("no_proxy", format!("other.example, .{}", name.to_uppercase())),
        ("NO_PROXY", "*".to_owned()),
        ("NO_PROXY", target.clone()),
    ];
    for (var, value) in &direct {
        let gw = Gateway::start_with(&cfg, &[("HTTP_PROXY", &proxy.url()), (var, value)], &[]).await;
        let (status, body) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!(status, 200, "{var}={value}: {body}");
        assert!(proxy.connects().is_empty(), "{var}={value}: {}", proxy.log());
    }
    assert_eq!(upstream.requests().len(), direct.len());
    // No match (a network, another port, another name): through the proxy.
    let gw = Gateway::start_with(
        &cfg,
        &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", &format!("127.0.0.0/8, {name}:1, other.example"))],
        &[],
    )
    .await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.connects(), [target]);
    // The YAML's no_proxy wins over the environment's.
    let with_yaml = yaml(&json!({"endpoints": [openai("chat", &format!("http://{name}:{}/v1", upstream.addr.port()))],
                                 "aigw": {"egress": {"no_proxy": [name]}}}));
    let gw = Gateway::start_with(&with_yaml, &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", "other.example")], &[]).await;
    assert_eq!(gw.post(NATIVE, &chat(false)).await.0, 200);
    assert_eq!(proxy.connects().len(), 1, "direct: {}", proxy.log());
}

/// Loopback and the metadata service (here `GCE_METADATA_HOST`, named like any host) never go
/// through the proxy, even one that cannot be reached.
#[tokio::test]
async fn loopback_and_the_metadata_service_never_go_through_the_proxy() {
    let name = loopback_name();
    let metadata = MockUpstream::start().await;
    metadata.always_json(200, json!({"access_token": "ya29.metadata", "expires_in": 3599, "token_type": "Bearer"}));
    let api = MockUpstream::start().await;
    api.always_json(200, gemini_answer());
    let home = tempfile::tempdir().unwrap();
    let ep = json!({"name": "g", "endpoint_type": "llm/v1/chat", "model": {"provider": "vertex_ai", "name": "gemini-2.0-flash",
                    "config": {"vertex_project": "p", "vertex_api_base": api.url()}}});
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [ep]})),
        &[
            ("ALL_PROXY", &unreachable),
            ("GOOGLE_APPLICATION_CREDENTIALS", ""),
            ("CLOUDSDK_CONFIG", ""),
            ("HOME", home.path().to_str().unwrap()),
            ("GCE_METADATA_HOST", &format!("{name}:{}", metadata.addr.port())),
        ],
        &[],
    )
    .await;
    let (status, body) = gw.post("/endpoints/g/invocations", &chat(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(metadata.requests().len(), 1);
    assert_eq!(api.last().header("authorization"), Some("Bearer ya29.metadata"));
}

/// `aigw -t` on a configuration whose provider address is `base`.
fn check(base: &str, egress: Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml(&json!({"endpoints": [openai("chat", base)], "aigw": {"egress": egress}}))).unwrap();
    let mut cmd = std::process::Command::new(crate::common::binary());
    cmd.args(["-t", "--config-path"]).arg(&path);
    for var in crate::common::PROXY_VARIABLES {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// With `deny_private`, a provider address written as an IP of each guarded class is refused at
/// load, naming the endpoint and the field; `allow` exempts a network; off by default.
#[test]
fn private_literals_are_refused_at_load() {
    let classes = [
        ("http://127.0.0.1:8080/v1", "loopback address (127.0.0.0/8)"),
        ("http://[::1]:8080/v1", "loopback address (::1)"),
        ("http://10.1.2.3/v1", "private address (10.0.0.0/8)"),
        ("https://172.16.5.4/v1", "private address (172.16.0.0/12)"),
        ("https://192.168.1.1/v1", "private address (192.168.0.0/16)"),
        ("http://169.254.169.254/v1", "link-local address (169.254.0.0/16"),
        ("http://[fe80::1]/v1", "link-local address (fe80::/10)"),
        ("http://100.64.0.1/v1", "CGNAT address (100.64.0.0/10)"),
        ("http://[fd00::1]/v1", "unique-local address (fc00::/7"),
        ("http://0.0.0.0:80/v1", "\"this network\" address (0.0.0.0/8)"),
        ("http://[::ffff:10.0.0.1]/v1", "private address (10.0.0.0/8)"),
    ];
    for (base, class) in classes {
        let (ok, out) = check(base, json!({"deny_private": true}));
        assert!(!ok, "{base}: {out}");
        assert!(out.contains("endpoint 'chat' (endpoints[0])"), "{base}: {out}");
        assert!(out.contains("model.config.openai_api_base"), "{base}: {out}");
        assert!(out.contains(class) && out.contains("aigw.egress.deny_private"), "{base}: {out}");
    }
    assert!(check("http://10.1.2.3/v1", json!({"deny_private": true, "allow": ["10.1.0.0/16"]})).0);
    assert!(check("http://10.1.2.3/v1", json!({})).0, "off by default");
    assert!(check("https://8.8.8.8/v1", json!({"deny_private": true})).0, "a public address");
    let (ok, out) = check("http://x/v1", json!({"deny_private": true, "allow": ["10.0.0.0/33"]}));
    assert!(!ok && out.contains("aigw.egress.allow[0]"), "{out}");
}

/// A name that resolves to a guarded address is refused when aigw is about to connect: 502 JSON
/// on every route, for side calls too, nothing reaches the upstream; `allow` lets it through; a
/// reload that turns the guard on applies to the next call, pooled connection or not.
#[tokio::test]
async fn names_resolving_privately_are_refused_when_connecting() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, chat_ok());
    let tokens = MockUpstream::start().await;
    let base = format!("http://localhost:{}/v1", upstream.addr.port());
    let guarded = |egress: Value| {
        yaml(&json!({"endpoints": [openai("chat", &base),
                                   vertex("https://vertex.example", &format!("http://localhost:{}/token", tokens.addr.port()))],
                     "aigw": {"egress": egress}}))
    };
    let gw = Gateway::start(&guarded(json!({"deny_private": true}))).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(detail(&body).contains("resolves to") && detail(&body).contains("a loopback address"), "{body}");
    assert!(detail(&body).contains("aigw.egress.deny_private"), "{body}");
    let (status, body) = gw.post(V1, &v1_chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
        (Some("bad_gateway_error"), Some("egress_denied"))
    );
    let (status, text) = raw_route(&gw).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("aigw.egress.deny_private"), "{text}");
    let (status, body) = gw.post("/endpoints/g/invocations", &chat(false)).await;
    assert_eq!(status, 502, "the token call is refused too: {body}");
    assert!(detail(&body).contains("aigw.egress.deny_private"), "{body}");
    assert_eq!((upstream.connections(), tokens.connections()), (0, 0), "refused before connecting");

    let gw = Gateway::start(&guarded(json!({"deny_private": true, "allow": ["127.0.0.0/8", "::1/128"]}))).await;
    assert_eq!(gw.post(NATIVE, &chat(false)).await.0, 200);

    // Off, then turned on by a reload: the pooled connection is not a way around it.
    let gw = Gateway::start(&guarded(json!({}))).await;
    assert_eq!(gw.post(NATIVE, &chat(false)).await.0, 200);
    std::fs::write(&gw.config_path, guarded(json!({"deny_private": true}))).unwrap();
    crate::common::wait_until_async(std::time::Duration::from_secs(20), "the reload", || async {
        gw.post(NATIVE, &chat(false)).await.0 == 502
    })
    .await;
    gw.assert_alive().await;
}

/// Through a proxy the guard checks the target's own resolution: a name resolving to loopback is
/// refused before the proxy is asked; allowed, it goes through the proxy.
#[tokio::test]
async fn the_guard_checks_proxied_targets_too() {
    let name = loopback_name();
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, chat_ok());
    let proxy = Tinyproxy::start();
    let base = format!("http://{name}:{}/v1", upstream.addr.port());
    let cfg = |egress: Value| yaml(&json!({"endpoints": [openai("chat", &base)], "aigw": {"egress": egress}}));
    let gw = Gateway::start_with(&cfg(json!({"deny_private": true})), &[("HTTP_PROXY", &proxy.url())], &[]).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        detail(&body).contains(&format!("upstream {name}:{} resolves to 127.0.0.1", upstream.addr.port())),
        "{body}"
    );
    assert!(proxy.connects().is_empty());
    let gw = Gateway::start_with(
        &cfg(json!({"deny_private": true, "allow": ["127.0.0.1/32"]})),
        &[("HTTP_PROXY", &proxy.url())],
        &[],
    )
    .await;
    assert_eq!(gw.post(NATIVE, &chat(false)).await.0, 200);
    assert_eq!(proxy.connects().len(), 1);
}

/// An upstream's redirect is never followed, on any route: the host it points to receives
/// nothing (an allowed public host cannot bounce a call to an internal one).
#[tokio::test]
async fn redirects_are_never_followed() {
    let internal = MockUpstream::start().await;
    internal.always_json(200, chat_ok());
    let upstream = MockUpstream::start().await;
    let location = format!("{}/v1/chat/completions", internal.url());
    let redirect = move |_: &crate::common::upstream::Recorded| crate::common::upstream::Reply::Raw {
        status: 307,
        headers: vec![("location".into(), location.clone()), ("content-type".into(), "text/plain".into())],
        pieces: vec![(b"moved".to_vec(), std::time::Duration::ZERO)],
        chunked: false,
    };
    upstream.handle(redirect);
    let cfg = yaml(&json!({"endpoints": [openai("chat", &format!("http://localhost:{}/v1", upstream.addr.port()))],
                           "aigw": {"egress": {"deny_private": true, "allow": ["127.0.0.1/32", "::1/128"]}}}));
    let gw = Gateway::start(&cfg).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "the provider's failed answer: {body}");
    let (status, body) = gw.post(V1, &v1_chat(false)).await;
    assert_eq!((status, &body["error"]["type"]), (502, &json!("upstream_error")), "{body}");
    // The raw proxy route relays the provider's answer as it is, Location and all.
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.post(gw.url("/gateway/proxy/chat/chat/completions")).json(&v1_chat(false)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers()["location"].to_str().unwrap(), format!("{}/v1/chat/completions", internal.url()));
    assert_eq!(upstream.requests().len(), 3);
    assert!(internal.requests().is_empty(), "the redirect was followed");
}
