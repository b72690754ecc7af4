//! A real server on 127.0.0.1:0 with a throwaway data dir and known keys, or the same API as
//! a router for `oneshot` handler tests.
#![allow(dead_code)]

use std::sync::Arc;

use axion_server::store::{PostgresStore, SqliteStore, Store};
use axion_server::{bootstrap, router, AppState, Server, ServerConfig};
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;

pub const PUBLIC_KEY: &str = "pk-lf-test";
pub const SECRET_KEY: &str = "sk-lf-test";

pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The database of a server on PostgreSQL ([`TestServer::start_postgres`]).
    pub database: Option<TestDatabase>,
}

pub fn basic(public_key: &str, secret_key: &str) -> String {
    let pair = format!("{public_key}:{secret_key}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The whole API as a router over a fresh store in a throwaway dir (keep the dir alive), with
/// [`PUBLIC_KEY`]/[`SECRET_KEY`] installed.
pub fn test_router() -> (axum::Router, Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open_with_default_prices(dir.path().join("axion.db")).unwrap());
    bootstrap(store.as_ref(), Some((PUBLIC_KEY.into(), SECRET_KEY.into()))).unwrap();
    let app = router(AppState::new(store.clone() as Arc<dyn Store>));
    (app, store, dir)
}

/// [`test_router`] over a fresh database on the test PostgreSQL server ([`POSTGRES_ENV`]).
pub async fn postgres_router() -> (axum::Router, TestDatabase) {
    tokio::task::spawn_blocking(|| {
        let database = TestDatabase::create();
        let store = Arc::new(PostgresStore::connect_with_default_prices(&database.url).unwrap());
        bootstrap(store.as_ref(), Some((PUBLIC_KEY.into(), SECRET_KEY.into()))).unwrap();
        (router(AppState::new(store)), database)
    })
    .await
    .unwrap()
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, None).await
    }

    /// A server storing into a fresh database on the test PostgreSQL server ([`POSTGRES_ENV`]).
    pub async fn start_postgres() -> Self {
        let database = tokio::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap();
        Self::start_with(tempfile::tempdir().unwrap(), Some(database)).await
    }

    async fn start_with(dir: tempfile::TempDir, database: Option<TestDatabase>) -> Self {
        let server = Server::start(ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            keys: Some((PUBLIC_KEY.into(), SECRET_KEY.into())),
            database_url: database.as_ref().map(|database| database.url.clone()),
        })
        .await
        .unwrap();
        let base = format!("http://{}", server.local_addr());
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&basic(PUBLIC_KEY, SECRET_KEY)).unwrap(),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            server: Some(server),
            base,
            client,
            dir,
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(database) = self.database.take() {
            // Dropping it connects to the server, which blocks.
            let _ = tokio::task::spawn_blocking(move || drop(database)).await;
        }
        self.dir
    }
}

/// The PostgreSQL server the tests of the PostgreSQL store run against: an admin URL, set by
/// `scripts/test.sh` from `scripts/postgres.sh start`. Those tests are `#[ignore]`d, so a plain
/// `cargo test` runs without one; run them with `-- --ignored`.
pub const POSTGRES_ENV: &str = "AXION_TEST_POSTGRES";

/// A database of its own on the test PostgreSQL server, dropped with the guard.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> Self {
        let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
            panic!("{POSTGRES_ENV} is not set: start a server with scripts/postgres.sh start DIR")
        });
        let name = format!(
            "axion_test_{}",
            axion_model::random_event_id().replace('-', "")
        );
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let (base, _) = admin.rsplit_once('/').expect("a URL ending in /database");
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name));
        }
    }
}
