//! Validation and compilation: from the raw file types of [`super::raw`] to the object
//! model. Both happen in one walk so that every check sees the parsed values it needs,
//! and every error is recorded (with its span) instead of stopping at the first.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::values::{self, Items, Scalar};
use super::{Diagnostics, raw};
use crate::model::{
    Action, Backend, Conditions, DefaultPolicy, DefaultRule, Defaults, Distribution, Driver, Group,
    GroupDirection, IpPrefix, Isolation, Layer, LoadBalancer, LoadBalancerPolicy, Mac, Network,
    OutboundNat, Policy, Port, PortMapping, PortRange, RemoteRoute, Rule, Uplink, VXLAN_PORT,
    proto,
};

/// Priority of an ACL or rule that does not give one. Lower wins; ties go to the one
/// written first, so a file without priorities reads top to bottom.
pub const DEFAULT_PRIORITY: u32 = 100;

/// Name of the layer that holds the endpoint's HNS ACLs and default profile.
pub const ACL_LAYER: &str = "acl";
/// Group of the `acl` layer holding the ACLs with `direction = "out"`.
pub const ACL_OUT_GROUP: &str = "acl-out";
/// Group of the `acl` layer holding the ACLs with `direction = "in"`.
pub const ACL_IN_GROUP: &str = "acl-in";
/// Name of the load-balancing layer, present on every port when the policy has
/// `[[load_balancer]]`s; its one group is [`LB_GROUP`].
pub const LB_LAYER: &str = "lb";
/// The outbound group of the `lb` layer: one rule per load balancer, id = its name.
pub const LB_GROUP: &str = "lb";
/// Name of the NAT layer, on endpoints of a `nat` network or of a network with
/// OutboundNAT.
pub const NAT_LAYER: &str = "nat";
/// Source ports that NAT allocates from.
pub const NAT_PORTS: PortRange = PortRange {
    lo: 1024,
    hi: 65535,
};

fn acl_action(a: raw::Action) -> Action {
    match a {
        raw::Action::Allow => Action::Allow,
        raw::Action::Block => Action::Block,
    }
}

fn driver(d: raw::Driver) -> Driver {
    match d {
        raw::Driver::Nat => Driver::Nat,
        raw::Driver::Transparent => Driver::Transparent,
        raw::Driver::L2bridge => Driver::L2Bridge,
        raw::Driver::L2tunnel => Driver::L2Tunnel,
        raw::Driver::Overlay => Driver::Overlay,
    }
}

fn isolation(i: raw::Isolation) -> Isolation {
    match i {
        raw::Isolation::Process => Isolation::Process,
        raw::Isolation::ProcessLegacy => Isolation::ProcessLegacy,
        raw::Isolation::Hyperv => Isolation::HyperV,
    }
}

fn conditions_on(protocol: u8, dst_port: Option<PortRange>) -> Conditions {
    Conditions {
        protocol: vec![protocol],
        dst_port: dst_port.into_iter().collect(),
        ..Conditions::default()
    }
}

fn allow_entry(name: &str, conditions: Conditions) -> DefaultRule {
    DefaultRule {
        name: name.to_owned(),
        conditions,
        action: Action::Allow,
    }
}

/// The defaults of an endpoint's `acl` layer: its isolation profile (DESIGN §1).
///
/// Outbound is always allow-all. Inbound: `process` allows TCP, UDP, ICMP, ICMPv6 and
/// IGMP; `process-legacy` allows ICMP, ICMPv6, DHCP, DHCPv6, DNS and the internal port of
/// each port mapping (one entry per protocol and port); `hyperv` allows all; and an
/// endpoint on an `overlay` network allows all whatever its isolation. The entry names
/// (`tcp`, `dhcp`, `port-mapping:tcp/80`, ...) show up in verdicts.
pub fn acl_profile(
    isolation: Isolation,
    driver: Option<Driver>,
    port_mappings: &[PortMapping],
) -> Defaults {
    let inbound = if driver == Some(Driver::Overlay) {
        DefaultPolicy::allow_all()
    } else {
        match isolation {
            Isolation::Process => DefaultPolicy {
                entries: [
                    ("tcp", proto::TCP),
                    ("udp", proto::UDP),
                    ("icmp", proto::ICMP),
                    ("icmpv6", proto::ICMPV6),
                    ("igmp", proto::IGMP),
                ]
                .into_iter()
                .map(|(name, p)| allow_entry(name, conditions_on(p, None)))
                .collect(),
                otherwise: Action::Block,
            },
            Isolation::ProcessLegacy => {
                let range = |lo, hi| Some(PortRange { lo, hi });
                let mut entries = vec![
                    allow_entry("icmp", conditions_on(proto::ICMP, None)),
                    allow_entry("icmpv6", conditions_on(proto::ICMPV6, None)),
                    allow_entry("dhcp", conditions_on(proto::UDP, range(67, 68))),
                    allow_entry("dhcpv6", conditions_on(proto::UDP, range(546, 547))),
                    allow_entry("dns-udp", conditions_on(proto::UDP, range(53, 53))),
                    allow_entry("dns-tcp", conditions_on(proto::TCP, range(53, 53))),
                ];
                for pm in port_mappings {
                    let p = if pm.protocol == proto::UDP {
                        "udp"
                    } else {
                        "tcp"
                    };
                    let name = format!("port-mapping:{p}/{}", pm.internal_port);
                    if entries.iter().all(|e| e.name != name) {
                        let port = Some(PortRange::single(pm.internal_port));
                        entries.push(allow_entry(&name, conditions_on(pm.protocol, port)));
                    }
                }
                DefaultPolicy {
                    entries,
                    otherwise: Action::Block,
                }
            }
            Isolation::HyperV => DefaultPolicy::allow_all(),
        }
    };
    Defaults {
        outbound: DefaultPolicy::allow_all(),
        inbound,
    }
}

/// Parses every item of a list field; bad items are reported and skipped.
fn list<T>(
    d: &mut Diagnostics,
    object: &str,
    field: &str,
    value: Option<&Spanned<Items>>,
    parse: impl Fn(&Scalar) -> Result<T, String>,
) -> Vec<T> {
    let Some(value) = value else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (item, span) in value.get_ref().iter_with(&value.span()) {
        match parse(&item) {
            Ok(v) => out.push(v),
            Err(m) => d.error(span, object, format!("{field}: {m}")),
        }
    }
    out
}

