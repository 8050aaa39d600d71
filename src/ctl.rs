//! `strata ctl`: the control socket's client (DESIGN §4) — see and change what a running
//! service does, the way `vfpctrl` and `ovs-appctl` do: ports, layers with hit counters,
//! connections, totals; whole policies, endpoints and rules. Human tables by default,
//! the service's JSON with `--json`.

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Subcommand};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use strata_control::protocol::{
    Document, ErrorKind, FlowInfo, LayerInfo, PortInfo, Reply, Request, StatsInfo, Success, Updated,
};
use strata_control::socket::Client;

use crate::Failure;

use strata_control::protocol::DEFAULT_SOCKET;

#[derive(ClapArgs)]
pub struct Args {
    /// The service's control socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the service's JSON reply instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Endpoint ports: interface, MAC, IPs, network, isolation, counters.
    Ports,
    /// A port's layers, groups and rules, with hit counters.
    Layers { port: String },
    /// Recorded connections (5-tuple, rewrite, age, packets), of one port or all.
    Flows { port: Option<String> },
    /// Totals, drops by reason, tables, policy generation, updates.
    Stats,
    /// Replace the whole policy (TOML or HNS JSON), atomically.
    Apply { file: PathBuf },
    /// Add or remove endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Add ACLs to an endpoint, or remove a rule (its group is replaced as a whole).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Counters.
    #[command(subcommand)]
    Counters(CountersCommand),
}

#[derive(Subcommand)]
enum EndpointCommand {
    /// Add the endpoints of FILE (TOML [[endpoint]] tables, or HNS endpoint JSON).
    Add { file: PathBuf },
    /// Remove an endpoint.
    Remove { name: String },
}

