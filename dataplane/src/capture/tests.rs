//! Reader and writer: round trips, every pcap flavour, and broken files.

use super::*;
use crate::packet::testutil::ipv4_udp_frame;

/// A legacy pcap file: `magic` as written in the file's own byte order.
fn pcap_file(
    big_endian: bool,
    nanos: bool,
    linktype: u32,
    records: &[(u32, u32, &[u8], u32)],
) -> Vec<u8> {
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(65535));
    f.extend_from_slice(&w32(linktype));
    for (sec, frac, data, orig) in records {
        f.extend_from_slice(&w32(*sec));
        f.extend_from_slice(&w32(*frac));
        f.extend_from_slice(&w32(data.len() as u32));
        f.extend_from_slice(&w32(*orig));
        f.extend_from_slice(data);
    }
    f
}

#[test]
fn pcap_flavours() {
    let frame = ipv4_udp_frame();
    for big in [false, true] {
        for nanos in [false, true] {
            let file = pcap_file(
                big,
                nanos,
                1,
                &[(2, 5, &frame, 100), (3, 0, &frame[..20], 60)],
            );
            let r = CaptureReader::from_bytes(file).unwrap();
            assert_eq!(r.format(), CaptureFormat::Pcap);
            let frames: Vec<Frame> = r.map(|f| f.unwrap()).collect();
            assert_eq!(frames.len(), 2);
            let ns = if nanos { 5 } else { 5000 };
            assert_eq!(frames[0].ts_ns, 2_000_000_000 + ns);
            assert_eq!(frames[0].data, frame);
            assert_eq!(frames[0].orig_len, 100);
            assert_eq!(frames[1].data.len(), 20);
            assert!(frames[0].is_ethernet());
            assert_eq!(frames[0].interface, None);
        }
    }
}

#[test]
fn raw_ip_pcap_becomes_ethernet() {
    let frame = ipv4_udp_frame();
    let file = pcap_file(
        false,
        false,
        LINKTYPE_RAW,
        &[(0, 0, &frame[14..], (frame.len() - 14) as u32)],
    );
    let (frames, e) = read_all(file);
    assert!(e.is_none());
    assert_eq!(&frames[0].data[12..], &frame[12..]);
    assert_eq!(frames[0].orig_len as usize, frame.len());
    let p = crate::packet::parse(&frames[0].data).unwrap();
    assert_eq!(p.fields.dst_port, 53);
}

#[test]
fn unsupported_link_type_still_yields_a_record() {
    let file = pcap_file(false, false, 147, &[(0, 0, &[1, 2, 3], 3), (0, 0, &[4], 1)]);
    let (frames, e) = read_all(file);
    assert!(e.is_none());
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| !f.is_ethernet() && f.linktype == 147));
}

#[test]
fn broken_files() {
    let (f, e) = read_all(b"hello, world, this is not a capture".to_vec());
    assert!(f.is_empty());
    assert!(matches!(e, Some(CaptureError::NotACapture { .. })), "{e:?}");
    assert!(e.unwrap().to_string().contains("not a pcap"));
    assert!(matches!(
        read_all(Vec::new()).1,
        Some(CaptureError::NotACapture { .. })
    ));
    // A pcap header cut short.
    let file = pcap_file(false, false, 1, &[]);
    assert!(matches!(
        read_all(file[..10].to_vec()).1,
        Some(CaptureError::Truncated { .. })
    ));
    // Cut in the middle of the second record: the first one, then the error.
    let frame = ipv4_udp_frame();
    let file = pcap_file(false, false, 1, &[(0, 0, &frame, 47), (0, 0, &frame, 47)]);
    let (frames, e) = read_all(file[..file.len() - 5].to_vec());
    assert_eq!(frames.len(), 1);
    assert!(
        matches!(e, Some(CaptureError::Truncated { records: 1, .. })),
        "{e:?}"
    );
    // Every prefix of a pcapng file reads or errs without panicking.
    let png = sample_pcapng();
    for n in 0..png.len() {
        let _ = read_all(png[..n].to_vec());
    }
}

fn sample_pcapng() -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new());
    let web = w.interface("web");
    let up = w.interface("uplink");
    assert_eq!(w.interface("web"), web);
    let frame = ipv4_udp_frame();
    w.write(
        web,
        1_700_000_000_123_456_789,
        &frame,
        frame.len() as u32,
        Some("acl:g1:r7 -> forward"),
    )
    .unwrap();
    w.write(up, 5, &frame[..41], 300, None).unwrap();
    let late = w.interface("db");
    w.write(late, 6, &frame[..15], 15, Some("ü")).unwrap();
    w.finish().unwrap()
}

