//! User data reads: point gets and scans bounded by a region's range, and
//! consistent snapshots that do not see later writes.

use bytes::Bytes;
use flotilla_engine::Error;

use crate::support::{region, temp_engine};

fn keys(pairs: &[(Bytes, Bytes)]) -> Vec<&[u8]> {
    pairs.iter().map(|(k, _)| k.as_ref()).collect()
}

#[test]
fn get_and_scan_stay_inside_the_region() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    for k in [&b"a"[..], b"b", b"b\x00", b"c", b"cz", b"d", b""] {
        wb.put_data(k, k);
    }
    wb.delete_data(b"cz");
    engine.write(wb, false).unwrap();
    let r = region(1, b"b", b"d", &[1]);
    assert_eq!(
        engine.get(&r, b"c").unwrap(),
        Some(Bytes::from_static(b"c"))
    );
    assert_eq!(engine.get(&r, b"cz").unwrap(), None);
    assert!(matches!(
        engine.get(&r, b"d"),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        engine.get(&r, b"a"),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(
        keys(&engine.scan(&r, b"", 10).unwrap()),
        vec![&b"b"[..], b"b\x00", b"c"]
    );
    assert_eq!(
        keys(&engine.scan(&r, b"b\x01", 10).unwrap()),
        vec![&b"c"[..]]
    );
    assert_eq!(
        keys(&engine.scan(&r, b"b", 2).unwrap()),
        vec![&b"b"[..], b"b\x00"]
    );
    assert!(engine.scan(&r, b"", 0).unwrap().is_empty());
    assert!(matches!(
        engine.scan(&r, b"e", 1),
        Err(Error::OutOfRange { .. })
    ));
    // Unbounded on both sides: the empty key too.
    let all = region(2, b"", b"", &[1]);
    assert_eq!(engine.scan(&all, b"", 100).unwrap().len(), 6);
    assert_eq!(engine.get(&all, b"").unwrap(), Some(Bytes::new()));
}

#[test]
fn a_snapshot_does_not_see_later_writes() {
    let (_dir, engine) = temp_engine();
    let r = region(1, b"", b"", &[1]);
    let mut wb = engine.write_batch();
    wb.put_data(b"k1", b"v1");
    engine.write(wb, true).unwrap();
    let snap = engine.snapshot();
    let mut wb = engine.write_batch();
    wb.put_data(b"k1", b"v2");
    wb.put_data(b"k2", b"v2");
    engine.write(wb, true).unwrap();
    assert_eq!(
        snap.get(&r, b"k1").unwrap(),
        Some(Bytes::from_static(b"v1"))
    );
    assert_eq!(snap.get(&r, b"k2").unwrap(), None);
    assert_eq!(snap.scan(&r, b"", 10).unwrap().len(), 1);
    assert_eq!(
        engine.get(&r, b"k1").unwrap(),
        Some(Bytes::from_static(b"v2"))
    );
    assert_eq!(engine.scan(&r, b"", 10).unwrap().len(), 2);
}

#[test]
fn range_delete_clears_exactly_the_range() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    for k in [&b"a"[..], b"b", b"c", b"d"] {
        wb.put_data(k, b"v");
    }
    engine.write(wb, false).unwrap();
    let mut wb = engine.write_batch();
    wb.delete_data_range(b"b", b"d");
    let stats = wb.stats();
    assert_eq!((stats.range_deletes, stats.puts, stats.deletes), (1, 0, 0));
    engine.write(wb, true).unwrap();
    let all = region(1, b"", b"", &[1]);
    assert_eq!(
        keys(&engine.scan(&all, b"", 10).unwrap()),
        vec![&b"a"[..], b"d"]
    );
    let mut wb = engine.write_batch();
    wb.delete_data_range(b"c", b"");
    engine.write(wb, true).unwrap();
    assert_eq!(keys(&engine.scan(&all, b"", 10).unwrap()), vec![&b"a"[..]]);
}