fn has_items(value: Option<&Spanned<Items>>) -> bool {
    value.is_some_and(|v| !v.get_ref().iter_with(&v.span()).is_empty())
}

/// An integer field in `lo..=hi`, reported at its span if not.
fn int_field(
    d: &mut Diagnostics,
    object: &str,
    field: &str,
    value: &Spanned<i64>,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let v = *value.get_ref();
    if v < lo || v > hi {
        d.error(
            value.span(),
            object,
            format!("{field} {v} is out of range {lo}..={hi}"),
        );
        None
    } else {
        Some(v)
    }
}

fn priority(d: &mut Diagnostics, object: &str, value: Option<&Spanned<i64>>) -> u32 {
    value
        .and_then(|p| int_field(d, object, "priority", p, 0, u32::MAX.into()))
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(DEFAULT_PRIORITY)
}

fn int_item<T: TryFrom<i128>>(s: &Scalar, what: &str, lo: i128, hi: i128) -> Result<T, String> {
    values::int_in(s, what, lo, hi)
        .and_then(|n| T::try_from(n).map_err(|_| format!("{what} {n} is out of range")))
}

fn conditions(d: &mut Diagnostics, object: &str, c: &raw::Conditions) -> Conditions {
    Conditions {
        src_ip: list(
            d,
            object,
            "src_addresses",
            c.src_addresses.as_ref(),
            values::prefix,
        ),
        dst_ip: list(
            d,
            object,
            "dst_addresses",
            c.dst_addresses.as_ref(),
            values::prefix,
        ),
        src_port: list(
            d,
            object,
            "src_ports",
            c.src_ports.as_ref(),
            values::port_range,
        ),
        dst_port: list(
            d,
            object,
            "dst_ports",
            c.dst_ports.as_ref(),
            values::port_range,
        ),
        protocol: list(
            d,
            object,
            "protocols",
            c.protocols.as_ref(),
            values::protocol,
        ),
        icmp_type: list(d, object, "icmp_types", c.icmp_types.as_ref(), |s| {
            int_item(s, "ICMP type", 0, 255)
        }),
        icmp_code: list(d, object, "icmp_codes", c.icmp_codes.as_ref(), |s| {
            int_item(s, "ICMP code", 0, 255)
        }),
        src_mac: list(d, object, "src_macs", c.src_macs.as_ref(), values::mac),
        dst_mac: list(d, object, "dst_macs", c.dst_macs.as_ref(), values::mac),
        vlan: list(d, object, "vlans", c.vlans.as_ref(), |s| {
            int_item(s, "VLAN ID", 1, 4094)
        }),
        vni: list(d, object, "vnis", c.vnis.as_ref(), |s| {
            int_item(s, "VNI", 1, 16_777_215)
        }),
    }
}

/// A MAC a port may own: unicast and not all-zero.
fn port_mac(s: &str) -> Result<Mac, String> {
    let mac: Mac = s.parse()?;
    if mac.is_group() {
        return Err(format!(
            "`{s}` is a multicast or broadcast MAC; a port needs a unicast MAC"
        ));
    }
    if mac == Mac::ZERO {
        return Err("the all-zero MAC cannot identify a port".into());
    }
    Ok(mac)
}

/// What the compiler remembers of a network while it checks endpoints.
struct NetworkInfo {
    driver: Driver,
    subnets: Vec<IpPrefix>,
    gateway: Option<IpAddr>,
    outbound_nat: Option<OutboundNat>,
}

/// Whether two prefixes share an address (never across families).
fn overlaps(a: &IpPrefix, b: &IpPrefix) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

fn family(ip_v4: bool) -> &'static str {
    if ip_v4 { "IPv4" } else { "IPv6" }
}

/// Who already owns a name, an address or a MAC, for "duplicate" messages.
type Owners<K> = HashMap<K, String>;

fn claim<K: std::hash::Hash + Eq>(owners: &mut Owners<K>, key: K, owner: String) -> Option<String> {
    match owners.get(&key) {
        Some(first) => Some(first.clone()),
        None => {
            owners.insert(key, owner);
            None
        }
    }
}

fn compile_uplink(d: &mut Diagnostics, host: Option<Spanned<raw::Host>>) -> Uplink {
    let mut uplink = Uplink::default();
    let Some(host) = host else {
        return uplink;
    };
    let host = host.into_inner();
    let object = "host";
    if let Some(name) = host.name {
        if name.get_ref().trim().is_empty() {
            d.error(name.span(), object, "name must not be empty");
        } else {
            uplink.name = name.into_inner();
        }
    }
    if let Some(mac) = host.mac {
        match port_mac(mac.get_ref()) {
            Ok(m) => uplink.mac = m,
            Err(m) => d.error(mac.span(), object, format!("mac: {m}")),
        }
    }
    for a in &host.addresses {
        match values::address(a.get_ref()) {
            Ok(ip) if uplink.ips.contains(&ip) => {
                d.error(a.span(), object, format!("address {ip} is listed twice"))
            }
            Ok(ip) => uplink.ips.push(ip),
            Err(m) => d.error(a.span(), object, format!("addresses: {m}")),
        }
    }
    if let Some(mtu) = &host.mtu
        && let Some(v) = int_field(d, object, "mtu", mtu, 576, 9216)
        && let Ok(v) = u16::try_from(v)
    {
        uplink.mtu = v;
    }
    uplink.interface = host.interface;
    uplink
}

