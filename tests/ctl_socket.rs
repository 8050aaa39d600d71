//! The control socket and `strata ctl` against an in-process engine (the controller over
//! one worker thread): socket permissions and stale sockets; malformed, huge and
//! concurrent requests answered with clear errors while the service carries on; invalid
//! updates of every kind refused with line-numbered errors, the running policy and its
//! counters untouched; and the `strata ctl` commands with their exit codes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use strata_control::api::{Control, Controller};
use strata_control::edit::PolicyState;
use strata_control::local::LocalDataplane;
use strata_control::protocol::{Document, ErrorKind, Reply, Request, Success};
use strata_control::socket::{Client, ControlSocket, SocketError};
use strata_dataplane::packet::testutil as tu;
use strata_dataplane::policy::CompileOptions;

const POLICY: &str = include_str!("../examples/policy.toml");
const HNS: &str = include_str!("../examples/policy.hns.json");

const WEB: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0a];
const CLIENT: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0c];
const DB: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0b];

fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    dport: u16,
) -> Vec<u8> {
    let l4 = tu::tcp(40000, dport, 0x02, &[], b"");
    let ip = tu::ipv4_full(6, src, dst, &[], 0, &l4);
    let mut f = tu::eth(0x0800, &[], &ip);
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f
}

struct Service {
    controller: Arc<Controller<LocalDataplane>>,
    socket: ControlSocket,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(doc: Document) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let state = PolicyState::new(doc).unwrap();
        let dp = LocalDataplane::start(state.current(), CompileOptions::default(), Box::new(()));
        let controller = Arc::new(Controller::new(dp, state));
        let path = dir.path().join("run").join("strata.sock");
        let socket = ControlSocket::serve(&path, controller.clone() as Arc<dyn Control>).unwrap();
        Service {
            controller,
            socket,
            _dir: dir,
        }
    }

    fn path(&self) -> &Path {
        self.socket.path()
    }

    /// Web → db:5432 (allowed), client → db:5432 (blocked), each `n` times.
    fn traffic(&self, n: usize) {
        let dp = self.controller.dataplane();
        for i in 0..n {
            let ts = 1_000_000_000 + i as u64 * 1000;
            dp.send((
                tcp_frame(WEB, DB, [198, 18, 1, 10], [198, 18, 1, 11], 5432),
                ts,
            ));
            dp.send((
                tcp_frame(CLIENT, DB, [198, 18, 1, 12], [198, 18, 1, 11], 5432),
                ts,
            ));
        }
        dp.sync();
    }

    fn call(&self, r: &Request) -> Reply {
        Client::connect(self.path()).unwrap().call(r).unwrap()
    }

    /// What must not change when an update is refused: the snapshot, the policy, every
    /// counter and listing.
    fn observable(&self) -> (u64, String, String, String, String) {
        let snapshot = self.controller.snapshot().serial;
        let policy = format!("{:?}", self.controller.policy());
        let json = |r: Request| serde_json::to_string(&self.call(&r)).unwrap();
        let mut stats = match self.call(&Request::Stats) {
            Reply::Ok {
                ok: Success::Stats(s),
            } => s,
            other => panic!("{other:?}"),
        };
        stats.updates = Default::default();
        (
            snapshot,
            policy,
            json(Request::Ports),
            json(Request::Layers { port: "db".into() }),
            format!("{stats:?}"),
        )
    }
}

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

#[test]
fn socket_is_0600_whatever_the_umask_and_stale_sockets_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // A socket file left by a killed run (nobody listens on it).
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let old = unsafe { libc::umask(0) };
    let state = PolicyState::new(Document::new("p.toml", POLICY)).unwrap();
    let dp = LocalDataplane::start(state.current(), CompileOptions::default(), Box::new(()));
    let c: Arc<dyn Control> = Arc::new(Controller::new(dp, state));
    let served = ControlSocket::serve(&path, c.clone());
    unsafe { libc::umask(old) };
    let sock = served.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&path).unwrap());
    assert_eq!(owner, unsafe { libc::geteuid() });
    // A live service on it is not pushed aside.
    assert!(matches!(
        ControlSocket::serve(&path, c.clone()),
        Err(SocketError::InUse(_))
    ));
    // Nor is a file that is not a socket.
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        ControlSocket::serve(&file, c),
        Err(SocketError::NotSocket(_))
    ));
    drop(sock);
    assert!(
        !path.exists(),
        "the socket is removed when the service stops"
    );
}

