//! Stage "execute": run one prepared [`Exchange`] (credentials, the upstream call, the answer's
//! head, and for whole answers their body and decoding) and hand back what the writer sends:
//! a decoded [`Answer`], or a [`LiveStream`] ready to be relayed. Nothing is written to the
//! client here; every wait is abandoned when the client leaves (`downstream::unless_gone!`).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use serde_json::Value;
use tokio::time::Instant;

use super::scrub::{Scrubber, SentHeader, scrub_sent};
use crate::api::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::framing::StreamDecoder;
use crate::providers::{self, Decoder, Exchange, ManyDecoder, Provider, mock::MockAnswer};
use crate::schema::Answer;
use crate::server::{RequestCtx, State, downstream};
use crate::snapshot::Snapshot;
use crate::upstream::{UpstreamRequest, UpstreamResponse};

/// What an exchange produced.
// The answer is moved once or twice per request; boxing it would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// A whole answer, decoded.
    Answer(Answer),
    /// A stream whose upstream answered 2xx with a stream: the writer relays it.
    Stream(Box<LiveStream>),
}

/// An answer arriving: from an upstream connection, or made in process by the mock provider.
pub enum Incoming {
    /// An upstream's answer (its head has arrived).
    Upstream(Box<UpstreamResponse>),
    /// The mock provider's answer.
    Local(MockAnswer),
}

impl Incoming {
    fn status(&self) -> u16 {
        match self {
            Incoming::Upstream(r) => r.status,
            Incoming::Local(_) => 200,
        }
    }

    /// The media type (lower-cased, no parameters) and the header as sent.
    fn content_type(&self) -> (String, &str) {
        match self {
            Incoming::Upstream(r) => (r.content_type(), r.raw_content_type()),
            Incoming::Local(m) => (m.content_type.to_owned(), m.content_type),
        }
    }

    /// The `Content-Type` header as sent (no copy).
    pub fn raw_content_type(&self) -> &str {
        match self {
            Incoming::Upstream(r) => r.raw_content_type(),
            Incoming::Local(m) => m.content_type,
        }
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        match self {
            Incoming::Upstream(r) => r.chunk().await,
            Incoming::Local(m) => Ok(m.chunk().await),
        }
    }

    async fn body(&mut self, cap: usize) -> Result<Bytes, GatewayError> {
        match self {
            Incoming::Upstream(r) => r.body(cap).await,
            Incoming::Local(m) => {
                let mut out = BytesMut::new();
                while let Some(c) = m.chunk().await {
                    out.extend_from_slice(&c);
                }
                Ok(out.freeze())
            }
        }
    }

    /// Give a fully read upstream connection back to the pool.
    pub async fn release(self, state: &State) {
        if let Incoming::Upstream(r) = self {
            state.upstreams.release(r).await;
        }
    }
}

/// A stream to relay: where it comes from, how to translate it, and what to scrub from its
/// errors.
pub struct LiveStream {
    /// The upstream's answer (status 2xx, a stream content type).
    pub incoming: Incoming,
    /// Its translation into unified chunks.
    pub decoder: Box<dyn StreamDecoder>,
    /// The headers of the request as sent (credentials to scrub from errors).
    pub sent: Vec<SentHeader>,
    /// What the stream's encoding needs (set by the pipeline once the stream is known).
    pub meta: AnswerMeta,
}

