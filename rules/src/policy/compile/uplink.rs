//! `[host]` → the uplink port: its name, MAC, addresses (what NAT translates to and
//! VXLAN leaves from) and MTU.

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values;
use super::common::{good_name, int_field, port_mac};
use crate::model::Uplink;

pub(crate) fn compile_uplink(d: &mut Diagnostics, host: Option<Spanned<raw::Host>>) -> Uplink {
    let mut uplink = Uplink::default();
    let Some(host) = host else {
        return uplink;
    };
    let span = host.span();
    let host = host.into_inner();
    let object = "host";
    if let Some(name) = host.name
        && good_name(d, name.span(), object, "name", name.get_ref())
    {
        uplink.name = name.into_inner();
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
    if let Some(i) = &host.interface
        && !good_name(d, span, object, "interface", i)
    {
        return uplink;
    }
    uplink.interface = host.interface;
    uplink
}
