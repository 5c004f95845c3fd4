//! Outbound connections (`aigw.egress`): the forward proxy every upstream call goes through,
//! the hosts that bypass it, and the egress guard.
//!
//! ```yaml
//! aigw:
//!   egress:
//!     proxy: http://user:password@proxy.corp:3128   # secret rules as for keys ($VAR, file)
//!     no_proxy: [.corp.example, 10.0.0.0/8]         # or one comma-separated string
//!     deny_private: true                            # the egress guard (default false)
//!     allow: [10.20.0.0/16]                         # networks the guard lets through
//! ```
//!
//! **The proxy.** `aigw.egress.proxy` is used for every upstream; without it, the environment's
//! `https_proxy` / `HTTPS_PROXY` for `https://` upstreams and `http_proxy` / `HTTP_PROXY` for
//! `http://` ones, then `all_proxy` / `ALL_PROXY` for both (the lower-case name first, as curl
//! reads them; an empty value is unset). A proxy URL is `http://[user[:password]@]host[:port]`
//! (port 80 by default, a bare `host:port` is taken as `http://`; user and password are
//! percent-decoded and sent as `Proxy-Authorization: Basic`). Other schemes (`https://`,
//! `socks5://`) are refused at load, naming the setting or variable. Every upstream, `http://`
//! ones included, is reached through a CONNECT tunnel (TLS to the provider end to end).
//!
//! **`NO_PROXY`.** `aigw.egress.no_proxy` if given, else `no_proxy` / `NO_PROXY`: a comma (or
//! space) separated list, case-insensitive, of
//! * `*`: no proxy for anything;
//! * a domain, `example.com`, `.example.com` or `*.example.com`: that name and every name below
//!   it (`api.example.com`), not `badexample.com`; a trailing dot is ignored;
//! * an IP address (`10.1.2.3`, `::1`, `[::1]`): an upstream written as that address;
//! * a network in CIDR form (`10.0.0.0/8`, `fd00::/8`): an upstream written as an address in it
//!   (names are not resolved to be matched, as with curl and Go);
//! * any of the above but `*` and CIDRs with `:port` (`example.com:8443`, `[::1]:8080`): only
//!   that port; without a port, every port.
//!
//! Entries that fit none of these are skipped with a warning. Loopback (`localhost`,
//! `*.localhost`, `127.0.0.0/8`, `::1`), link-local addresses and the cloud metadata services
//! (`169.254.169.254`, `fd00:ec2::254`, `metadata.google.internal`, the host of
//! `GCE_METADATA_HOST`) are always reached directly, never through the proxy.
//!
//! **The egress guard.** With `deny_private: true`, aigw refuses to connect to an address of the
//! classes in [`private_class`] (loopback, private, link-local with the metadata services,
//! CGNAT, unique-local, "this network", and their IPv4-mapped IPv6 forms) unless a network of
//! `allow` holds it. It is checked on the address a connection is about to be made to, after
//! name resolution, for every call (`upstream::Upstreams`); an IP literal in a provider's
//! configuration is refused at load, naming the field ([`Egress::literal_refusal`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use base64::Engine as _;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{Map, Value};

use super::BaseUrl;
use super::fields::{ConfigMap, FieldError};
use super::secret::{self, Secret};

/// `aigw.egress`, with the environment's proxy variables folded in ([`Egress::from_env`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Egress {
    /// The proxy for `http://` upstreams.
    pub http_proxy: Option<Arc<ProxyServer>>,
    /// The proxy for `https://` upstreams.
    pub https_proxy: Option<Arc<ProxyServer>>,
    /// Upstreams reached directly although a proxy is set.
    pub no_proxy: NoProxy,
    /// The egress guard: refuse loopback, private, link-local, CGNAT and unique-local addresses.
    pub deny_private: bool,
    /// Networks the guard lets through.
    pub allow: Vec<IpNet>,
    /// Hosts of the metadata services, reached directly (`GCE_METADATA_HOST`'s host besides the
    /// well-known ones).
    metadata_hosts: Vec<String>,
    /// Whether the YAML set `proxy` and `no_proxy` (the environment is then not read for them).
    from_yaml: (bool, bool),
}