#[derive(Subcommand)]
enum RuleCommand {
    /// Add the ACLs of FILE ([[acl]] tables, or HNS ACL policy JSON) to PORT.
    Add { port: String, file: PathBuf },
    /// Remove rule RULE of PORT.
    Remove {
        port: String,
        rule: String,
        #[arg(long)]
        layer: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
enum CountersCommand {
    /// Zero every counter (ports, rules, totals); flows and connections stay.
    Reset,
}

fn document(file: &Path) -> Result<Document, Failure> {
    let name = file.display().to_string();
    let bytes =
        std::fs::read(file).map_err(|e| Failure::Input(format!("cannot read {name}: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| Failure::Input(format!("{name}: not UTF-8 text")))?;
    Ok(Document::new(name, text))
}

pub fn run(args: Args) -> Result<(), Failure> {
    let request = match args.command {
        Command::Ports => Request::Ports,
        Command::Layers { port } => Request::Layers { port },
        Command::Flows { port } => Request::Flows { port },
        Command::Stats => Request::Stats,
        Command::Apply { file } => Request::Apply {
            document: document(&file)?,
        },
        Command::Endpoint(EndpointCommand::Add { file }) => Request::EndpointAdd {
            document: document(&file)?,
        },
        Command::Endpoint(EndpointCommand::Remove { name }) => Request::EndpointRemove { name },
        Command::Rule(RuleCommand::Add { port, file }) => Request::RuleAdd {
            port,
            document: document(&file)?,
        },
        Command::Rule(RuleCommand::Remove {
            port,
            rule,
            layer,
            group,
        }) => Request::RuleRemove {
            port,
            rule,
            layer,
            group,
        },
        Command::Counters(CountersCommand::Reset) => Request::CountersReset,
    };
    let socket = args.socket.display().to_string();
    let reply = Client::connect(&args.socket)
        .and_then(|mut c| c.call(&request))
        .map_err(|e| {
            Failure::Runtime(format!(
                "cannot talk to the service on {socket}: {e} (is `strata run` running? --socket names another socket)"
            ))
        })?;
    if args.json {
        let text = serde_json::to_string_pretty(&reply).unwrap_or_default();
        println!("{text}");
        return match reply {
            Reply::Ok { .. } => Ok(()),
            Reply::Err { error } => Err(failure(error.kind, error.message)),
        };
    }
    match reply {
        Reply::Ok { ok } => {
            print!("{}", render(&ok));
            Ok(())
        }
        Reply::Err { error } => {
            for e in &error.errors {
                eprintln!("{e}");
            }
            Err(failure(error.kind, error.message))
        }
    }
}

fn failure(kind: ErrorKind, message: String) -> Failure {
    match kind {
        ErrorKind::Invalid | ErrorKind::Request => Failure::Input(message),
        ErrorKind::Runtime => Failure::Runtime(message),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !header.is_empty() {
        t.set_header(header.to_vec());
    }
    t
}

/// Right-aligns the given columns (numbers).
fn numeric(t: &mut Table, columns: &[usize]) {
    for &c in columns {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// The text `strata ctl` prints for a reply.
pub fn render(ok: &Success) -> String {
    match ok {
        Success::Ports(p) => ports(p),
        Success::Layers(l) => layers(l),
        Success::Flows(f) => flows(f),
        Success::Stats(s) => stats(s),
        Success::Updated(u) => updated(u),
        Success::CountersReset => "counters reset\n".into(),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

fn ports(ports: &[PortInfo]) -> String {
    let mut t = table(&[
        "port",
        "interface",
        "mac",
        "ips",
        "network",
        "isolation",
        "gen",
        "rules",
        "out",
        "in",
        "dropped",
        "fast path",
        "flows",
        "conns",
    ]);
    for p in ports {
        let c = &p.counters;
        t.add_row(vec![
            p.name.clone(),
            p.interface.clone().unwrap_or_else(|| "-".into()),
            p.mac.clone(),
            p.ips.join(", "),
            p.network.clone(),
            p.isolation.clone(),
            p.generation.to_string(),
            p.rules.to_string(),
            c.packets_out.to_string(),
            c.packets_in.to_string(),
            c.dropped.to_string(),
            percent(c.fast_path, c.fast_path + c.slow_path),
            p.flows.to_string(),
            p.connections.to_string(),
        ]);
    }
    numeric(&mut t, &[6, 7, 8, 9, 10, 11, 12, 13]);
    format!("{t}\n")
}

fn layers(layers: &[LayerInfo]) -> String {
    let mut out = String::new();
    for l in layers {
        let mut t = table(&[
            "group",
            "dir",
            "rule",
            "prio",
            "conditions",
            "action",
            "flags",
            "hits",
        ]);
        for g in &l.groups {
            let group = match &g.condition {
                Some(c) => format!("{} [{c}]", g.name),
                None => g.name.clone(),
            };
            if g.rules.is_empty() {
                t.add_row(vec![
                    group.clone(),
                    g.direction.clone(),
                    "(no rules)".into(),
                ]);
            }
            for r in &g.rules {
                let mut flags = Vec::new();
                if r.terminating {
                    flags.push("terminating");
                }
                if r.stateful {
                    flags.push("stateful");
                }
                t.add_row(vec![
                    group.clone(),
                    g.direction.clone(),
                    r.id.clone(),
                    r.priority.to_string(),
                    r.conditions.clone(),
                    r.action.clone(),
                    flags.join(","),
                    r.hits.to_string(),
                ]);
            }
        }
        for (dir, defaults) in [("out", &l.defaults_out), ("in", &l.defaults_in)] {
            for d in defaults {
                t.add_row(vec![
                    "(default)".to_string(),
                    dir.to_string(),
                    d.name.clone(),
                    String::new(),
                    d.conditions.clone(),
                    d.action.clone(),
                    String::new(),
                    d.hits.to_string(),
                ]);
            }
        }
        numeric(&mut t, &[3, 7]);
        out += &format!("layer {}\n{t}\n", l.name);
    }
    out
}

fn flows(flows: &[FlowInfo]) -> String {
    let mut t = table(&[
        "port",
        "dir",
        "proto",
        "source",
        "destination",
        "rewritten",
        "state",
        "age s",
        "idle s",
        "pkts",
        "replies",
    ]);
    for f in flows {
        let rewritten = match (&f.rewritten_src, &f.rewritten_dst) {
            (None, None) => "-".to_string(),
            (s, d) => format!(
                "{} -> {}",
                s.as_deref().unwrap_or(&f.src),
                d.as_deref().unwrap_or(&f.dst)
            ),
        };
        t.add_row(vec![
            f.port.clone(),
            f.direction.clone(),
            protocol(f.protocol),
            f.src.clone(),
            f.dst.clone(),
            rewritten,
            f.state.clone(),
            format!("{:.1}", f.age_s),
            format!("{:.1}", f.idle_s),
            f.packets_orig.to_string(),
            f.packets_reply.to_string(),
        ]);
    }
    numeric(&mut t, &[7, 8, 9, 10]);
    format!("{t}\n{} connections\n", flows.len())
}

fn protocol(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}

fn stats(s: &StatsInfo) -> String {
    let mut t = table(&[]);
    let rows: Vec<(&str, String)> = vec![
        ("packets", s.packets.to_string()),
        ("forwarded", s.forwarded.to_string()),
        ("dropped", s.dropped.to_string()),
        ("arp replies", s.arp_replies.to_string()),
        (
            "fast path",
            format!(
                "{} ({})",
                s.fast_path,
                percent(s.fast_path, s.fast_path + s.slow_path)
            ),
        ),
        ("slow path", s.slow_path.to_string()),
        ("flows", s.flows.to_string()),
        ("connections", s.connections.to_string()),
        ("ports", s.ports.to_string()),
        ("workers", s.workers.to_string()),
        ("policy generation", s.generation.to_string()),
        ("updates applied", s.updates.applied.to_string()),
        ("updates refused", s.updates.refused.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    numeric(&mut t, &[1]);
    let mut out = format!("{t}\n");
    if !s.drops.is_empty() {
        let mut d = table(&["drop reason", "packets"]);
        for (r, n) in &s.drops {
            d.add_row(vec![r.clone(), n.to_string()]);
        }
        numeric(&mut d, &[1]);
        out += &format!("{d}\n");
    }
    if !s.top_rules.is_empty() {
        let mut r = table(&["rule (port/layer/group/rule)", "packets decided"]);
        for (name, n) in &s.top_rules {
            r.add_row(vec![name.clone(), n.to_string()]);
        }
        numeric(&mut r, &[1]);
        out += &format!("{r}\n");
    }
    out
}

fn updated(u: &Updated) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "published: policy generation {} in {} µs\n  changed ports: {}\n  added ports:   {}\n  removed ports: {}\n",
        u.generation,
        u.publish_us,
        list(&u.changed_ports),
        list(&u.added_ports),
        list(&u.removed_ports)
    )
}
