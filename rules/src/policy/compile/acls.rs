//! HNS ACLs and the default profiles: an endpoint's `acl` layer, whose groups `acl-out`
//! and `acl-in` hold its ACLs (its templates' first) and whose defaults are its isolation
//! profile (DESIGN §1).

use std::ops::Range;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values;
use super::common::{Owners, claim, good_name, has_items, list, priority};
use crate::model::{
    Action, Conditions, DefaultPolicy, DefaultRule, Defaults, Driver, Group, GroupDirection,
    Isolation, Layer, PortMapping, PortRange, Rule, proto,
};

/// Name of the layer that holds the endpoint's HNS ACLs and default profile.
pub const ACL_LAYER: &str = "acl";
/// Group of the `acl` layer holding the ACLs with `direction = "out"`.
pub const ACL_OUT_GROUP: &str = "acl-out";
/// Group of the `acl` layer holding the ACLs with `direction = "in"`.
pub const ACL_IN_GROUP: &str = "acl-in";

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

fn process_legacy(port_mappings: &[PortMapping]) -> DefaultPolicy {
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
            Isolation::ProcessLegacy => process_legacy(port_mappings),
            Isolation::HyperV => DefaultPolicy::allow_all(),
        }
    };
    Defaults {
        outbound: DefaultPolicy::allow_all(),
        inbound,
    }
}

/// One compiled ACL: its rule, the group it goes to, and where its id is written.
#[derive(Clone, Debug)]
pub(crate) struct AclRule {
    pub direction: raw::AclDirection,
    pub rule: Rule,
    /// Where the ACL is written, its id, and how messages name it.
    pub span: Range<usize>,
    pub object: String,
    pub id_span: Range<usize>,
}

/// The address and port lists of one ACL, and the check that ports come with port
/// protocols (HNS refuses ports otherwise: they would silently mean "port 0").
fn acl_conditions(
    d: &mut Diagnostics,
    aobj: &str,
    acl: &raw::Acl,
    span: &Range<usize>,
) -> Conditions {
    let protocols = list(
        d,
        aobj,
        "protocols",
        acl.protocols.as_ref(),
        values::protocol,
    );
    let (prefix, ports) = (values::prefix, values::port_range);
    let local_ip = list(
        d,
        aobj,
        "local_addresses",
        acl.local_addresses.as_ref(),
        prefix,
    );
    let remote_ip = list(
        d,
        aobj,
        "remote_addresses",
        acl.remote_addresses.as_ref(),
        prefix,
    );
    let local_port = list(d, aobj, "local_ports", acl.local_ports.as_ref(), ports);
    let remote_port = list(d, aobj, "remote_ports", acl.remote_ports.as_ref(), ports);
    let ports_ok = !protocols.is_empty() && protocols.iter().all(|p| proto::has_ports(*p));
    for (field, value) in [
        ("local_ports", acl.local_ports.as_ref()),
        ("remote_ports", acl.remote_ports.as_ref()),
    ] {
        if has_items(value) && !ports_ok {
            let at = value.map_or(span.clone(), |v| v.span());
            d.error(
                at,
                aobj,
                format!("{field} needs protocols tcp, udp or sctp"),
            );
        }
    }
    // Written from the endpoint's point of view: local is the source going out and the
    // destination coming in.
    let (src_ip, dst_ip, src_port, dst_port) = match acl.direction {
        raw::AclDirection::Out => (local_ip, remote_ip, local_port, remote_port),
        raw::AclDirection::In => (remote_ip, local_ip, remote_port, local_port),
    };
    Conditions {
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        protocol: protocols,
        ..Conditions::default()
    }
}

/// Compiles a list of ACLs (an endpoint's, or a template's) in order. ACLs without an id
/// get `{id_prefix}<N>`, N their 1-based position; ids are unique in the list.
pub(crate) fn compile_acls(
    d: &mut Diagnostics,
    object: &str,
    acls: Vec<Spanned<raw::Acl>>,
    id_prefix: &str,
) -> Vec<AclRule> {
    let mut out = Vec::new();
    let mut ids: Owners<String> = Owners::new();
    for (i, acl) in acls.into_iter().enumerate() {
        let span = acl.span();
        let acl = acl.into_inner();
        let n = acl.position.checked_sub(1).unwrap_or(i) + 1;
        let id = acl
            .id
            .as_ref()
            .map_or_else(|| format!("{id_prefix}{n}"), |id| id.get_ref().clone());
        let aobj = match &acl.id {
            Some(id) => format!("{object} acl #{n} {:?}", id.get_ref()),
            None => format!("{object} acl #{n}"),
        };
        let id_span = acl.id.as_ref().map_or(span.clone(), |s| s.span());
        if good_name(d, id_span.clone(), &aobj, "id", &id)
            && let Some(first) = claim(&mut ids, id.clone(), format!("acl #{n}"))
        {
            d.error(
                id_span.clone(),
                &aobj,
                format!("duplicate ACL id `{id}` ({first} has it)"),
            );
        }
        let conditions = acl_conditions(d, &aobj, &acl, &span);
        let action = match acl.action {
            raw::Action::Allow => Action::Allow,
            raw::Action::Block => Action::Block,
        };
        let rule = Rule {
            id,
            priority: priority(d, &aobj, acl.priority.as_ref()),
            conditions,
            // Endpoint ACL allows are stateful (DESIGN §2): replies always come back.
            stateful: action == Action::Allow,
            action,
            terminating: false,
        };
        out.push(AclRule {
            direction: acl.direction,
            rule,
            span,
            object: aobj,
            id_span,
        });
    }
    out
}

/// The `acl` layer of ACL rules in order (templates' first); defaults are filled in by
/// the caller once the port mappings are known.
pub(crate) fn acl_layer<'a>(rules: impl Iterator<Item = &'a AclRule>) -> Layer {
    let mut out_rules = Vec::new();
    let mut in_rules = Vec::new();
    for a in rules {
        match a.direction {
            raw::AclDirection::Out => out_rules.push(a.rule.clone()),
            raw::AclDirection::In => in_rules.push(a.rule.clone()),
        }
    }
    let group = |name: &str, direction, rules| Group {
        name: name.into(),
        direction,
        condition: None,
        rules,
    };
    Layer {
        name: ACL_LAYER.into(),
        groups: vec![
            group(ACL_OUT_GROUP, GroupDirection::Out, out_rules),
            group(ACL_IN_GROUP, GroupDirection::In, in_rules),
        ],
        defaults: Defaults::allow_all(),
    }
}