/// A forward proxy, reached over plain HTTP; upstreams are tunnelled through it with CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyServer {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `Basic …`, the `Proxy-Authorization` value built from the URL's user and password.
    pub authorization: Option<Secret>,
    /// `http://host:port`: how messages name the proxy, never with its credentials.
    pub display: String,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyServer")
            .field("url", &self.display)
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The usage of a proxy URL, for errors (which never quote the URL: it may hold a password).
const PROXY_URL_HELP: &str = "expected http://[user[:password]@]host[:port]";

impl ProxyServer {
    /// Parse a proxy URL (module docs). The password, its Basic encoding and the user name are
    /// registered as secrets of the configuration being loaded. Errors never quote the URL.
    pub fn parse(url: &str) -> Result<ProxyServer, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            None => url,
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => rest,
                "https" => {
                    return Err("https:// proxies (TLS to the proxy) are not supported; give the proxy as \
                                http:// (the tunnel still carries TLS to the provider end to end)"
                        .into());
                }
                other => {
                    let other: String = other.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
                    return Err(format!("{other}:// proxies are not supported; {PROXY_URL_HELP}"));
                }
            },
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port).ok_or_else(|| PROXY_URL_HELP.to_owned())?;
        let port = port.unwrap_or(80);
        if host.is_empty() || port == 0 {
            return Err(PROXY_URL_HELP.into());
        }
        let authorization = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
                let (user, password) = (decode(user), decode(password));
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                for s in [password.as_str(), userinfo, token.as_str()] {
                    if !s.is_empty() {
                        secret::register(s);
                    }
                }
                Some(Secret::new(format!("Basic {token}")))
            }
        };
        let shown = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        Ok(ProxyServer {
            display: format!("http://{shown}:{port}"),
            host: host.to_ascii_lowercase(),
            port,
            authorization,
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address; `None` when malformed.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Some((s, None));
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port.parse().ok()?)),
        None => (s, None),
    };
    let valid = host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    valid.then_some((host, port))
}

/// The `NO_PROXY` exceptions (module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoProxy {
    everything: bool,
    rules: Vec<NoProxyRule>,
}

#[derive(Debug, Clone, PartialEq)]
enum NoProxyRule {
    /// A domain and every name below it, lower case, without leading or trailing dots.
    Domain(String, Option<u16>),
    /// One address.
    Ip(IpAddr, Option<u16>),
    /// A network.
    Net(IpNet),
}

impl NoProxy {
    /// Read a `NO_PROXY` list; `source` names it in the warnings about entries it skips.
    pub fn parse(list: &str, source: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split([',', ' ', '\t', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
            let entry = entry.to_ascii_lowercase();
            if entry == "*" {
                out.everything = true;
            } else if entry.contains('/') {
                match entry.parse::<IpNet>() {
                    Ok(net) => out.rules.push(NoProxyRule::Net(net.trunc())),
                    Err(_) => log::warn!("{source}: '{entry}' is not a network (a.b.c.d/n, x::/n); skipped"),
                }
            } else {
                let domain = entry.trim_start_matches("*.").trim_start_matches('.');
                match split_host_port(domain) {
                    Some((host, port)) => match host.parse::<IpAddr>() {
                        Ok(ip) => out.rules.push(NoProxyRule::Ip(ip, port)),
                        Err(_) => {
                            let name = host.trim_end_matches('.');
                            if !name.is_empty() {
                                out.rules.push(NoProxyRule::Domain(name.to_owned(), port));
                            }
                        }
                    },
                    None => log::warn!("{source}: '{entry}' is neither a name, an address nor a network; skipped"),
                }
            }
        }
        out
    }

    /// Whether an upstream at `host` (a name, or an IP address without brackets) and `port`
    /// is reached directly.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.everything {
            return true;
        }
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        let host = host.trim_end_matches('.');
        match host.parse::<IpAddr>() {
            Ok(ip) => self.rules.iter().any(|rule| match rule {
                NoProxyRule::Ip(a, p) => *a == ip && port_ok(p),
                NoProxyRule::Net(net) => net.contains(&ip),
                NoProxyRule::Domain(..) => false,
            }),
            Err(_) => self.rules.iter().any(|rule| match rule {
                NoProxyRule::Domain(name, p) => in_domain(host, name) && port_ok(p),
                _ => false,
            }),
        }
    }
}

