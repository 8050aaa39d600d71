//! Small checks every part of the compiler shares: lists of values, integer ranges,
//! names, MACs, match conditions, and the "who owns this already" maps behind every
//! duplicate message.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values::{self, Items, Scalar};
use crate::model::{Conditions, IpPrefix, Mac};

/// Priority of an ACL or rule that does not give one. Lower wins; ties go to the one
/// written first, so a file without priorities reads top to bottom.
pub const DEFAULT_PRIORITY: u32 = 100;

/// Parses every item of a list field; bad items are reported and skipped.
pub(crate) fn list<T>(
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

pub(crate) fn has_items(value: Option<&Spanned<Items>>) -> bool {
    value.is_some_and(|v| !v.get_ref().iter_with(&v.span()).is_empty())
}

/// An integer field in `lo..=hi`, reported at its span if not.
pub(crate) fn int_field(
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

/// A port field, 1..=65535.
pub(crate) fn port_field(
    d: &mut Diagnostics,
    object: &str,
    field: &str,
    value: &Spanned<i64>,
) -> Option<u16> {
    int_field(d, object, field, value, 1, 65535).and_then(|v| u16::try_from(v).ok())
}

pub(crate) fn priority(d: &mut Diagnostics, object: &str, value: Option<&Spanned<i64>>) -> u32 {
    value
        .and_then(|p| int_field(d, object, "priority", p, 0, u32::MAX.into()))
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(DEFAULT_PRIORITY)
}

fn int_item<T: TryFrom<i128>>(s: &Scalar, what: &str, lo: i128, hi: i128) -> Result<T, String> {
    values::int_in(s, what, lo, hi)
        .and_then(|n| T::try_from(n).map_err(|_| format!("{what} {n} is out of range")))
}

/// The match fields of a custom rule or a group condition.
pub(crate) fn conditions(d: &mut Diagnostics, object: &str, c: &raw::Conditions) -> Conditions {
    let (o, prefix, ports) = (object, values::prefix, values::port_range);
    Conditions {
        src_ip: list(d, o, "src_addresses", c.src_addresses.as_ref(), prefix),
        dst_ip: list(d, o, "dst_addresses", c.dst_addresses.as_ref(), prefix),
        src_port: list(d, o, "src_ports", c.src_ports.as_ref(), ports),
        dst_port: list(d, o, "dst_ports", c.dst_ports.as_ref(), ports),
        protocol: list(d, o, "protocols", c.protocols.as_ref(), values::protocol),
        icmp_type: list(d, o, "icmp_types", c.icmp_types.as_ref(), |s| {
            int_item(s, "ICMP type", 0, 255)
        }),
        icmp_code: list(d, o, "icmp_codes", c.icmp_codes.as_ref(), |s| {
            int_item(s, "ICMP code", 0, 255)
        }),
        src_mac: list(d, o, "src_macs", c.src_macs.as_ref(), values::mac),
        dst_mac: list(d, o, "dst_macs", c.dst_macs.as_ref(), values::mac),
        vlan: list(d, o, "vlans", c.vlans.as_ref(), |s| {
            int_item(s, "VLAN ID", 1, 4094)
        }),
        vni: list(d, o, "vnis", c.vnis.as_ref(), |s| {
            int_item(s, "VNI", 1, 16_777_215)
        }),
    }
}

/// A MAC a port may own: unicast and not all-zero.
pub(crate) fn port_mac(s: &str) -> Result<Mac, String> {
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

/// Whether two prefixes share an address (never across families).
pub(crate) fn overlaps(a: &IpPrefix, b: &IpPrefix) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

pub(crate) fn family(ip_v4: bool) -> &'static str {
    if ip_v4 { "IPv4" } else { "IPv6" }
}

/// Who already owns a name, an address or a MAC, for "duplicate" messages.
pub(crate) type Owners<K> = HashMap<K, String>;

/// Records `owner` for `key`, or returns who had it first.
pub(crate) fn claim<K: std::hash::Hash + Eq>(
    owners: &mut Owners<K>,
    key: K,
    owner: String,
) -> Option<String> {
    match owners.get(&key) {
        Some(first) => Some(first.clone()),
        None => {
            owners.insert(key, owner);
            None
        }
    }
}

/// Whether `name` may name an object: not empty, and free of control characters, which
/// would reach terminals raw through verdicts and `strata ctl` tables. Reports why not.
pub(crate) fn good_name(
    d: &mut Diagnostics,
    span: Range<usize>,
    object: &str,
    what: &str,
    name: &str,
) -> bool {
    if name.trim().is_empty() {
        d.error(span, object, format!("{what} must not be empty"));
        return false;
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        d.error(
            span,
            object,
            format!(
                "{what} contains the control character U+{:04X}: names are printed in \
                 verdicts and tables, where it would reach the terminal",
                u32::from(c)
            ),
        );
        return false;
    }
    true
}