fn compile_networks(
    d: &mut Diagnostics,
    raws: Vec<Spanned<raw::Network>>,
    host_has_ipv4: bool,
) -> (Vec<Network>, HashMap<String, NetworkInfo>) {
    let mut networks = Vec::new();
    let mut infos: HashMap<String, NetworkInfo> = HashMap::new();
    let mut names: Owners<String> = HashMap::new();
    let mut nat: Option<String> = None;
    let mut vnis: Owners<u32> = HashMap::new();
    for n in raws {
        let span = n.span();
        let n = n.into_inner();
        let name = n.name.get_ref().clone();
        let object = format!("network {name:?}");
        let here = format!("network {name:?} at line {}", d.line_of(span.start));
        let mut usable = true;
        if name.trim().is_empty() {
            d.error(n.name.span(), &object, "name must not be empty");
            usable = false;
        } else if let Some(first) = claim(&mut names, name.clone(), here.clone()) {
            d.error(
                n.name.span(),
                &object,
                format!("duplicate network name: {first} has it already"),
            );
            usable = false;
        }
        let drv = n
            .driver
            .as_ref()
            .map_or(Driver::Nat, |d| driver(*d.get_ref()));
        let driver_span = n.driver.as_ref().map_or(n.name.span(), |d| d.span());
        if drv == Driver::Nat {
            match &nat {
                Some(first) => d.error(
                    driver_span.clone(),
                    &object,
                    format!("only one NAT network per host ({first} is one already)"),
                ),
                None => nat = Some(here.clone()),
            }
            if !host_has_ipv4 {
                d.error(
                    driver_span.clone(),
                    &object,
                    "a NAT network needs an IPv4 host address in [host] addresses \
                     (WinNAT translates to it)",
                );
            }
        }
        let mut subnets = Vec::new();
        for s in n.subnet.iter().chain(&n.subnets) {
            match s.get_ref().parse::<IpPrefix>() {
                Ok(p) if subnets.contains(&p) => {
                    d.error(s.span(), &object, format!("subnet {p} is listed twice"))
                }
                Ok(p) => subnets.push(p),
                Err(m) => d.error(s.span(), &object, format!("subnet: {m}")),
            }
        }
        if n.subnet.is_none() && n.subnets.is_empty() {
            d.error(
                n.name.span(),
                &object,
                "a network needs at least one subnet (`subnets = [\"198.18.1.0/24\"]`)",
            );
        }
        let mut gateway = None;
        if let Some(g) = &n.gateway {
            match values::address(g.get_ref()) {
                Ok(ip) if !subnets.is_empty() && !subnets.iter().any(|p| p.contains(ip)) => d
                    .error(
                        g.span(),
                        &object,
                        format!("gateway {ip} is outside the network's subnets"),
                    ),
                Ok(ip) => gateway = Some(ip),
                Err(m) => d.error(g.span(), &object, format!("gateway: {m}")),
            }
        }
        let vlan = n
            .vlan
            .as_ref()
            .and_then(|v| int_field(d, &object, "vlan", v, 1, 4094))
            .and_then(|v| u16::try_from(v).ok());
        let vni = n
            .vni
            .as_ref()
            .and_then(|v| int_field(d, &object, "vni", v, 1, 16_777_215))
            .and_then(|v| u32::try_from(v).ok());
        match (&n.vni, drv) {
            (None, Driver::Overlay) => d.error(
                n.name.span(),
                &object,
                "an overlay network needs a vni (its VXLAN network identifier)",
            ),
            (Some(v), other) if other != Driver::Overlay => d.error(
                v.span(),
                &object,
                format!(
                    "vni is only for overlay networks; this one is {}",
                    other.as_str()
                ),
            ),
            _ => {}
        }
        if let (Some(v), Some(span)) = (vni, n.vni.as_ref().map(|v| v.span()))
            && let Some(first) = claim(&mut vnis, v, here.clone())
        {
            d.error(span, &object, format!("vni {v} is already used by {first}"));
        }
        let not_for = |what: &str, drivers: &str| {
            format!(
                "{what} is only for {drivers} networks; this one is {}",
                drv.as_str()
            )
        };
        let vxlan_port = n
            .vxlan_port
            .as_ref()
            .and_then(|v| int_field(d, &object, "vxlan_port", v, 1, 65535))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(VXLAN_PORT);
        if let Some(v) = &n.vxlan_port
            && drv != Driver::Overlay
        {
            d.error(v.span(), &object, not_for("vxlan_port", "overlay"));
        }
        let mut outbound_nat = None;
        if let Some(on) = &n.outbound_nat {
            let oobj = format!("{object} outbound_nat");
            if !matches!(drv, Driver::Overlay | Driver::L2Bridge) {
                d.error(
                    on.span(),
                    &oobj,
                    not_for("outbound_nat", "overlay and l2bridge"),
                );
            }
            let on = on.get_ref();
            let exceptions = list(
                d,
                &oobj,
                "exceptions",
                on.exceptions.as_ref(),
                values::prefix,
            );
            match values::address(on.vip.get_ref()) {
                Ok(vip) => outbound_nat = Some(OutboundNat { vip, exceptions }),
                Err(m) => d.error(on.vip.span(), &oobj, format!("vip: {m}")),
            }
        }
        let mut remote_routes: Vec<RemoteRoute> = Vec::new();
        let mut seen: Vec<IpPrefix> = Vec::new();
        for (i, route) in n.remote_subnet_route.iter().enumerate() {
            let robj = format!("{object} remote_subnet_route #{}", i + 1);
            if drv != Driver::Overlay {
                d.error(
                    route.span(),
                    &robj,
                    not_for("remote_subnet_route", "overlay"),
                );
            }
            let route = route.get_ref();
            let at = route.prefix.span();
            let prefix = match route.prefix.get_ref().parse::<IpPrefix>() {
                Err(m) => {
                    d.error(at, &robj, format!("prefix: {m}"));
                    None
                }
                Ok(p)
                    if !subnets.is_empty()
                        && subnets.iter().all(|s| s.is_ipv4() != p.is_ipv4()) =>
                {
                    d.error(
                        at,
                        &robj,
                        format!(
                            "prefix {p} is {} but the network has no {} subnet",
                            family(p.is_ipv4()),
                            family(p.is_ipv4())
                        ),
                    );
                    None
                }
                Ok(p) => {
                    if let Some(s) = subnets.iter().find(|s| overlaps(s, &p)) {
                        d.error(
                            at,
                            &robj,
                            format!(
                                "prefix {p} overlaps the network's own subnet {s}: remote routes \
                                 are for addresses on other hosts"
                            ),
                        );
                        None
                    } else if let Some(r) = seen.iter().find(|r| overlaps(r, &p)) {
                        d.error(
                            at,
                            &robj,
                            format!("prefix {p} overlaps the remote route {r}"),
                        );
                        None
                    } else {
                        seen.push(p);
                        Some(p)
                    }
                }
            };
            let provider = match values::address(route.provider_address.get_ref()) {
                Ok(ip) => Some(ip),
                Err(m) => {
                    d.error(
                        route.provider_address.span(),
                        &robj,
                        format!("provider_address: {m}"),
                    );
                    None
                }
            };
            let mac = match &route.mac {
                None => Some(None),
                Some(m) => match port_mac(m.get_ref()) {
                    Ok(m) => Some(Some(m)),
                    Err(e) => {
                        d.error(m.span(), &robj, format!("mac: {e}"));
                        None
                    }
                },
            };
            if let (Some(prefix), Some(provider_address), Some(mac)) = (prefix, provider, mac) {
                remote_routes.push(RemoteRoute {
                    prefix,
                    provider_address,
                    mac,
                });
            }
        }
        if usable {
            infos.insert(
                name.clone(),
                NetworkInfo {
                    driver: drv,
                    subnets: subnets.clone(),
                    gateway,
                    outbound_nat: outbound_nat.clone(),
                },
            );
        }
        networks.push(Network {
            name,
            driver: drv,
            subnets,
            gateway,
            vlan,
            vni,
            vxlan_port,
            outbound_nat,
            remote_routes,
        });
    }
    (networks, infos)
}