/// Whether `host` is `domain` or a name below it, case-insensitively.
fn in_domain(host: &str, domain: &str) -> bool {
    let (h, d) = (host.as_bytes(), domain.as_bytes());
    h.len() >= d.len()
        && h[h.len() - d.len()..].eq_ignore_ascii_case(d)
        && (h.len() == d.len() || h[h.len() - d.len() - 1] == b'.')
}

/// The addresses the egress guard refuses, with the name of their class.
const PRIVATE: [(IpNet, &str); 12] = [
    (v4(0, 0, 0, 0, 8), "\"this network\" address (0.0.0.0/8)"),
    (v4(127, 0, 0, 0, 8), "loopback address (127.0.0.0/8)"),
    (v4(10, 0, 0, 0, 8), "private address (10.0.0.0/8)"),
    (v4(172, 16, 0, 0, 12), "private address (172.16.0.0/12)"),
    (v4(192, 168, 0, 0, 16), "private address (192.168.0.0/16)"),
    (v4(169, 254, 0, 0, 16), "link-local address (169.254.0.0/16, where the metadata services live)"),
    (v4(100, 64, 0, 0, 10), "CGNAT address (100.64.0.0/10)"),
    (v6(0, 0, 128), "unspecified address (::)"),
    (v6(0, 1, 128), "loopback address (::1)"),
    (v6(0xfe80, 0, 10), "link-local address (fe80::/10)"),
    (v6(0xfc00, 0, 7), "unique-local address (fc00::/7, where fd00:ec2::254 lives)"),
    // Deprecated, and still routed by some stacks.
    (v6(0xfec0, 0, 10), "site-local address (fec0::/10)"),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len))
}

const fn v6(first: u16, last: u16, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, last), len))
}

/// The class of `ip` when the egress guard refuses it: loopback, private (RFC 1918),
/// link-local (the metadata services' 169.254.169.254 included), CGNAT (100.64.0.0/10),
/// unique-local (fc00::/7), site-local, unspecified or "this network" (0.0.0.0/8); an
/// IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is classed by its IPv4 address.
pub fn private_class(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    PRIVATE.iter().find(|(net, _)| net.contains(&ip)).map(|(_, class)| *class)
}

/// Whether `host` is always reached directly: loopback, link-local, the metadata services.
fn always_direct(host: &str, metadata_hosts: &[String]) -> bool {
    let host = host.trim_end_matches('.');
    if let Ok(ip) = host.parse::<IpAddr>() {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        };
    }
    host.eq_ignore_ascii_case("localhost")
        || in_domain(host, "localhost")
        || host.eq_ignore_ascii_case("metadata.google.internal")
        || metadata_hosts.iter().any(|m| m.eq_ignore_ascii_case(host))
}

impl Egress {
    /// Whether anything is configured (otherwise upstream calls take the plain path).
    pub fn is_active(&self) -> bool {
        self.deny_private || self.http_proxy.is_some() || self.https_proxy.is_some()
    }

    /// The proxy an upstream at `host:port` goes through, if any.
    pub fn proxy_for(&self, tls: bool, host: &str, port: u16) -> Option<&Arc<ProxyServer>> {
        let proxy = if tls { self.https_proxy.as_ref() } else { self.http_proxy.as_ref() }?;
        if always_direct(host, &self.metadata_hosts) || self.no_proxy.matches(host, port) {
            return None;
        }
        Some(proxy)
    }

