//! Host name resolution that never blocks the request path.
//!
//! Pingora's `HttpPeer::new` resolves with a blocking `getaddrinfo` inside the async hook and
//! panics when that fails, so the gateway resolves names itself: `tokio::net::lookup_host` (the
//! system resolver on the blocking pool), results cached for a TTL, addresses rotated, and a
//! stale answer reused when a refresh fails (serve-stale) so a resolver hiccup does not fail
//! traffic to a provider that was reachable a moment ago.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a resolved name is used before it is looked up again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

struct Entry {
    addrs: Arc<[SocketAddr]>,
    expires: Instant,
    next: AtomicUsize,
}

/// A caching resolver shared by all requests.
pub struct Resolver {
    ttl: Duration,
    cache: RwLock<HashMap<(String, u16), Arc<Entry>>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(DEFAULT_TTL)
    }
}

impl Resolver {
    /// A resolver caching answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Resolver { ttl, cache: RwLock::new(HashMap::new()) }
    }

    /// One address for `host:port`. IP literals are returned as they are.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let now = Instant::now();
        let cached = self.cache.read().ok().and_then(|c| c.get(&(host.to_owned(), port)).cloned());
        if let Some(entry) = &cached
            && entry.expires > now
        {
            return Ok(pick(entry));
        }
        match tokio::net::lookup_host((host, port)).await {
            Ok(found) => {
                let addrs: Vec<SocketAddr> = found.collect();
                if addrs.is_empty() {
                    return stale_or(cached.as_deref(), format!("'{host}' has no addresses"));
                }
                let entry = Arc::new(Entry { addrs: addrs.into(), expires: now + self.ttl, next: AtomicUsize::new(0) });
                let addr = pick(&entry);
                if let Ok(mut c) = self.cache.write() {
                    c.insert((host.to_owned(), port), entry);
                }
                Ok(addr)
            }
            Err(e) => stale_or(cached.as_deref(), format!("cannot resolve '{host}': {e}")),
        }
    }
}

fn pick(entry: &Entry) -> SocketAddr {
    let i = entry.next.fetch_add(1, Ordering::Relaxed);
    entry.addrs[i % entry.addrs.len()]
}

fn stale_or(cached: Option<&Entry>, error: String) -> Result<SocketAddr, String> {
    match cached {
        Some(entry) => {
            log::warn!("{error}; using the last known address");
            Ok(pick(entry))
        }
        None => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_localhost() {
        let r = Resolver::default();
        assert_eq!(r.resolve("127.0.0.1", 80).await.unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(r.resolve("::1", 80).await.unwrap(), "[::1]:80".parse().unwrap());
        let a = r.resolve("localhost", 8080).await.unwrap();
        assert!(a.ip().is_loopback());
        assert!(r.resolve("no-such-host.invalid", 80).await.is_err());
    }
}
