//! `axion serve`: a trace server that speaks Langfuse's public API on one embedded SQLite file,
//! or on a PostgreSQL database that several servers share ([`ServerConfig::database_url`]).
//!
//! The official Langfuse SDKs (2.x ingestion batches, 3.x/5.x OTLP), any OpenTelemetry OTLP/HTTP
//! exporter and axion's own exporters send to it unchanged; the read API returns Langfuse's
//! JSON shapes, so Langfuse clients and axion's loaders read from it. A web UI at `/` (and at
//! every trace's `htmlPath`) lists, filters, shows and scores traces through that same API.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axion_server::{Server, ServerConfig};
//!
//! let server = Server::start(ServerConfig {
//!     listen: "127.0.0.1:0".parse()?,
//!     data_dir: "./axion-data".into(),
//!     ..ServerConfig::default()
//! })
//! .await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
// No unsafe code, except the two calls into mimalloc's option table in `allocator` and the
// writer's statements that bind texts in place (`store::in_place`, checked under memcheck).
#![deny(unsafe_code)]

pub mod allocator;
pub mod api;
pub mod auth;
pub mod cost;
pub mod error;
pub mod ingest;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

pub use error::{ApiError, ApiResult};
use store::{ApiKey, PostgresStore, Store};

/// A JSON object.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// The largest ingestion body (Langfuse's limit); larger → 413.
pub const MAX_INGESTION_BYTES: usize = 4_718_592;
/// The largest OTLP body (compressed size on the wire).
pub const MAX_OTLP_BYTES: usize = 16 * 1024 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    auth: auth::Authenticator,
}

impl AppState {
    /// State over any store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                auth: auth::Authenticator::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Authenticates a request (`ingestion` selects that route's 401 body shape). Headers
    /// verified before are answered from memory; a new one is checked against the store on the
    /// blocking pool.
    pub async fn caller(&self, headers: &HeaderMap, ingestion: bool) -> ApiResult<auth::Caller> {
        if let Some(caller) = self.inner.auth.cached(headers) {
            return Ok(caller);
        }
        let inner = Arc::clone(&self.inner);
        let headers = headers.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .auth
                .authenticate(inner.store.as_ref(), &headers, ingestion)
        })
        .await
        .map_err(worker_failed)?
    }

    /// Runs blocking store work off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(|error| {
                ApiError::Store(store::StoreError::Database(format!(
                    "worker failed: {error}"
                )))
            })?
    }
}

/// A blocking-pool task that panicked or was cancelled.
fn worker_failed(error: tokio::task::JoinError) -> ApiError {
    ApiError::Store(store::StoreError::Database(format!(
        "worker failed: {error}"
    )))
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    use api::*;
    let public = Router::new()
        .route("/health", get(projects::health))
        .route("/projects", get(projects::list))
        .route("/ingestion", post(ingest::ingestion))
        .route("/otel/v1/traces", post(ingest::otlp_traces))
        .route(
            "/traces",
            get(traces::list)
                .post(ingest::legacy_trace)
                .delete(traces::delete_many),
        )
        .route(
            "/traces/{id}",
            get(traces::get_one).delete(traces::delete_one),
        )
        .route("/observations", get(observations::list))
        .route("/observations/{id}", get(observations::get_one))
        .route("/v2/observations", get(observations::list_v2))
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::get_one))
        .route("/scores", get(scores::list).post(ingest::scores))
        .route("/scores/{id}", get(scores::get_one).delete(scores::delete))
        .route("/v2/scores", get(scores::list))
        .route("/v2/scores/{id}", get(scores::get_one))
        .route("/v3/scores", get(scores::list_v3))
        .route("/metrics", get(metrics::legacy))
        .route("/v2/metrics", get(metrics::query));
    Router::new()
        .nest("/api/public", public)
        // Plain OTLP exporters pointed at the server root.
        .route("/v1/traces", post(ingest::otlp_traces))
        .route("/", get(ui::page))
        .route("/project/{*path}", get(ui::page))
        .route("/ui/{file}", get(ui::file))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_OTLP_BYTES))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("No route for {}", uri.path()))
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:3000` by default).
    pub listen: SocketAddr,
    /// Directory holding `axion.db` (created when missing).
    pub data_dir: PathBuf,
    /// A key pair to install for the default project (else one is generated on first start).
    pub keys: Option<(String, String)>,
    /// A PostgreSQL database to store into instead of `data_dir`'s SQLite file
    /// (`postgres://user:password@host:port/database`).
    pub database_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: PathBuf::from("./axion-data"),
            keys: None,
            database_url: None,
        }
    }
}

