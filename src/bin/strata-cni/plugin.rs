//! The plugin itself (Unix only: veths, network namespaces, the Unix control socket).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde::Deserialize;
use serde_json::{Value, json};
use strata_control::protocol::{EndpointSpec, Reply, Request, Success};
use strata_control::socket::Client;

const SUPPORTED: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
const DEFAULT_SOCKET: &str = "/run/strata/strata.sock";

/// A CNI error: code (spec: 1 incompatible version, 4 invalid environment, 6 cannot
/// decode, 7 invalid configuration, 11 try again later; 100+ ours) and message.
struct CniError {
    code: u32,
    msg: String,
    details: String,
}

fn err(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError {
        code,
        msg: msg.into(),
        details: details.into(),
    }
}

/// Plugin-specific codes.
const E_INTERFACE: u32 = 100;
const E_IPAM: u32 = 101;
const E_SERVICE: u32 = 102;
const E_CHECK: u32 = 103;

#[derive(Deserialize)]
struct NetConf {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    socket: Option<PathBuf>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ipam: Option<Value>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Value>,
}

struct Env {
    command: String,
    container_id: String,
    netns: String,
    ifname: String,
    path: String,
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

pub fn main() -> ExitCode {
    let env = Env {
        command: env_var("CNI_COMMAND"),
        container_id: env_var("CNI_CONTAINERID"),
        netns: env_var("CNI_NETNS"),
        ifname: env_var("CNI_IFNAME"),
        path: env_var("CNI_PATH"),
    };
    let mut stdin = Vec::new();
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut stdin);
    let version = serde_json::from_slice::<Value>(&stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "1.0.0".into());
    let result = run(&env, &stdin);
    let mut out = std::io::stdout();
    match result {
        Ok(v) => {
            if !v.is_null() {
                let _ = writeln!(out, "{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let v =
                json!({"cniVersion": version, "code": e.code, "msg": e.msg, "details": e.details});
            let _ = writeln!(out, "{v}");
            ExitCode::from(1)
        }
    }
}

fn run(env: &Env, stdin: &[u8]) -> Result<Value, CniError> {
    if env.command == "VERSION" {
        return Ok(json!({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}));
    }
    let conf: NetConf = serde_json::from_slice(stdin)
        .map_err(|e| err(6, "cannot decode the network configuration", e.to_string()))?;
    if !conf.cni_version.is_empty() && !SUPPORTED.contains(&conf.cni_version.as_str()) {
        return Err(err(
            1,
            format!("CNI version {} is not supported", conf.cni_version),
            format!("supported: {}", SUPPORTED.join(", ")),
        ));
    }
    let need = |v: &str, name: &str| {
        if v.is_empty() {
            Err(err(4, format!("{name} is not set"), ""))
        } else {
            Ok(())
        }
    };
    need(&env.command, "CNI_COMMAND")?;
    need(&env.container_id, "CNI_CONTAINERID")?;
    match env.command.as_str() {
        "ADD" => {
            need(&env.netns, "CNI_NETNS")?;
            need(&env.ifname, "CNI_IFNAME")?;
            add(env, &conf, stdin)
        }
        "DEL" => del(env, &conf, stdin).map(|()| Value::Null),
        "CHECK" => {
            need(&env.netns, "CNI_NETNS")?;
            need(&env.ifname, "CNI_IFNAME")?;
            check(env, &conf).map(|()| Value::Null)
        }
        other => Err(err(4, format!("unknown CNI_COMMAND {other:?}"), "")),
    }
}

/// The endpoint's name in Strata, from the container id (stable across ADD and DEL).
fn endpoint_name(env: &Env) -> String {
    let id: String = env.container_id.chars().take(12).collect();
    format!("cni-{id}")
}

/// The host side's name: `st` and 11 hex digits of a hash of the container id and
/// interface (15 characters, the kernel's limit).
fn host_ifname(env: &Env) -> String {
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in env.container_id.bytes().chain(env.ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("st{:011x}", h & 0xfff_ffff_ffff)
}

fn socket_of(conf: &NetConf) -> PathBuf {
    conf.socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

fn network_of(conf: &NetConf) -> String {
    conf.network.clone().unwrap_or_else(|| conf.name.clone())
}

/// Runs a command; its stderr on failure.
fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command inside the container's network namespace.
fn in_netns(netns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    let net = format!("--net={netns}");
    let mut all = vec![net.as_str(), program];
    all.extend_from_slice(args);
    sh("nsenter", &all)
}

/// Turns segmentation and receive offloads off, when ethtool is there.
fn no_offloads(netns: Option<&str>, ifname: &str) {
    let args = ["-K", ifname, "tso", "off", "gso", "off", "gro", "off"];
    let _ = match netns {
        Some(ns) => in_netns(ns, "ethtool", &args),
        None => sh("ethtool", &args),
    };
}

/// The IPAM plugin of the configuration, found in `CNI_PATH`, run with the same
/// environment and configuration.
fn ipam(env: &Env, conf: &NetConf, stdin: &[u8], command: &str) -> Result<Value, CniError> {
    let Some(kind) = conf
        .ipam
        .as_ref()
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
    else {
        return Err(err(7, "the configuration has no ipam.type", ""));
    };
    if kind.contains('/') {
        return Err(err(
            7,
            format!("ipam.type {kind:?} is not a plugin name"),
            "",
        ));
    }
    let plugin = env
        .path
        .split(':')
        .map(|d| Path::new(d).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(
                E_IPAM,
                format!("IPAM plugin {kind:?} not found in CNI_PATH"),
                env.path.clone(),
            )
        })?;
    let mut child = Command::new(&plugin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            err(
                E_IPAM,
                format!("running {}", plugin.display()),
                e.to_string(),
            )
        })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|e| {
        err(
            E_IPAM,
            format!("running {}", plugin.display()),
            e.to_string(),
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The IPAM plugin's own CNI error, passed on.
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let msg = v
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("IPAM failed");
            return Err(err(E_IPAM, format!("{kind}: {msg}"), v.to_string()));
        }
        return Err(err(
            E_IPAM,
            format!("{kind} failed"),
            format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    if command == "DEL" || text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .map_err(|e| err(E_IPAM, format!("{kind}: bad result"), e.to_string()))
}

fn add(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<Value, CniError> {
    let host = host_ifname(env);
    let result = ipam(env, conf, stdin, "ADD")?;
    let done = configure(env, conf, &host, &result);
    if done.is_err() {
        // Leave nothing behind: the veth (its peer goes with it) and the addresses.
        let _ = sh("ip", &["link", "del", &host]);
        let _ = ipam(env, conf, stdin, "DEL");
    }
    done
}

/// The veth, the addresses and routes, and the endpoint attached; the CNI result.
fn configure(env: &Env, conf: &NetConf, host: &str, ipam: &Value) -> Result<Value, CniError> {
    let iface = |e: String| err(E_INTERFACE, "configuring the container's interface", e);
    let temp = format!("{host}c");
    let temp = &temp[..temp.len().min(15)];
    sh(
        "ip",
        &["link", "add", host, "type", "veth", "peer", "name", temp],
    )
    .map_err(iface)?;
    sh("ip", &["link", "set", temp, "netns", &env.netns]).map_err(iface)?;
    in_netns(
        &env.netns,
        "ip",
        &["link", "set", temp, "name", &env.ifname],
    )
    .map_err(iface)?;
    no_offloads(None, host);
    no_offloads(Some(&env.netns), &env.ifname);
    let ips: Vec<Value> = ipam
        .get("ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut v4 = None;
    let mut v6 = None;
    for ip in &ips {
        let Some(addr) = ip.get("address").and_then(Value::as_str) else {
            continue;
        };
        let bare = addr.split('/').next().unwrap_or(addr).to_string();
        if bare.contains(':') {
            v6.get_or_insert(bare);
            in_netns(
                &env.netns,
                "ip",
                &["-6", "addr", "add", addr, "dev", &env.ifname, "nodad"],
            )
            .map_err(iface)?;
        } else {
            v4.get_or_insert(bare);
            in_netns(&env.netns, "ip", &["addr", "add", addr, "dev", &env.ifname])
                .map_err(iface)?;
        }
    }
    if v4.is_none() && v6.is_none() {
        return Err(err(
            E_IPAM,
            "the IPAM plugin gave no address",
            ipam.to_string(),
        ));
    }
    in_netns(&env.netns, "ip", &["link", "set", &env.ifname, "up"]).map_err(iface)?;
    sh("ip", &["link", "set", host, "up"]).map_err(iface)?;
    let gateway_of = |family_v6: bool| {
        ips.iter()
            .filter_map(|i| i.get("gateway").and_then(Value::as_str))
            .find(|g| g.contains(':') == family_v6)
            .map(str::to_string)
    };
    for route in ipam
        .get("routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let Some(dst) = route.get("dst").and_then(Value::as_str) else {
            continue;
        };
        let v6 = dst.contains(':');
        let gw = route
            .get("gw")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| gateway_of(v6));
        let mut args = vec![if v6 { "-6" } else { "-4" }, "route", "add", dst];
        if let Some(g) = gw.as_deref() {
            args.extend(["via", g]);
        }
        args.extend(["dev", &env.ifname]);
        in_netns(&env.netns, "ip", &args).map_err(iface)?;
    }
    let mac = container_mac(&env.netns, &env.ifname).map_err(iface)?;
    let host_mac = container_mac_host(host).unwrap_or_default();

    let spec = EndpointSpec {
        name: endpoint_name(env),
        network: network_of(conf),
        mac: mac.clone(),
        ipv4: v4,
        ipv6: v6,
        interface: Some(host.to_string()),
    };
    call(conf, &Request::EndpointAttach { endpoint: spec })?;

    let mut result = ipam.clone();
    let ips: Vec<Value> = ips
        .into_iter()
        .map(|mut i| {
            i["interface"] = json!(1);
            i
        })
        .collect();
    result["cniVersion"] = json!(if conf.cni_version.is_empty() {
        "1.0.0"
    } else {
        &conf.cni_version
    });
    result["interfaces"] = json!([
        {"name": host, "mac": host_mac},
        {"name": env.ifname, "mac": mac, "sandbox": env.netns},
    ]);
    result["ips"] = json!(ips);
    Ok(result)
}

/// The MAC of an interface in a namespace (`ip -j`: /sys shows the host's there).
fn container_mac(netns: &str, ifname: &str) -> Result<String, String> {
    let text = in_netns(netns, "ip", &["-j", "link", "show", ifname])?;
    mac_of(&text).ok_or_else(|| format!("no MAC for {ifname}: {text}"))
}

fn container_mac_host(ifname: &str) -> Option<String> {
    mac_of(&sh("ip", &["-j", "link", "show", ifname]).ok()?)
}

fn mac_of(ip_json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(ip_json).ok()?;
    Some(v.get(0)?.get("address")?.as_str()?.to_string())
}

/// One request to the service.
fn call(conf: &NetConf, request: &Request) -> Result<Success, CniError> {
    let socket = socket_of(conf);
    let reply = Client::connect(&socket)
        .and_then(|mut c| c.call(request))
        .map_err(|e| {
            err(
                11,
                format!("cannot reach the Strata service on {}", socket.display()),
                e.to_string(),
            )
        })?;
    match reply {
        Reply::Ok { ok } => Ok(ok),
        Reply::Err { error } => {
            let details: Vec<String> = error.errors.iter().map(|e| e.to_string()).collect();
            Err(err(E_SERVICE, error.message, details.join("\n")))
        }
    }
}

fn del(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    // Detach: an endpoint already gone, or a service not running, leaves nothing to do.
    let name = endpoint_name(env);
    match call(conf, &Request::EndpointRemove { name: name.clone() }) {
        Ok(_) => {}
        Err(e) if e.code == 11 || e.msg.contains("no endpoint named") => {}
        Err(e) => return Err(e),
    }
    let host = host_ifname(env);
    if sh("ip", &["link", "show", &host]).is_ok() {
        sh("ip", &["link", "del", &host]).map_err(|e| err(E_INTERFACE, "deleting the veth", e))?;
    }
    if conf.ipam.is_some() {
        ipam(env, conf, stdin, "DEL")?;
    }
    Ok(())
}

fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let mac = container_mac(&env.netns, &env.ifname).map_err(|e| {
        err(
            E_CHECK,
            format!("{} is missing in the container", env.ifname),
            e,
        )
    })?;
    if let Some(prev) = &conf.prev_result {
        let addrs =
            in_netns(&env.netns, "ip", &["-j", "addr", "show", &env.ifname]).unwrap_or_default();
        for ip in prev
            .get("ips")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let Some(a) = ip.get("address").and_then(Value::as_str) else {
                continue;
            };
            let bare = a.split('/').next().unwrap_or(a);
            if !addrs.contains(&format!("\"{bare}\"")) {
                return Err(err(
                    E_CHECK,
                    format!("address {a} is missing on {}", env.ifname),
                    "",
                ));
            }
        }
    }
    let name = endpoint_name(env);
    let ports = match call(conf, &Request::Ports)? {
        Success::Ports(p) => p,
        _ => Vec::new(),
    };
    let Some(p) = ports.iter().find(|p| p.name == name) else {
        return Err(err(
            E_CHECK,
            format!("endpoint {name} is not attached to the service"),
            "",
        ));
    };
    if p.mac != mac || p.interface.as_deref() != Some(host_ifname(env).as_str()) {
        return Err(err(
            E_CHECK,
            format!("endpoint {name} does not match the container's interface"),
            format!("service: {} on {:?}; container: {mac}", p.mac, p.interface),
        ));
    }
    Ok(())
}
