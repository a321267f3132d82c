//! The accept loop: HTTP/1.1 and h2c on one port (hyper-util's auto builder), graceful
//! shutdown, and the shared state handed to every request.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use governor::clock::DefaultClock;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use crate::auth::{ApiKey, AuthFailure};
use crate::config::{Config, Validated};
use crate::error::Error;
use crate::ids;
use crate::limit::{LimitKind, Limits, Rejection, bounded_semaphore};
use crate::metrics::Metrics;
use crate::observe::RequestObserver;
use crate::ollama::client::OllamaClient;
use crate::routes;
use crate::sse_body::EndStreams;
use crate::write_idle::WriteIdle;

/// After the shutdown grace: how long the streams' error events may take to go out.
const LAST_WRITES: Duration = Duration::from_secs(1);

/// How often client IPs whose limits are full again are forgotten.
const EVICT_EVERY: Duration = Duration::from_secs(60);

/// State shared by all requests.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The pooled client for the Ollama server.
    pub ollama: OllamaClient,
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The configured API keys (digests); empty when the API is open.
    pub keys: Vec<ApiKey>,
    /// Rate limits and concurrency caps.
    pub limits: Limits,
    /// Fired when the shutdown grace is over: every open stream ends with an error event.
    pub end_streams: Arc<EndStreams>,
}

/// When a request arrived, stored in its extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub tokio::time::Instant);

impl AppState {
    /// Builds the state (the upstream client, the metrics) from a validated configuration.
    ///
    /// # Errors
    /// When the metrics cannot be registered (a bug the tests rule out).
    pub fn new(validated: &Validated) -> Result<Self, prometheus::Error> {
        Ok(Self::with(
            validated,
            Arc::new(Metrics::new()?),
            Arc::default(),
            None,
        ))
    }

    /// The state for a reloaded configuration: the same metrics and shutdown signal, the
    /// same upstream client (and its pooled connections) if `[upstream]` is unchanged;
    /// new keys, limits (their buckets start full) and everything else.
    pub fn reloaded(&self, validated: &Validated) -> Self {
        let same_upstream = validated.config.upstream == self.config.upstream;
        Self::with(
            validated,
            Arc::clone(&self.metrics),
            Arc::clone(&self.end_streams),
            same_upstream.then(|| self.ollama.clone()),
        )
    }

    fn with(
        validated: &Validated,
        metrics: Arc<Metrics>,
        end_streams: Arc<EndStreams>,
        ollama: Option<OllamaClient>,
    ) -> Self {
        let state = Self {
            ollama: ollama.unwrap_or_else(|| {
                OllamaClient::new(&validated.upstream, &validated.config.upstream)
            }),
            config: validated.config.clone(),
            metrics,
            keys: validated.keys.clone(),
            limits: Limits::new(
                &validated.keys,
                validated.default_limits,
                &validated.config.limits,
                DefaultClock::default(),
            ),
            end_streams,
        };
        state.init_access_metrics();
        state
    }

    /// Creates the access-control series at 0 (their labels are known: key names, limit
    /// kinds, failure reasons), so they are scraped, and rated, before the first refusal.
    fn init_access_metrics(&self) {
        for failure in [AuthFailure::Missing, AuthFailure::Invalid] {
            self.metrics
                .auth_failures
                .with_label_values(&[failure.name()]);
        }
        let mut names: Vec<&str> = self.keys.iter().map(|k| &*k.name).collect();
        if names.is_empty() {
            names.push("");
        }
        for name in names {
            for limit in [
                LimitKind::Requests,
                LimitKind::Tokens,
                LimitKind::Concurrency,
            ] {
                self.metrics
                    .rate_limited
                    .with_label_values(&[name, limit.name()]);
            }
        }
    }

    /// Takes a slot of `model`'s concurrency cap into the request's admission.
    ///
    /// # Errors
    /// The 429 when the cap is full (after the queue, if configured).
    pub async fn take_model_slot(
        &self,
        observer: &mut RequestObserver,
        model: &str,
    ) -> Result<(), Error> {
        match observer.admission_mut() {
            Some(admission) => self
                .limits
                .model_slot(admission, model)
                .await
                .map_err(|rejection| self.refuse(rejection)),
            None => Ok(()),
        }
    }

    /// Counts a refusal by a limit and turns it into the 429 error.
    pub fn refuse(&self, rejection: Rejection) -> Error {
        self.metrics
            .rate_limited
            .with_label_values(&[&*rejection.key, rejection.limit.name()])
            .inc();
        Error::RateLimited(Box::new(rejection))
    }
}

/// Whether serving on `ip` without API keys lets other machines use the bridge freely.
pub fn open_to_network(ip: IpAddr, has_keys: bool) -> bool {
    !has_keys && !ip.is_loopback()
}

/// The state requests see; a reload replaces it whole, and requests already running keep
/// the one they started with.
#[derive(Debug)]
struct Current(RwLock<Arc<AppState>>);

