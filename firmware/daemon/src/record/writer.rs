//! The hand-off from a camera's async task to blocking storage I/O: one writer thread per camera.
//!
//! Receives finished GOPs through a queue bounded at [`QUEUE_GOPS`] GOPs ([`GopWriter::offer`]
//! never blocks the camera task), and, in events mode, event boundaries
//! ([`GopWriter::begin_event`] with the pre-roll, [`GopWriter::end_event`]) in the same order;
//! the thread hands each to a [`GopSink`] (the store's camera writer) and closes the sink when the
//! queue is closed. A full queue means the disk is slower than the camera: the GOP is dropped and
//! counted rather than stalling the RTSP session (which would lose the stream anyway). Event
//! boundaries are never dropped (a lost end would leave an event open); an event that begins
//! while the queue is full loses its pre-roll instead (counted as dropped GOPs).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::Gop;
use crate::store::EventInfo;

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
    /// Marks what is appended from now on as video of `event` (called again with more sensors
    /// when another trigger joins a running event).
    fn begin_event(&mut self, event: &EventInfo) -> Result<(), Self::Error>;
    /// Records the event's end and makes what was written durable; nothing more is written
    /// until the next GOP or event.
    fn end_event(&mut self, end_wall_ms: i64) -> Result<(), Self::Error>;
}

/// What goes through the queue to the writer thread, in order.
#[derive(Debug)]
enum WriteOp {
    Gop(Gop),
    BeginEvent {
        event: EventInfo,
        pre_roll: Vec<Gop>,
    },
    EndEvent {
        end_wall_ms: i64,
    },
}

/// GOPs queued between the camera task and the writer thread. Eight one-second GOPs ride out a
/// slow flush of a few seconds on an SD card without dropping; more would only hide a disk that
/// cannot keep up, at a cost of RAM (~0.5 MB per GOP at 4 Mbit/s).
pub const QUEUE_GOPS: usize = 8;

/// Counters of one camera's recording, readable while it runs. Every GOP the recorder
/// assembled is, once the recording closed, exactly one of written, dropped, failed or not
/// recorded ([`WriterCounters::unaccounted_gops`] is then 0).
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Video frames received from the camera (copied from its activity when recording stops).
    pub frames_received: AtomicU64,
    /// GOPs the recorder assembled from those frames (frames before a session's first key
    /// frame make none).
    pub assembled_gops: AtomicU64,
    /// Events mode: GOPs that left the RAM pre-roll without an event wanting them.
    pub not_recorded_gops: AtomicU64,
    /// GOPs the sink accepted.
    pub written_gops: AtomicU64,
    /// GOPs dropped because the queue was full.
    pub dropped_gops: AtomicU64,
    /// GOPs the sink refused with an error.
    pub failed_gops: AtomicU64,
    /// The latest GOP the sink was given failed (a full, read-only or vanished disk): the camera
    /// is online but its video is not being kept. Cleared by the next GOP written.
    pub last_write_failed: AtomicBool,
}

impl WriterCounters {
    /// Assembled GOPs that are none of written, dropped, failed or not recorded: the GOPs still
    /// queued while recording runs, and 0 after it closed.
    pub fn unaccounted_gops(&self) -> i64 {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        load(&self.assembled_gops)
            - load(&self.written_gops)
            - load(&self.dropped_gops)
            - load(&self.failed_gops)
            - load(&self.not_recorded_gops)
    }
}

