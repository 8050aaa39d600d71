//! ClassBench text formats: filter files (one rule a line, first line = highest priority)
//! into [`ClassRule`]s, and trace files (one packet header a line) into [`Fields`].
//!
//! A filter line: `@10.0.0.0/8  192.168.1.0/24  0 : 65535  80 : 80  0x06/0xFF  [flags]`
//! (tabs or spaces; a protocol mask of `0xFF` means exactly that protocol, `0x00` any; the
//! trailing TCP-flags column is ignored, as DPDK's `test-acl` does). A trace line:
//! `src dst sport dport proto [...]`, addresses as decimal `u32`s; further columns are
//! ignored.

use std::net::{IpAddr, Ipv4Addr};

use crate::classifier::ClassRule;
use crate::model::{Conditions, Fields, IpPrefix, Mac, PortRange};

/// A malformed line: its 1-based number and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Parses a ClassBench filter file. Rule `i` (0-based, blank lines skipped) gets id and
/// priority `i`, so the first matching line wins.
///
/// ```
/// let rules = strata_rules::classbench::parse_filters(
///     "@10.0.0.0/8\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n",
/// ).unwrap();
/// assert_eq!(rules.len(), 1);
/// assert_eq!(rules[0].conditions.protocol, vec![6]);
/// ```
pub fn parse_filters(text: &str) -> Result<Vec<ClassRule>, ParseError> {
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let body = line
            .strip_prefix('@')
            .ok_or_else(|| err(line_no, "a filter line starts with `@`"))?;
        let conditions = parse_filter(body).map_err(|m| err(line_no, m))?;
        let index = u32::try_from(rules.len()).map_err(|_| err(line_no, "too many rules"))?;
        rules.push(ClassRule {
            id: index,
            priority: index,
            conditions,
        });
    }
    Ok(rules)
}

fn parse_filter(body: &str) -> Result<Conditions, String> {
    let tokens: Vec<&str> = body.split_whitespace().collect();
    let at = |i: usize, what: &str| {
        tokens
            .get(i)
            .copied()
            .ok_or_else(|| format!("missing {what}"))
    };
    let src = parse_prefix(at(0, "source prefix")?)?;
    let dst = parse_prefix(at(1, "destination prefix")?)?;
    let range = |i: usize, what: &str| -> Result<PortRange, String> {
        let lo = parse_port(at(i, what)?, what)?;
        if at(i + 1, what)? != ":" {
            return Err(format!("{what}: expected `lo : hi`"));
        }
        let hi = parse_port(at(i + 2, what)?, what)?;
        if lo > hi {
            return Err(format!("{what}: {lo} : {hi} is empty"));
        }
        Ok(PortRange { lo, hi })
    };
    let sport = range(2, "source port range")?;
    let dport = range(5, "destination port range")?;
    let proto = parse_proto(at(8, "protocol")?)?;
    // Anything further (the TCP flags column) is ignored.
    let mut c = Conditions::any();
    // /0 and the full range are "any": leaving them out keeps the rule a pure wildcard
    // there, which is what ClassBench means.
    if src.len() > 0 {
        c.src_ip.push(src);
    }
    if dst.len() > 0 {
        c.dst_ip.push(dst);
    }
    if sport != PortRange::ANY {
        c.src_port.push(sport);
    }
    if dport != PortRange::ANY {
        c.dst_port.push(dport);
    }
    c.protocol.extend(proto);
    Ok(c)
}

fn parse_prefix(s: &str) -> Result<IpPrefix, String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not an address/length prefix"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("`{s}`: `{addr}` is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("`{s}`: prefix length must be 0..=32"))?;
    // ClassBench files sometimes carry host bits under the mask; they mean the prefix.
    IpPrefix::new(IpAddr::V4(addr), len).ok_or_else(|| format!("`{s}`: bad prefix"))
}

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    s.parse()
        .map_err(|_| format!("{what}: `{s}` is not a port (0..=65535)"))
}

fn parse_proto(s: &str) -> Result<Option<u8>, String> {
    let (value, mask) = s
        .split_once('/')
        .ok_or_else(|| format!("protocol `{s}` is not value/mask"))?;
    let hex = |h: &str| {
        let digits = h
            .strip_prefix("0x")
            .or_else(|| h.strip_prefix("0X"))
            .unwrap_or(h);
        u8::from_str_radix(digits, 16)
            .map_err(|_| format!("protocol `{s}`: `{h}` is not a hex byte"))
    };
    match (hex(value)?, hex(mask)?) {
        (v, 0xff) => Ok(Some(v)),
        (_, 0) => Ok(None),
        (_, m) => Err(format!(
            "protocol `{s}`: mask {m:#04x} unsupported (0xFF exact or 0x00 any)"
        )),
    }
}

