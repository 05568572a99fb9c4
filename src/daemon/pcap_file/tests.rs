//! The reader against libpcap itself, file by file: the same frames,
//! lengths, times and errors, and the files it must leave to libpcap.

use super::*;

/// One record: seconds, fraction, captured bytes, original length.
type Rec = (i32, i32, Vec<u8>, u32);

fn file(magic: u32, version: (u16, u16), snaplen: u32, linktype: u32, recs: &[Rec]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&magic.to_ne_bytes());
    f.extend_from_slice(&version.0.to_ne_bytes());
    f.extend_from_slice(&version.1.to_ne_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&snaplen.to_ne_bytes());
    f.extend_from_slice(&linktype.to_ne_bytes());
    for (sec, frac, data, len) in recs {
        f.extend_from_slice(&sec.to_ne_bytes());
        f.extend_from_slice(&frac.to_ne_bytes());
        f.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        f.extend_from_slice(&len.to_ne_bytes());
        f.extend_from_slice(data);
    }
    f
}

/// What a reader saw: each frame (bytes, length, nanoseconds) and how it
/// ended (`None`: the end of the file, else the error's words).
type Seen = (Vec<(Vec<u8>, u32, u64)>, Option<String>);

fn ours(path: &Path) -> Seen {
    let mut r = PcapFile::open(path).expect("taken by the fast reader");
    let mut frames = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => frames.push((rec.data.to_vec(), rec.wire_len, rec.ts_nanos)),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

fn libpcap(path: &Path) -> Seen {
    let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano).unwrap();
    let mut frames = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                let nanos = (ts.tv_sec.max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_usec.max(0) as u64);
                frames.push((p.data.to_vec(), p.header.len, nanos));
            }
            Err(pcap::Error::NoMorePackets) => return (frames, None),
            Err(pcap::Error::PcapError(e)) => return (frames, Some(e)),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

fn same_as_libpcap(bytes: &[u8]) -> Seen {
    let f = write(bytes);
    let seen = ours(f.path());
    assert_eq!(seen, libpcap(f.path()));
    seen
}

fn frames(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let data: Vec<u8> = (0..(20 + i % 50)).map(|b| (b + i) as u8).collect();
            let len = data.len() as u32 + (i % 3) as u32;
            (
                1_700_000_000 + i as i32,
                (i * 7919) as i32 % 1_000_000,
                data,
                len,
            )
        })
        .collect()
}

#[test]
fn frames_and_times_are_libpcaps() {
    // Enough records to cross the block boundary several times.
    let recs = frames(40_000);
    for magic in [MAGIC_MICROS, MAGIC_NANOS] {
        for linktype in LINKTYPES {
            let bytes = file(magic, (2, 4), 65535, linktype, &recs);
            let (seen, end) = same_as_libpcap(&bytes);
            assert_eq!((seen.len(), end), (recs.len(), None));
        }
    }
    // Times before the epoch, a snapshot length of 0 (the maximum), an
    // empty file.
    let odd = vec![(-5, 10, vec![1; 30], 30), (3, -1, vec![2; 30], 40)];
    let (seen, _) = same_as_libpcap(&file(MAGIC_MICROS, (2, 4), 0, 1, &odd));
    assert_eq!(seen[0].2, 10_000);
    assert_eq!(
        same_as_libpcap(&file(MAGIC_NANOS, (2, 4), 0, 1, &[]))
            .0
            .len(),
        0
    );
}

#[test]
fn a_record_longer_than_the_snapshot_is_cut_as_libpcap_cuts_it() {
    let recs = vec![(1, 0, vec![7; 100], 100), (2, 0, vec![8; 10], 10)];
    let (seen, end) = same_as_libpcap(&file(MAGIC_NANOS, (2, 4), 64, 1, &recs));
    assert_eq!((seen[0].0.len(), seen[0].1, end), (64, 100, None));
}

#[test]
fn damaged_files_fail_with_libpcaps_words() {
    let good = file(MAGIC_NANOS, (2, 4), 65535, 1, &frames(3));
    // Cut in a record header, in a record's data, in a cut record's kept
    // part and in its dropped part.
    for cut in [good.len() - 22 - 5, good.len() - 5] {
        let (seen, end) = same_as_libpcap(&good[..cut]);
        assert!(end.unwrap().starts_with("truncated dump file"), "{seen:?}");
    }
    let long = file(MAGIC_NANOS, (2, 4), 64, 1, &[(1, 0, vec![7; 100], 100)]);
    for cut in [long.len() - 90, long.len() - 10] {
        let (_, end) = same_as_libpcap(&long[..cut]);
        assert!(end.unwrap().starts_with("truncated dump file"));
    }
    // Longer than libpcap will ever read, above and below the snapshot.
    for snaplen in [65535, 1 << 20] {
        let mut huge = file(MAGIC_NANOS, (2, 4), snaplen, 1, &[]);
        huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        huge.extend_from_slice(&(MAX_SNAPLEN + 1).to_ne_bytes());
        huge.extend_from_slice(&[0; 4]);
        let (_, end) = same_as_libpcap(&huge);
        assert!(end.unwrap().starts_with("invalid packet capture length"));
    }
}

#[test]
fn other_files_are_left_to_libpcap() {
    let recs = frames(1);
    let swapped = |mut f: Vec<u8>| {
        f[..4].reverse();
        f
    };
    for bytes in [
        file(MAGIC_NANOS, (2, 3), 65535, 1, &recs),
        file(MAGIC_NANOS, (2, 4), 65535, 105, &recs),
        file(MAGIC_NANOS, (2, 4), 65535, 1 | 0x0400_0000, &recs),
        file(0xa1b2_cd34, (2, 4), 65535, 1, &recs),
        swapped(file(MAGIC_NANOS, (2, 4), 65535, 1, &recs)),
        b"\x0a\x0d\x0d\x0a".to_vec(),
        Vec::new(),
    ] {
        assert!(PcapFile::open(write(&bytes).path()).is_none());
    }
    assert!(PcapFile::open(Path::new("/nonexistent/capture.pcap")).is_none());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any file of the kind taken, cut anywhere: libpcap's frames and
    /// libpcap's error, whatever the lengths and times say.
    #[test]
    fn any_file_cut_anywhere_reads_as_libpcap_reads_it(
        nanos in proptest::bool::ANY,
        snaplen in proptest::sample::select(vec![0u32, 1, 14, 60, 100, 65535, 262_144, 300_000, u32::MAX]),
        linktype in proptest::sample::select(LINKTYPES.to_vec()),
        recs in proptest::collection::vec(
            (proptest::num::i32::ANY, proptest::num::i32::ANY, 0usize..200, proptest::num::u32::ANY),
            0..6,
        ),
        cut in proptest::num::usize::ANY,
    ) {
        let magic = if nanos { MAGIC_NANOS } else { MAGIC_MICROS };
        let recs: Vec<Rec> = recs
            .into_iter()
            .map(|(sec, frac, n, len)| (sec, frac, (0..n).map(|b| b as u8).collect(), len))
            .collect();
        let bytes = file(magic, (2, 4), snaplen, linktype, &recs);
        // Whole, or cut after the file header.
        let keep = if cut % 3 == 0 {
            bytes.len()
        } else {
            FILE_HEADER + cut % (bytes.len() - FILE_HEADER + 1)
        };
        let f = write(&bytes[..keep]);
        proptest::prop_assert_eq!(ours(f.path()), libpcap(f.path()));
    }
}
