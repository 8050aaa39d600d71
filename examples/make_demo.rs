//! Writes `examples/demo.pcapng`, the capture `strata replay` replays by default.
//!
//! `cargo run --example make_demo` regenerates it. Every frame is built with etherparse,
//! so lengths and checksums are right. The story it tells, against `examples/policy.toml`
//! (a NAT network with `web`, `db` and `client`; an overlay network with `api`), is
//! written next to each frame, and is the comment of that frame in the capture.

use std::fs::File;
use std::io::BufWriter;

use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
use strata_dataplane::capture::PcapngWriter;

const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01]; // the host (uplink) MAC, answers for the gateway
const REMOTE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe]; // the physical network's router
const WEB: ([u8; 6], [u8; 4]) = ([0x00, 0x15, 0x5d, 0x01, 0x01, 0x0a], [198, 18, 1, 10]);
const DB: ([u8; 6], [u8; 4]) = ([0x00, 0x15, 0x5d, 0x01, 0x01, 0x0b], [198, 18, 1, 11]);
const CLIENT: ([u8; 6], [u8; 4]) = ([0x00, 0x15, 0x5d, 0x01, 0x01, 0x0c], [198, 18, 1, 12]);
const API: ([u8; 6], [u8; 4]) = ([0x00, 0x15, 0x5d, 0x02, 0x02, 0x0a], [198, 18, 2, 10]);
const HOST: [u8; 4] = [198, 19, 0, 10]; // the host's address: NAT and the VXLAN endpoint
const REMOTE_HOST: [u8; 4] = [198, 19, 0, 20]; // the other host of the overlay
const REMOTE_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];
const REMOTE_CA_MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x03, 0x03, 0x05];
const PEER: [u8; 4] = [198, 19, 0, 100]; // a server outside the host
const RESOLVER: [u8; 4] = [198, 19, 0, 53];

#[derive(Clone, Copy)]
enum Tcp {
    Syn,
    SynAck,
    Ack,
}

fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    s: ([u8; 4], u16),
    d: ([u8; 4], u16),
    f: Tcp,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(s.0, d.0, 64)
        .tcp(s.1, d.1, 1000, 64240);
    let b = match f {
        Tcp::Syn => b.syn(),
        Tcp::SynAck => b.syn().ack(1001),
        Tcp::Ack => b.ack(1001),
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("building a TCP frame");
    v
}

fn udp(
    smac: [u8; 6],
    dmac: [u8; 6],
    s: ([u8; 4], u16),
    d: ([u8; 4], u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(s.0, d.0, 64)
        .udp(s.1, d.1)
        .write(&mut v, payload)
        .expect("building a UDP frame");
    v
}

fn ping(smac: [u8; 6], dmac: [u8; 6], s: [u8; 4], d: [u8; 4], reply: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac).ipv4(s, d, 64);
    let b = if reply {
        b.icmpv4_echo_reply(7, 1)
    } else {
        b.icmpv4_echo_request(7, 1)
    };
    let mut v = Vec::new();
    b.write(&mut v, b"strata").expect("building an ICMP frame");
    v
}

/// An IPv4 packet of a protocol etherparse has no builder for (GRE), with a valid header.
fn raw_ip(
    smac: [u8; 6],
    dmac: [u8; 6],
    s: [u8; 4],
    d: [u8; 4],
    protocol: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&dmac);
    v.extend_from_slice(&smac);
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut h =
        Ipv4Header::new(payload.len() as u16, 64, IpNumber(protocol), s, d).expect("IPv4 header");
    h.header_checksum = h.calc_header_checksum();
    h.write(&mut v).expect("writing an IPv4 header");
    v.extend_from_slice(payload);
    v
}

fn arp_request(smac: [u8; 6], sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0xff; 6];
    v.extend_from_slice(&smac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    v.extend_from_slice(&smac);
    v.extend_from_slice(&sip);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&tip);
    v
}