    /// Why the guard refuses to connect to `ip` (its class), or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if !self.deny_private {
            return None;
        }
        let class = private_class(ip)?;
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = self.allow.iter().any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)));
        (!allowed).then_some(class)
    }

    /// The first URL with an IP literal the guard refuses among the string values of a
    /// provider's `model.config` (nested mappings included), as an error naming its field.
    pub fn literal_refusal(&self, config: &ConfigMap<'_>, map: &Map<String, Value>) -> Option<FieldError> {
        if !self.deny_private {
            return None;
        }
        map.iter().find_map(|(key, value)| match value {
            Value::String(s) => {
                let base = BaseUrl::parse(s).ok()?;
                let ip = base.origin.host.parse::<IpAddr>().ok()?;
                let class = self.refusal(ip)?;
                Some(config.error(
                    key,
                    format!(
                        "the host {ip} is a {class}, refused by aigw.egress.deny_private (list a network \
                         that holds it in aigw.egress.allow to reach it)"
                    ),
                ))
            }
            Value::Object(inner) => self.literal_refusal(&ConfigMap::new(inner, config.path(key)), inner),
            _ => None,
        })
    }

    /// Fill in what the YAML left to the environment (through `env`): the proxies, `NO_PROXY`,
    /// `GCE_METADATA_HOST`.
    pub fn from_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), FieldError> {
        let var = |names: &[&'static str]| {
            names.iter().find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        if !self.from_yaml.0 {
            let parse = |found: Option<(&'static str, String)>| {
                found
                    .map(|(name, url)| ProxyServer::parse(&url).map(Arc::new).map_err(|m| FieldError::new(name, m)))
                    .transpose()
            };
            self.https_proxy = parse(var(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]))?;
            self.http_proxy = parse(var(&["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]))?;
        }
        if !self.from_yaml.1
            && let Some((name, list)) = var(&["no_proxy", "NO_PROXY"])
        {
            self.no_proxy = NoProxy::parse(&list, name);
        }
        if let Some((_, host)) = var(&["GCE_METADATA_HOST"])
            && let Some((host, _)) = split_host_port(host.trim())
        {
            self.metadata_hosts.push(host.to_owned());
        }
        Ok(())
    }

    /// Parse the `aigw.egress` mapping.
    pub fn parse(map: &Map<String, Value>) -> Result<Egress, FieldError> {
        let mut m = ConfigMap::new(map, "aigw.egress");
        let mut egress = Egress::default();
        if let Some(url) = m.string("proxy")? {
            // Secret rules for the reference; of the URL, only the credentials are secret
            // (`ProxyServer::parse` registers them): the host and port name the proxy in errors.
            let url = secret::resolve_url(&url).map_err(|e| m.error("proxy", e))?;
            let proxy = Arc::new(ProxyServer::parse(&url).map_err(|e| m.error("proxy", e))?);
            egress.http_proxy = Some(proxy.clone());
            egress.https_proxy = Some(proxy);
            egress.from_yaml.0 = true;
        }
        let field = m.path("no_proxy");
        match m.value("no_proxy") {
            None => {}
            Some(Value::String(list)) => egress.no_proxy = NoProxy::parse(list, &field),
            Some(Value::Array(items)) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => list.push(s.as_str()),
                        _ => return Err(m.error("no_proxy", "expected a list of names, addresses and networks")),
                    }
                }
                egress.no_proxy = NoProxy::parse(&list.join(","), &field);
            }
            Some(_) => return Err(m.error("no_proxy", "expected a list of names, addresses and networks")),
        }
        egress.from_yaml.1 = m.has("no_proxy");
        egress.deny_private = m.bool("deny_private")?.unwrap_or(false);
        match m.value("allow") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let net = item
                        .as_str()
                        .and_then(|s| {
                            s.trim().parse::<IpNet>().ok().or_else(|| s.trim().parse::<IpAddr>().ok().map(IpNet::from))
                        })
                        .ok_or_else(|| {
                            m.error(&format!("allow[{i}]"), "expected a network (10.0.0.0/8, fd00::/8) or an address")
                        })?;
                    egress.allow.push(net.trunc());
                }
            }
            Some(_) => return Err(m.error("allow", "expected a list of networks (10.0.0.0/8, fd00::/8)")),
        }
        if let Some((key, _)) = m.unread().next() {
            return Err(m.error(key, "unknown setting"));
        }
        Ok(egress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyServer::parse("http://proxy.corp:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.display.as_str()), ("proxy.corp", 3128, "http://proxy.corp:3128"));
        assert!(p.authorization.is_none());
        // A bare host:port is http://; the port defaults to 80; a path is ignored.
        assert_eq!(ProxyServer::parse("10.0.0.1:8080").unwrap().display, "http://10.0.0.1:8080");
        assert_eq!(ProxyServer::parse("HTTP://Proxy.Corp/").unwrap().display, "http://Proxy.Corp:80");
        assert_eq!(ProxyServer::parse("http://[fd00::1]:3128").unwrap().host, "fd00::1");
        assert_eq!(ProxyServer::parse("http://[fd00::1]:3128").unwrap().display, "http://[fd00::1]:3128");
        // Credentials: percent-decoded, Basic, never in Debug or the display form.
        let (p, secrets) = secret::collect(|| ProxyServer::parse("http://us%40er:p%3Ass@127.0.0.1:3128").unwrap());
        assert_eq!(
            p.authorization.as_ref().unwrap().expose(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("us@er:p:ss"))
        );
        assert_eq!(p.display, "http://127.0.0.1:3128");
        assert!(!format!("{p:?}").contains("p:ss") && !format!("{p:?}").contains("Basic"), "{p:?}");
        assert!(secrets.iter().any(|s| s == "p:ss"), "the password is a secret of the configuration");
        // Refused, without quoting the URL (it may hold a password).
        for bad in [
            "https://u:hunter2@proxy:443",
            "socks5://u:hunter2@proxy:1080",
            "http://u:hunter2@",
            "http://proxy:0",
            "http://proxy:http",
            "http://a b:1",
        ] {
            let e = ProxyServer::parse(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{bad}: {e}");
        }
        assert!(ProxyServer::parse("https://proxy").unwrap_err().contains("https:// proxies"));
        assert!(ProxyServer::parse("socks5h://proxy").unwrap_err().starts_with("socks5h:// proxies are not supported"));
    }

    #[test]
    fn no_proxy_rules() {
        let n = NoProxy::parse(
            "Example.COM, .corp.example,*.wild.example ,10.0.0.0/8, 192.168.1.5,[::1]:8080, fd00::/8, api.port.example:8443, internal.",
            "NO_PROXY",
        );
        // Domains: the name and every name below it, case-insensitively, a trailing dot ignored.
        assert!(n.matches("example.com", 443));
        assert!(n.matches("api.EXAMPLE.com.", 443));
        assert!(!n.matches("badexample.com", 443));
        assert!(!n.matches("example.com.evil", 443));
        assert!(n.matches("corp.example", 80) && n.matches("a.b.corp.example", 80));
        assert!(n.matches("wild.example", 80) && n.matches("x.wild.example", 80));
        assert!(n.matches("internal", 1) && n.matches("host.internal", 1));
        // Ports are honoured where given.
        assert!(n.matches("api.port.example", 8443) && !n.matches("api.port.example", 443));
        // Addresses and networks, for upstreams written as addresses.
        assert!(n.matches("10.1.2.3", 443) && n.matches("192.168.1.5", 1) && !n.matches("192.168.1.6", 1));
        assert!(n.matches("::1", 8080) && !n.matches("::1", 80));
        assert!(n.matches("fd12::1", 443) && !n.matches("fe80::1", 443));
        // Names are not resolved to be matched against networks.
        assert!(!n.matches("ten.example.org", 443));
        // `*` is everything; entries it cannot read are skipped.
        assert!(NoProxy::parse("foo, *", "x").matches("anything.example", 1));
        let skipped = NoProxy::parse("10.0.0.0/99, a b, ok.example", "x");
        assert!(skipped.matches("ok.example", 1) && !skipped.matches("10.0.0.1", 1));
        assert!(!NoProxy::parse("", "x").matches("example.com", 443));
    }

    fn egress(v: serde_json::Value) -> Result<Egress, FieldError> {
        Egress::parse(v.as_object().unwrap())
    }

    #[test]
    fn the_proxy_a_host_takes() {
        let proxy = Some(Arc::new(ProxyServer::parse("http://proxy:3128").unwrap()));
        let mut e =
            Egress { https_proxy: proxy, no_proxy: NoProxy::parse(".direct.example", "x"), ..Egress::default() };
        assert!(e.proxy_for(true, "api.openai.com", 443).is_some());
        assert!(e.proxy_for(false, "api.openai.com", 80).is_none(), "no proxy for http:// here");
        assert!(e.proxy_for(true, "x.direct.example", 443).is_none());
        // Loopback, link-local and the metadata services are always direct.
        for host in [
            "localhost",
            "a.localhost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "169.254.170.2",
            "fe80::1",
            "fd00:ec2::254",
            "metadata.google.internal",
            "METADATA.google.internal.",
        ] {
            assert!(e.proxy_for(true, host, 443).is_none(), "{host}");
        }
        assert!(e.proxy_for(true, "fd00:ec2::255", 443).is_some());
        e.metadata_hosts.push("gce-metadata.test".into());
        assert!(e.proxy_for(true, "gce-metadata.test", 80).is_none());
    }

    #[test]
    fn every_private_class_is_refused_unless_allowed() {
        let refused = [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.254", "CGNAT"),
            ("fc00::1", "unique-local"),
            ("fd00:ec2::254", "unique-local"),
            ("0.0.0.0", "this network"),
            ("::", "unspecified"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
        ];
        for (addr, class) in refused {
            assert!(
                private_class(ip(addr)).is_some_and(|c| c.contains(class)),
                "{addr}: {:?}",
                private_class(ip(addr))
            );
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            if let Ok(a) = public.parse::<IpAddr>() {
                assert_eq!(private_class(a), None, "{public}");
            }
        }
        let off = Egress::default();
        assert_eq!(off.refusal(ip("10.0.0.1")), None, "the guard is off by default");
        let on = egress(json!({"deny_private": true, "allow": ["10.20.0.0/16", "127.0.0.1", "fd00:1::/32"]})).unwrap();
        assert!(on.refusal(ip("10.1.0.1")).is_some());
        assert_eq!(on.refusal(ip("10.20.3.4")), None);
        assert_eq!(on.refusal(ip("::ffff:10.20.3.4")), None, "an IPv4-mapped form of an allowed address");
        assert_eq!(on.refusal(ip("127.0.0.1")), None);
        assert!(on.refusal(ip("127.0.0.2")).is_some());
        assert_eq!(on.refusal(ip("fd00:1::5")), None);
        assert_eq!(on.refusal(ip("8.8.8.8")), None);
    }

    #[test]
    fn settings_and_the_environment() {
        let e = egress(json!({"proxy": "http://u:pw-0123456789@proxy:3128", "no_proxy": [".a.example", "10.0.0.0/8"]}))
            .unwrap();
        assert_eq!(e.http_proxy, e.https_proxy);
        assert!(e.no_proxy.matches("x.a.example", 1));
        assert!(e.is_active());
        assert!(!format!("{e:?}").contains("pw-0123456789"));
        // Of the proxy URL only the credentials are secrets: the host and port name the proxy
        // in errors, which are scrubbed of the configuration's secrets.
        let (plain, secrets) = secret::collect(|| egress(json!({"proxy": "http://proxy.corp:3128"})).unwrap());
        assert!(secrets.is_empty(), "{secrets:?}");
        assert_eq!(plain.https_proxy.unwrap().display, "http://proxy.corp:3128");
        let (_, secrets) = secret::collect(|| egress(json!({"proxy": "http://u:pw-9876543210@proxy.corp:3128"})));
        assert!(secrets.iter().any(|s| s == "pw-9876543210"), "{secrets:?}");
        assert!(secrets.iter().all(|s| !s.contains("proxy.corp")), "{secrets:?}");
        // The YAML wins over the environment, setting by setting.
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned())
        };
        let mut yaml = e.clone();
        yaml.from_env(env(&[("HTTPS_PROXY", "http://other:1"), ("NO_PROXY", "*")])).unwrap();
        assert_eq!(yaml.https_proxy.as_ref().unwrap().display, "http://proxy:3128");
        assert!(!yaml.no_proxy.matches("elsewhere.example", 1));
        // Lower case first, ALL_PROXY for what the scheme's own variable leaves unset.
        let mut from_env = Egress::default();
        from_env
            .from_env(env(&[
                ("https_proxy", "http://lower:1"),
                ("HTTPS_PROXY", "http://upper:2"),
                ("ALL_PROXY", "all:3"),
                ("NO_PROXY", ".x.example"),
                ("http_proxy", ""),
            ]))
            .unwrap();
        assert_eq!(from_env.https_proxy.as_ref().unwrap().display, "http://lower:1");
        assert_eq!(from_env.http_proxy.as_ref().unwrap().display, "http://all:3", "empty is unset");
        assert!(from_env.no_proxy.matches("a.x.example", 1));
        let mut nothing = Egress::default();
        nothing.from_env(env(&[])).unwrap();
        assert!(!nothing.is_active());
        // An unusable variable names itself, not its value.
        let mut bad = Egress::default();
        let err = bad.from_env(env(&[("ALL_PROXY", "socks5://u:sekrit@h:1")])).unwrap_err();
        assert_eq!(err.field, "ALL_PROXY");
        assert!(!err.message.contains("sekrit"), "{err:?}");
        // Errors name the field.
        assert_eq!(egress(json!({"proxy": "ftp://x"})).unwrap_err().field, "aigw.egress.proxy");
        assert_eq!(egress(json!({"allow": ["10.0.0.0/8", "nope"]})).unwrap_err().field, "aigw.egress.allow[1]");
        assert_eq!(egress(json!({"allow": "10.0.0.0/8"})).unwrap_err().field, "aigw.egress.allow");
        assert_eq!(egress(json!({"deny_private": {}})).unwrap_err().field, "aigw.egress.deny_private");
        assert_eq!(egress(json!({"no_proxy": [1]})).unwrap_err().field, "aigw.egress.no_proxy");
        assert_eq!(egress(json!({"deny_privat": true})).unwrap_err().field, "aigw.egress.deny_privat");
    }

    #[test]
    fn private_literals_in_a_provider_config_are_refused_at_load() {
        let on = egress(json!({"deny_private": true, "allow": ["10.9.0.0/16"]})).unwrap();
        let config = json!({"openai_api_key": "sk-1", "openai_api_base": "https://10.1.2.3/v1",
                            "aws_config": {"endpoint_url": "http://[::ffff:192.168.0.1]:9000"}});
        let map = config.as_object().unwrap();
        let e = on.literal_refusal(&ConfigMap::new(map, "model.config"), map).unwrap();
        assert_eq!(e.field, "model.config.openai_api_base");
        assert!(e.message.contains("10.1.2.3 is a private address (10.0.0.0/8)"), "{}", e.message);
        let nested = json!({"aws_config": {"endpoint_url": "http://[::ffff:192.168.0.1]:9000"}});
        let map = nested.as_object().unwrap();
        assert_eq!(
            on.literal_refusal(&ConfigMap::new(map, "model.config"), map).unwrap().field,
            "model.config.aws_config.endpoint_url"
        );
        // Names, public and allowed addresses pass at load (names are checked when resolved).
        let fine = json!({"a": "https://api.openai.com/v1", "b": "http://10.9.1.1", "c": "http://8.8.8.8", "d": "$BASE", "e": 1});
        let map = fine.as_object().unwrap();
        assert!(on.literal_refusal(&ConfigMap::new(map, "model.config"), map).is_none());
        let off = Egress::default();
        let map = config.as_object().unwrap();
        assert!(off.literal_refusal(&ConfigMap::new(map, "model.config"), map).is_none());
    }
}