#[test]
fn bad_requests_get_errors_and_the_service_carries_on() {
    let s = Service::start(Document::new("policy.toml", POLICY));
    let mut conn = UnixStream::connect(s.path()).unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap());
    let mut ask = |text: &[u8]| {
        conn.write_all(text).unwrap();
        let mut l = String::new();
        lines.read_line(&mut l).unwrap();
        serde_json::from_str::<Reply>(&l).unwrap()
    };
    for bad in [
        &b"garbage\n"[..],
        b"{\"command\":\"reboot\"}\n",
        b"{\"command\":\"layers\"}\n",
        b"[1,2,3]\n",
        b"\xff\xfe{}\n",
    ] {
        match ask(bad) {
            Reply::Err { error } => assert_eq!(error.kind, ErrorKind::Request, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Same connection, still usable.
    assert!(matches!(
        ask(b"{\"command\":\"stats\"}\n"),
        Reply::Ok { .. }
    ));
    match ask(b"{\"command\":\"layers\",\"port\":\"nope\"}\n") {
        Reply::Err { error } => assert!(error.message.contains("nope")),
        other => panic!("{other:?}"),
    }

    // A huge request: answered with an error, the connection closed, nobody else harmed.
    let mut big = UnixStream::connect(s.path()).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    for _ in 0..40 {
        if big.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(sent > 0);
    let mut reply = String::new();
    let _ = BufReader::new(&big).read_line(&mut reply);
    assert!(reply.contains("larger than"), "reply: {reply:?}");
    let mut rest = Vec::new();
    let _ = big.read_to_end(&mut rest);
    assert!(matches!(s.call(&Request::Ports), Reply::Ok { .. }));
}

#[test]
fn concurrent_clients_are_all_answered() {
    let s = Arc::new(Service::start(Document::new("policy.toml", POLICY)));
    let acl =
        "[[acl]]\nid = \"t\"\naction = \"block\"\ndirection = \"in\"\nprotocols = [\"udp\"]\n";
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut c = Client::connect(s.path()).unwrap();
                for j in 0..40 {
                    let r = match (i + j) % 4 {
                        0 => Request::Stats,
                        1 => Request::Ports,
                        2 => Request::Layers { port: "web".into() },
                        _ if i % 2 == 0 => Request::RuleAdd {
                            port: "client".into(),
                            document: Document::new("t.toml", acl),
                        },
                        _ => Request::RuleRemove {
                            port: "client".into(),
                            rule: "t".into(),
                            layer: None,
                            group: None,
                        },
                    };
                    // Adds and removes race: either may be refused (already there, not
                    // there), never unanswered.
                    match c.call(&r).unwrap() {
                        Reply::Ok { .. } => {}
                        Reply::Err { error } => assert_ne!(error.kind, ErrorKind::Runtime),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let counts = s.controller.updates.counts();
    assert_eq!(counts.applied + counts.refused, 12 * 10);
}

#[test]
fn invalid_updates_of_every_kind_change_nothing() {
    let s = Service::start(Document::new("policy.toml", POLICY));
    s.traffic(5);
    let before = s.observable();
    assert!(before.4.contains("packets: 10"), "{}", before.4);
    let doc = |name: &str, text: &str| Document::new(name, text);
    let bad_policy = POLICY.replace("ipv4 = \"198.18.1.11\"", "ipv4 = \"198.18.9.11\"");
    let cases: Vec<(Request, Option<(&str, usize)>)> = vec![
        (
            Request::Apply {
                document: doc("syntax.toml", "[host\n"),
            },
            Some(("syntax.toml", 1)),
        ),
        (
            Request::Apply {
                document: doc("bad.toml", &bad_policy),
            },
            Some(("bad.toml", 76)),
        ),
        (
            Request::Apply {
                document: doc(
                    "bad.json",
                    &HNS.replace("\"198.18.1.11\"", "\"198.18.9.11\""),
                ),
            },
            Some(("bad.json", 23)),
        ),
        (
            Request::EndpointAdd {
                document: doc(
                    "ep.toml",
                    "[[endpoint]]\nname = \"x\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:0b\"\nipv4 = \"198.18.1.30\"\n",
                ),
            },
            Some(("ep.toml", 4)),
        ),
        (
            Request::EndpointAdd {
                document: doc(
                    "ep.toml",
                    "[[endpoint]]\nname = \"x\"\nnetwork = \"nowhere\"\n",
                ),
            },
            Some(("ep.toml", 1)),
        ),
        (
            Request::EndpointAdd {
                document: doc("ep.json", "{\"Name\": \"x\"}"),
            },
            Some(("ep.json", 1)),
        ),
        (
            Request::EndpointRemove {
                name: "ghost".into(),
            },
            None,
        ),
        (
            Request::RuleAdd {
                port: "db".into(),
                document: doc(
                    "r.toml",
                    "[[acl]]\nid = \"block-pg\"\naction = \"block\"\ndirection = \"in\"\n",
                ),
            },
            Some(("r.toml", 2)),
        ),
        (
            Request::RuleAdd {
                port: "db".into(),
                document: doc(
                    "r.toml",
                    "[[acl]]\nid = \"z\"\naction = \"maybe\"\ndirection = \"in\"\n",
                ),
            },
            Some(("r.toml", 3)),
        ),
        (
            Request::RuleAdd {
                port: "ghost".into(),
                document: doc(
                    "r.toml",
                    "[[acl]]\nid = \"z\"\naction = \"block\"\ndirection = \"in\"\n",
                ),
            },
            None,
        ),
        (
            Request::RuleRemove {
                port: "db".into(),
                rule: "ghost".into(),
                layer: None,
                group: None,
            },
            None,
        ),
    ];
    let n = cases.len() as u64;
    for (request, at) in cases {
        let error = match s.call(&request) {
            Reply::Err { error } => error,
            ok => panic!("{request:?} was accepted: {ok:?}"),
        };
        match at {
            Some((file, line)) => {
                assert_eq!(error.kind, ErrorKind::Invalid, "{request:?}: {error:?}");
                assert!(
                    error
                        .errors
                        .iter()
                        .any(|e| e.file == file && e.line == line),
                    "{request:?}: want {file}:{line}, got {:?}",
                    error.errors
                );
            }
            None => assert_eq!(error.kind, ErrorKind::Request, "{request:?}: {error:?}"),
        }
        assert_eq!(s.observable(), before, "after {request:?}");
    }
    assert_eq!(s.controller.updates.counts().refused, n);
    assert_eq!(s.controller.updates.counts().applied, 0);
}

#[test]
fn strata_ctl_shows_and_changes_what_runs() {
    let s = Service::start(Document::new("policy.toml", POLICY));
    s.traffic(3);
    let dir = tempfile::tempdir().unwrap();
    let sock = s.path().to_str().unwrap().to_string();
    let ctl = |args: &[&str]| {
        let out = strata()
            .arg("ctl")
            .args(["--socket", &sock])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code(), text, err)
    };
    let (code, text, _) = ctl(&["ports"]);
    assert_eq!(code, Some(0));
    for want in ["web", "00:15:5d:01:01:0b", "198.18.1.11", "nat", "process"] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    let (code, text, _) = ctl(&["layers", "db"]);
    assert_eq!(code, Some(0));
    let row = text
        .lines()
        .find(|l| l.contains("block-pg"))
        .expect("block-pg row");
    assert!(row.trim_end_matches(['│', ' ']).ends_with('3'), "{row}");
    let (code, text, _) = ctl(&["flows", "db", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let flows = v["ok"]["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "{text}");
    assert_eq!(flows[0]["src"], "198.18.1.10:40000");
    assert_eq!(flows[0]["packets_orig"], 3);
    let (code, text, _) = ctl(&["stats"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("acl") && text.contains("policy generation"),
        "{text}"
    );

    // An invalid apply: strata check's errors, exit 1.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        POLICY.replace("ipv4 = \"198.18.1.11\"", "ipv4 = \"198.18.9.11\""),
    )
    .unwrap();
    let (code, _, err) = ctl(&["apply", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.toml:76:8: endpoint \"db\""), "{err}");
    let check = strata().arg("check").arg(&bad).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stderr).lines().next(),
        err.lines().next()
    );

    // Rule add / remove, endpoint add / remove, counters reset.
    let acl = dir.path().join("acl.toml");
    std::fs::write(
        &acl,
        "[[acl]]\nid = \"no-telnet-in\"\naction = \"block\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\nlocal_ports = [\"23\"]\n",
    )
    .unwrap();
    let (code, text, err) = ctl(&["rule", "add", "web", acl.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("changed ports: web"), "{text}");
    let (_, text, _) = ctl(&["layers", "web"]);
    assert!(text.contains("no-telnet-in"), "{text}");
    let (code, _, _) = ctl(&["rule", "remove", "web", "no-telnet-in", "--group", "acl-in"]);
    assert_eq!(code, Some(0));
    let ep = dir.path().join("ep.toml");
    std::fs::write(
        &ep,
        "[[endpoint]]\nname = \"extra\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:20\"\nipv4 = \"198.18.1.20\"\n",
    )
    .unwrap();
    let (code, text, err) = ctl(&["endpoint", "add", ep.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("added ports:   extra"), "{text}");
    let (code, text, _) = ctl(&["endpoint", "remove", "extra"]);
    assert_eq!(
        (code, text.contains("removed ports: extra")),
        (Some(0), true)
    );
    let (code, _, _) = ctl(&["endpoint", "remove", "extra"]);
    assert_eq!(code, Some(1));
    let stats = |text: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["ok"]["stats"].clone()
    };
    let (_, text, _) = ctl(&["stats", "--json"]);
    let before = stats(&text);
    assert_eq!(before["packets"], 6);
    let (code, _, _) = ctl(&["counters", "reset"]);
    assert_eq!(code, Some(0));
    let (_, text, _) = ctl(&["stats", "--json"]);
    let after = stats(&text);
    assert_eq!(after["packets"], 0);
    assert_eq!(
        after["connections"], before["connections"],
        "connections stay"
    );
}

#[test]
fn strata_ctl_without_a_service_is_a_runtime_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sock: PathBuf = dir.path().join("none.sock");
    let out = strata()
        .args(["ctl", "--socket", sock.to_str().unwrap(), "ports"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot talk to the service"));
}
