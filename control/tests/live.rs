//! The policy file watched and reloaded (valid edits published, invalid ones refused and
//! counted, the running policy kept), and the Prometheus endpoint's figures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_control::api::{Control, Controller};
use strata_control::edit::PolicyState;
use strata_control::local::LocalDataplane;
use strata_control::metrics::MetricsServer;
use strata_control::protocol::Document;
use strata_control::watch::PolicyWatcher;
use strata_dataplane::packet::testutil as tu;
use strata_dataplane::policy::CompileOptions;

const POLICY: &str = include_str!("../../examples/policy.toml");

fn start(text: &str) -> Arc<Controller<LocalDataplane>> {
    let state = PolicyState::new(Document::new("policy.toml", text)).unwrap();
    let dp = LocalDataplane::start(state.current(), CompileOptions::default(), Box::new(()));
    Arc::new(Controller::new(dp, state))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_edited_policy_file_is_published_and_a_broken_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let c = start(POLICY);
    let _w = PolicyWatcher::start(
        std::slice::from_ref(&file),
        vec![POLICY.to_string()],
        c.clone() as Arc<dyn Control>,
    )
    .unwrap();

    let has_rule = |c: &Controller<LocalDataplane>, id: &str| {
        c.policy()
            .port("client")
            .unwrap()
            .layers
            .iter()
            .flat_map(|l| &l.groups)
            .flat_map(|g| &g.rules)
            .any(|r| r.id == id)
    };
    // An editor's save: a new file renamed over the old one.
    let edited = POLICY.replace("block-telnet-out", "block-telnet-and-more");
    let tmp = dir.path().join(".policy.toml.swp");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    wait_for("the edit is published", || {
        has_rule(&c, "block-telnet-and-more")
    });
    assert_eq!(c.updates.counts().applied, 1);

    let serial = c.snapshot().serial;
    std::fs::write(
        &file,
        edited.replace("ipv4 = \"198.18.1.12\"", "ipv4 = \"1.2.3.4\""),
    )
    .unwrap();
    wait_for("the broken file is refused", || {
        c.updates.counts().refused == 1
    });
    assert_eq!(c.snapshot().serial, serial, "the running snapshot stays");
    assert!(has_rule(&c, "block-telnet-and-more"));

    // Written in place this time.
    std::fs::write(&file, POLICY).unwrap();
    wait_for("the fixed file is published", || {
        has_rule(&c, "block-telnet-out")
    });
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn metrics_show_ports_drops_tables_and_updates() {
    let c = start(POLICY);
    let dp = c.dataplane();
    let web = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0a];
    let client = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0c];
    let db = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0b];
    for (i, (mac, ip)) in [(web, [198, 18, 1, 10]), (client, [198, 18, 1, 12])]
        .into_iter()
        .enumerate()
    {
        let l4 = tu::tcp(40000, 5432, 0x02, &[], b"");
        let ipp = tu::ipv4_full(6, ip, [198, 18, 1, 11], &[], 0, &l4);
        let mut f = tu::eth(0x0800, &[], &ipp);
        f[0..6].copy_from_slice(&db);
        f[6..12].copy_from_slice(&mac);
        dp.send((f, 1_000 + i as u64));
    }
    dp.sync();
    let _ = c.apply(Document::new("bad.toml", "[host"));
    let m = MetricsServer::serve("127.0.0.1:0", c.clone() as Arc<dyn Control>).unwrap();
    let text = scrape(m.addr());
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    for want in [
        "strata_port_packets_total{port=\"web\",direction=\"out\"} 1",
        "strata_port_bytes_total{port=\"web\",direction=\"out\"} 40",
        "strata_port_packets_total{port=\"db\",direction=\"in\"} 2",
        "strata_drops_total{reason=\"acl\"} 1",
        "strata_slow_path_packets_total 4",
        "strata_connections 3",
        "strata_policy_updates_total{result=\"refused\"} 1",
        "strata_policy_updates_total{result=\"applied\"} 0",
        "# EOF",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    assert!(text.contains(&format!("strata_policy_generation {}", c.snapshot().serial)));
}
