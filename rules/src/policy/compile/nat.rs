//! NAT: the `nat` layer of an endpoint. On the `nat` network it is WinNAT (SNAT to the
//! host's IPv4 address, DNAT for port mappings); elsewhere it holds the endpoint's
//! OutboundNATs, at most one per address family (HNS gives a dual-stack endpoint one per
//! family, each with its own exceptions).

use std::net::IpAddr;
use std::ops::Range;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values;
use super::common::{family, list};
use crate::model::{
    Action, Conditions, Defaults, Group, GroupDirection, IpPrefix, Layer, OutboundNat, PortMapping,
    PortRange, Rule, proto,
};

/// Name of the NAT layer, on endpoints of a `nat` network or with an OutboundNAT.
pub const NAT_LAYER: &str = "nat";
/// Source ports that NAT allocates from.
pub const NAT_PORTS: PortRange = PortRange {
    lo: 1024,
    hi: 65535,
};

/// An OutboundNAT with its family and VIP resolved.
#[derive(Clone, Debug)]
pub(crate) struct Onat {
    pub v4: bool,
    pub vip: IpAddr,
    pub exceptions: Vec<IpPrefix>,
    /// Empty: every destination.
    pub destinations: Vec<IpPrefix>,
    pub span: Range<usize>,
}

impl Onat {
    /// The network-level form (`[network.outbound_nat]`, always with a VIP).
    pub(crate) fn of_network(on: &OutboundNat, span: Range<usize>) -> Onat {
        Onat {
            v4: on.vip.is_ipv4(),
            vip: on.vip,
            exceptions: on.exceptions.clone(),
            destinations: Vec::new(),
            span,
        }
    }
}