/// Host-wide claims that endpoints must not share.
struct Claims {
    names: Owners<String>,
    ips: Owners<IpAddr>,
    macs: Owners<Mac>,
    /// (protocol, external port) of port mappings.
    external_ports: Owners<(u8, u16)>,
}

/// A backend: `ip:port`, `[ipv6]:port` or a bare address (port 0 = keep).
fn backend(s: &str) -> Result<Backend, String> {
    let t = s.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Backend { ip, port: 0 });
    }
    t.parse::<std::net::SocketAddr>()
        .map(|a| Backend {
            ip: a.ip(),
            port: a.port(),
        })
        .map_err(|_| {
            format!(
                "`{s}` is not a backend: write `198.18.1.10:80`, `[2001:db8::5]:8080` or a bare address"
            )
        })
}

/// The `[[load_balancer]]`s, in file order, and by name for `load-balance` rules.
fn compile_load_balancers(
    d: &mut Diagnostics,
    raws: Vec<Spanned<raw::LoadBalancer>>,
) -> (Vec<LoadBalancerPolicy>, HashMap<String, LoadBalancer>) {
    let mut policies = Vec::new();
    let mut by_name = HashMap::new();
    let mut names: Owners<String> = HashMap::new();
    let mut frontends: Owners<(u8, IpAddr, u16)> = HashMap::new();
    for lb in raws {
        let lb = lb.into_inner();
        let name = lb.name.get_ref().clone();
        let object = format!("load_balancer {name:?}");
        if name.trim().is_empty() {
            d.error(lb.name.span(), &object, "name must not be empty");
        } else if let Some(first) = claim(
            &mut names,
            name.clone(),
            format!(
                "the load balancer at line {}",
                d.line_of(lb.name.span().start)
            ),
        ) {
            d.error(
                lb.name.span(),
                &object,
                format!("duplicate load balancer name: {first} has it"),
            );
        }
        let (protocol, pname) = match lb.protocol.as_ref().map(|p| *p.get_ref()) {
            Some(raw::LbProtocol::Udp) => (proto::UDP, "udp"),
            Some(raw::LbProtocol::Tcp) | None => (proto::TCP, "tcp"),
        };
        let vip = match values::address(lb.vip.get_ref()) {
            Ok(ip) => Some(ip),
            Err(m) => {
                d.error(lb.vip.span(), &object, format!("vip: {m}"));
                None
            }
        };
        let port =
            int_field(d, &object, "port", &lb.port, 1, 65535).and_then(|p| u16::try_from(p).ok());
        let mut backends: Vec<Backend> = Vec::new();
        for b in &lb.backends {
            match backend(b.get_ref()) {
                Ok(be) if vip.is_some_and(|v| v.is_ipv4() != be.ip.is_ipv4()) => d.error(
                    b.span(),
                    &object,
                    format!(
                        "backend {} is {} but the vip is {}",
                        b.get_ref(),
                        family(be.ip.is_ipv4()),
                        family(!be.ip.is_ipv4())
                    ),
                ),
                Ok(be) if backends.contains(&be) => d.error(
                    b.span(),
                    &object,
                    format!("backend {} is listed twice", b.get_ref()),
                ),
                Ok(be) => backends.push(be),
                Err(m) => d.error(b.span(), &object, format!("backends: {m}")),
            }
        }
        if lb.backends.is_empty() {
            d.error(
                lb.name.span(),
                &object,
                "a load balancer needs at least one backend",
            );
        }
        let (Some(vip), Some(port)) = (vip, port) else {
            continue;
        };
        if let Some(first) = claim(
            &mut frontends,
            (protocol, vip, port),
            format!("load_balancer {name:?}"),
        ) {
            d.error(
                lb.port.span(),
                &object,
                format!("frontend {pname} {vip} port {port} is already balanced by {first}"),
            );
        }
        let balancer = LoadBalancer {
            name: name.clone(),
            backends,
            distribution: match lb.distribution {
                Some(raw::Distribution::SourceIpProtocol) => Distribution::SourceIpProtocol,
                Some(raw::Distribution::SourceIp) => Distribution::SourceIp,
                Some(raw::Distribution::FiveTuple) | None => Distribution::FiveTuple,
            },
        };
        by_name.entry(name).or_insert_with(|| balancer.clone());
        policies.push(LoadBalancerPolicy {
            protocol,
            vip,
            port,
            lb: balancer,
        });
    }
    (policies, by_name)
}

/// The `lb` layer: every load balancer's frontend, outbound (DESIGN §2).
fn lb_layer(policies: &[LoadBalancerPolicy]) -> Layer {
    let rules = policies
        .iter()
        .map(|lb| Rule {
            id: lb.lb.name.clone(),
            priority: 100,
            conditions: Conditions {
                protocol: vec![lb.protocol],
                dst_ip: vec![IpPrefix::host(lb.vip)],
                dst_port: vec![PortRange::single(lb.port)],
                ..Conditions::default()
            },
            action: Action::LoadBalance(lb.lb.clone()),
            terminating: false,
            stateful: true,
        })
        .collect();
    Layer {
        name: LB_LAYER.into(),
        groups: vec![Group {
            name: LB_GROUP.into(),
            direction: GroupDirection::Out,
            condition: None,
            rules,
        }],
        defaults: Defaults::allow_all(),
    }
}

fn nat_rule(id: &str, priority: u32, conditions: Conditions, action: Action) -> Rule {
    Rule {
        id: id.into(),
        priority,
        conditions,
        action,
        terminating: false,
        stateful: true,
    }
}

