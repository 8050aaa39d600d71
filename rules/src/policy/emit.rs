//! The TOML policy file written back from [`raw::File`]: what `strata import-hns` prints,
//! so that a policy read from HNS JSON (or several files) can move to the native file.
//! Every value is written as read (after linking), so the output compiles to the same
//! policy; each object carries a comment saying which file and line it came from.

use std::fmt::Write;
use std::ops::Range;

use toml::Spanned;

use super::diag::Diagnostics;
use super::raw;
use super::values::{Items, Scalar};

struct Out<'a, 'd> {
    s: String,
    d: &'a Diagnostics<'d>,
}

fn quote(v: &str) -> String {
    toml::Value::String(v.to_owned()).to_string()
}

impl Out<'_, '_> {
    fn header(&mut self, header: &str, from: Range<usize>) {
        let at = self.d.file_line(from.start);
        if !at.is_empty() {
            let _ = write!(self.s, "\n# from {at}");
        }
        let _ = write!(self.s, "\n{header}\n");
    }

    fn str(&mut self, key: &str, v: &str) {
        let _ = writeln!(self.s, "{key} = {}", quote(v));
    }

    /// A value written as it is (a number, a boolean).
    fn str_raw(&mut self, key: &str, v: &str) {
        let _ = writeln!(self.s, "{key} = {v}");
    }

    fn bool(&mut self, key: &str, v: bool) {
        self.str_raw(key, if v { "true" } else { "false" });
    }

    fn opt(&mut self, key: &str, v: Option<&Spanned<String>>) {
        if let Some(v) = v {
            self.str(key, v.get_ref());
        }
    }

    fn int(&mut self, key: &str, v: Option<&Spanned<i64>>) {
        if let Some(v) = v {
            let _ = writeln!(self.s, "{key} = {}", v.get_ref());
        }
    }

    fn strings(&mut self, key: &str, v: &[Spanned<String>]) {
        let items: Vec<String> = v.iter().map(|s| quote(s.get_ref())).collect();
        let _ = writeln!(self.s, "{key} = [{}]", items.join(", "));
    }

    fn items(&mut self, key: &str, v: Option<&Spanned<Items>>) {
        let Some(v) = v else { return };
        let items: Vec<String> = v
            .get_ref()
            .iter_with(&v.span())
            .into_iter()
            .map(|(s, _)| match s {
                Scalar::Str(s) => quote(&s),
                Scalar::Int(n) => n.to_string(),
            })
            .collect();
        let _ = writeln!(self.s, "{key} = [{}]", items.join(", "));
    }
}

fn action(a: raw::Action) -> &'static str {
    match a {
        raw::Action::Allow => "allow",
        raw::Action::Block => "block",
    }
}

fn host(o: &mut Out, h: &Spanned<raw::Host>) {
    o.header("[host]", h.span());
    let h = h.get_ref();
    o.opt("name", h.name.as_ref());
    o.opt("mac", h.mac.as_ref());
    if !h.addresses.is_empty() {
        o.strings("addresses", &h.addresses);
    }
    o.int("mtu", h.mtu.as_ref());
    if let Some(i) = &h.interface {
        o.str("interface", i);
    }
}

fn acl(o: &mut Out, prefix: &str, a: &Spanned<raw::Acl>) {
    o.header(&format!("[[{prefix}.acl]]"), a.span());
    let a = a.get_ref();
    o.opt("id", a.id.as_ref());
    o.str("action", action(a.action));
    o.str(
        "direction",
        match a.direction {
            raw::AclDirection::In => "in",
            raw::AclDirection::Out => "out",
        },
    );
    o.items("protocols", a.protocols.as_ref());
    o.items("local_addresses", a.local_addresses.as_ref());
    o.items("remote_addresses", a.remote_addresses.as_ref());
    o.items("local_ports", a.local_ports.as_ref());
    o.items("remote_ports", a.remote_ports.as_ref());
    o.int("priority", a.priority.as_ref());
}

fn outbound_nat(o: &mut Out, prefix: &str, on: &Spanned<raw::EndpointOutboundNat>) {
    o.header(&format!("[[{prefix}.outbound_nat]]"), on.span());
    let on = on.get_ref();
    o.opt("vip", on.vip.as_ref());
    o.items("exceptions", on.exceptions.as_ref());
    o.items("destinations", on.destinations.as_ref());
    o.opt("family", on.family.as_ref());
}

