//! Reads and parses every capture of tcpdump's test suite (shared/pcaps/tcpdump): real,
//! odd and deliberately broken files. Nothing may panic; the files described in
//! shared/pcaps/selection.tsv must give exactly the frame counts written there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_dataplane::capture::{CaptureError, CaptureReader};
use strata_dataplane::packet::{self, FrameKind};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps/tcpdump");
const SELECTION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/pcaps/selection.tsv"
);

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(CORPUS);
    assert!(
        dir.is_dir(),
        "the capture corpus is missing: expected tcpdump's test captures in {} \
         (shared/pcaps/tcpdump beside the repository)",
        dir.display()
    );
    dir
}

#[derive(Default, Debug)]
struct Tally {
    records: u64,
    ip: u64,
    arp: u64,
    other: u64,
    not_ethernet: u64,
    parse_errors: u64,
    /// Parse errors by reason, with one file that showed each.
    reasons: BTreeMap<&'static str, (u64, String)>,
}

/// Reads every record of one file and parses every frame; the error, if reading stopped.
fn read(path: &Path, tally: &mut Tally) -> (u64, Option<CaptureError>) {
    let reader = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => return (0, Some(e)),
    };
    let mut n = 0;
    for r in reader {
        let f = match r {
            Ok(f) => f,
            Err(e) => return (n, Some(e)),
        };
        n += 1;
        tally.records += 1;
        if !f.is_ethernet() {
            tally.not_ethernet += 1;
            continue;
        }
        match packet::parse_captured(&f.data, f.orig_len) {
            Ok(p) => match p.kind {
                FrameKind::Ip => tally.ip += 1,
                FrameKind::Arp(_) => tally.arp += 1,
                FrameKind::Other { .. } => tally.other += 1,
            },
            Err(e) => {
                tally.parse_errors += 1;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let r = tally
                    .reasons
                    .entry(e.reason())
                    .or_insert((0, name.to_owned()));
                r.0 += 1;
            }
        }
        // The strict parse must not panic either.
        let _ = packet::parse(&f.data);
    }
    (n, None)
}

#[test]
fn every_tcpdump_capture_reads_and_parses() {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();

    let mut tally = Tally::default();
    let mut counts = BTreeMap::new();
    let (mut ok, mut failed) = (0, 0);
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    for p in &paths {
        let (n, e) = read(p, &mut tally);
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        match e {
            None => ok += 1,
            Some(e) => {
                failed += 1;
                let kind = format!("{e:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap_or("")
                    .to_owned();
                *errors.entry(kind).or_default() += 1;
                // The message must say something useful.
                assert!(!e.to_string().is_empty());
            }
        }
        counts.insert(name, n);
    }
    eprintln!(
        "corpus: {} files, {ok} read whole, {failed} stopped with an error {errors:?}; {tally:?}",
        paths.len()
    );
    assert!(ok > 700, "only {ok} of {} captures read whole", paths.len());
    assert!(tally.ip > 4_000, "suspiciously few IP frames: {tally:?}");

    let selection = std::fs::read_to_string(SELECTION)
        .unwrap_or_else(|e| panic!("cannot read {SELECTION}: {e}"));
    let mut checked = 0;
    for line in selection.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(expected)) = (cols.first(), cols.get(3)) else {
            panic!("bad selection line: {line}");
        };
        let expected: u64 = expected
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad count in selection line: {line}"));
        let got = counts.get(*name).copied();
        assert_eq!(got, Some(expected), "{name}: frame count");
        checked += 1;
    }
    assert!(checked >= 30, "selection.tsv named only {checked} files");
}

