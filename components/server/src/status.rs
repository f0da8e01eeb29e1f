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
    /// Serves `/metrics` from `metrics` and `/health` on `addr`. With
    /// `store`, `/metrics` shows only that store's series (and those of
    /// no store), for processes that run several stores.
    pub fn start(
        addr: SocketAddr,
        metrics: PrometheusHandle,
        store: Option<u64>,
    ) -> anyhow::Result<StatusServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("status server on {addr}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .context("status server address")?;
        let server = Arc::new(server);
        let s = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name(store.map_or_else(|| "status".into(), |id| format!("store-{id}-status")))
            .spawn(move || {
                for req in s.incoming_requests() {
                    let (code, body, kind) = match req.url() {
                        "/metrics" => {
                            let text = metrics.render();
                            let text = match store {
                                Some(id) => only_store(&text, id),
                                None => text,
                            };
                            (200, text, "text/plain; version=0.0.4")
                        }
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

/// The lines of a Prometheus text exposition that belong to store `id`:
/// comments, series labelled `store="id"` or `system="store-id"` (its
/// batch system), and series labelled with neither (the process's own).
pub fn only_store(text: &str, id: u64) -> String {
    let store = format!("store=\"{id}\"");
    let system = format!("system=\"store-{id}\"");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let keep = line.starts_with('#') || {
            let labels = line
                .split_once('{')
                .and_then(|(_, rest)| rest.rsplit_once('}'))
                .map_or("", |(l, _)| l);
            let tagged = labels.contains("store=\"") || labels.contains("system=\"");
            !tagged || labels.contains(&store) || labels.contains(&system)
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stores_view_keeps_its_own_series_and_the_process_wide_ones() {
        let text = "# HELP a_total A\n# TYPE a_total counter\n\
            a_total{store=\"1\"} 5\n\
            a_total{store=\"12\"} 6\n\
            b{system=\"store-1\",quantile=\"0.5\"} 1\n\
            b{system=\"store-2\",quantile=\"0.5\"} 2\n\
            c 7\n";
        let got = only_store(text, 1);
        assert_eq!(
            got,
            "# HELP a_total A\n# TYPE a_total counter\n\
             a_total{store=\"1\"} 5\n\
             b{system=\"store-1\",quantile=\"0.5\"} 1\n\
             c 7\n"
        );
    }
}