/// The `nat` layer of an endpoint of the `nat` network (WinNAT): outbound SNAT to the
/// host's first IPv4 address except inside the network, inbound DNAT per port mapping.
fn winnat_layer(
    subnets: &[IpPrefix],
    host_v4: &[IpAddr],
    endpoint_v4: Option<IpAddr>,
    mappings: &[PortMapping],
) -> Layer {
    let mut snat = vec![nat_rule(
        "bridge",
        1,
        Conditions {
            dst_ip: subnets.to_vec(),
            ..Conditions::default()
        },
        Action::Allow,
    )];
    if let Some(&ip) = host_v4.first() {
        snat.push(nat_rule(
            "snat",
            2,
            Conditions {
                src_ip: IpPrefix::new(IpAddr::from([0, 0, 0, 0]), 0)
                    .into_iter()
                    .collect(),
                ..Conditions::default()
            },
            Action::Snat {
                ip,
                ports: NAT_PORTS,
            },
        ));
    }
    let mut dnat = Vec::new();
    if let Some(ip) = endpoint_v4 {
        for pm in mappings {
            let p = if pm.protocol == proto::UDP {
                "udp"
            } else {
                "tcp"
            };
            dnat.push(nat_rule(
                &format!("port-mapping:{p}/{}", pm.external_port),
                100,
                Conditions {
                    protocol: vec![pm.protocol],
                    dst_ip: host_v4.iter().map(|a| IpPrefix::host(*a)).collect(),
                    dst_port: vec![PortRange::single(pm.external_port)],
                    ..Conditions::default()
                },
                Action::Dnat {
                    ip,
                    port: Some(pm.internal_port),
                },
            ));
        }
    }
    Layer {
        name: NAT_LAYER.into(),
        groups: vec![
            Group {
                name: "snat".into(),
                direction: GroupDirection::Out,
                condition: None,
                rules: snat,
            },
            Group {
                name: "port-mappings".into(),
                direction: GroupDirection::In,
                condition: None,
                rules: dnat,
            },
        ],
        defaults: Defaults::allow_all(),
    }
}

/// The `nat` layer of an endpoint of a network with OutboundNAT.
fn outbound_nat_layer(subnets: &[IpPrefix], on: &OutboundNat) -> Layer {
    let any = if on.vip.is_ipv4() {
        IpPrefix::new(IpAddr::from([0, 0, 0, 0]), 0)
    } else {
        IpPrefix::new(IpAddr::from([0u16; 8]), 0)
    };
    let exceptions = on.exceptions.iter().chain(subnets).copied().collect();
    Layer {
        name: NAT_LAYER.into(),
        groups: vec![Group {
            name: "outbound-nat".into(),
            direction: GroupDirection::Out,
            condition: None,
            rules: vec![
                nat_rule(
                    "exceptions",
                    1,
                    Conditions {
                        dst_ip: exceptions,
                        ..Conditions::default()
                    },
                    Action::Allow,
                ),
                nat_rule(
                    "outbound-nat",
                    2,
                    Conditions {
                        src_ip: any.into_iter().collect(),
                        ..Conditions::default()
                    },
                    Action::Snat {
                        ip: on.vip,
                        ports: NAT_PORTS,
                    },
                ),
            ],
        }],
        defaults: Defaults::allow_all(),
    }
}

/// A custom rule's action with its parameters; `None` after reporting what is wrong.
fn rule_action(
    d: &mut Diagnostics,
    object: &str,
    rule: &raw::Rule,
    lbs: &HashMap<String, LoadBalancer>,
) -> Option<Action> {
    use raw::RuleAction as A;
    let kind = *rule.action.get_ref();
    let params = [
        (
            "snat",
            rule.snat.as_ref().map(|p| p.span()),
            A::Snat,
            r#"snat = { ip = "198.19.0.10", ports = "1024-65535" }"#,
        ),
        (
            "dnat",
            rule.dnat.as_ref().map(|p| p.span()),
            A::Dnat,
            r#"dnat = { ip = "198.18.1.10", port = 80 }"#,
        ),
        (
            "set_mac",
            rule.set_mac.as_ref().map(|p| p.span()),
            A::SetMac,
            r#"set_mac = { src = "00:15:5d:00:00:01", dst = "00:15:5d:00:00:02" }"#,
        ),
        (
            "load_balancer",
            rule.load_balancer.as_ref().map(|p| p.span()),
            A::LoadBalance,
            r#"load_balancer = "NAME""#,
        ),
    ];
    let mut complete = true;
    for (field, present, wanted, example) in params {
        match (present, kind == wanted) {
            (Some(at), false) => d.error(
                at,
                object,
                format!(
                    "{field} is only for action = \"{}\"; this rule's action is \"{}\"",
                    wanted.as_str(),
                    kind.as_str()
                ),
            ),
            (None, true) => {
                complete = false;
                d.error(
                    rule.action.span(),
                    object,
                    format!("action = \"{}\" needs `{example}`", kind.as_str()),
                );
            }
            _ => {}
        }
    }
    if !complete {
        return None;
    }
    let addr = |d: &mut Diagnostics, field: &str, v: &Spanned<String>| match values::address(
        v.get_ref(),
    ) {
        Ok(ip) => Some(ip),
        Err(m) => {
            d.error(v.span(), object, format!("{field}: {m}"));
            None
        }
    };
    match kind {
        A::Allow => Some(Action::Allow),
        A::Block => Some(Action::Block),
        A::Snat => {
            let p = rule.snat.as_ref()?.get_ref();
            let ip = addr(d, "snat.ip", &p.ip);
            let ports = match &p.ports {
                None => Some(NAT_PORTS),
                Some(s) => match values::port_range(s.get_ref()) {
                    Ok(r) if r.lo == 0 => {
                        d.error(
                            s.span(),
                            object,
                            "snat.ports: port 0 cannot be allocated; use 1..=65535",
                        );
                        None
                    }
                    Ok(r) => Some(r),
                    Err(m) => {
                        d.error(s.span(), object, format!("snat.ports: {m}"));
                        None
                    }
                },
            };
            Some(Action::Snat {
                ip: ip?,
                ports: ports?,
            })
        }
        A::Dnat => {
            let p = rule.dnat.as_ref()?.get_ref();
            let ip = addr(d, "dnat.ip", &p.ip);
            let port = match &p.port {
                None => Some(None),
                Some(v) => int_field(d, object, "dnat.port", v, 1, 65535)
                    .and_then(|v| u16::try_from(v).ok())
                    .map(Some),
            };
            Some(Action::Dnat {
                ip: ip?,
                port: port?,
            })
        }
        A::SetMac => {
            let p = rule.set_mac.as_ref()?;
            let mut ok = true;
            let src = p
                .get_ref()
                .src
                .as_ref()
                .and_then(|m| match port_mac(m.get_ref()) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        ok = false;
                        d.error(m.span(), object, format!("set_mac.src: {e}"));
                        None
                    }
                });
            let dst = p
                .get_ref()
                .dst
                .as_ref()
                .and_then(|m| match m.get_ref().parse::<Mac>() {
                    Ok(m) => Some(m),
                    Err(e) => {
                        ok = false;
                        d.error(m.span(), object, format!("set_mac.dst: {e}"));
                        None
                    }
                });
            if p.get_ref().src.is_none() && p.get_ref().dst.is_none() {
                d.error(p.span(), object, "set_mac needs src, dst or both");
                return None;
            }
            ok.then_some(Action::SetMac { src, dst })
        }
        A::LoadBalance => {
            let name = rule.load_balancer.as_ref()?;
            match lbs.get(name.get_ref()) {
                Some(lb) => Some(Action::LoadBalance(lb.clone())),
                None => {
                    let mut known: Vec<&str> = lbs.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let hint = if known.is_empty() {
                        "no [[load_balancer]] is defined".to_owned()
                    } else {
                        format!("known: {}", known.join(", "))
                    };
                    d.error(
                        name.span(),
                        object,
                        format!("unknown load balancer `{}` ({hint})", name.get_ref()),
                    );
                    None
                }
            }
        }
    }
}

