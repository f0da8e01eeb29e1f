//! The wire frame between stores.
//!
//! ```text
//!  0      4    5    6      8          12         16
//!  +------+----+----+------+----------+----------+------------------+
//!  | FLTL | v1 |kind| 0  0 |  length  |  crc32c  | payload (length) |
//!  +------+----+----+------+----------+----------+------------------+
//! ```
//!
//! All integers big-endian. `kind` is [`FrameKind`]; the payload is a prost
//! message (`serverpb::Hello`, `StoreBatch`, `SnapshotHeader`,
//! `SnapshotAck`) or, for a snapshot chunk, raw bytes; the checksum is
//! CRC-32C of the payload. A frame longer than the configured maximum is
//! refused from its header, before any of it is buffered.

/// The frame magic: "FLTL".
pub const MAGIC: [u8; 4] = *b"FLTL";
/// The frame format version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 16;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `serverpb::Hello`: the first frame of a connection.
    Hello = 1,
    /// `serverpb::StoreBatch`: a round's messages, or coalesced heartbeats.
    Batch = 2,
    /// `serverpb::SnapshotHeader`: the first frame of a snapshot connection.
    SnapshotHeader = 3,
    /// Raw bytes: the next piece of the snapshot's data.
    SnapshotChunk = 4,
    /// `serverpb::SnapshotAck`: the receiver's answer to a snapshot.
    SnapshotAck = 5,
    /// `clientpb::Request`: a client's request to a store.
    ClientRequest = 6,
    /// `clientpb::Response`: a store's answer to a client.
    ClientResponse = 7,
}

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream does not start with the magic.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A version or kind this code does not know, or non-zero reserved bytes.
    #[error("unsupported header: version {version}, kind {kind}")]
    Unsupported {
        /// The declared version.
        version: u8,
        /// The declared kind.
        kind: u8,
    },
    /// The declared payload is longer than the maximum.
    #[error("frame of {declared} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared payload bytes.
        declared: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The payload does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
}

/// Appends one frame holding `payload` to `out`.
pub fn encode_into(kind: FrameKind, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("payloads are bounded far below 4 GiB");
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Splits a byte stream into frames. Feed it what the socket gives with
/// [`extend`](Self::extend), then take frames with [`next_frame`](Self::next_frame)
/// until it returns `Ok(None)`. After an error the stream is unusable.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max_payload_bytes: u64,
}

impl FrameDecoder {
    /// A decoder refusing payloads over `max_payload_bytes`.
    pub fn new(max_payload_bytes: u64) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_payload_bytes,
        }
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<(FrameKind, Vec<u8>)>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_BYTES {
            return Ok(None);
        }
        let magic: [u8; 4] = avail[0..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let (version, kind_byte) = (avail[4], avail[5]);
        let kind = match kind_byte {
            1 => FrameKind::Hello,
            2 => FrameKind::Batch,
            3 => FrameKind::SnapshotHeader,
            4 => FrameKind::SnapshotChunk,
            5 => FrameKind::SnapshotAck,
            6 => FrameKind::ClientRequest,
            7 => FrameKind::ClientResponse,
            _ => {
                return Err(FrameError::Unsupported {
                    version,
                    kind: kind_byte,
                });
            }
        };
        if version != VERSION || avail[6..8] != [0, 0] {
            return Err(FrameError::Unsupported {
                version,
                kind: kind_byte,
            });
        }
        let len = u64::from(u32::from_be_bytes(
            avail[8..12].try_into().expect("4 bytes"),
        ));
        if len > self.max_payload_bytes {
            return Err(FrameError::TooLarge {
                declared: len,
                max: self.max_payload_bytes,
            });
        }
        let crc = u32::from_be_bytes(avail[12..16].try_into().expect("4 bytes"));
        let len = usize::try_from(len).expect("bounded by the maximum");
        if avail.len() < HEADER_BYTES + len {
            return Ok(None);
        }
        let payload = avail[HEADER_BYTES..HEADER_BYTES + len].to_vec();
        if crc32c::crc32c(&payload) != crc {
            return Err(FrameError::Checksum);
        }
        self.start += HEADER_BYTES + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(kind, payload, &mut out);
        out
    }

    #[test]
    fn frames_split_across_reads_come_out_whole_and_in_order() {
        let mut stream = frame(FrameKind::Hello, b"hi");
        stream.extend(frame(FrameKind::Batch, &[7; 300]));
        stream.extend(frame(FrameKind::Batch, b""));
        let mut d = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            d.extend(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [
                (FrameKind::Hello, b"hi".to_vec()),
                (FrameKind::Batch, vec![7; 300]),
                (FrameKind::Batch, vec![]),
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_truncated_frame_waits_for_more_bytes() {
        let f = frame(FrameKind::Batch, &[1; 100]);
        let mut d = FrameDecoder::new(1024);
        d.extend(&f[..HEADER_BYTES + 50]);
        assert_eq!(d.next_frame(), Ok(None));
        d.extend(&f[HEADER_BYTES + 50..]);
        assert_eq!(d.next_frame().unwrap().map(|(_, p)| p.len()), Some(100));
    }

    #[test]
    fn a_frame_declaring_4_gib_is_refused_from_its_header() {
        let mut f = frame(FrameKind::Batch, b"");
        f[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut d = FrameDecoder::new(16 << 20);
        d.extend(&f);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                declared: u64::from(u32::MAX),
                max: 16 << 20
            })
        );
    }

    #[test]
    fn bad_magic_unknown_kind_and_corrupted_payloads_are_errors() {
        let mut d = FrameDecoder::new(1024);
        d.extend(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(d.next_frame(), Err(FrameError::BadMagic(_))));

        let mut f = frame(FrameKind::Batch, b"x");
        f[5] = 9;
        let mut d = FrameDecoder::new(1024);
        d.extend(&f);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::Unsupported { kind: 9, .. })
        ));

        let mut f = frame(FrameKind::Batch, b"payload");
        let last = f.len() - 1;
        f[last] ^= 1;
        let mut d = FrameDecoder::new(1024);
        d.extend(&f);
        assert_eq!(d.next_frame(), Err(FrameError::Checksum));
    }
}
