//! The hand-off from a camera's async task to blocking storage I/O: one writer thread per camera.
//!
//! Receives finished GOPs through a bounded queue ([`GopWriter::offer`] never blocks the camera
//! task); the thread hands each to a [`GopSink`] (the store's camera writer) and closes the sink
//! when the queue is closed. A full queue means the disk is slower than the camera: the GOP is
//! dropped and counted rather than stalling the RTSP session (which would lose the stream anyway).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::Gop;

/// Where a camera's GOPs go: blocking, called on the camera's writer thread only.
pub trait GopSink: Send + 'static {
    /// The sink's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Writes one GOP (one fragment).
    fn append(&mut self, gop: &Gop) -> Result<(), Self::Error>;
    /// Makes what was written durable (called when no GOP arrived for a sync interval, so a
    /// stalled camera does not leave its last GOPs unsynced).
    fn sync(&mut self) -> Result<(), Self::Error>;
    /// Makes everything written durable and releases the sink.
    fn close(self) -> Result<(), Self::Error>;
}

/// GOPs queued between the camera task and the writer thread. Eight one-second GOPs ride out a
/// slow flush of a few seconds on an SD card without dropping; more would only hide a disk that
/// cannot keep up, at a cost of RAM (~0.5 MB per GOP at 4 Mbit/s).
pub const QUEUE_GOPS: usize = 8;

/// Counters a writer keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// GOPs the sink accepted.
    pub written_gops: AtomicU64,
    /// GOPs dropped because the queue was full.
    pub dropped_gops: AtomicU64,
    /// GOPs the sink refused with an error.
    pub failed_gops: AtomicU64,
}

/// The camera task's end of a writer thread.
#[derive(Debug)]
pub struct GopWriter {
    camera: String,
    queue: Option<SyncSender<Gop>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    counters: Arc<WriterCounters>,
}

impl GopWriter {
    /// Starts the writer thread for `camera`, writing into `sink`.
    pub fn spawn<S: GopSink>(
        camera: &str,
        mut sink: S,
        idle_sync: Duration,
    ) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::sync_channel::<Gop>(QUEUE_GOPS);
        let counters = Arc::new(WriterCounters::default());
        let thread_counters = counters.clone();
        let thread_camera = camera.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("write-{camera}"))
            .spawn(move || {
                loop {
                    let gop = match receiver.recv_timeout(idle_sync) {
                        Ok(gop) => gop,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(error) = sink.sync() {
                                tracing::error!(camera = %thread_camera, "sync failed: {error}");
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    match sink.append(&gop) {
                        Ok(()) => {
                            thread_counters.written_gops.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            let failed =
                                thread_counters.failed_gops.fetch_add(1, Ordering::Relaxed);
                            // The first failure and then one in a hundred: a full or vanished
                            // disk fails every GOP, and the log must stay readable.
                            if failed.is_multiple_of(100) {
                                tracing::error!(
                                    camera = %thread_camera,
                                    failed_gops = failed + 1,
                                    "writing a GOP failed: {error}"
                                );
                            }
                        }
                    }
                }
                sink.close().map_err(|e| e.to_string())
            })?;
        Ok(Self {
            camera: camera.to_owned(),
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Queues a GOP for writing without blocking; drops it (counted, logged) when the queue is
    /// full.
    pub fn offer(&self, gop: Gop) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(gop) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.counters.dropped_gops.fetch_add(1, Ordering::Relaxed);
                if dropped.is_multiple_of(100) {
                    tracing::warn!(
                        camera = %self.camera,
                        dropped_gops = dropped + 1,
                        "storage is not keeping up; GOP dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.failed_gops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The writer's counters.
    pub fn counters(&self) -> Arc<WriterCounters> {
        self.counters.clone()
    }

    /// Closes the queue, lets the thread write what is queued and close the sink, and waits for
    /// it (on a blocking thread, so the runtime keeps running). Errors with the sink's close
    /// error.
    pub async fn close(mut self) -> Result<(), String> {
        self.queue = None;
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(format!(
                "camera {}: the writer thread panicked",
                self.camera
            )),
            Err(e) => Err(format!(
                "camera {}: waiting for the writer failed: {e}",
                self.camera
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that keeps what it was given (unit tests of the record path).
    #[derive(Clone, Default)]
    pub(crate) struct MemorySink {
        pub gops: Arc<Mutex<Vec<Gop>>>,
        pub closed: Arc<Mutex<bool>>,
    }

    impl GopSink for MemorySink {
        type Error = std::io::Error;
        fn append(&mut self, gop: &Gop) -> Result<(), Self::Error> {
            self.gops
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .push(gop.clone());
            Ok(())
        }
        fn sync(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn close(self) -> Result<(), Self::Error> {
            *self
                .closed
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))? = true;
            Ok(())
        }
    }

    #[tokio::test]
    async fn writes_every_queued_gop_then_closes() {
        let sink = MemorySink::default();
        let writer = GopWriter::spawn("cam", sink.clone(), Duration::from_secs(1)).unwrap();
        let counters = writer.counters();
        let gop = crate::record::tests::gop_at(0, 1_000);
        for _ in 0..3 {
            writer.offer(gop.clone());
        }
        writer.close().await.unwrap();
        assert_eq!(sink.gops.lock().unwrap().len(), 3);
        assert!(*sink.closed.lock().unwrap());
        assert_eq!(counters.written_gops.load(Ordering::Relaxed), 3);
    }
}
