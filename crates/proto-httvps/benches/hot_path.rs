//! The hot path: `stream_data` encode and decode, in MiB/s of payload.
//!
//! Targets (issue 2): ≥ 1 GiB/s encode, ≥ 700 MiB/s decode on the 2-core CI machine.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto_httvps::{Frame, decode, encode_stream_data};
use std::hint::black_box;

fn hot_path(c: &mut Criterion) {
    for size in [16 * 1024usize, 64 * 1024, 128 * 1024] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mut group = c.benchmark_group(format!("stream_data_{}k", size / 1024));
        group.throughput(Throughput::Bytes(size as u64));
        let mut out = String::with_capacity(size * 2);
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                encode_stream_data(black_box("s1"), black_box(&payload), &mut out);
            })
        });
        let mut text = String::new();
        encode_stream_data("s1", &payload, &mut text);
        group.bench_function("decode", |b| {
            b.iter(|| match decode(black_box(&text)).unwrap() {
                Frame::StreamData { data, .. } => black_box(data.len()),
                _ => unreachable!(),
            })
        });
        group.finish();
    }
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
