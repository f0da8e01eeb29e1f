//! The frame codec: encoding a round's `StoreBatch` (N appends of one
//! 128-byte entry each, as N regions send in one round) into a frame, and
//! decoding frames back out of a byte stream read in 64 KiB pieces.
//!
//! Run: `cargo bench -p flotilla-transport --bench codec`
//! (add `-- --measurement-time 3 --warm-up-time 1` for a short run).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flotilla_proto::ProstMessage as _;
use flotilla_proto::metapb::Peer;
use flotilla_proto::raftpb::{Entry, Message, MessageType};
use flotilla_proto::serverpb::{RaftMessage, StoreBatch};
use flotilla_transport::frame::{FrameDecoder, FrameKind, encode_into};

fn batch(messages: u64) -> StoreBatch {
    StoreBatch {
        from_store: 1,
        to_store: 2,
        messages: (0..messages)
            .map(|r| RaftMessage {
                region_id: r + 1,
                from_peer: Some(Peer {
                    id: r * 3 + 1,
                    store_id: 1,
                    ..Default::default()
                }),
                to_peer: Some(Peer {
                    id: r * 3 + 2,
                    store_id: 2,
                    ..Default::default()
                }),
                region_epoch: None,
                message: Some(Message {
                    msg_type: MessageType::MsgAppend as i32,
                    term: 5,
                    index: 100,
                    log_term: 5,
                    commit: 99,
                    entries: vec![Entry {
                        term: 5,
                        index: 101,
                        data: Bytes::from(vec![0x5a; 128]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            })
            .collect(),
        heartbeats: Vec::new(),
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_frame");
    for n in [1u64, 16, 256] {
        let b = batch(n);
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &b, |bench, b| {
            let mut out = Vec::new();
            bench.iter(|| {
                out.clear();
                encode_into(FrameKind::Batch, &b.encode_to_vec(), &mut out);
                out.len()
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode_frames");
    for n in [1u64, 16, 256] {
        // 64 frames back to back, as a busy connection carries them.
        let mut stream = Vec::new();
        for _ in 0..64 {
            encode_into(FrameKind::Batch, &batch(n).encode_to_vec(), &mut stream);
        }
        group.throughput(Throughput::Elements(64 * n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &stream, |bench, stream| {
            bench.iter(|| {
                let mut d = FrameDecoder::new(64 << 20);
                let mut messages = 0;
                for piece in stream.chunks(64 << 10) {
                    d.extend(piece);
                    while let Some((_, payload)) = d.next_frame().expect("valid frames") {
                        messages += StoreBatch::decode(payload.as_slice())
                            .expect("valid batch")
                            .messages
                            .len();
                    }
                }
                messages
            });
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
