//! A real server on 127.0.0.1:0 with a throwaway data dir and known keys, or the same API as
//! a router for `oneshot` handler tests.
#![allow(dead_code)]

use std::sync::Arc;

use axion_server::store::{SqliteStore, Store};
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

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        let server = Server::start(ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            keys: Some((PUBLIC_KEY.into(), SECRET_KEY.into())),
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
        self.dir
    }
}