/// The corpus itself holds no broken files, so break some: every real capture cut short
/// inside its last record gives the records before it and then `Truncated`; a text file
/// is `NotACapture`.
#[test]
fn cut_captures_give_the_frames_so_far_then_an_error() {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let mut checked = 0;
    for p in &paths {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let whole: Vec<_> = match CaptureReader::from_bytes(bytes.clone()) {
            Ok(r) => r.collect(),
            Err(_) => continue,
        };
        if whole.len() < 2 || whole.iter().any(|f| f.is_err()) {
            continue;
        }
        // The last record ends at the end of the file (for pcapng, possibly followed
        // by statistics blocks: cut those files inside their last block anyway).
        let cut = bytes.len() - 3;
        let mut frames = 0;
        let mut err = None;
        for r in CaptureReader::from_bytes(bytes[..cut].to_vec()).expect("header intact") {
            match r {
                Ok(_) => frames += 1,
                Err(e) => err = Some(e),
            }
        }
        let name = p.display();
        assert!(
            matches!(err, Some(CaptureError::Truncated { .. })),
            "{name} cut short: {err:?}"
        );
        assert!(
            frames >= whole.len() - 1 && frames < whole.len() + 1,
            "{name}: {frames} frames"
        );
        checked += 1;
    }
    assert!(checked > 300, "only {checked} captures were cut");
    let text = std::fs::read(SELECTION).expect("selection.tsv");
    assert!(matches!(
        CaptureReader::from_bytes(text),
        Err(CaptureError::NotACapture { .. })
    ));
}

/// The first frames of a capture, parsed.
fn first(name: &str, n: usize) -> Vec<(strata_dataplane::capture::Frame, packet::Parsed)> {
    let path = corpus_dir().join(name);
    CaptureReader::open(&path)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .take(n)
        .map(|f| {
            let f = f.unwrap_or_else(|e| panic!("{name}: {e}"));
            let p = packet::parse_captured(&f.data, f.orig_len)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (f, p)
        })
        .collect()
}

/// What a few real captures must parse to (values checked against tcpdump's own output).
#[test]
fn known_frames_parse_to_known_fields() {
    use strata_dataplane::packet::{Fragment, tcp};
    // QinQ: 802.1ad outer VID 200, inner 802.1Q VID 2001, ARP inside.
    let f = first("802.1ad_QinQ.pcap", 1);
    let p = &f[0].1;
    assert_eq!(
        (p.outer_vlan, p.fields.vlan, p.vlan_count),
        (Some(200), Some(2001), 2)
    );
    assert!(matches!(p.kind, FrameKind::Arp(a) if a.op == 1));
    // Linux cooked capture, nanosecond pcap: a TCP handshake.
    let f = first("tcp-handshake-nano.pcap", 3);
    assert_eq!(f[0].0.ts_ns, 1_418_145_369_924_505_488);
    let flags: Vec<u8> = f.iter().map(|(_, p)| p.tcp_flags).collect();
    assert_eq!(flags, [tcp::SYN, tcp::SYN | tcp::ACK, tcp::ACK]);
    assert_eq!((f[0].1.fields.dst_port, f[1].1.fields.src_port), (80, 80));
    // Raw IPv6: DNS over UDP.
    let f = first("LINKTYPE_RAW_ipv6.pcap", 1);
    assert_eq!(
        (
            f[0].1.ip_version,
            f[0].1.fields.protocol,
            f[0].1.fields.dst_port
        ),
        (6, 17, 53)
    );
    // ICMPv6 parameter problem; echo requests behind a routing header.
    assert_eq!(
        first("icmpv6-rfc7112.pcap", 1)[0].1.fields.icmp,
        Some((4, 3))
    );
    let f = first("ipv6-routing-header.pcap", 1);
    assert_eq!(
        (f[0].1.fields.icmp, f[0].1.icmp_id, f[0].1.l4_offset),
        (Some((128, 0)), Some(0), Some(78))
    );
    // VXLAN outer header.
    assert_eq!(first("vxlan.pcap", 1)[0].1.fields.dst_port, 4789);
    // BIG TCP over IPv6 (payload length 0, 80 kB frame).
    let f = first("bigtcp-ipv6.pcap", 1);
    assert_eq!(
        (f[0].1.fields.src_port, f[0].1.fields.dst_port),
        (43267, 41219)
    );
    // A first fragment cut by the snap length: ports still there.
    let f = first("esp_truncated.pcap", 1);
    assert_eq!(
        (f[0].1.fragment, f[0].1.truncated, f[0].1.fields.dst_port),
        (Fragment::First, true, 8472)
    );
}
