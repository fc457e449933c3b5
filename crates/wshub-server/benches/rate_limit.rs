//! Cost of the per-request rate-limit check (it runs for every frame a client sends).
//!
//! `cargo bench -p wshub-server --bench rate_limit`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wshub_server::config::RateLimitsConfig;
use wshub_server::session::rate_limit::{BucketKind, RateLimiter, Verdict};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let mut generous = RateLimitsConfig::default();
    generous.default.capacity = u32::MAX;
    generous.default.refill_per_sec = 1e9;
    let mut limiter = RateLimiter::new(&generous, tokio::time::Instant::now());
    c.bench_function("rate_limit check (allowed, clock read included)", |b| {
        b.iter(|| {
            let now = tokio::time::Instant::now();
            black_box(limiter.check(black_box(BucketKind::of("publish")), now))
        })
    });
    let mut tight = RateLimitsConfig::default();
    tight.default.capacity = 1;
    tight.default.refill_per_sec = 1e-9;
    tight.abuse_close_after = 1000;
    let mut limiter = RateLimiter::new(&tight, tokio::time::Instant::now());
    let _ = limiter.check(BucketKind::Default, tokio::time::Instant::now());
    c.bench_function("rate_limit check (refused, refusal counted in the abuse window)", |b| {
        b.iter(|| {
            let now = tokio::time::Instant::now();
            let verdict = limiter.check(black_box(BucketKind::Default), now);
            debug_assert!(!matches!(verdict, Verdict::Allowed));
            black_box(verdict)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
