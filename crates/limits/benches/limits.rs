//! Criterion benches: admission + settlement with 20 applicable rules, on one thread and on two (distinct buckets,

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]
//! to show there is no global lock; and the same buckets, to show the cost of contention).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_limits::{Metadata, RequestDims, SpendEngine};

mod fixture;

use fixture::engine;

fn metadata(user: usize) -> Metadata {
    Metadata::parse(&format!(r#"{{"user_id":"user-{user}","team":"team-{user}"}}"#), 20).unwrap()
}

fn admit_settle(engine: &SpendEngine, request: &RequestDims<'_>) {
    let admission = engine.admit(black_box(request), Some(black_box(20_000_000))).unwrap();
    admission.settle(black_box(12_000_000));
}

fn single_thread(c: &mut Criterion) {
    let engine = engine();
    let m = metadata(0);
    let request = RequestDims::new("openai", "gpt-4o-mini").with_metadata(&m);
    let mut group = c.benchmark_group("admit_settle_20_rules");
    // One admission + settlement per iteration: criterion reports the time of one and the throughput.
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_thread", |b| b.iter(|| admit_settle(&engine, &request)));
    group.finish();
}

/// Two threads running at once, each doing `iters` admissions + settlements; the reported time is the wall time
/// per iteration, and the throughput counts both threads' operations (2 per iteration). With no shared lock,
/// the distinct-bucket throughput is twice the one-thread throughput when two cores are free.
///
/// The two threads live for the whole bench and are handed each sample's `iters` (spawning threads per sample
/// would time freshly started threads on cold caches, and skew their start by the spawn).
fn two_threads(c: &mut Criterion, name: &str, same_bucket: bool) {
    let engine = engine();
    let start = Barrier::new(3);
    let done = Barrier::new(3);
    let work = std::sync::Mutex::new(None::<u64>);
    let elapsed = std::sync::Mutex::new(Vec::<Duration>::new());
    std::thread::scope(|scope| {
        for t in 0..2 {
            let (engine, start, done, work, elapsed) = (engine.clone(), &start, &done, &work, &elapsed);
            scope.spawn(move || {
                let m = metadata(if same_bucket { 0 } else { t + 1 });
                let request = RequestDims::new("openai", "gpt-4o-mini").with_metadata(&m);
                loop {
                    start.wait();
                    let Some(iters) = *work.lock().unwrap() else { break };
                    let began = Instant::now();
                    for _ in 0..iters {
                        admit_settle(&engine, &request);
                    }
                    elapsed.lock().unwrap().push(began.elapsed());
                    done.wait();
                }
            });
        }
        let mut group = c.benchmark_group("admit_settle_20_rules");
        group.throughput(Throughput::Elements(2));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                *work.lock().unwrap() = Some(iters);
                start.wait();
                done.wait();
                // The slower thread's time: the sample ends when both are done.
                elapsed.lock().unwrap().drain(..).max().unwrap()
            });
        });
        group.finish();
        *work.lock().unwrap() = None;
        start.wait();
    });
}

fn two_threads_distinct(c: &mut Criterion) {
    two_threads(c, "2_threads_distinct_buckets", false);
}

fn two_threads_shared(c: &mut Criterion) {
    two_threads(c, "2_threads_same_buckets", true);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = single_thread, two_threads_distinct, two_threads_shared
}
criterion_main!(benches);