fn route(o: &mut Out, prefix: &str, r: &Spanned<raw::Route>) {
    o.header(&format!("[[{prefix}.route]]"), r.span());
    o.str("prefix", r.get_ref().prefix.get_ref());
}

fn template(o: &mut Out, prefix: &str, t: &Spanned<raw::Template>) {
    o.header(&format!("[{prefix}]"), t.span());
    let t = t.get_ref();
    t.acl.iter().for_each(|a| acl(o, prefix, a));
    t.outbound_nat
        .iter()
        .for_each(|on| outbound_nat(o, prefix, on));
    t.route.iter().for_each(|r| route(o, prefix, r));
}

fn network(o: &mut Out, n: &Spanned<raw::Network>) {
    o.header("[[network]]", n.span());
    let n = n.get_ref();
    o.str("name", n.name.get_ref());
    if let Some(drv) = &n.driver {
        o.str("driver", drv.get_ref().as_str());
    }
    let subnets: Vec<Spanned<String>> = n
        .subnet
        .iter()
        .chain(n.subnets.iter().flatten())
        .cloned()
        .collect();
    if n.subnet.is_some() || n.subnets.is_some() {
        o.strings("subnets", &subnets);
    }
    o.opt("gateway", n.gateway.as_ref());
    o.int("vlan", n.vlan.as_ref());
    o.int("vni", n.vni.as_ref());
    o.int("vxlan_port", n.vxlan_port.as_ref());
    if let Some(on) = &n.outbound_nat {
        o.header("[network.outbound_nat]", on.span());
        o.str("vip", on.get_ref().vip.get_ref());
        o.items("exceptions", on.get_ref().exceptions.as_ref());
    }
    for r in &n.remote_subnet_route {
        o.header("[[network.remote_subnet_route]]", r.span());
        let r = r.get_ref();
        o.str("prefix", r.prefix.get_ref());
        o.str("provider_address", r.provider_address.get_ref());
        o.opt("mac", r.mac.as_ref());
    }
    if let Some(t) = &n.template {
        template(o, "network.template", t);
    }
}

fn conditions(o: &mut Out, c: &raw::Conditions) {
    o.items("src_addresses", c.src_addresses.as_ref());
    o.items("dst_addresses", c.dst_addresses.as_ref());
    o.items("src_ports", c.src_ports.as_ref());
    o.items("dst_ports", c.dst_ports.as_ref());
    o.items("protocols", c.protocols.as_ref());
    o.items("icmp_types", c.icmp_types.as_ref());
    o.items("icmp_codes", c.icmp_codes.as_ref());
    o.items("src_macs", c.src_macs.as_ref());
    o.items("dst_macs", c.dst_macs.as_ref());
    o.items("vlans", c.vlans.as_ref());
    o.items("vnis", c.vnis.as_ref());
}

/// An inline table of a condition: written as a sub-table instead (same meaning).
fn rule(o: &mut Out, r: &Spanned<raw::Rule>) {
    o.header("[[endpoint.layer.group.rule]]", r.span());
    let r = r.get_ref();
    o.opt("id", r.id.as_ref());
    o.int("priority", r.priority.as_ref());
    o.str("action", r.action.get_ref().as_str());
    o.opt("load_balancer", r.load_balancer.as_ref());
    if r.terminating {
        o.bool("terminating", true);
    }
    if let Some(st) = &r.stateful {
        o.bool("stateful", *st.get_ref());
    }
    conditions(o, &r.conditions());
    if let Some(p) = &r.snat {
        o.header("[endpoint.layer.group.rule.snat]", p.span());
        o.str("ip", p.get_ref().ip.get_ref());
        if let Some(ports) = &p.get_ref().ports {
            match ports.get_ref() {
                Scalar::Str(s) => o.str("ports", s),
                Scalar::Int(n) => o.str_raw("ports", &n.to_string()),
            }
        }
    }
    if let Some(p) = &r.dnat {
        o.header("[endpoint.layer.group.rule.dnat]", p.span());
        o.str("ip", p.get_ref().ip.get_ref());
        o.int("port", p.get_ref().port.as_ref());
    }
    if let Some(p) = &r.set_mac {
        o.header("[endpoint.layer.group.rule.set_mac]", p.span());
        o.opt("src", p.get_ref().src.as_ref());
        o.opt("dst", p.get_ref().dst.as_ref());
    }
}

