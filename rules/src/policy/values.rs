//! The small value syntaxes of the policy file (addresses, prefixes, ports, protocols,
//! MACs) and the loosely typed lists that carry them.
//!
//! HNS writes lists as comma-separated strings (`"80,443"`) and protocols as numbers in
//! strings (`"6"`); TOML users write arrays of strings or integers. [`Items`] accepts all
//! of these so that a policy copied from HNS JSON reads the same in TOML.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::model::{IpPrefix, Mac, PortRange, proto};

/// One list element as written: a string or an integer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar {
    Str(String),
    Int(i128),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => write!(f, "`{s}`"),
            Scalar::Int(i) => write!(f, "{i}"),
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A list field: an array of strings and integers, or a single string or integer. Strings
/// may hold several comma-separated items, as HNS writes them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Items(Vec<Spanned<Scalar>>, Option<Scalar>);

impl Items {
    /// A list built by an importer: items with their spans.
    pub(crate) fn from_spanned(items: Vec<Spanned<Scalar>>) -> Items {
        Items(items, None)
    }

    /// Every item with the span it came from (`whole` is the span of the field's value,
    /// used for a single scalar). Comma-separated strings are split; empty pieces dropped.
    pub fn iter_with(&self, whole: &Range<usize>) -> Vec<(Scalar, Range<usize>)> {
        let mut out = Vec::new();
        let mut push = |s: &Scalar, span: Range<usize>| match s {
            Scalar::Str(text) => {
                for piece in text.split(',') {
                    let piece = piece.trim();
                    if !piece.is_empty() {
                        out.push((Scalar::Str(piece.to_owned()), span.clone()));
                    }
                }
            }
            Scalar::Int(_) => out.push((s.clone(), span)),
        };
        if let Some(one) = &self.1 {
            push(one, whole.clone());
        }
        for item in &self.0 {
            push(item.get_ref(), item.span());
        }
        out
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings or integers, or one string or integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Items, E> {
        Ok(Items(vec![], Some(Scalar::Str(v.to_owned()))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Items, E> {
        Ok(Items(vec![], Some(Scalar::Int(v.into()))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Items, E> {
        Ok(Items(vec![], Some(Scalar::Int(v.into()))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Scalar>>()? {
            v.push(item);
        }
        Ok(Items(v, None))
    }
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Items, D::Error> {
        d.deserialize_any(ItemsVisitor)
    }
}

/// A string item, or an error saying what was expected.
fn as_str<'a>(s: &'a Scalar, what: &str) -> Result<&'a str, String> {
    match s {
        Scalar::Str(t) => Ok(t),
        Scalar::Int(i) => Err(format!("{i} is not {what} (write it as a string)")),
    }
}

/// An IP prefix (`198.18.0.0/15`) or a bare address (a host prefix).
///
/// An IPv4-mapped IPv6 prefix (`::ffff:198.18.1.0/120`) is refused: packets carry IPv4
/// addresses as IPv4, so it would never match them; the message gives the IPv4 prefix.
pub fn prefix(s: &Scalar) -> Result<IpPrefix, String> {
    let text = as_str(s, "an IP prefix")?;
    let p: IpPrefix = text.parse()?;
    if let IpAddr::V6(a) = p.addr()
        && p.len() >= 96
        && let Some(v4) = a.to_ipv4_mapped()
    {
        return Err(format!(
            "`{text}` is an IPv4-mapped IPv6 prefix, which never matches: IPv4 packets carry \
             IPv4 addresses; write {v4}/{}",
            p.len() - 96
        ));
    }
    Ok(p)
}

/// A bare IP address.
pub fn address(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not an IP address"))
}

/// A MAC usable by an endpoint or a condition.
pub fn mac(s: &Scalar) -> Result<Mac, String> {
    as_str(s, "a MAC address")?.parse()
}

fn port_number(text: &str, whole: &str) -> Result<u16, String> {
    let n: i128 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{whole}` is not a port or a port range like `8000-8080`"))?;
    u16::try_from(n).map_err(|_| format!("port {n} is out of range 0..=65535"))
}

/// A port (`80`, `"80"`) or an inclusive range (`"8000-8080"`).
pub fn port_range(s: &Scalar) -> Result<PortRange, String> {
    match s {
        Scalar::Int(n) => u16::try_from(*n)
            .map(PortRange::single)
            .map_err(|_| format!("port {n} is out of range 0..=65535")),
        Scalar::Str(t) => {
            // A leading `-` is a negative number, not a range with an empty low end.
            let split = t.get(1..).and_then(|rest| rest.find('-')).map(|i| i + 1);
            match split {
                Some(i) => {
                    let (lo, hi) = (&t[..i], &t[i + 1..]);
                    let (lo, hi) = (port_number(lo, t)?, port_number(hi, t)?);
                    if lo > hi {
                        return Err(format!(
                            "port range `{t}` has its low end above its high end"
                        ));
                    }
                    Ok(PortRange { lo, hi })
                }
                None => port_number(t, t).map(PortRange::single),
            }
        }
    }
}

/// Protocol names the policy file knows, with their IP protocol numbers.
pub const PROTOCOL_NAMES: [(&str, u8); 7] = [
    ("tcp", proto::TCP),
    ("udp", proto::UDP),
    ("icmp", proto::ICMP),
    ("icmpv6", proto::ICMPV6),
    ("igmp", proto::IGMP),
    ("gre", proto::GRE),
    ("sctp", proto::SCTP),
];

/// A protocol: a name of [`PROTOCOL_NAMES`] (any case) or a number 0..=255 (also in a
/// string, as HNS writes `"6"`).
pub fn protocol(s: &Scalar) -> Result<u8, String> {
    let number = |n: i128| {
        u8::try_from(n).map_err(|_| format!("protocol number {n} is out of range 0..=255"))
    };
    match s {
        Scalar::Int(n) => number(*n),
        Scalar::Str(t) => {
            if let Ok(n) = t.trim().parse::<i128>() {
                return number(n);
            }
            let lower = t.trim().to_ascii_lowercase();
            PROTOCOL_NAMES
                .iter()
                .find(|(name, _)| *name == lower)
                .map(|&(_, n)| n)
                .ok_or_else(|| {
                    format!(
                        "unknown protocol `{t}` (expected tcp, udp, icmp, icmpv6, igmp, gre, sctp or a number 0..=255)"
                    )
                })
        }
    }
}

/// An integer in `lo..=hi`, from an integer or a numeric string.
pub fn int_in(s: &Scalar, what: &str, lo: i128, hi: i128) -> Result<i128, String> {
    let n = match s {
        Scalar::Int(n) => *n,
        Scalar::Str(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("`{t}` is not a number ({what})"))?,
    };
    if n < lo || n > hi {
        return Err(format!("{what} {n} is out of range {lo}..={hi}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let s = |t: &str| Scalar::Str(t.into());
        assert_eq!(port_range(&s("80")), Ok(PortRange::single(80)));
        assert_eq!(
            port_range(&s("8000-8080")),
            Ok(PortRange { lo: 8000, hi: 8080 })
        );
        assert_eq!(port_range(&Scalar::Int(443)), Ok(PortRange::single(443)));
        assert!(port_range(&s("9-8")).is_err());
        assert!(port_range(&s("70000")).is_err());
        assert!(port_range(&s("-1")).is_err());
        assert!(port_range(&s("1-")).is_err());
        assert!(port_range(&Scalar::Int(-1)).is_err());
    }

    #[test]
    fn mapped_prefixes_are_refused() {
        let s = |t: &str| Scalar::Str(t.into());
        let e = prefix(&s("::ffff:198.18.1.0/120")).unwrap_err();
        assert!(
            e.contains("IPv4-mapped") && e.contains("write 198.18.1.0/24"),
            "{e}"
        );
        assert!(
            prefix(&s("::ffff:198.18.1.7"))
                .unwrap_err()
                .contains("198.18.1.7/32")
        );
        assert!(prefix(&s("::/0")).is_ok());
        assert!(prefix(&s("2001:db8::/32")).is_ok());
    }

    #[test]
    fn protocols() {
        let s = |t: &str| Scalar::Str(t.into());
        assert_eq!(protocol(&s("TCP")), Ok(6));
        assert_eq!(protocol(&s("6")), Ok(6));
        assert_eq!(protocol(&Scalar::Int(58)), Ok(58));
        assert!(protocol(&s("tcpp")).is_err());
        assert!(protocol(&Scalar::Int(256)).is_err());
    }
}
