//! The application: shared state, the router and the server loop.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use docket_store::Store;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api;
use crate::config::Config;
use crate::error::ApiError;
use crate::limiter::{LoginLimiter, WindowLimiter};
use crate::metrics::{self, Metrics};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Wakes the job workers when a request enqueued work.
    pub jobs_wakeup: Arc<tokio::sync::Notify>,
    /// Set when the server begins to shut down: long-lived responses (live
    /// event streams) end so that the graceful shutdown can finish.
    pub shutdown: Arc<tokio::sync::watch::Sender<bool>>,
    pub templates: Arc<crate::ui::Templates>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Password-reset requests, counted like failed logins.
    pub reset_limiter: Arc<LoginLimiter>,
    /// Public case forms, per IP address and per email address.
    pub web_form_ip_limiter: Arc<WindowLimiter>,
    pub web_form_address_limiter: Arc<WindowLimiter>,
}

impl AppState {
    pub fn new(store: Store, config: Config) -> anyhow::Result<AppState> {
        let hour = std::time::Duration::from_secs(3600);
        Ok(AppState {
            web_form_ip_limiter: Arc::new(WindowLimiter::new(config.web_form_per_ip_hour, hour)),
            web_form_address_limiter: Arc::new(WindowLimiter::new(config.web_form_per_address_hour, hour)),
            store,
            jobs_wakeup: Arc::new(tokio::sync::Notify::new()),
            shutdown: Arc::new(tokio::sync::watch::channel(false).0),
            templates: Arc::new(crate::ui::Templates::load()?),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            login_limiter: Arc::new(LoginLimiter::default()),
            reset_limiter: Arc::new(LoginLimiter::default()),
        })
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let json_limit = state.config.max_json_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .nest("/api/v1", api::router(&state).layer(DefaultBodyLimit::max(json_limit)))
        .merge(crate::ui::router(&state))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), crate::ui::render_error_pages))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "same-origin"))
        .layer(security_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .with_state(state)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "status": "unavailable" })))
                .into_response()
        }
    }
}

async fn metrics_text(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(state.store.backend().name()))
}

/// Unknown API paths answer JSON; anything else the 404 page.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path().starts_with("/api/") { ApiError::NotFound.into_response() } else { crate::ui::not_found_page() }
}

/// Serves until Ctrl-C or SIGTERM, then lets in-flight requests finish and
/// closes the database.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&state.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.config.listen))?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("Docket listening on http://{address}");
    tracing::info!(%address, backend = state.store.backend().name(), "listening");
    let store = state.store.clone();
    let workers = crate::jobs::start(state.clone());
    let shutdown = state.shutdown.clone();
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = shutdown.send(true);
        })
        .await?;
    tracing::info!("shutting down: finishing running jobs");
    workers.stop().await;
    tracing::info!("closing the database");
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