/// ICMP "port unreachable" from `from` to `to`, quoting `quoted` (an IP packet).
fn port_unreachable(from: [u8; 4], to: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    use etherparse::{Icmpv4Type, icmpv4::DestUnreachableHeader};
    let mut v = Vec::new();
    PacketBuilder::ethernet2(REMOTE_MAC, GW)
        .ipv4(from, to, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::Port,
        ))
        .write(&mut v, quoted)
        .expect("building an ICMP error");
    v
}

/// A VXLAN packet from the remote host `pa` to this host, carrying `inner`.
fn vxlan(pa: [u8; 4], vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(REMOTE_HOST_MAC, GW)
        .ipv4(pa, HOST, 64)
        .udp(54321, 4789)
        .write(&mut v, &payload)
        .expect("building a VXLAN frame");
    v
}

/// The demo frames: (what it shows, frame).
pub fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let (web, db, client, api) = (WEB, DB, CLIENT, API);
    let mut lldp = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e];
    lldp.extend_from_slice(&REMOTE_MAC);
    lldp.extend_from_slice(&[0x88, 0xcc, 0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1, 0, 0]);
    let mut truncated = tcp(REMOTE_MAC, web.0, (PEER, 40000), (web.1, 80), Tcp::Syn, b"");
    truncated.truncate(14 + 12); // an IPv4 header cut short
    let remote_ca = [198, 18, 3, 5];
    vec![
        (
            "client asks for its gateway: the switch answers (proxy ARP)",
            arp_request(client.0, client.1, [198, 18, 1, 1]),
        ),
        (
            "web opens a PostgreSQL connection to db: db's ACL allow-web-pg admits it",
            tcp(web.0, db.0, (web.1, 50000), (db.1, 5432), Tcp::Syn, b""),
        ),
        (
            "db answers: a reply of the recorded connection, no rule evaluated",
            tcp(db.0, web.0, (db.1, 5432), (web.1, 50000), Tcp::SynAck, b""),
        ),
        (
            "web acknowledges: the flow is cached, fast path",
            tcp(web.0, db.0, (web.1, 50000), (db.1, 5432), Tcp::Ack, b""),
        ),
        (
            "client tries db's PostgreSQL port: db's ACL block-pg drops it",
            tcp(
                client.0,
                db.0,
                (client.1, 50001),
                (db.1, 5432),
                Tcp::Syn,
                b"",
            ),
        ),
        (
            "client opens HTTP to a server outside: SNAT to the host address, port kept",
            tcp(client.0, GW, (client.1, 50002), (PEER, 80), Tcp::Syn, b""),
        ),
        (
            "the server answers the host address: NAT delivers it to client, translated back",
            tcp(REMOTE_MAC, GW, (PEER, 80), (HOST, 50002), Tcp::SynAck, b""),
        ),
        (
            "client tries telnet outside: client's ACL block-telnet-out drops it",
            tcp(client.0, GW, (client.1, 50003), (PEER, 23), Tcp::Syn, b""),
        ),
        (
            "client resolves a name: SNAT",
            udp(
                client.0,
                GW,
                (client.1, 53000),
                (RESOLVER, 53),
                b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ),
        (
            "nothing listens on the resolver's port: its ICMP error follows client's connection, quote translated back",
            {
                // The query as it left the host: SNATed, quoted as IP header + 8 bytes.
                let sent = udp(
                    GW,
                    REMOTE_MAC,
                    (HOST, 53000),
                    (RESOLVER, 53),
                    b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                );
                port_unreachable(RESOLVER, HOST, &sent[14..14 + 28])
            },
        ),
        (
            "the resolver answers: back to client",
            udp(
                REMOTE_MAC,
                GW,
                (RESOLVER, 53),
                (HOST, 53000),
                b"\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ),
        (
            "a visitor connects to the host's port 8080: the port mapping sends it to web:80",
            tcp(REMOTE_MAC, GW, (PEER, 40001), (HOST, 8080), Tcp::Syn, b""),
        ),
        (
            "web answers from port 80: it leaves as the host's port 8080",
            tcp(web.0, GW, (web.1, 80), (PEER, 40001), Tcp::SynAck, b""),
        ),
        (
            "client reaches web through the host's mapped port (hairpin): SNAT, then the mapping",
            tcp(client.0, GW, (client.1, 50004), (HOST, 8080), Tcp::Syn, b""),
        ),
        (
            "client sends GRE to web: web's process profile denies protocols other than TCP, UDP, ICMP, IGMP",
            raw_ip(client.0, web.0, client.1, web.1, 47, &[0, 0, 0x08, 0]),
        ),
        (
            "client pings web: the process profile allows ICMP",
            ping(client.0, web.0, client.1, web.1, false),
        ),
        (
            "web's echo reply: reply of the recorded connection",
            ping(web.0, client.0, web.1, client.1, true),
        ),
        (
            "unsolicited UDP from client to web: allowed by the process profile",
            udp(client.0, web.0, (client.1, 40000), (web.1, 9999), b"hi"),
        ),
        (
            "a host outside tries web's private address: a NAT network is reached only through port mappings",
            tcp(REMOTE_MAC, web.0, (PEER, 40002), (web.1, 80), Tcp::Syn, b""),
        ),
        (
            "client poses as web to reach db's PostgreSQL port: an endpoint sends only as itself",
            tcp(client.0, db.0, (web.1, 50005), (db.1, 5432), Tcp::Syn, b""),
        ),
        (
            "a frame from outside claims web's address: the outside cannot pose as a NAT container",
            udp(REMOTE_MAC, GW, (web.1, 5000), (HOST, 8080), b"hi"),
        ),
        (
            "api (overlay) connects to a container on another host: VXLAN-encapsulated to that host, VNI 4096",
            tcp(api.0, GW, (api.1, 50010), (remote_ca, 80), Tcp::Syn, b""),
        ),
        (
            "the other host's answer arrives as VXLAN: decapsulated, the VNI checked, delivered to api",
            vxlan(
                REMOTE_HOST,
                4096,
                &tcp(
                    REMOTE_CA_MAC,
                    api.0,
                    (remote_ca, 80),
                    (api.1, 50010),
                    Tcp::SynAck,
                    b"",
                ),
            ),
        ),
        (
            "VXLAN for a VNI this host does not carry: dropped",
            vxlan(
                REMOTE_HOST,
                999,
                &tcp(
                    REMOTE_CA_MAC,
                    api.0,
                    (remote_ca, 80),
                    (api.1, 50011),
                    Tcp::Syn,
                    b"",
                ),
            ),
        ),
        (
            "api connects outside the overlay: OutboundNAT to the VIP",
            tcp(api.0, GW, (api.1, 50012), (PEER, 443), Tcp::Syn, b""),
        ),
        (
            "api sends a full-size packet across the overlay: too big once encapsulated; ICMP tells api",
            tcp(
                api.0,
                GW,
                (api.1, 50010),
                (remote_ca, 80),
                Tcp::Ack,
                &[0u8; 1460],
            ),
        ),
        (
            "a frame for an address no endpoint owns: no route",
            udp(
                REMOTE_MAC,
                [0x00, 0x15, 0x5d, 0x01, 0x01, 0x63],
                (PEER, 40000),
                ([198, 18, 1, 99], 9999),
                b"hi",
            ),
        ),
        ("an LLDP frame: not IP or ARP, unsupported", lldp),
        (
            "a frame whose IPv4 header is cut short: parse error",
            truncated,
        ),
    ]
}

fn main() -> std::io::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.pcapng");
    let mut w = PcapngWriter::new(BufWriter::new(File::create(path)?));
    let iface = w.interface("capture");
    let t0: u64 = 1_795_000_000_000_000_000;
    for (i, (what, frame)) in frames().iter().enumerate() {
        w.write(
            iface,
            t0 + i as u64 * 1_000_000,
            frame,
            frame.len() as u32,
            Some(what),
        )?;
    }
    w.flush()?;
    println!("wrote {path}");
    Ok(())
}
