//! The endpoints of a client: one lazily dialed connection each, round-robin between them,
//! failover past dead ones, and the retry rule.
//!
//! Retry rule: a request is tried on the endpoints in turn, for at most `1 + retries` rounds and
//! never past its deadline. A failure to *dial* an endpoint always moves on to the next one
//! (nothing was sent). A request that failed after it was sent moves on only if it is
//! idempotent (reads, keep-alives, status...) or if the connection error proves it never left
//! the client (connection refused); a write whose fate is unknown is returned as
//! [`Error::Unavailable`] with `maybe_applied: true` rather than risk applying it twice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::error::{self, Context, Error, Result};
use crate::options::ClientOptions;

/// The pause after a round in which no endpoint answered.
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// grpc-go's floor for HTTP/2 keep-alive pings; etcd answers closer pings with GOAWAY.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Whether a request may be sent again after it may have reached a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and other requests whose repetition changes nothing.
    Idempotent,
    /// Writes: repeated only when they surely did not reach a server.
    Write,
}

struct Slot {
    /// The URL tonic dials (`http://host:port` or `https://host:port`).
    url: String,
    tls: bool,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    channel: Option<Channel>,
    /// Until then the endpoint is tried after the others.
    failed_until: Option<Instant>,
}

/// The endpoints and their connections.
pub(crate) struct Balancer {
    slots: Vec<Slot>,
    next: AtomicUsize,
    pub(crate) opts: ClientOptions,
}

/// The URL tonic dials for an endpoint given as `host:port`, `http://host:port` or
/// `https://host:port`, and whether it uses TLS.
fn parse_endpoint(endpoint: &str, tls_configured: bool) -> Result<(String, bool)> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = endpoint.trim();
    let (rest, tls) = if let Some(rest) = trimmed.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = trimmed.strip_prefix("http://") {
        (rest, tls_configured)
    } else {
        (trimmed, tls_configured)
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains("://") || rest.contains('/') {
        return Err(invalid(
            "expected host:port, http://host:port or https://host:port",
        ));
    }
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{rest}");
    Endpoint::from_shared(url.clone()).map_err(|e| invalid(&e.to_string()))?;
    Ok((url, tls))
}