fn layer(o: &mut Out, l: &Spanned<raw::Layer>) {
    o.header("[[endpoint.layer]]", l.span());
    let l = l.get_ref();
    o.str("name", l.name.get_ref());
    if let Some(a) = l.default_in {
        o.str("default_in", action(a));
    }
    if let Some(a) = l.default_out {
        o.str("default_out", action(a));
    }
    for g in &l.group {
        o.header("[[endpoint.layer.group]]", g.span());
        let g = g.get_ref();
        o.str("name", g.name.get_ref());
        if let Some(dir) = g.direction {
            o.str(
                "direction",
                match dir {
                    raw::GroupDirection::In => "in",
                    raw::GroupDirection::Out => "out",
                    raw::GroupDirection::Both => "both",
                },
            );
        }
        if let Some(c) = &g.condition {
            o.header("[endpoint.layer.group.condition]", c.span());
            conditions(o, c.get_ref());
        }
        g.rule.iter().for_each(|r| rule(o, r));
    }
}

fn endpoint(o: &mut Out, e: &Spanned<raw::Endpoint>) {
    o.header("[[endpoint]]", e.span());
    let e = e.get_ref();
    o.str("name", e.name.get_ref());
    o.str("network", e.network.get_ref());
    o.str("mac", e.mac.get_ref());
    o.opt("ipv4", e.ipv4.as_ref());
    o.opt("ipv6", e.ipv6.as_ref());
    if let Some(i) = &e.isolation {
        o.str(
            "isolation",
            match i.get_ref() {
                raw::Isolation::Process => "process",
                raw::Isolation::ProcessLegacy => "process-legacy",
                raw::Isolation::Hyperv => "hyperv",
            },
        );
    }
    if let Some(i) = &e.interface {
        o.str("interface", i);
    }
    e.acl.iter().for_each(|a| acl(o, "endpoint", a));
    for pm in &e.port_mapping {
        o.header("[[endpoint.port_mapping]]", pm.span());
        let pm = pm.get_ref();
        if let Some(p) = pm.protocol {
            o.str(
                "protocol",
                match p {
                    raw::MappingProtocol::Tcp => "tcp",
                    raw::MappingProtocol::Udp => "udp",
                },
            );
        }
        o.int("internal_port", Some(&pm.internal_port));
        o.int("external_port", Some(&pm.external_port));
    }
    e.outbound_nat
        .iter()
        .for_each(|on| outbound_nat(o, "endpoint", on));
    e.route.iter().for_each(|r| route(o, "endpoint", r));
    e.layer.iter().for_each(|l| layer(o, l));
}

fn remote_endpoint(o: &mut Out, r: &Spanned<raw::RemoteEndpoint>) {
    o.header("[[remote_endpoint]]", r.span());
    let r = r.get_ref();
    o.opt("name", r.name.as_ref());
    o.str("network", r.network.get_ref());
    o.opt("mac", r.mac.as_ref());
    o.opt("ipv4", r.ipv4.as_ref());
    o.opt("ipv6", r.ipv6.as_ref());
    o.opt("provider_address", r.provider_address.as_ref());
}

fn load_balancer(o: &mut Out, lb: &Spanned<raw::LoadBalancer>) {
    o.header("[[load_balancer]]", lb.span());
    let lb = lb.get_ref();
    o.str("name", lb.name.get_ref());
    if let Some(p) = &lb.protocol {
        o.str(
            "protocol",
            match p.get_ref() {
                raw::LbProtocol::Tcp => "tcp",
                raw::LbProtocol::Udp => "udp",
            },
        );
    }
    o.str("vip", lb.vip.get_ref());
    o.int("port", Some(&lb.port));
    o.strings("backends", &lb.backends);
    if let Some(dist) = lb.distribution {
        o.str(
            "distribution",
            match dist {
                raw::Distribution::FiveTuple => "five-tuple",
                raw::Distribution::SourceIpProtocol => "source-ip-protocol",
                raw::Distribution::SourceIp => "source-ip",
            },
        );
    }
}

/// The TOML text of a policy, after `header` (comment lines).
pub(crate) fn emit(d: &Diagnostics, file: &raw::File, header: &str) -> String {
    let mut o = Out {
        s: header.to_owned(),
        d,
    };
    if let Some(h) = &file.host {
        host(&mut o, h);
    }
    if let Some(t) = &file.template {
        template(&mut o, "template", t);
    }
    file.networks.iter().for_each(|n| network(&mut o, n));
    file.endpoints.iter().for_each(|e| endpoint(&mut o, e));
    file.remote_endpoints
        .iter()
        .for_each(|r| remote_endpoint(&mut o, r));
    file.load_balancers
        .iter()
        .for_each(|lb| load_balancer(&mut o, lb));
    o.s
}