/// The camera task's end of a writer thread.
#[derive(Debug)]
pub struct GopWriter {
    camera: String,
    queue: Option<Sender<WriteOp>>,
    /// GOPs in the queue: what bounds it (event boundaries are tiny and never dropped).
    queued_gops: Arc<AtomicUsize>,
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
        let (queue, receiver) = mpsc::channel::<WriteOp>();
        let counters = Arc::new(WriterCounters::default());
        let queued_gops = Arc::new(AtomicUsize::new(0));
        let thread_queued = queued_gops.clone();
        let thread_counters = counters.clone();
        let thread_camera = camera.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("write-{camera}"))
            .spawn(move || {
                let append = |sink: &mut S, gop: &Gop| {
                    thread_queued.fetch_sub(1, Ordering::Relaxed);
                    match sink.append(gop) {
                        Ok(()) => {
                            thread_counters.written_gops.fetch_add(1, Ordering::Relaxed);
                            thread_counters
                                .last_write_failed
                                .store(false, Ordering::Relaxed);
                        }
                        Err(error) => {
                            thread_counters
                                .last_write_failed
                                .store(true, Ordering::Relaxed);
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
                };
                loop {
                    let op = match receiver.recv_timeout(idle_sync) {
                        Ok(op) => op,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(error) = sink.sync() {
                                tracing::error!(camera = %thread_camera, "sync failed: {error}");
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    match op {
                        WriteOp::Gop(gop) => append(&mut sink, &gop),
                        WriteOp::BeginEvent { event, pre_roll } => {
                            if let Err(error) = sink.begin_event(&event) {
                                tracing::error!(camera = %thread_camera, "marking an event failed: {error}");
                            }
                            for gop in &pre_roll {
                                append(&mut sink, gop);
                            }
                        }
                        WriteOp::EndEvent { end_wall_ms } => {
                            if let Err(error) = sink.end_event(end_wall_ms) {
                                tracing::error!(camera = %thread_camera, "ending an event failed: {error}");
                            }
                        }
                    }
                }
                sink.close().map_err(|e| e.to_string())
            })?;
        Ok(Self {
            camera: camera.to_owned(),
            queue: Some(queue),
            queued_gops,
            thread: Some(thread),
            counters,
        })
    }

    /// Queues a GOP for writing without blocking; drops it (counted, logged) when the queue is
    /// full.
    pub fn offer(&self, gop: Gop) {
        if self.reserve(1) {
            self.send(WriteOp::Gop(gop));
        }
    }

    /// Starts event video: marks the event, then writes `pre_roll` (oldest first). Never blocks;
    /// the pre-roll is dropped (counted) if the queue has no room for it, the mark never is.
    pub fn begin_event(&self, event: EventInfo, pre_roll: Vec<Gop>) {
        let pre_roll = if self.reserve(pre_roll.len()) {
            pre_roll
        } else {
            Vec::new()
        };
        self.send(WriteOp::BeginEvent { event, pre_roll });
    }

    /// Ends event video at `end_wall_ms` and closes the segment. Never dropped.
    pub fn end_event(&self, end_wall_ms: i64) {
        self.send(WriteOp::EndEvent { end_wall_ms });
    }

    /// Takes room for `gops` GOPs in the queue, or counts them dropped. A pre-roll may take the
    /// queue past [`QUEUE_GOPS`] once (it is bounded by its own byte budget) but only when the
    /// queue had room when it came.
    fn reserve(&self, gops: usize) -> bool {
        if gops == 0 {
            return true;
        }
        let queued = self.queued_gops.load(Ordering::Relaxed);
        if queued < QUEUE_GOPS {
            self.queued_gops.fetch_add(gops, Ordering::Relaxed);
            return true;
        }
        let dropped = self
            .counters
            .dropped_gops
            .fetch_add(gops as u64, Ordering::Relaxed);
        if dropped / 100 != (dropped + gops as u64) / 100 || dropped == 0 {
            tracing::warn!(
                camera = %self.camera,
                dropped_gops = dropped + gops as u64,
                "storage is not keeping up; GOP dropped"
            );
        }
        false
    }

    fn send(&self, op: WriteOp) {
        let Some(queue) = &self.queue else { return };
        if let Err(mpsc::SendError(op)) = queue.send(op) {
            let gops = match &op {
                WriteOp::Gop(_) => 1,
                WriteOp::BeginEvent { pre_roll, .. } => pre_roll.len() as u64,
                WriteOp::EndEvent { .. } => 0,
            };
            self.counters.failed_gops.fetch_add(gops, Ordering::Relaxed);
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
        /// Event boundaries in order: (index into `gops` where it happened, what).
        pub events: Arc<Mutex<Vec<(usize, SinkEvent)>>>,
    }

    /// An event boundary a [`MemorySink`] saw.
    #[derive(Clone, Debug, PartialEq)]
    pub(crate) enum SinkEvent {
        Begin(EventInfo),
        End(i64),
    }

    impl MemorySink {
        fn note(&self, event: SinkEvent) -> Result<(), std::io::Error> {
            let at = self
                .gops
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .len();
            self.events
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .push((at, event));
            Ok(())
        }
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
        fn begin_event(&mut self, event: &EventInfo) -> Result<(), Self::Error> {
            self.note(SinkEvent::Begin(event.clone()))
        }
        fn end_event(&mut self, end_wall_ms: i64) -> Result<(), Self::Error> {
            self.note(SinkEvent::End(end_wall_ms))
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

    /// A disk that can vanish and come back; says when each GOP was handled.
    struct VanishingDisk {
        gone: Arc<AtomicBool>,
        handled: std::sync::mpsc::Sender<()>,
    }

    impl GopSink for VanishingDisk {
        type Error = std::io::Error;
        fn append(&mut self, _gop: &Gop) -> Result<(), Self::Error> {
            let result = if self.gone.load(Ordering::Relaxed) {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            };
            let _ = self.handled.send(());
            result
        }
        fn sync(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn begin_event(&mut self, _event: &EventInfo) -> Result<(), Self::Error> {
            Ok(())
        }
        fn end_event(&mut self, _end_wall_ms: i64) -> Result<(), Self::Error> {
            Ok(())
        }
        fn close(self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failing_disk_is_flagged_until_a_gop_is_written_again() {
        let gone = Arc::new(AtomicBool::new(false));
        let (handled, gop_handled) = std::sync::mpsc::channel();
        let disk = VanishingDisk {
            gone: gone.clone(),
            handled,
        };
        let writer = GopWriter::spawn("cam", disk, Duration::from_secs(1)).unwrap();
        let counters = writer.counters();
        let gop = crate::record::tests::gop_at(0, 1_000);
        let write_one = |expect_failed: bool| {
            writer.offer(gop.clone());
            gop_handled.recv_timeout(Duration::from_secs(10)).unwrap();
            // The flag is stored right after the sink returns: wait for it (the deadline only
            // guards against a hang).
            let hang_guard = std::time::Instant::now() + Duration::from_secs(10);
            while counters.last_write_failed.load(Ordering::Relaxed) != expect_failed {
                assert!(
                    std::time::Instant::now() < hang_guard,
                    "flag never became {expect_failed}"
                );
                std::thread::yield_now();
            }
        };
        write_one(false);
        gone.store(true, Ordering::Relaxed);
        write_one(true);
        write_one(true);
        gone.store(false, Ordering::Relaxed);
        write_one(false);
        assert_eq!(counters.written_gops.load(Ordering::Relaxed), 2);
        assert_eq!(counters.failed_gops.load(Ordering::Relaxed), 2);
        writer.close().await.unwrap();
    }
}