impl Current {
    fn get(&self) -> Arc<AppState> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Switches to `validated`, warning about the keys that only a restart applies.
    fn reload(&self, validated: &Validated) {
        let old = self.get();
        let (was, now) = (&old.config, &validated.config);
        if was.server != now.server || was.logging.format != now.logging.format {
            tracing::warn!(
                "[server] and logging.format are read at start-up only: restart to apply \
                 their new values"
            );
        }
        let new = Arc::new(old.reloaded(validated));
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = new;
        tracing::info!(keys = validated.keys.len(), "configuration reloaded");
    }
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting and lets open
/// connections finish for up to `server.shutdown_grace_ms`; streams still open then end
/// with an error event, and it returns.
///
/// # Errors
/// When the metrics cannot be registered (a bug the tests rule out).
pub async fn run(
    listener: TcpListener,
    config: Validated,
    shutdown: impl Future<Output = ()>,
) -> Result<(), prometheus::Error> {
    serve(listener, config, shutdown, mpsc::channel(1).1).await
}

/// As [`run`], switching to each configuration received on `reloads` (already validated)
/// for the requests that start after it; open streams are not disturbed.
///
/// # Errors
/// When the metrics cannot be registered (a bug the tests rule out).
pub async fn serve(
    listener: TcpListener,
    config: Validated,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<Validated>,
) -> Result<(), prometheus::Error> {
    let server = &config.config.server;
    let grace = Duration::from_millis(server.shutdown_grace_ms);
    let header_timeout = server.header_read_timeout();
    let write_idle = server.write_idle_timeout();
    let connection_slots = Arc::new(bounded_semaphore(server.max_connections));
    let current = Arc::new(Current(RwLock::new(Arc::new(AppState::new(&config)?))));
    warn_if_open(&listener, !config.keys.is_empty());
    let evictor = tokio::spawn(evict_idle_clients(Arc::clone(&current)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &connection_slots) => accepted,
            () = &mut shutdown => break,
            Some(new) = reloads.recv() => {
                current.reload(&new);
                continue;
            }
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let first_request = Arc::new(Notify::new());
        let service = service_fn({
            let (current, first_request) = (Arc::clone(&current), Arc::clone(&first_request));
            move |req| {
                first_request.notify_one();
                let state = current.get();
                async move { Ok::<_, Infallible>(respond(&state, req, peer).await) }
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(WriteIdle::new(stream, write_idle)), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            serve_with_header_deadline(connection, &first_request, header_timeout, peer).await;
        });
    }
    evictor.abort();
    drop(listener);
    tracing::info!(connections = graceful.count(), "shutting down");
    let closed = graceful.shutdown();
    tokio::pin!(closed);
    if tokio::time::timeout(grace, &mut closed).await.is_ok() {
        tracing::info!("all connections closed");
        return Ok(());
    }
    tracing::warn!("shutdown grace period over; ending the open streams with an error event");
    current.get().end_streams.end_all();
    if tokio::time::timeout(LAST_WRITES, closed).await.is_err() {
        tracing::warn!("closing the connections that are still open");
    }
    Ok(())
}

/// Drives `connection`, closing it if its first request's headers have not arrived within
/// `header_timeout`. hyper's own header timeout starts only once it knows the protocol;
/// this one also covers a client that sends nothing, or too little to tell.
async fn serve_with_header_deadline<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    first_request: &Notify,
    header_timeout: Duration,
    peer: SocketAddr,
) {
    tokio::pin!(connection);
    let headers_in = tokio::time::timeout(header_timeout, first_request.notified());
    let result = tokio::select! {
        result = &mut connection => result,
        waited = headers_in => match waited {
            Ok(()) => connection.await,
            Err(_) => {
                tracing::debug!(%peer, "no request headers in time; closing the connection");
                return;
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Accepts one connection once a connection slot is free; `None` when accepting failed.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = match Arc::clone(slots).try_acquire_owned() {
        Ok(slot) => slot,
        Err(_) => {
            tracing::warn!("server.max_connections reached; waiting for a connection to close");
            Arc::clone(slots).acquire_owned().await.ok()?
        }
    };
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(e) => {
            // Out of descriptors and the like: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

fn warn_if_open(listener: &TcpListener, has_keys: bool) {
    if let Ok(local) = listener.local_addr()
        && open_to_network(local.ip(), has_keys)
    {
        tracing::warn!(
            listen = %local,
            "SERVING ON A NON-LOOPBACK ADDRESS WITHOUT API KEYS: anyone who can reach {local} \
             can use the Ollama server. Configure [[auth.keys]] or listen on 127.0.0.1."
        );
    }
}

/// Forgets idle client IPs every [`EVICT_EVERY`], so the map stays as small as the traffic.
async fn evict_idle_clients(current: Arc<Current>) {
    let mut every = tokio::time::interval(EVICT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let evicted = current.get().limits.evict_idle();
        if evicted > 0 {
            tracing::debug!(evicted, "forgot idle client IPs");
        }
    }
}

/// Routes the request inside its span and stamps `x-request-id` (the client's, or a new one).
async fn respond(
    state: &AppState,
    mut req: http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> http::Response<crate::body::BoxBody> {
    req.extensions_mut()
        .insert(Arrival(tokio::time::Instant::now()));
    let request_id = req
        .headers()
        .get("x-request-id")
        .filter(|v| v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .or_else(|| http::HeaderValue::from_str(&ids::request_id()).ok());
    let route = routes::Route::of(state, req.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default(),
        method = %req.method(),
        endpoint = route.name(),
        key = tracing::field::Empty,
    );
    let mut response = routes::handle(state, route, req, peer.ip())
        .instrument(span)
        .await;
    if let Some(id) = request_id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::open_to_network;

    #[test]
    fn only_non_loopback_without_keys_is_open() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(open_to_network(ip("0.0.0.0"), false));
        assert!(open_to_network(ip("::"), false));
        assert!(open_to_network(ip("192.168.1.20"), false));
        assert!(!open_to_network(ip("192.168.1.20"), true));
        assert!(!open_to_network(ip("127.0.0.1"), false));
        assert!(!open_to_network(ip("::1"), false));
    }
}