/// Parses a ClassBench trace: one packet header a line.
///
/// ```
/// let fs = strata_rules::classbench::parse_trace("167772161\t3232235777\t1024\t80\t6\t0\t3\n").unwrap();
/// assert_eq!(fs[0].src_ip, "10.0.0.1".parse::<std::net::IpAddr>().unwrap());
/// assert_eq!(fs[0].dst_port, 80);
/// ```
pub fn parse_trace(text: &str) -> Result<Vec<Fields>, ParseError> {
    let mut packets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        packets.push(parse_packet(line).map_err(|m| err(line_no, m))?);
    }
    Ok(packets)
}

fn parse_packet(line: &str) -> Result<Fields, String> {
    let mut tokens = line.split_whitespace();
    let mut next = |what: &str| tokens.next().ok_or_else(|| format!("missing {what}"));
    let addr = |s: &str, what: &str| {
        s.parse::<u32>()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .map_err(|_| format!("{what} `{s}` is not a decimal IPv4 address"))
    };
    let src_ip = addr(next("source address")?, "source address")?;
    let dst_ip = addr(next("destination address")?, "destination address")?;
    let src_port = parse_port(next("source port")?, "source port")?;
    let dst_port = parse_port(next("destination port")?, "destination port")?;
    let p = next("protocol")?;
    let protocol = p
        .parse()
        .map_err(|_| format!("protocol `{p}` is not a number 0..=255"))?;
    Ok(Fields {
        src_mac: Mac::ZERO,
        dst_mac: Mac::ZERO,
        vlan: None,
        vni: None,
        src_ip,
        dst_ip,
        protocol,
        src_port,
        dst_port,
        icmp: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_with_wildcards_and_ranges() {
        let text = "@10.1.0.0/16\t0.0.0.0/0\t0 : 65535\t1024 : 65535\t0x11/0xFF\t0x0000/0x0000\n\
                    \n\
                    @0.0.0.0/0 1.2.3.4/32 53 : 53 0 : 65535 0x00/0x00\n";
        let rules = parse_filters(text).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[1].id, rules[1].priority), (1, 1));
        let c = &rules[0].conditions;
        assert_eq!(c.src_ip, vec!["10.1.0.0/16".parse().unwrap()]);
        assert!(c.dst_ip.is_empty() && c.src_port.is_empty());
        assert_eq!(
            c.dst_port,
            vec![PortRange {
                lo: 1024,
                hi: 65535
            }]
        );
        assert_eq!(c.protocol, vec![17]);
        let c = &rules[1].conditions;
        assert!(c.src_ip.is_empty() && c.protocol.is_empty());
        assert_eq!(c.src_port, vec![PortRange::single(53)]);
    }

    #[test]
    fn malformed_filters_name_their_line() {
        for (bad, why) in [
            ("10.0.0.0/8 0.0.0.0/0 0 : 1 0 : 1 0x06/0xFF", "`@`"),
            (
                "@10.0.0.0/33 0.0.0.0/0 0 : 1 0 : 1 0x06/0xFF",
                "prefix length",
            ),
            ("@10.0.0.0/8 0.0.0.0/0 0 : 1 0 : 1", "missing protocol"),
            ("@10.0.0.0/8 0.0.0.0/0 0 - 1 0 : 1 0x06/0xFF", "lo : hi"),
            ("@10.0.0.0/8 0.0.0.0/0 5 : 1 0 : 1 0x06/0xFF", "empty"),
            (
                "@10.0.0.0/8 0.0.0.0/0 0 : 70000 0 : 1 0x06/0xFF",
                "not a port",
            ),
            ("@10.0.0.0/8 0.0.0.0/0 0 : 1 0 : 1 0x06/0x0F", "unsupported"),
            ("@10.0.0.0/8 0.0.0.0/0 0 : 1 0 : 1 0xZZ/0xFF", "hex"),
        ] {
            let text = format!("@1.2.3.4/32 0.0.0.0/0 0 : 65535 0 : 65535 0x06/0xFF\n{bad}\n");
            let e = parse_filters(&text).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn traces_parse_and_errors_name_their_line() {
        let fs = parse_trace("167772161 3232235777 1024 80 6 0 12\n").unwrap();
        assert_eq!(fs[0].dst_ip, "192.168.1.1".parse::<IpAddr>().unwrap());
        assert_eq!((fs[0].src_port, fs[0].protocol), (1024, 6));
        assert_eq!(fs[0].icmp, None);
        for bad in [
            "1 2 3",
            "1 2 3 4 256",
            "x 2 3 4 6",
            "1 2 65536 4 6",
            "4294967296 2 3 4 6",
        ] {
            let e = parse_trace(&format!("1 2 3 4 6\n{bad}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
        }
    }
}
