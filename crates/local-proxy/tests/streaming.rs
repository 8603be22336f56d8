//! Large HTTP bodies stream through the forward proxy in bounded memory,
//! both ways: while one side stops reading, the other side soon cannot send
//! any more, and the proxy's heap does not grow with what waits.
//!
//! One test per binary: the heap is counted process-wide.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use util::*;

/// Counts the bytes on the heap, and the most there were since a reset.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a heap measurement; the result is the peak growth since.
fn heap_baseline() -> usize {
    let now = IN_USE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn heap_growth(baseline: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(baseline)
}

/// Body size: more than the kernel buffers on the way can hold.
const LEN: u64 = 64 << 20;
const CHUNK: usize = 64 * 1024;
/// How long one side stops reading.
const STALL: Duration = Duration::from_secs(1);
/// What may be in flight (kernel buffers) when the reader stops…
const MAX_IN_FLIGHT: u64 = LEN / 2;
/// …and what the proxy may hold on its heap meanwhile.
const MAX_HEAP_GROWTH: usize = 8 << 20;

/// Chunk `i` of a body: the pattern, stamped with its index.
fn chunk(i: u64) -> Vec<u8> {
    static PATTERN: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| pattern(CHUNK));
    let mut c = PATTERN.clone();
    c[..8].copy_from_slice(&i.to_le_bytes());
    c
}

async fn write_body(s: &mut TcpStream, progress: &AtomicU64) -> std::io::Result<()> {
    for i in 0..LEN / CHUNK as u64 {
        s.write_all(&chunk(i)).await?;
        progress.fetch_add(CHUNK as u64, Ordering::Relaxed);
    }
    Ok(())
}

async fn check_body(s: &mut TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    for i in 0..LEN / CHUNK as u64 {
        s.read_exact(&mut buf).await.unwrap();
        assert!(buf == chunk(i), "chunk {i} differs");
    }
}

#[tokio::test]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    download().await;
    upload().await;
}

async fn download() {
    let written = Arc::new(AtomicU64::new(0));
    let (done, mut finished) = oneshot::channel::<()>();
    let done = Arc::new(std::sync::Mutex::new(Some(done)));
    let server = {
        let written = written.clone();
        raw_server(move |mut s| {
            let (written, done) = (written.clone(), done.clone());
            async move {
                server_read_head(&mut s).await.unwrap();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n");
                s.write_all(head.as_bytes()).await.unwrap();
                write_body(&mut s, &written).await.unwrap();
                let _ = done.lock().unwrap().take().unwrap().send(());
            }
        })
        .await
    };
    let proxy = start(config(), DirectConnector::new()).await;
    let baseline = heap_baseline();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let req = format!(
        "GET http://127.0.0.1:{}/big HTTP/1.1\r\nHost: x\r\n\r\n",
        server.port()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(
        head.contains(&format!("Content-Length: {LEN}\r\n")),
        "{head}"
    );
    // The client reads nothing for a while: the server must get stuck.
    let stalled = tokio::time::timeout(STALL, &mut finished).await;
    assert!(stalled.is_err(), "the whole body went out unread");
    let in_flight = written.load(Ordering::Relaxed);
    let growth = heap_growth(baseline);
    eprintln!("download: {in_flight} bytes sent before the stall, heap +{growth}");
    assert!(in_flight < MAX_IN_FLIGHT, "{in_flight} bytes in flight");
    assert!(growth < MAX_HEAP_GROWTH, "heap grew by {growth} bytes");
    check_body(&mut s).await;
    finished.await.unwrap();
}

async fn upload() {
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
    let server = raw_server(move |mut s| {
        let released = released.clone();
        async move {
            let head = server_read_head(&mut s).await.unwrap();
            assert!(
                head.contains(&format!("Content-Length: {LEN}\r\n")),
                "{head}"
            );
            // Read no body until told to.
            let released = released.lock().await.take().unwrap();
            released.await.unwrap();
            check_body(&mut s).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        }
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let baseline = heap_baseline();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let req = format!(
        "POST http://127.0.0.1:{}/up HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\n\r\n",
        server.port()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let (read, mut write) = s.into_split();
    let mut writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for i in 0..LEN / CHUNK as u64 {
                write.write_all(&chunk(i)).await.unwrap();
                sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
            }
            write
        })
    };
    // The server reads nothing for a while: the client must get stuck.
    let stalled = tokio::time::timeout(STALL, &mut writer).await;
    assert!(stalled.is_err(), "the whole body went in unread");
    let in_flight = sent.load(Ordering::Relaxed);
    let growth = heap_growth(baseline);
    eprintln!("upload: {in_flight} bytes sent before the stall, heap +{growth}");
    assert!(in_flight < MAX_IN_FLIGHT, "{in_flight} bytes in flight");
    assert!(growth < MAX_HEAP_GROWTH, "heap grew by {growth} bytes");
    release.send(()).unwrap();
    let write = writer.await.unwrap();
    let mut s = read.reunite(write).unwrap();
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"ok");
}
