//! The accept loop: HTTP/1.1 and h2c on one port (hyper-util's auto builder), graceful
//! shutdown, and the shared state handed to every request.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
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
use crate::write_idle::WriteIdle;

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
        let state = Self {
            ollama: OllamaClient::new(&validated.upstream, &validated.config.upstream),
            config: validated.config.clone(),
            metrics: Arc::new(Metrics::new()?),
            keys: validated.keys.clone(),
            limits: Limits::new(
                &validated.keys,
                validated.default_limits,
                &validated.config.limits,
                DefaultClock::default(),
            ),
        };
        state.init_access_metrics();
        Ok(state)
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

/// Serves on `listener` until `shutdown` resolves, then stops accepting and lets open
/// connections finish for up to `server.shutdown_grace_ms` before returning.
///
/// # Errors
/// When the metrics cannot be registered (a bug the tests rule out).
pub async fn run(
    listener: TcpListener,
    config: Validated,
    shutdown: impl Future<Output = ()>,
) -> Result<(), prometheus::Error> {
    let server = &config.config.server;
    let grace = Duration::from_millis(server.shutdown_grace_ms);
    let header_timeout = server.header_read_timeout();
    let write_idle = server.write_idle_timeout();
    let connection_slots = Arc::new(bounded_semaphore(server.max_connections));
    let state = Arc::new(AppState::new(&config)?);
    warn_if_open(&listener, !state.keys.is_empty());
    let evictor = tokio::spawn(evict_idle_clients(Arc::clone(&state)));
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
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let first_request = Arc::new(Notify::new());
        let service = service_fn({
            let (state, first_request) = (Arc::clone(&state), Arc::clone(&first_request));
            move |req| {
                first_request.notify_one();
                let state = Arc::clone(&state);
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
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing the rest"),
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
async fn evict_idle_clients(state: Arc<AppState>) {
    let mut every = tokio::time::interval(EVICT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let evicted = state.limits.evict_idle();
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
