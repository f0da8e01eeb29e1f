//! The region snapshot format: a region's metadata and every user pair in
//! its range, encoded as one checksummed byte string. It is the `data` of a
//! raft snapshot; `docs/storage-format.md` describes it byte by byte and
//! says why it is an encoded key range rather than SST files.

use bytes::Bytes;
use prost::Message as _;

use flotilla_proto::metapb::Region;

use crate::batch::WriteBatch;
use crate::crc::{Crc32c, crc32c};
use crate::error::{Error, Result, decode};
use crate::keys::{self, CF_DATA};
use crate::read::Reader;
use crate::region::region_contains;

/// The first bytes of every region snapshot.
pub const MAGIC: &[u8; 4] = b"FLRS";
/// The region snapshot format this code writes and reads.
pub const VERSION: u8 = 1;
/// In place of a key length: the records are over, the trailer follows.
const END_OF_RECORDS: u32 = u32::MAX;

/// Encodes `region` and its pairs as seen by `reader`.
pub(crate) fn export(reader: &Reader<'_>, region: &Region) -> Result<Bytes> {
    let meta = region.encode_to_vec();
    let mut out = Vec::with_capacity(64 + meta.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&len_u32(meta.len(), "region metadata")?.to_be_bytes());
    out.extend_from_slice(&meta);
    let (lower, upper) = keys::data_range(&region.start_key, &region.end_key);
    let mut count = 0u64;
    reader.for_each(CF_DATA, &lower, &upper, |k, v| {
        let user_key = keys::decode_data_key(k)?;
        out.extend_from_slice(&len_u32(user_key.len(), "key")?.to_be_bytes());
        out.extend_from_slice(user_key);
        out.extend_from_slice(&len_u32(v.len(), "value")?.to_be_bytes());
        out.extend_from_slice(v);
        count += 1;
        Ok(true)
    })?;
    out.extend_from_slice(&END_OF_RECORDS.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    let mut crc = Crc32c::new();
    crc.update(&out);
    out.extend_from_slice(&crc.finish().to_be_bytes());
    Ok(Bytes::from(out))
}

fn len_u32(len: usize, what: &str) -> Result<u32> {
    u32::try_from(len)
        .ok()
        .filter(|&l| l != END_OF_RECORDS)
        .ok_or_else(|| Error::out_of_range(format!("{what} of {len} bytes is too large to export")))
}

/// A decoded and fully validated region snapshot, borrowing its pairs from
/// the encoded bytes.
#[derive(Debug)]
pub struct RegionSnapshotData<'a> {
    region: Region,
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> RegionSnapshotData<'a> {
    /// Decodes `data` and checks all of it before anything is used: the
    /// checksum, the version, the record framing and count, and that the
    /// keys are strictly increasing and inside the region's range. Any
    /// failure is `Error::Corruption`.
    pub fn decode(data: &'a [u8]) -> Result<Self> {
        let body_len = data
            .len()
            .checked_sub(4)
            .ok_or_else(|| corrupt("shorter than its checksum"))?;
        let (body, crc) = data.split_at(body_len);
        let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c(body) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        let mut cur = Cursor { rest: body };
        if cur.take(4)? != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = cur.take(1)?[0];
        if version != VERSION {
            return Err(corrupt(&format!(
                "version {version}, this build reads {VERSION}"
            )));
        }
        let meta_len = cur.u32()? as usize;
        let region: Region = decode(cur.take(meta_len)?, || {
            "region snapshot: region metadata".to_string()
        })?;
        let pairs = decode_records(&mut cur, &region)?;
        Ok(Self { region, pairs })
    }

    /// The region the snapshot is of (range, epoch and peers).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The user pairs, in key order.
    pub fn pairs(&self) -> &[(&'a [u8], &'a [u8])] {
        &self.pairs
    }
}

fn decode_records<'a>(cur: &mut Cursor<'a>, region: &Region) -> Result<Vec<(&'a [u8], &'a [u8])>> {
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    loop {
        let key_len = cur.u32()?;
        if key_len == END_OF_RECORDS {
            break;
        }
        let key = cur.take(key_len as usize)?;
        let value_len = cur.u32()? as usize;
        let value = cur.take(value_len)?;
        if !region_contains(region, key) {
            return Err(corrupt(&format!(
                "key {} lies outside the region",
                pairs.len()
            )));
        }
        if pairs.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(corrupt(&format!(
                "key {} is not above the previous one",
                pairs.len()
            )));
        }
        pairs.push((key, value));
    }
    let count = cur.u64()?;
    if count != pairs.len() as u64 || !cur.rest.is_empty() {
        return Err(corrupt(&format!(
            "trailer says {count} pairs, found {} and {} stray bytes",
            pairs.len(),
            cur.rest.len()
        )));
    }
    Ok(pairs)
}

fn corrupt(what: &str) -> Error {
    Error::corruption(format!("region snapshot: {what}"))
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.rest.len() {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

impl WriteBatch {
    /// Replaces the user data of the snapshot's region with the snapshot's
    /// pairs: one range delete of the whole `[start_key, end_key)` range,
    /// then a put per pair. Returns the number of pairs.
    pub fn ingest_region(&mut self, snapshot: &RegionSnapshotData<'_>) -> u64 {
        let region = snapshot.region();
        self.delete_data_range(&region.start_key, &region.end_key);
        for (k, v) in snapshot.pairs() {
            self.put_data(k, v);
        }
        snapshot.pairs().len() as u64
    }
}
