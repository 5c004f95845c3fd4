//! Outbound policy on the connection path: the CONNECT tunnel through a forward proxy, and
//! the egress guard's check of the address about to be connected to (`config::egress` holds
//! the rules).
//!
//! **Why a custom L4 connector and not Pingora's `HttpPeer::proxy`.** Pingora 0.9's peer proxy
//! (`upstreams::peer::Proxy`, `connectors::l4::proxy_connect`) dials its `next_hop` as a Unix
//! domain socket path only (`connect_uds`): it is meant for a local sidecar, and cannot reach a
//! proxy at `host:port` over TCP, which a corporate proxy is. What it does around that dial is
//! what aigw needs, and is used as it is: the peer's `custom_l4` connector
//! ([`Tunnel`]) opens the TCP connection to the proxy and runs Pingora's own CONNECT exchange
//! (`protocols::raw_connect`: the request with `Host` and `Proxy-Authorization`, the answer's
//! status checked); Pingora's connector then runs TLS over the tunnel with SNI = the provider's
//! host and its certificate verified (TLS end to end, the proxy sees only the CONNECT line), and
//! pools the connection under the peer's hash, which holds the proxy's address, the scheme, the
//! SNI and a group key derived from the target's host and port: pooled connections are per
//! target.
//!
//! `http://` upstreams go through CONNECT as well (one code path, and the proxy never sees the
//! requests, so it cannot rewrite or cache them; the proxy must allow CONNECT to their ports).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr as PSocketAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::{self, ConnectProxyError};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PError, ErrorType};

use crate::config::{Egress, Origin, ProxyServer};
use crate::error::GatewayError;

/// How long the proxy may take to accept the connection, and then to answer the CONNECT.
pub(crate) const TUNNEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection to one target through a forward proxy: TCP to the proxy, then
/// `CONNECT host:port`. Pingora calls it with the peer's address, the proxy's.
pub(crate) struct Tunnel {
    proxy: Arc<ProxyServer>,
    host: String,
    port: u16,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials: Pingora may print a peer's options.
        write!(f, "Tunnel({} to {}:{})", self.proxy.display, self.host, self.port)
    }
}

impl Tunnel {
    /// A failure at the proxy, said in words that name the proxy and never its credentials
    /// (the error's context, read by `describe` in the client and by the raw proxy route).
    fn failure(&self, what: impl fmt::Display) -> Box<PError> {
        PError::explain(ErrorType::ConnectProxyFailure, format!("proxy {}: {what}", self.proxy.display))
    }
}

#[async_trait::async_trait]
impl L4Connect for Tunnel {
    async fn connect(&self, addr: &PSocketAddr) -> pingora::Result<L4Stream> {
        let Some(inet) = addr.as_inet() else {
            return Err(self.failure("not an IP address"));
        };
        let tcp = match tokio::time::timeout(TUNNEL_TIMEOUT, tokio::net::TcpStream::connect(inet)).await {
            Err(_) => {
                return Err(self.failure(format!("no connection within {} s", TUNNEL_TIMEOUT.as_secs())));
            }
            Ok(Err(e)) => {
                let what = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    _ => format!("cannot connect ({})", e.kind()),
                };
                return Err(self.failure(what));
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let mut headers = std::collections::BTreeMap::new();
        if let Some(auth) = &self.proxy.authorization {
            headers.insert("proxy-authorization".to_owned(), auth.expose().as_bytes().to_vec());
        }
        let request = raw_connect::generate_connect_header(&self.host, self.port, headers.iter())
            .map_err(|_| self.failure("the CONNECT request cannot be built"))?;
        // raw_connect asks the peer only for its digest hook, which this one does not have.
        let peer = HttpPeer::new(*inet, false, String::new());
        let stream: pingora::protocols::Stream = Box::new(L4Stream::from(tcp));
        match tokio::time::timeout(TUNNEL_TIMEOUT, raw_connect::connect(stream, &request, &peer)).await {
            Err(_) => Err(self.failure(format!(
                "no answer to CONNECT {}:{} within {} s",
                self.host,
                self.port,
                TUNNEL_TIMEOUT.as_secs()
            ))),
            // The stream handed in, given back (as Pingora's own proxy_connect takes it back).
            Ok(Ok((stream, _))) => match stream.into_any().downcast::<L4Stream>() {
                Ok(stream) => Ok(*stream),
                Err(_) => Err(self.failure("the tunnel is not a TCP stream")),
            },
            Ok(Err(e)) => {
                // Pingora boxes its ConnectProxyError once more on the way into the cause.
                let refused = e.cause.as_ref().and_then(|c| {
                    c.downcast_ref::<Box<ConnectProxyError>>()
                        .map(AsRef::as_ref)
                        .or_else(|| c.downcast_ref::<ConnectProxyError>())
                });
                Err(match refused {
                    Some(refused) => {
                        let status = refused.response.status;
                        // 407 asks for credentials; some proxies (tinyproxy) answer wrong ones
                        // with 401.
                        let hint = match (status.as_u16(), self.proxy.authorization.is_some()) {
                            (407, false) => " (the proxy wants credentials: http://user:password@host:port)",
                            (401 | 407, true) => " (the proxy refused its credentials)",
                            _ => "",
                        };
                        self.failure(format!("refused CONNECT {}:{} with {status}{hint}", self.host, self.port))
                    }
                    None => self.failure("closed the connection or answered something else than HTTP"),
                })
            }
        }
    }
}

/// The peer for `origin` through `proxy` (at `proxy_addr`): TLS to the origin (SNI = its host)
/// over a tunnel, pooled per target and per worker.
pub(crate) fn tunnel_peer(origin: &Origin, proxy: &Arc<ProxyServer>, proxy_addr: std::net::SocketAddr) -> HttpPeer {
    let mut peer = super::peer(origin, proxy_addr);
    // The tunnel has its own deadlines (TUNNEL_TIMEOUT twice); TLS over it gets the usual one.
    peer.options.total_connection_timeout = Some(3 * TUNNEL_TIMEOUT);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&origin.host, origin.port, &proxy.display).hash(&mut h);
    peer.group_key ^= h.finish();
    peer.options.custom_l4 =
        Some(Arc::new(Tunnel { proxy: proxy.clone(), host: origin.host.clone(), port: origin.port }));
    peer
}

/// The egress guard's verdict on connecting to `ip` for `origin`: a 502 naming the address
/// and its class when `aigw.egress.deny_private` refuses it.
pub(crate) fn check(egress: &Egress, origin: &Origin, ip: IpAddr) -> Result<(), GatewayError> {
    match egress.refusal(ip) {
        None => Ok(()),
        Some(class) => {
            let what = if origin.host.parse::<IpAddr>().is_ok() {
                format!("upstream {} is a {class}", origin.authority)
            } else {
                format!("upstream {} resolves to {ip}, a {class}", origin.authority)
            };
            Err(GatewayError::bad_gateway(format!(
                "{what}: refused by aigw.egress.deny_private (aigw.egress.allow lists the networks it may reach)"
            ))
            .with_code("egress_denied"))
        }
    }
}
