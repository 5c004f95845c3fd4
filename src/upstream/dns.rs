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

/// The name lookup behind the cache: the system resolver, or a stand-in in tests.
pub(super) type Lookup =
    Box<dyn Fn(String, u16) -> futures::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// A caching resolver shared by all requests.
pub struct Resolver {
    ttl: Duration,
    cache: RwLock<HashMap<(String, u16), Arc<Entry>>>,
    lookup: Lookup,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(DEFAULT_TTL)
    }
}

impl Resolver {
    /// A resolver caching answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self::with_lookup(
            ttl,
            Box::new(|host, port| {
                Box::pin(async move { tokio::net::lookup_host((host.as_str(), port)).await.map(Iterator::collect) })
            }),
        )
    }

    pub(super) fn with_lookup(ttl: Duration, lookup: Lookup) -> Self {
        Resolver { ttl, cache: RwLock::new(HashMap::new()), lookup }
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
        match (self.lookup)(host.to_owned(), port).await {
            Ok(addrs) => {
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

    /// A lookup that answers from `answers` in turn (an error when they run out) and counts calls.
    fn scripted(answers: Vec<std::io::Result<Vec<SocketAddr>>>) -> (Lookup, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(answers)));
        let counted = calls.clone();
        let lookup: Lookup = Box::new(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            let next = answers.lock().unwrap().pop_front().unwrap_or_else(|| Err(std::io::Error::other("down")));
            Box::pin(async move { next })
        });
        (lookup, calls)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn cached_for_the_ttl_and_rotated() {
        let (lookup, calls) = scripted(vec![Ok(vec![addr("10.0.0.1:443"), addr("10.0.0.2:443")])]);
        let r = Resolver::with_lookup(Duration::from_secs(60), lookup);
        let got: Vec<SocketAddr> = futures::future::join_all((0..4).map(|_| r.resolve("api.example", 443)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one lookup serves the TTL");
        assert_eq!(got.iter().filter(|a| **a == addr("10.0.0.1:443")).count(), 2, "{got:?}");
        assert_eq!(got.iter().filter(|a| **a == addr("10.0.0.2:443")).count(), 2, "{got:?}");
        // Another port is another entry.
        assert!(r.resolve("api.example", 80).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn expired_entries_are_refreshed_and_served_stale_when_the_refresh_fails() {
        let (lookup, calls) = scripted(vec![
            Ok(vec![addr("10.0.0.1:443")]),
            Ok(vec![addr("10.0.0.9:443")]),
            Err(std::io::Error::other("resolver down")),
            Ok(vec![]),
        ]);
        let r = Resolver::with_lookup(Duration::ZERO, lookup);
        assert_eq!(r.resolve("api.example", 443).await.unwrap(), addr("10.0.0.1:443"));
        // Expired at once (TTL 0): looked up again, the new answer replaces the old.
        assert_eq!(r.resolve("api.example", 443).await.unwrap(), addr("10.0.0.9:443"));
        // The resolver fails, then answers nothing: the last known address keeps serving.
        assert_eq!(r.resolve("api.example", 443).await.unwrap(), addr("10.0.0.9:443"));
        assert_eq!(r.resolve("api.example", 443).await.unwrap(), addr("10.0.0.9:443"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // A name never resolved has nothing stale to fall back on.
        let message = r.resolve("other.example", 443).await.unwrap_err();
        assert!(message.contains("cannot resolve 'other.example'"), "{message}");
    }
}