/// Run `exchange` with `provider` within `timeout`. `Err` is the error to answer with (or to
/// retry on); nothing has been written to the client.
pub async fn run(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    provider: &dyn Provider,
    exchange: Exchange,
    timeout: Duration,
) -> Result<Outcome, GatewayError> {
    let config = &snapshot.config;
    let started = Instant::now();
    let (mut incoming, decoder, scrubber) = match exchange {
        Exchange::Call { mut request, decoder } => {
            downstream::unless_gone!(session, provider.authorize(&mut request, &state.upstreams))?
                .map_err(|e| Scrubber::new(config).clean(e))?;
            // Boxed: the call's future is kilobytes (docs/architecture.md, "Future sizes").
            let send = Box::pin(state.upstreams.send(&request, Some(&ctx.request_id), timeout));
            let response = downstream::unless_gone!(session, send)?;
            ctx.upstream_time = Some(started.elapsed());
            // Only the headers are kept (the body may be megabytes, and a stream runs long).
            let scrubber = Scrubber::with_sent(config, request.headers);
            match response {
                Ok(r) => (Incoming::Upstream(r), decoder, scrubber),
                Err(e) => return Err(scrubber.clean(e)),
            }
        }
        Exchange::FanOut { requests, decode } => {
            let answer = downstream::unless_gone!(
                session,
                Box::pin(fan_out(state, snapshot, ctx, provider, requests, decode, timeout))
            )??;
            ctx.upstream_time = Some(started.elapsed());
            return Ok(Outcome::Answer(answer));
        }
        Exchange::Local { answer, decoder } => (Incoming::Local(answer), decoder, Scrubber::new(config)),
    };
    let cap = config.settings.max_response_body;
    let status = incoming.status();
    if !(200..300).contains(&status) {
        let body = downstream::unless_gone!(session, incoming.body(cap))?.unwrap_or_default();
        let (ct, _) = incoming.content_type();
        incoming.release(state).await;
        return Err(scrubber.clean(provider.error_answer(status, &ct, &body)));
    }
    match decoder {
        Decoder::Json(decode) => {
            let (ct, raw_ct) = incoming.content_type();
            if !ct.is_empty() && !providers::is_json(&ct) {
                return Err(GatewayError::bad_gateway(format!(
                    "The returned data type from the route service is not supported. Received content type: {raw_ct}"
                )));
            }
            let body = downstream::unless_gone!(session, incoming.body(cap))?.map_err(|e| scrubber.clean(e))?;
            ctx.upstream_wait = Some(started.elapsed());
            incoming.release(state).await;
            decode(&body).map(Outcome::Answer).map_err(|e| scrubber.clean(e))
        }
        Decoder::Stream(mut decoder) => {
            if decoder.is_whole_json(incoming.raw_content_type()) {
                // Nothing is sent yet: a proper error answer, not a stream.
                let body = downstream::unless_gone!(session, incoming.body(cap))?.map_err(|e| scrubber.clean(e))?;
                let (ct, _) = incoming.content_type();
                incoming.release(state).await;
                return Err(scrubber.clean(whole_json_answer(provider, &ct, &body)));
            }
            ctx.upstream_wait = ctx.upstream_time;
            decoder.set_max_event(cap);
            Ok(Outcome::Stream(Box::new(LiveStream {
                incoming,
                decoder,
                sent: scrubber.into_sent(),
                meta: AnswerMeta::default(),
            })))
        }
    }
}

/// The error for a 2xx JSON body answering a stream request: the upstream's error relayed
/// through the provider's mapping (with status 502) when the body carries an `error` (also
/// Gemini's one-element list of one), else a plain 502. Never retried: the upstream did answer
/// (and may have billed the call).
fn whole_json_answer(provider: &dyn Provider, content_type: &str, body: &[u8]) -> GatewayError {
    let has_error = |v: &Value| v.get("error").is_some_and(|e| !e.is_null());
    let carries_error = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => matches!(items.as_slice(), [one] if has_error(one)),
        Ok(v) => has_error(&v),
        Err(_) => false,
    };
    let e = if carries_error {
        provider.error_answer(502, content_type, body)
    } else {
        GatewayError::bad_gateway("upstream answered a streaming request with a non-streaming JSON body")
    };
    e.answered()
}

/// Run several upstream calls concurrently; every one must answer 2xx with JSON. Errors are
/// scrubbed of the credentials their own request carried.
async fn fan_out(
    state: &State,
    snapshot: &Snapshot,
    ctx: &RequestCtx,
    provider: &dyn Provider,
    requests: Vec<UpstreamRequest>,
    decode: ManyDecoder,
    timeout: Duration,
) -> Result<Answer, GatewayError> {
    let cap = snapshot.config.settings.max_response_body;
    let scrubber = Scrubber::new(&snapshot.config);
    let calls = requests.into_iter().map(|mut req| async move {
        provider.authorize(&mut req, &state.upstreams).await?;
        let call = async {
            let mut resp = state.upstreams.send(&req, Some(&ctx.request_id), timeout).await?;
            let body = resp.body(cap).await?;
            let (status, ct) = (resp.status, resp.content_type());
            state.upstreams.release(resp).await;
            if !(200..300).contains(&status) {
                return Err(provider.error_answer(status, &ct, &body));
            }
            Ok(body)
        };
        call.await.map_err(|e| scrub_sent(e, &req.headers))
    });
    let bodies = futures::future::try_join_all(calls).await.map_err(|e| scrubber.clean(e))?;
    decode(bodies).map_err(|e| scrubber.clean(e))
}