impl Balancer {
    /// Validates the endpoints; dials nothing yet.
    pub(crate) fn new(endpoints: &[String], opts: ClientOptions) -> Result<Balancer> {
        if endpoints.is_empty() {
            return Err(Error::NoEndpoint);
        }
        let slots = endpoints
            .iter()
            .map(|e| {
                let (url, tls) = parse_endpoint(e, opts.tls.is_some())?;
                Ok(Slot {
                    url,
                    tls,
                    state: Mutex::new(SlotState::default()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Balancer {
            slots,
            next: AtomicUsize::new(0),
            opts,
        })
    }

    /// The endpoints to try, in order: round robin from the next one, those that failed
    /// recently last.
    fn order(&self) -> Vec<usize> {
        let n = self.slots.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let (mut healthy, mut failed): (Vec<usize>, Vec<usize>) =
            (0..n).map(|k| (first + k) % n).partition(|&i| {
                self.slots[i]
                    .state
                    .lock()
                    .failed_until
                    .is_none_or(|until| until <= now)
            });
        healthy.append(&mut failed);
        healthy
    }

    /// Forgets endpoint `i`'s connection and puts it last for a while.
    pub(crate) fn mark_failed(&self, i: usize) {
        let mut state = self.slots[i].state.lock();
        state.channel = None;
        state.failed_until = Some(Instant::now() + self.opts.endpoint_backoff);
    }

    /// The connection to endpoint `i`, dialing it if there is none (bounded by the dial
    /// timeout and `deadline`).
    async fn channel(&self, i: usize, deadline: Instant) -> Result<Channel> {
        let slot = &self.slots[i];
        if let Some(ch) = slot.state.lock().channel.clone() {
            return Ok(ch);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let limit = self
            .opts
            .dial_timeout
            .min(left)
            .max(Duration::from_millis(1));
        let mut endpoint = Endpoint::from_shared(slot.url.clone())
            .map_err(|e| Error::InvalidEndpoint {
                endpoint: slot.url.clone(),
                reason: e.to_string(),
            })?
            .connect_timeout(limit)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(self.opts.dial_timeout.max(Duration::from_secs(1)))
            .keep_alive_while_idle(false);
        if slot.tls {
            let config = self
                .opts
                .tls
                .as_ref()
                .map(|t| t.tonic_config())
                .unwrap_or_default();
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| Error::Tls(chain(&e)))?;
        }
        let dialed = tokio::time::timeout(limit, endpoint.connect()).await;
        let result = match dialed {
            Ok(Ok(ch)) => Ok(ch),
            Ok(Err(e)) => {
                let text = chain(&e);
                if slot.tls && is_tls_failure(&text) {
                    Err(Error::Tls(format!("{}: {text}", slot.url)))
                } else {
                    Err(Error::Unavailable {
                        message: format!("{}: {text}", slot.url),
                        maybe_applied: false,
                    })
                }
            }
            Err(_) => Err(Error::Unavailable {
                message: format!("{}: no connection within {limit:?}", slot.url),
                maybe_applied: false,
            }),
        };
        match &result {
            Ok(ch) => slot.state.lock().channel = Some(ch.clone()),
            Err(_) => self.mark_failed(i),
        }
        result
    }

    /// A connection to some endpoint for a stream, by the same order and rounds as requests;
    /// with the endpoint's index, for [`Balancer::mark_failed`] when the stream breaks.
    pub(crate) async fn pick(&self, deadline: Instant) -> Result<(usize, Channel)> {
        let mut last = None;
        for round in 0..=self.opts.retries {
            for i in self.order() {
                if Instant::now() >= deadline {
                    break;
                }
                match self.channel(i, deadline).await {
                    Ok(ch) => return Ok((i, ch)),
                    Err(e @ Error::Tls(_)) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            if round < self.opts.retries && !pause_before(deadline).await {
                break;
            }
        }
        Err(last.unwrap_or(Error::DeadlineExceeded {
            timeout: self.opts.request_timeout,
            maybe_applied: false,
        }))
    }

    /// Runs one unary request by the retry rule (module documentation): `call` is given a
    /// connection and makes the request on it.
    pub(crate) async fn call<T, F, Fut>(&self, retry: Retry, ctx: Context, call: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.call_within(self.opts.request_timeout, retry, ctx, call)
            .await
    }

    /// [`Balancer::call`] with its own timeout instead of the request timeout (for requests
    /// that wait by design: a lock, a campaign).
    pub(crate) async fn call_within<T, F, Fut>(
        &self,
        timeout: Duration,
        retry: Retry,
        ctx: Context,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + timeout;
        let ctx = Context {
            write: retry == Retry::Write,
            ..ctx
        };
        let timed_out = |maybe_applied| Error::DeadlineExceeded {
            timeout,
            maybe_applied,
        };
        let mut last = None;
        for round in 0..=self.opts.retries {
            for i in self.order() {
                if Instant::now() >= deadline {
                    return Err(last.unwrap_or(timed_out(false)));
                }
                let channel = match self.channel(i, deadline).await {
                    Ok(ch) => ch,
                    Err(e @ Error::Tls(_)) => return Err(e),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                };
                let status = match tokio::time::timeout_at(deadline, call(channel)).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(status)) => status,
                    Err(_) => return Err(timed_out(ctx.write)),
                };
                if !error::is_transport_failure(&status) {
                    return Err(error::from_status(&status, &ctx, timeout));
                }
                self.mark_failed(i);
                let unsent = error::surely_not_sent(&status);
                let err = Error::Unavailable {
                    message: format!("{}: {}", self.slots[i].url, error::describe(&status)),
                    maybe_applied: ctx.write && !unsent,
                };
                if retry == Retry::Write && !unsent {
                    return Err(err);
                }
                last = Some(err);
            }
            if round < self.opts.retries && !pause_before(deadline).await {
                break;
            }
        }
        Err(last.unwrap_or(timed_out(false)))
    }
}

/// Sleeps a short pause between rounds; false if the deadline comes first.
async fn pause_before(deadline: Instant) -> bool {
    if Instant::now() + ROUND_PAUSE >= deadline {
        return false;
    }
    tokio::time::sleep(ROUND_PAUSE).await;
    true
}

/// True if a dial error's text says the TLS handshake failed (the certificate was refused),
/// which no retry fixes.
fn is_tls_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate") || t.contains("tls") || t.contains("handshake")
}

/// An error with its causes, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_urls() {
        assert_eq!(
            parse_endpoint("127.0.0.1:2379", false).unwrap(),
            ("http://127.0.0.1:2379".to_string(), false)
        );
        assert_eq!(
            parse_endpoint("https://h:1/", false).unwrap(),
            ("https://h:1".to_string(), true)
        );
        assert_eq!(
            parse_endpoint("http://h:1", true).unwrap(),
            ("https://h:1".to_string(), true)
        );
        assert!(parse_endpoint("unix:///x", false).is_err());
        assert!(parse_endpoint("", false).is_err());
        assert!(matches!(
            Balancer::new(&[], ClientOptions::default()),
            Err(Error::NoEndpoint)
        ));
    }
}