fn compile_acls(
    d: &mut Diagnostics,
    object: &str,
    acls: Vec<Spanned<raw::Acl>>,
    locked: Option<String>,
) -> Layer {
    let mut out_rules = Vec::new();
    let mut in_rules = Vec::new();
    let mut ids: Owners<String> = HashMap::new();
    for (i, acl) in acls.into_iter().enumerate() {
        let span = acl.span();
        let acl = acl.into_inner();
        let i = acl.position.checked_sub(1).unwrap_or(i);
        let id = acl
            .id
            .as_ref()
            .map_or_else(|| format!("acl{}", i + 1), |id| id.get_ref().clone());
        let aobj = match &acl.id {
            Some(id) => format!("{object} acl #{} {:?}", i + 1, id.get_ref()),
            None => format!("{object} acl #{}", i + 1),
        };
        if let Some(why) = &locked {
            d.error(span.clone(), &aobj, why.clone());
        }
        let id_span = acl.id.as_ref().map_or(span.clone(), |s| s.span());
        if id.trim().is_empty() {
            d.error(id_span, &aobj, "id must not be empty");
        } else if let Some(first) = claim(&mut ids, id.clone(), format!("acl #{}", i + 1)) {
            d.error(
                id_span,
                &aobj,
                format!("duplicate ACL id `{id}` ({first} has it)"),
            );
        }
        let protocols = list(
            d,
            &aobj,
            "protocols",
            acl.protocols.as_ref(),
            values::protocol,
        );
        let local_ip = list(
            d,
            &aobj,
            "local_addresses",
            acl.local_addresses.as_ref(),
            values::prefix,
        );
        let remote_ip = list(
            d,
            &aobj,
            "remote_addresses",
            acl.remote_addresses.as_ref(),
            values::prefix,
        );
        let local_port = list(
            d,
            &aobj,
            "local_ports",
            acl.local_ports.as_ref(),
            values::port_range,
        );
        let remote_port = list(
            d,
            &aobj,
            "remote_ports",
            acl.remote_ports.as_ref(),
            values::port_range,
        );
        // HNS refuses ports on an ACL that may match portless protocols: the ports would
        // silently mean "port 0" there.
        let ports_ok = !protocols.is_empty() && protocols.iter().all(|p| proto::has_ports(*p));
        for (field, value) in [
            ("local_ports", acl.local_ports.as_ref()),
            ("remote_ports", acl.remote_ports.as_ref()),
        ] {
            if has_items(value) && !ports_ok {
                let at = value.map_or(span.clone(), |v| v.span());
                d.error(
                    at,
                    &aobj,
                    format!("{field} needs protocols tcp, udp or sctp"),
                );
            }
        }
        let priority = priority(d, &aobj, acl.priority.as_ref());
        let (src_ip, dst_ip, src_port, dst_port, rules) = match acl.direction {
            raw::AclDirection::Out => {
                (local_ip, remote_ip, local_port, remote_port, &mut out_rules)
            }
            raw::AclDirection::In => (remote_ip, local_ip, remote_port, local_port, &mut in_rules),
        };
        let action = acl_action(acl.action);
        rules.push(Rule {
            id,
            priority,
            conditions: Conditions {
                src_ip,
                dst_ip,
                src_port,
                dst_port,
                protocol: protocols,
                ..Conditions::default()
            },
            // Endpoint ACL allows are stateful (DESIGN §2): replies always come back.
            stateful: action == Action::Allow,
            action,
            terminating: false,
        });
    }
    Layer {
        name: ACL_LAYER.into(),
        groups: vec![
            Group {
                name: ACL_OUT_GROUP.into(),
                direction: GroupDirection::Out,
                condition: None,
                rules: out_rules,
            },
            Group {
                name: ACL_IN_GROUP.into(),
                direction: GroupDirection::In,
                condition: None,
                rules: in_rules,
            },
        ],
        // Filled in by the caller once the port mappings are known.
        defaults: Defaults::allow_all(),
    }
}

fn default_policy(a: Option<raw::Action>) -> DefaultPolicy {
    match a {
        Some(raw::Action::Block) => DefaultPolicy::block_all(),
        Some(raw::Action::Allow) | None => DefaultPolicy::allow_all(),
    }
}

