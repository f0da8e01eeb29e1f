//! The status server: `/metrics` (Prometheus text format) and `/health`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the process's metrics recorder, once; later calls return the
/// same handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| h).clone())
}

/// A running status server.
pub struct StatusServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StatusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl StatusServer {
    /// Serves `/metrics` from `metrics` and `/health` on `addr`.
    pub fn start(addr: SocketAddr, metrics: PrometheusHandle) -> anyhow::Result<StatusServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("status server on {addr}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .context("status server address")?;
        let server = Arc::new(server);
        let s = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("status".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    let (code, body, kind) = match req.url() {
                        "/metrics" => (200, metrics.render(), "text/plain; version=0.0.4"),
                        "/health" => (200, "ok\n".to_string(), "text/plain"),
                        _ => (404, "not found\n".to_string(), "text/plain"),
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", kind)
                        .expect("a valid header");
                    let resp = tiny_http::Response::from_string(body)
                        .with_status_code(code)
                        .with_header(header);
                    let _ = req.respond(resp);
                }
            })?;
        Ok(StatusServer {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
