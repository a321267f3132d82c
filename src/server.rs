//! The accept loop: HTTP/1.1 and h2c on one port (hyper-util's auto builder), graceful
//! shutdown, and the shared state handed to every request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::config::{Config, Validated};
use crate::ids;
use crate::metrics::Metrics;
use crate::ollama::client::OllamaClient;
use crate::routes;

/// State shared by all requests.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The pooled client for the Ollama server.
    pub ollama: OllamaClient,
    /// Every metric.
    pub metrics: Arc<Metrics>,
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
        Ok(Self {
            ollama: OllamaClient::new(&validated.upstream, &validated.config.upstream),
            config: validated.config.clone(),
            metrics: Arc::new(Metrics::new()?),
        })
    }
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
    let grace = std::time::Duration::from_millis(config.config.server.shutdown_grace_ms);
    let state = Arc::new(AppState::new(&config)?);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(respond(&state, req).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "shutting down");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing the rest"),
    }
    Ok(())
}

/// Routes the request inside its span and stamps `x-request-id` (the client's, or a new one).
async fn respond(
    state: &AppState,
    mut req: http::Request<hyper::body::Incoming>,
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
    );
    let mut response = routes::handle(state, route, req).instrument(span).await;
    if let Some(id) = request_id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}