fn compile_layers(
    d: &mut Diagnostics,
    object: &str,
    raws: Vec<Spanned<raw::Layer>>,
    lbs: &HashMap<String, LoadBalancer>,
) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut names: Owners<String> = HashMap::new();
    names.insert(ACL_LAYER.into(), "the endpoint's ACL layer".into());
    names.insert(
        LB_LAYER.into(),
        "the load-balancing layer (reserved)".into(),
    );
    names.insert(NAT_LAYER.into(), "the NAT layer (reserved)".into());
    for layer in raws {
        let layer = layer.into_inner();
        let name = layer.name.get_ref().clone();
        let lobj = format!("{object} layer {name:?}");
        if name.trim().is_empty() {
            d.error(layer.name.span(), &lobj, "name must not be empty");
        } else if let Some(first) = claim(
            &mut names,
            name.clone(),
            format!("layer at line {}", d.line_of(layer.name.span().start)),
        ) {
            d.error(
                layer.name.span(),
                &lobj,
                format!("duplicate layer name: {first} has it"),
            );
        }
        let mut groups = Vec::new();
        let mut group_names: Owners<String> = HashMap::new();
        for group in layer.group {
            let group = group.into_inner();
            let gname = group.name.get_ref().clone();
            let gobj = format!("{lobj} group {gname:?}");
            if gname.trim().is_empty() {
                d.error(group.name.span(), &gobj, "name must not be empty");
            } else if let Some(first) = claim(
                &mut group_names,
                gname.clone(),
                format!("the group at line {}", d.line_of(group.name.span().start)),
            ) {
                d.error(
                    group.name.span(),
                    &gobj,
                    format!("duplicate group name: {first} has it"),
                );
            }
            let condition = group
                .condition
                .as_ref()
                .map(|c| conditions(d, &gobj, c.get_ref()));
            let mut rules = Vec::new();
            let mut ids: Owners<String> = HashMap::new();
            for (i, rule) in group.rule.into_iter().enumerate() {
                let span = rule.span();
                let rule = rule.into_inner();
                let id = rule
                    .id
                    .as_ref()
                    .map_or_else(|| format!("rule{}", i + 1), |id| id.get_ref().clone());
                let robj = format!("{gobj} rule {id:?}");
                let id_span = rule.id.as_ref().map_or(span, |s| s.span());
                if id.trim().is_empty() {
                    d.error(id_span, &robj, "id must not be empty");
                } else if let Some(first) = claim(&mut ids, id.clone(), format!("rule #{}", i + 1))
                {
                    d.error(
                        id_span,
                        &robj,
                        format!("duplicate rule id in the group ({first} has it)"),
                    );
                }
                let conditions = conditions(d, &robj, &rule.conditions());
                let action = rule_action(d, &robj, &rule, lbs).unwrap_or(Action::Allow);
                let transposition = action.is_transposition();
                if let Some(st) = &rule.stateful
                    && transposition
                    && !*st.get_ref()
                {
                    d.error(
                        st.span(),
                        &robj,
                        format!(
                            "a {} rule is always stateful (its replies must be translated back); \
                             remove `stateful = false`",
                            rule.action.get_ref().as_str()
                        ),
                    );
                }
                rules.push(Rule {
                    priority: priority(d, &robj, rule.priority.as_ref()),
                    id,
                    conditions,
                    action,
                    terminating: rule.terminating,
                    stateful: transposition || rule.stateful.as_ref().is_some_and(|s| *s.get_ref()),
                });
            }
            groups.push(Group {
                name: gname,
                direction: match group.direction {
                    Some(raw::GroupDirection::In) => GroupDirection::In,
                    Some(raw::GroupDirection::Out) => GroupDirection::Out,
                    Some(raw::GroupDirection::Both) | None => GroupDirection::Both,
                },
                condition,
                rules,
            });
        }
        layers.push(Layer {
            name,
            groups,
            defaults: Defaults {
                outbound: default_policy(layer.default_out),
                inbound: default_policy(layer.default_in),
            },
        });
    }
    layers
}

/// What every endpoint is compiled against.
struct Context<'a> {
    networks: &'a HashMap<String, NetworkInfo>,
    lbs: &'a HashMap<String, LoadBalancer>,
    /// The `lb` layer, when the policy has load balancers.
    lb_layer: Option<Layer>,
    /// The host's IPv4 addresses, in file order (NAT translates to the first).
    host_v4: Vec<IpAddr>,
}