/// What the first start set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The default project's id.
    pub project_id: String,
    /// Public key of the default project.
    pub public_key: Option<String>,
    /// A secret key generated by this start (shown once; only its hash is stored).
    pub generated_secret: Option<String>,
}

/// Creates the default project and key pair when the store has none; installs given keys.
pub fn bootstrap(
    store: &dyn Store,
    keys: Option<(String, String)>,
) -> Result<Bootstrap, store::StoreError> {
    let project = match store.projects()?.into_iter().next() {
        Some(project) => project,
        None => store.create_project("default")?,
    };
    let mut result = Bootstrap {
        project_id: project.id.clone(),
        public_key: None,
        generated_secret: None,
    };
    match keys {
        Some((public_key, secret_key)) => {
            store.put_api_key(&ApiKey {
                public_key: public_key.clone(),
                secret_hash: auth::hash_secret(&secret_key),
                project_id: project.id,
            })?;
            result.public_key = Some(public_key);
        }
        None if store.api_key_count()? == 0 => {
            let (public_key, secret_key) = auth::generate_key_pair();
            store.put_api_key(&ApiKey {
                public_key: public_key.clone(),
                secret_hash: auth::hash_secret(&secret_key),
                project_id: project.id,
            })?;
            result.public_key = Some(public_key);
            result.generated_secret = Some(secret_key);
        }
        None => {}
    }
    Ok(result)
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    bootstrap: Bootstrap,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    store: Arc<dyn Store>,
}

impl Server {
    /// Opens the store, bootstraps it and starts serving.
    pub async fn start(config: ServerConfig) -> std::io::Result<Self> {
        let pricing = Arc::new(cost::Pricing::langfuse_defaults());
        let (store, bootstrap) = tokio::task::spawn_blocking(move || {
            let store: Arc<dyn Store> = match &config.database_url {
                Some(url) => Arc::new(PostgresStore::connect(url, pricing)?),
                None => store::open_data_dir(&config.data_dir, pricing)?,
            };
            let bootstrap = bootstrap(store.as_ref(), config.keys)?;
            Ok::<_, store::StoreError>((store, bootstrap))
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        // Without TCP_NODELAY a multi-segment answer waits on the client's delayed ACK (~40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            let _ = stream.set_nodelay(true);
        });
        let app = router(AppState::new(Arc::clone(&store)));
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
        });
        Ok(Self {
            local_addr,
            bootstrap,
            shutdown,
            task,
            store,
        })
    }

    /// Where the data lives: the SQLite file, or the PostgreSQL database.
    pub fn storage(&self) -> String {
        self.store.location()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the start set up.
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    /// Stops accepting connections, lets in-flight requests finish, then closes the store
    /// (every acknowledged write is already on disk).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// Shell lines exporting what the official Langfuse SDKs (and axion's langfuse provider) read
/// to send to the server at `addr`.
pub fn client_env(addr: SocketAddr, public_key: &str, secret_key: &str) -> String {
    format!(
        "export LANGFUSE_HOST=http://{addr}\nexport LANGFUSE_BASE_URL=http://{addr}\n\
         export LANGFUSE_PUBLIC_KEY={public_key}\nexport LANGFUSE_SECRET_KEY={secret_key}"
    )
}