#[test]
fn pcapng_round_trip() {
    let png = sample_pcapng();
    assert_eq!(png.len() % 4, 0);
    let r = CaptureReader::from_bytes(png).unwrap();
    assert_eq!(r.format(), CaptureFormat::Pcapng);
    let frames: Vec<Frame> = r.map(|f| f.unwrap()).collect();
    let frame = ipv4_udp_frame();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].interface.as_deref(), Some("web"));
    assert_eq!(frames[0].ts_ns, 1_700_000_000_123_456_789);
    assert_eq!(frames[0].data, frame);
    assert_eq!(frames[1].interface.as_deref(), Some("uplink"));
    assert_eq!(
        (frames[1].data.len(), frames[1].orig_len, frames[1].ts_ns),
        (41, 300, 5)
    );
    assert_eq!(frames[2].interface.as_deref(), Some("db"));
    assert_eq!(frames[2].data, &frame[..15]);
}

#[test]
fn pcapng_comment_is_readable() {
    use pcap_parser::pcapng::Block;
    use pcap_parser::{PcapBlockOwned, PcapNGReader, traits::PcapReaderIterator};
    let png = sample_pcapng();
    let mut r = PcapNGReader::new(65536, &png[..]).unwrap();
    let mut comments = Vec::new();
    loop {
        match r.next() {
            Ok((off, block)) => {
                if let PcapBlockOwned::NG(Block::EnhancedPacket(epb)) = block {
                    for o in &epb.options {
                        if o.code == pcap_parser::OptionCode::Comment {
                            comments.push(o.as_str().unwrap().to_owned());
                        }
                    }
                }
                r.consume(off);
            }
            Err(pcap_parser::PcapError::Eof) => break,
            Err(pcap_parser::PcapError::Incomplete(_)) => r.refill().unwrap(),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(comments, ["acl:g1:r7 -> forward", "ü"]);
}

#[test]
fn pcapng_timestamp_resolution() {
    // An IDB with if_tsresol = 3 (milliseconds), written by hand.
    let mut png = Vec::new();
    let block = |t: u32, body: &[u8]| {
        let total = (body.len() + 12) as u32;
        [
            &t.to_le_bytes()[..],
            &total.to_le_bytes(),
            body,
            &total.to_le_bytes(),
        ]
        .concat()
    };
    png.extend(block(
        0x0A0D0D0A,
        &[
            &0x1A2B3C4Du32.to_le_bytes()[..],
            &[1, 0, 0, 0],
            &(-1i64).to_le_bytes(),
        ]
        .concat(),
    ));
    png.extend(block(
        1,
        &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0],
    ));
    let epb = [
        &0u32.to_le_bytes()[..],
        &0u32.to_le_bytes(),
        &1500u32.to_le_bytes(),
        &4u32.to_le_bytes(),
        &4u32.to_le_bytes(),
        &[0x45, 0, 0, 0],
    ]
    .concat();
    png.extend(block(6, &epb));
    // A packet on interface 7, which was never declared.
    let epb = [
        &7u32.to_le_bytes()[..],
        &[0; 8],
        &4u32.to_le_bytes(),
        &4u32.to_le_bytes(),
        &[1, 2, 3, 4],
    ]
    .concat();
    png.extend(block(6, &epb));
    let (frames, e) = read_all(png);
    assert!(e.is_none(), "{e:?}");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].ts_ns, 1_500_000_000);
    assert!(frames[0].is_ethernet());
    assert!(!frames[1].is_ethernet());
}

/// A reader that hands out at most `step` bytes per call.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn streaming_reads_match_in_memory_reads() {
    let frame = ipv4_udp_frame();
    let big = vec![0xab; 300_000];
    let pcap = pcap_file(
        true,
        true,
        1,
        &[
            (1, 2, &frame, 100),
            (3, 4, &big, 300_000),
            (5, 6, &frame, 47),
        ],
    );
    for file in [pcap, sample_pcapng()] {
        let (want, e) = read_all(file.clone());
        assert!(e.is_none());
        for step in [1, 7, 4096, 1 << 20] {
            let t = Trickle {
                data: file.clone(),
                at: 0,
                step,
            };
            let got: Vec<Frame> = CaptureReader::new(t).unwrap().map(|f| f.unwrap()).collect();
            assert_eq!(got, want, "step {step}");
            // Cut short while streaming: the frames so far, then Truncated.
            let t = Trickle {
                data: file[..file.len() - 2].to_vec(),
                at: 0,
                step,
            };
            let got: Vec<_> = CaptureReader::new(t).unwrap().collect();
            assert_eq!(got.len(), want.len());
            assert!(matches!(
                got.last(),
                Some(Err(CaptureError::Truncated { .. }))
            ));
        }
    }
    let t = Trickle {
        data: b"GET / HTTP/1.1\r\n".to_vec(),
        at: 0,
        step: 3,
    };
    assert!(matches!(
        CaptureReader::new(t),
        Err(CaptureError::NotACapture { .. })
    ));
}