fn compile_endpoint(
    d: &mut Diagnostics,
    ep: Spanned<raw::Endpoint>,
    ctx: &Context,
    claims: &mut Claims,
) -> Port {
    let networks = ctx.networks;
    let span = ep.span();
    let ep = ep.into_inner();
    let name = ep.name.get_ref().clone();
    let object = format!("endpoint {name:?}");
    let here = format!("endpoint {name:?} at line {}", d.line_of(span.start));
    if name.trim().is_empty() {
        d.error(ep.name.span(), &object, "name must not be empty");
    } else if let Some(first) = claim(&mut claims.names, name.clone(), here.clone()) {
        d.error(
            ep.name.span(),
            &object,
            format!("duplicate endpoint name: {first} has it"),
        );
    }

    let net_name = ep.network.get_ref();
    let net = networks.get(net_name);
    if net.is_none() {
        let mut known: Vec<&str> = networks.keys().map(String::as_str).collect();
        known.sort_unstable();
        let hint = if known.is_empty() {
            "no [[network]] is defined".to_owned()
        } else {
            format!("known: {}", known.join(", "))
        };
        d.error(
            ep.network.span(),
            &object,
            format!("unknown network `{net_name}` ({hint})"),
        );
    }

    let mut mac = Mac::ZERO;
    match port_mac(ep.mac.get_ref()) {
        Ok(m) => {
            mac = m;
            if let Some(first) = claim(&mut claims.macs, m, here.clone()) {
                d.error(
                    ep.mac.span(),
                    &object,
                    format!("duplicate MAC {m}: {first} has it"),
                );
            }
        }
        Err(m) => d.error(ep.mac.span(), &object, format!("mac: {m}")),
    }

    let mut ips = Vec::new();
    for (field, value, v4) in [("ipv4", &ep.ipv4, true), ("ipv6", &ep.ipv6, false)] {
        let Some(value) = value else { continue };
        let ip = match values::address(value.get_ref()) {
            Ok(ip) if ip.is_ipv4() == v4 => ip,
            Ok(ip) => {
                let family = if v4 { "IPv4" } else { "IPv6" };
                d.error(
                    value.span(),
                    &object,
                    format!("{field}: {ip} is not an {family} address"),
                );
                continue;
            }
            Err(m) => {
                d.error(value.span(), &object, format!("{field}: {m}"));
                continue;
            }
        };
        if let Some(first) = claim(&mut claims.ips, ip, here.clone()) {
            d.error(
                value.span(),
                &object,
                format!("duplicate IP {ip}: {first} has it"),
            );
        }
        if let Some(net) = net {
            if !net.subnets.is_empty() && !net.subnets.iter().any(|p| p.contains(ip)) {
                let subnets: Vec<String> = net.subnets.iter().map(|p| p.to_string()).collect();
                d.error(
                    value.span(),
                    &object,
                    format!(
                        "{field} {ip} is outside the subnets of network {net_name:?} ({})",
                        subnets.join(", ")
                    ),
                );
            } else if net.gateway == Some(ip) {
                d.error(
                    value.span(),
                    &object,
                    format!("{field} {ip} is the gateway of network {net_name:?}"),
                );
            }
        }
        ips.push(ip);
    }
    if ep.ipv4.is_none() && ep.ipv6.is_none() {
        d.error(
            ep.name.span(),
            &object,
            "an endpoint needs an address: ipv4, ipv6 or both",
        );
    }

    let iso = ep
        .isolation
        .as_ref()
        .map_or(Isolation::Process, |i| isolation(*i.get_ref()));
    let drv = net.map(|n| n.driver);

    // DESIGN §1: for Hyper-V isolation on NAT and Transparent networks nobody may
    // reconfigure the default ACLs, so a user ACL there has no honest meaning.
    let locked = match drv {
        Some(dr @ (Driver::Nat | Driver::Transparent)) if iso == Isolation::HyperV => {
            Some(format!(
                "ACLs cannot be set on a Hyper-V-isolated endpoint of a {} network: nobody may \
             reconfigure the default ACLs for Hyper-V isolation on NAT and Transparent \
             networks (it allows all traffic); use process isolation, or an l2bridge, \
             l2tunnel or overlay network",
                dr.as_str()
            ))
        }
        _ => None,
    };
    let mut acl_layer = compile_acls(d, &object, ep.acl, locked);

    let mut port_mappings = Vec::new();
    for (i, pm) in ep.port_mapping.into_iter().enumerate() {
        let span = pm.span();
        let pm = pm.into_inner();
        let i = pm.position.checked_sub(1).unwrap_or(i);
        let pobj = format!("{object} port_mapping #{}", i + 1);
        if let Some(dr) = drv
            && dr != Driver::Nat
        {
            d.error(
                span,
                &pobj,
                format!(
                    "port mappings need a nat network; network {net_name:?} is {}",
                    dr.as_str()
                ),
            );
        }
        let (protocol, pname) = match pm.protocol {
            Some(raw::MappingProtocol::Udp) => (proto::UDP, "udp"),
            Some(raw::MappingProtocol::Tcp) | None => (proto::TCP, "tcp"),
        };
        let internal = int_field(d, &pobj, "internal_port", &pm.internal_port, 1, 65535)
            .and_then(|v| u16::try_from(v).ok());
        let external = int_field(d, &pobj, "external_port", &pm.external_port, 1, 65535)
            .and_then(|v| u16::try_from(v).ok());
        let (Some(internal_port), Some(external_port)) = (internal, external) else {
            continue;
        };
        if let Some(first) = claim(
            &mut claims.external_ports,
            (protocol, external_port),
            here.clone(),
        ) {
            d.error(
                pm.external_port.span(),
                &pobj,
                format!("duplicate port mapping: external port {pname}/{external_port} is already mapped by {first}"),
            );
        }
        port_mappings.push(PortMapping {
            protocol,
            internal_port,
            external_port,
        });
    }

    acl_layer.defaults = acl_profile(iso, drv, &port_mappings);
    let mut layers = vec![acl_layer];
    layers.extend(compile_layers(d, &object, ep.layer, ctx.lbs));
    layers.extend(ctx.lb_layer.clone());
    let endpoint_v4 = ips.iter().copied().find(IpAddr::is_ipv4);
    if let Some(net) = net {
        if net.driver == Driver::Nat {
            if endpoint_v4.is_none() && !port_mappings.is_empty() {
                d.error(
                    ep.name.span(),
                    &object,
                    "port mappings need an ipv4 address on the endpoint (WinNAT is IPv4 only)",
                );
            }
            layers.push(winnat_layer(
                &net.subnets,
                &ctx.host_v4,
                endpoint_v4,
                &port_mappings,
            ));
        } else if let Some(on) = &net.outbound_nat {
            layers.push(outbound_nat_layer(&net.subnets, on));
        }
    }

    Port {
        name,
        network: net_name.clone(),
        mac,
        ips,
        isolation: iso,
        interface: ep.interface,
        port_mappings,
        layers,
    }
}

/// Validates and compiles the raw file; errors go to `d`.
pub(crate) fn compile(
    d: &mut Diagnostics,
    host: Option<Spanned<raw::Host>>,
    networks: Vec<Spanned<raw::Network>>,
    endpoints: Vec<Spanned<raw::Endpoint>>,
    load_balancers: Vec<Spanned<raw::LoadBalancer>>,
) -> Policy {
    let uplink = compile_uplink(d, host);
    let host_v4: Vec<IpAddr> = uplink.ips.iter().copied().filter(IpAddr::is_ipv4).collect();
    let (networks, infos) = compile_networks(d, networks, !host_v4.is_empty());
    let (load_balancers, lbs) = compile_load_balancers(d, load_balancers);
    let ctx = Context {
        networks: &infos,
        lbs: &lbs,
        lb_layer: (!load_balancers.is_empty()).then(|| lb_layer(&load_balancers)),
        host_v4,
    };
    let mut claims = Claims {
        names: HashMap::new(),
        ips: HashMap::new(),
        macs: HashMap::new(),
        external_ports: HashMap::new(),
    };
    claims
        .names
        .insert(uplink.name.clone(), "the host uplink".into());
    claims.macs.insert(uplink.mac, "the host uplink".into());
    for ip in &uplink.ips {
        claims.ips.insert(*ip, "the host uplink".into());
    }
    let ports = endpoints
        .into_iter()
        .map(|ep| compile_endpoint(d, ep, &ctx, &mut claims))
        .collect();
    Policy {
        networks,
        ports,
        uplink,
        load_balancers,
    }
}
