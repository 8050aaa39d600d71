//! The packet path end to end, per packet: parse → ingress → the sender's port (flow
//! table hit: the fast path) → delivery → verdict. The traffic is DPDK testpmd's peer
//! workload (`../shared/bench/peer-dpdk-testpmd`): 64-byte Ethernet/IPv4/UDP frames of
//! N distinct flows, so the two can be compared side by side.
//!
//! `cargo bench --bench pipeline`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_dataplane::packet::parse;
use strata_dataplane::{FrameInfo, Switch};

/// The same frames as mk-udp64-pcap.py: flow i is 198.18.(i)→198.19.(7i), UDP 1024+i → 53.
fn frames(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            let src = 0xC612_0000u32 | (i & 0xFFFF);
            let dst = 0xC613_0000u32 | ((i * 7) & 0xFFFF);
            let mut ip = vec![0x45, 0, 0, 46];
            ip.extend_from_slice(&(i as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&src.to_be_bytes());
            ip.extend_from_slice(&dst.to_be_bytes());
            let mut sum: u32 = ip
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 53, 0, 26, 0, 0]);
            f.extend_from_slice(&[0; 18]);
            f
        })
        .collect()
}

/// One transparent network; the frames' source MAC is endpoint `ep`, whose ACL layer has
/// a handful of rules (none matching, so the profile's default decides).
const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:02"
addresses = ["198.19.255.254"]

[[network]]
name = "t"
driver = "transparent"
subnets = ["198.18.0.0/16"]

[[endpoint]]
name = "ep"
network = "t"
mac = "02:00:00:00:00:01"
ipv4 = "198.18.255.1"

[[endpoint.acl]]
action = "block"
direction = "out"
protocols = ["tcp"]
remote_ports = ["23"]

[[endpoint.acl]]
action = "block"
direction = "out"
protocols = ["udp"]
remote_addresses = ["198.18.0.0/16"]
remote_ports = ["9999"]
"#;

fn bench(c: &mut Criterion) {
    let policy = strata_rules::policy::load(POLICY, "bench.toml").expect("bench policy");
    let mut g = c.benchmark_group("pipeline");
    for n in [1u32, 1024, 65536] {
        let frames = frames(n);
        let mut sw = Switch::new(policy.clone());
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("udp64/flows={n}"), |b| {
            b.iter(|| {
                for f in &frames {
                    let parsed = parse(f);
                    let info = FrameInfo::of(&parsed);
                    let src = parsed
                        .as_ref()
                        .map_or(strata_rules::Mac::ZERO, |p| p.fields.src_mac);
                    let at = sw.ingress_of(None, src, None);
                    black_box(sw.process(at, &info, 1));
                }
            })
        });
        assert_eq!(
            sw.stats.dropped_total(),
            0,
            "every bench frame is forwarded"
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
