//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.
//!
//! One thread serves requests one at a time (tiny_http parses HTTP); a scrape folds in the
//! workers' latest snapshots and reads the live datapath's counters, off the packet path.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Response, Server};

use super::registry::{encode, registry, Hub};

/// Why the endpoint could not start. Phrased for the operator: start-up fails with it.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("metrics endpoint: cannot listen on {addr}: the address is already in use (another process holds the port; choose another with --metrics ADDR or metrics.listen)")]
    AddrInUse { addr: SocketAddr },
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics endpoint on {addr}: {message}")]
    Start { addr: SocketAddr, message: String },
}

/// A running endpoint; dropping it stops the server thread.
pub struct Exporter {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("addr", &self.addr)
            .finish()
    }
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exporter {
    /// Binds `addr` now (so a taken port fails start-up, before any capture or interface is
    /// touched) and starts serving `hub`.
    pub fn start(addr: SocketAddr, hub: Arc<Hub>) -> Result<Exporter, ExporterError> {
        let listener = TcpListener::bind(addr).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ExporterError::AddrInUse { addr }
            } else {
                ExporterError::Bind { addr, source }
            }
        })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ExporterError::Bind { addr, source })?;
        let registry = registry(&hub).map_err(|e| ExporterError::Start {
            addr,
            message: e.to_string(),
        })?;
        let server = Server::from_listener(listener, None).map_err(|e| ExporterError::Start {
            addr,
            message: e.to_string(),
        })?;
        let server = Arc::new(server);
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("unmask-metrics".into())
            .spawn(move || serve(&srv, &hub, &registry))
            .map_err(|e| ExporterError::Start {
                addr,
                message: e.to_string(),
            })?;
        Ok(Exporter {
            server,
            addr: bound,
            thread: Some(thread),
        })
    }

    /// The address actually bound (port 0 resolves to the one the kernel chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn text(status: u16, body: String, content_type: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r = Response::from_string(body).with_status_code(status);
    if let Some(h) = header("Content-Type", content_type) {
        r.add_header(h);
    }
    r
}

fn serve(server: &Server, hub: &Hub, registry: &prometheus::Registry) {
    // `recv` fails only once the server is unblocked for shutdown.
    while let Ok(req) = server.recv() {
        let path = req.url().split('?').next().unwrap_or("");
        let response = match (req.method(), path) {
            (Method::Get | Method::Head, "/metrics") => match encode(registry) {
                Ok(body) => text(200, body, TEXT_FORMAT),
                Err(e) => text(500, format!("encoding metrics failed: {e}\n"), "text/plain"),
            },
            (Method::Get | Method::Head, "/healthz") => text(200, "ok\n".into(), "text/plain"),
            (Method::Get | Method::Head, "/readyz") => match hub.readiness() {
                Ok(()) => text(200, "ready\n".into(), "text/plain"),
                Err(why) => text(503, format!("not ready: {why}\n"), "text/plain"),
            },
            (Method::Get | Method::Head, _) => text(
                404,
                "not found; try /metrics, /healthz or /readyz\n".into(),
                "text/plain",
            ),
            _ => text(405, "method not allowed\n".into(), "text/plain"),
        };
        // A client that went away is its own problem.
        let _ = req.respond(response);
    }
}
