//! Clients that vanish: 1,000 disconnects at random points (before the headers, mid-stream,
//! after the end) leave no upstream response, descriptor or memory behind.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::alloc::System;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Harness, active_streams, chat, chat_body, eventually};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::io::AsyncReadExt;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Open descriptors of this process (the test, the bridge and fake-ollama).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc").count()
}

/// Bytes allocated and not yet freed (stats_alloc counts a realloc's growth as allocated).
fn live_bytes() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Streams a 40-token chat, reads `keep` bytes of the response, then goes away.
async fn vanish_after(bridge: SocketAddr, keep: usize) {
    let body = chat_body("synth?tokens=40&rate=400", true);
    let mut stream = common::send_raw_chat(bridge, &body).await;
    let mut buf = vec![0u8; keep.max(1)];
    let mut got = 0;
    while got < keep {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[got..])).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_disconnects_at_random_points_leave_nothing_behind() {
    const CONCURRENT: usize = 25;
    let h = Harness::start().await;
    // Warm up: the runtime's threads, the upstream pool, the metrics' series.
    let warm: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let bridge = h.bridge;
            tokio::spawn(
                async move { chat(bridge, &chat_body("synth?tokens=40&rate=400", true)).await },
            )
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.expect("warm-up").status, 200);
    }
    let fds = open_fds() - 2 * h.fake.open_connections();
    let memory = live_bytes();

    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..1_000 / CONCURRENT {
        // The response runs to ~10 KB: some clients leave before the headers, most mid-stream,
        // some after the end.
        let clients: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let keep = (next() % 11_000) as usize;
                tokio::spawn(vanish_after(h.bridge, keep))
            })
            .collect();
        for c in clients {
            c.await.expect("client");
        }
    }
    let requests = h.fake.requests().len();
    assert!(requests >= 1_000, "{requests} requests reached fake-ollama");
    let settled = eventually(Duration::from_secs(5), async || {
        h.fake.open_streams() == 0 && open_fds() - 2 * h.fake.open_connections() <= fds
    })
    .await;
    assert!(
        settled,
        "{} upstream responses open; {} descriptors beside {} pooled upstream connections, \
         {fds} before",
        h.fake.open_streams(),
        open_fds(),
        h.fake.open_connections()
    );
    assert!(
        h.fake.open_connections() <= CONCURRENT,
        "upstream connections beyond the pool"
    );
    assert_eq!(active_streams(&h).await, 0.0);
    let grown = live_bytes() - memory;
    assert!(
        grown < 4 << 20,
        "{grown} bytes more in use after 1,000 disconnects (fake-ollama's request records \
         included)"
    );
    h.stop().await;
}