fn any(v4: bool) -> IpPrefix {
    let addr = if v4 {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    IpPrefix::new(addr, 0).unwrap_or(IpPrefix::host(addr))
}

/// The family an OutboundNAT translates: its VIP's, else `family`, else its prefixes'
/// (IPv4 when it has none). `None` after reporting a contradiction.
fn onat_family(
    d: &mut Diagnostics,
    object: &str,
    on: &raw::EndpointOutboundNat,
    vip: Option<IpAddr>,
    prefixes: &[IpPrefix],
    span: &Range<usize>,
) -> Option<bool> {
    let named = match &on.family {
        None => None,
        Some(f) => match f.get_ref().to_ascii_lowercase().as_str() {
            "ipv4" => Some(true),
            "ipv6" => Some(false),
            other => {
                d.error(
                    f.span(),
                    object,
                    format!("family `{other}`: expected ipv4 or ipv6"),
                );
                return None;
            }
        },
    };
    let by_prefixes = match (
        prefixes.iter().any(|p| p.is_ipv4()),
        prefixes.iter().any(|p| !p.is_ipv4()),
    ) {
        (true, true) => None,
        (false, true) => Some(false),
        _ => Some(true),
    };
    match (vip.map(|v| v.is_ipv4()), named) {
        (Some(a), Some(b)) if a != b => {
            d.error(
                span.clone(),
                object,
                "family contradicts the vip's address family",
            );
            None
        }
        (Some(v4), _) | (None, Some(v4)) => Some(v4),
        (None, None) if by_prefixes.is_none() => {
            d.error(
                span.clone(),
                object,
                "without a vip, an OutBoundNAT translates one address family, but these \
                 prefixes mix IPv4 and IPv6: give a vip, or one OutBoundNAT per family",
            );
            None
        }
        (None, None) => by_prefixes,
    }
}

/// Compiles one OutboundNAT. Without a VIP it translates to the host's first address of
/// its family; if the host has none, that is an error when an endpoint uses it
/// (`instantiated`), else a warning for whoever instantiates the template later.
pub(crate) fn compile_onat(
    d: &mut Diagnostics,
    object: &str,
    on: &Spanned<raw::EndpointOutboundNat>,
    host_ips: &[IpAddr],
    instantiated: bool,
) -> Option<Onat> {
    let span = on.span();
    let on = on.get_ref();
    let exceptions = list(
        d,
        object,
        "exceptions",
        on.exceptions.as_ref(),
        values::prefix,
    );
    let destinations = list(
        d,
        object,
        "destinations",
        on.destinations.as_ref(),
        values::prefix,
    );
    let vip = match &on.vip {
        None => None,
        Some(v) => match values::address(v.get_ref()) {
            Ok(ip) => Some(ip),
            Err(m) => {
                d.error(v.span(), object, format!("vip: {m}"));
                return None;
            }
        },
    };
    let all: Vec<IpPrefix> = exceptions.iter().chain(&destinations).copied().collect();
    let v4 = onat_family(d, object, on, vip, &all, &span)?;
    if let Some(p) = all.iter().find(|p| p.is_ipv4() != v4) {
        d.error(
            span.clone(),
            object,
            format!(
                "{p} is {} but this OutBoundNAT translates {}",
                family(!v4),
                family(v4)
            ),
        );
        return None;
    }
    let vip = match vip.or_else(|| host_ips.iter().copied().find(|a| a.is_ipv4() == v4)) {
        Some(vip) => vip,
        None => {
            let f = family(v4);
            let give = "give the host's addresses (a [host] section in another file, e.g. \
                        `strata check host.toml cni.conf`) or a vip";
            if instantiated {
                let msg = format!(
                    "an OutBoundNAT without a vip translates to the host's {f} address, and no host document gives one: {give}"
                );
                d.error(span, object, msg);
            } else {
                let msg = format!(
                    "endpoints will be translated to the host's {f} address (no vip), which no host document gives: {give} before endpoints use it"
                );
                d.warning(span, object, msg);
            }
            return None;
        }
    };
    Some(Onat {
        v4,
        vip,
        exceptions,
        destinations,
        span,
    })
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
pub(crate) fn winnat_layer(
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
        let src_ip = vec![any(true)];
        let action = Action::Snat {
            ip,
            ports: NAT_PORTS,
        };
        snat.push(nat_rule(
            "snat",
            2,
            Conditions {
                src_ip,
                ..Conditions::default()
            },
            action,
        ));
    }
    let dnat = endpoint_v4.map_or_else(Vec::new, |ip| {
        mappings
            .iter()
            .map(|pm| port_mapping_rule(pm, host_v4, ip))
            .collect()
    });
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

fn port_mapping_rule(pm: &PortMapping, host_v4: &[IpAddr], ip: IpAddr) -> Rule {
    let p = if pm.protocol == proto::UDP {
        "udp"
    } else {
        "tcp"
    };
    nat_rule(
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
    )
}

/// The `nat` layer of an endpoint with OutboundNATs (one per family at most): per
/// family, rule `exceptions` (priority 1) lets its exceptions and the network's subnets
/// of that family through untranslated; rule `outbound-nat` (priority 2) translates the
/// sources of that family (to `destinations` only, when given). With both families the
/// ids end in `-ipv4` and `-ipv6`.
pub(crate) fn outbound_nat_layer(subnets: &[IpPrefix], nats: &[Onat]) -> Layer {
    let mut rules = Vec::new();
    for on in nats {
        let suffix = match (nats.len() > 1, on.v4) {
            (false, _) => "",
            (true, true) => "-ipv4",
            (true, false) => "-ipv6",
        };
        let exceptions = on
            .exceptions
            .iter()
            .chain(subnets.iter().filter(|s| s.is_ipv4() == on.v4))
            .copied()
            .collect();
        let except = Conditions {
            dst_ip: exceptions,
            ..Conditions::default()
        };
        rules.push(nat_rule(
            &format!("exceptions{suffix}"),
            1,
            except,
            Action::Allow,
        ));
        let translate = Conditions {
            src_ip: vec![any(on.v4)],
            dst_ip: on.destinations.clone(),
            ..Conditions::default()
        };
        let action = Action::Snat {
            ip: on.vip,
            ports: NAT_PORTS,
        };
        rules.push(nat_rule(
            &format!("outbound-nat{suffix}"),
            2,
            translate,
            action,
        ));
    }
    Layer {
        name: NAT_LAYER.into(),
        groups: vec![Group {
            name: "outbound-nat".into(),
            direction: GroupDirection::Out,
            condition: None,
            rules,
        }],
        defaults: Defaults::allow_all(),
    }
}
