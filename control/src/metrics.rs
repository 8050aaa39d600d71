//! Prometheus metrics on an opt-in TCP address (`strata run --metrics 127.0.0.1:9101`):
//! packets and bytes per port and direction, drops by reason, flow and connection table
//! occupancy, fast and slow path packets (Prometheus' `rate()` makes the slow-path rate),
//! the policy generation and the results of policy updates.
//!
//! Figures are read from the workers at each scrape (as `strata ctl stats` reads them)
//! and encoded in the OpenMetrics text format by `prometheus-client`; the packet path
//! keeps no metric objects of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::Control;

type Labels = Vec<(&'static str, String)>;

/// The metrics text of one scrape, or why the workers could not be read.
pub fn render(control: &dyn Control) -> Result<String, String> {
    let stats = control.stats().map_err(|e| e.0.message)?;
    let ports = control.ports().map_err(|e| e.0.message)?;
    let mut registry = Registry::with_prefix("strata");

    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        registry.register(name, help, c);
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        registry.register(name, help, g);
    };

    let packets = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let flows = Family::<Labels, Gauge>::default();
    let conns = Family::<Labels, Gauge>::default();
    let generation = Family::<Labels, Gauge>::default();
    for p in &ports {
        let c = &p.counters;
        for (dir, n, b) in [
            ("out", c.packets_out, c.bytes_out),
            ("in", c.packets_in, c.bytes_in),
        ] {
            let l = vec![("port", p.name.clone()), ("direction", dir.to_string())];
            packets.get_or_create(&l).inc_by(n);
            bytes.get_or_create(&l).inc_by(b);
        }
        let l = vec![("port", p.name.clone())];
        dropped.get_or_create(&l).inc_by(c.dropped);
        flows.get_or_create(&l).set(p.flows as i64);
        conns.get_or_create(&l).set(p.connections as i64);
        generation.get_or_create(&l).set(p.generation as i64);
    }
    registry.register(
        "port_packets",
        "Packets that crossed an endpoint port, by direction (out = from the container)",
        packets,
    );
    registry.register(
        "port_bytes",
        "IP bytes (header and payload) that crossed an endpoint port, by direction",
        bytes,
    );
    registry.register(
        "port_dropped",
        "Packets dropped on an endpoint port",
        dropped,
    );
    registry.register(
        "port_flows",
        "Flow table entries of an endpoint port",
        flows,
    );
    registry.register(
        "port_connections",
        "Recorded connections of an endpoint port",
        conns,
    );
    registry.register(
        "port_generation",
        "An endpoint port's generation (bumped when its layers change)",
        generation,
    );

    let drops = Family::<Labels, Counter>::default();
    for (reason, n) in &stats.drops {
        drops
            .get_or_create(&vec![("reason", reason.clone())])
            .inc_by(*n);
    }
    registry.register("drops", "Packets dropped, by reason", drops);
    counter(&mut registry, "packets", "Packets processed", stats.packets);
    counter(
        &mut registry,
        "forwarded",
        "Packets forwarded",
        stats.forwarded,
    );
    counter(
        &mut registry,
        "fast_path_packets",
        "Packet traversals of a port answered by the flow table",
        stats.fast_path,
    );
    counter(
        &mut registry,
        "slow_path_packets",
        "Packet traversals of a port that ran the layers",
        stats.slow_path,
    );
    gauge(
        &mut registry,
        "flows",
        "Flow table entries",
        stats.flows as i64,
    );
    gauge(
        &mut registry,
        "connections",
        "Recorded connections",
        stats.connections as i64,
    );
    gauge(
        &mut registry,
        "policy_generation",
        "Serial of the running policy snapshot",
        stats.generation as i64,
    );
    gauge(
        &mut registry,
        "workers",
        "Worker threads",
        stats.workers as i64,
    );
    let updates = Family::<Labels, Counter>::default();
    updates
        .get_or_create(&vec![("result", "applied".to_string())])
        .inc_by(stats.updates.applied);
    updates
        .get_or_create(&vec![("result", "refused".to_string())])
        .inc_by(stats.updates.refused);
    registry.register("policy_updates", "Policy updates, by result", updates);

    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}

/// The metrics endpoint: `GET /metrics` on a TCP address; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn serve(addr: &str, control: Arc<dyn Control>) -> Result<MetricsServer, String> {
        let server =
            tiny_http::Server::http(addr).map_err(|e| format!("metrics address {addr}: {e}"))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("metrics address {addr}: not an IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strata-metrics".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    let request = match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(_) => break,
                    };
                    let response = if request.url() == "/metrics" || request.url() == "/" {
                        match render(control.as_ref()) {
                            Ok(text) => {
                                let r = tiny_http::Response::from_string(text);
                                match tiny_http::Header::from_bytes(
                                    &b"Content-Type"[..],
                                    &b"application/openmetrics-text; version=1.0.0; charset=utf-8"
                                        [..],
                                ) {
                                    Ok(h) => r.with_header(h),
                                    Err(()) => r,
                                }
                            }
                            Err(e) => tiny_http::Response::from_string(e).with_status_code(503),
                        }
                    } else {
                        tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(MetricsServer {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
