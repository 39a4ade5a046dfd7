//! Record: one camera's frames become GOPs stamped with wall-clock time, and GOPs go to storage.
//!
//! Receives [`IngestEvent`]s from [`crate::ingest`] on the camera's task (as its
//! [`IngestHandler`]); groups them into [`Gop`]s ([`GopAssembler`]), anchors each GOP's media time
//! to the wall clock ([`WallAnchor`], re-anchoring when the clock jumps), and emits every GOP to a
//! [`GopWriter`] whose thread does the blocking store I/O. A change of stream parameters closes
//! the GOP in progress and the next one carries the new parameters (the store starts a new
//! segment). `mode = "continuous"` writes every GOP; `mode = "events"` will keep GOPs in a
//! [`PreRoll`] ring in RAM until a trigger (wired by the sensors work) asks for them.
//!
//! Layout: `gop` (assembly), `preroll` (the RAM ring), `writer` (the blocking hand-off).

mod gop;
mod preroll;
mod store_sink;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use gop::GopAssembler;
pub use preroll::PreRoll;
pub use writer::{GopSink, GopWriter, WriterCounters, QUEUE_GOPS};

use crate::ingest::{
    self, CameraSource, CameraStatus, IngestError, IngestEvent, IngestHandler, IngestOptions,
};
use crate::media::Gop;
use crate::shutdown::Shutdown;
use crate::time::{Anchoring, Clock, WallAnchor};

/// Feeds one camera's sessions into GOPs and hands them to the writer. The [`IngestHandler`] of
/// continuous recording.
pub struct CameraRecorder {
    camera: String,
    clock: Arc<dyn Clock>,
    anchor: WallAnchor,
    assembler: GopAssembler,
    writer: GopWriter,
}

impl CameraRecorder {
    /// A recorder for `camera` that stamps GOPs with `clock` and writes them through `writer`.
    pub fn new(camera: &str, clock: Arc<dyn Clock>, writer: GopWriter) -> Self {
        Self {
            camera: camera.to_owned(),
            clock,
            anchor: WallAnchor::new(),
            assembler: GopAssembler::new(),
            writer,
        }
    }

    /// Flushes the GOP in progress and closes the writer (waits for the store to close).
    pub async fn close(mut self) -> Result<(), String> {
        if let Some(gop) = self.assembler.finish() {
            self.writer.offer(gop);
        }
        self.writer.close().await
    }

    fn deliver(&self, gop: Gop) {
        self.writer.offer(gop);
    }
}

impl IngestHandler for CameraRecorder {
    fn session_started(&mut self) {
        // Media time restarts with each session, so does its mapping to the wall clock.
        self.anchor = WallAnchor::new();
        self.assembler = GopAssembler::new();
    }

    fn event(&mut self, event: IngestEvent) {
        match event {
            IngestEvent::Params(params) => {
                tracing::info!(
                    camera = %self.camera,
                    codec = %params.video.rfc6381_codec,
                    width = params.video.width,
                    height = params.video.height,
                    audio = params.audio.is_some(),
                    "stream parameters"
                );
                if let Some(gop) = self.assembler.set_params(params) {
                    self.deliver(gop);
                }
            }
            IngestEvent::Video(frame) => {
                let now_wall_ms = self.clock.now_wall_ms();
                let anchor = &mut self.anchor;
                let camera = &self.camera;
                let finished = self.assembler.push_video(frame, |pts_90k| {
                    let (wall_ms, anchoring) = anchor.wall_ms_for(pts_90k, now_wall_ms);
                    if let Anchoring::Jumped { jump_ms } = anchoring {
                        tracing::warn!(
                            camera = %camera,
                            jump_ms,
                            "wall clock jumped; re-anchored, recording continues"
                        );
                    }
                    wall_ms
                });
                if let Some(gop) = finished {
                    self.deliver(gop);
                }
            }
            IngestEvent::Audio(frame) => self.assembler.push_audio(frame),
        }
    }

    fn session_ended(&mut self) {
        if let Some(gop) = self.assembler.finish() {
            self.deliver(gop);
        }
    }
}

/// Why a camera stopped recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Ingest gave up (a 401 under [`ingest::AuthFailurePolicy::GiveUp`]).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The writer thread could not start.
    #[error("camera {camera}: cannot start the writer thread: {source}")]
    Spawn {
        /// Camera name.
        camera: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Closing the store's writer failed (what was written before stays).
    #[error("camera {camera}: closing the recording failed: {message}")]
    Close {
        /// Camera name.
        camera: String,
        /// The store's error.
        message: String,
    },
}

/// Records `source` continuously into `sink` until shutdown; the sink is synced after
/// `idle_sync` without a GOP. Returns the writer's counters; on a
/// give-up failure the recording is still closed cleanly before the error is returned.
pub async fn record_continuous<S: GopSink>(
    source: &CameraSource,
    options: &IngestOptions,
    sink: S,
    idle_sync: Duration,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
    status: &watch::Sender<CameraStatus>,
) -> Result<Arc<WriterCounters>, RecordError> {
    let writer =
        GopWriter::spawn(&source.name, sink, idle_sync).map_err(|e| RecordError::Spawn {
            camera: source.name.clone(),
            source: e,
        })?;
    let counters = writer.counters();
    let mut recorder = CameraRecorder::new(&source.name, clock, writer);
    let ingest_result = ingest::run(source, options, shutdown, status, &mut recorder).await;
    let close_result = recorder.close().await;
    ingest_result?;
    close_result.map_err(|message| RecordError::Close {
        camera: source.name.clone(),
        message,
    })?;
    Ok(counters)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::{StreamParams, VideoCodec, VideoFrame, VideoParams};
    use bytes::Bytes;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A one-frame GOP of `bytes` payload starting at `pts_90k`, lasting two seconds.
    pub(crate) fn gop_at(pts_90k: i64, bytes: usize) -> Gop {
        Gop {
            params: Arc::new(test_params()),
            start_wall_ms: pts_90k / 90,
            frames: vec![VideoFrame {
                pts_90k,
                is_key: true,
                data: Bytes::from(vec![0u8; bytes]),
            }],
            last_frame_duration_90k: 180_000,
            audio: Vec::new(),
        }
    }

    fn test_params() -> StreamParams {
        StreamParams {
            video: VideoParams {
                codec: VideoCodec::H265,
                width: 320,
                height: 240,
                rfc6381_codec: "hvc1.1.6.L60.90".into(),
                decoder_config: Bytes::from_static(b"hvcC"),
            },
            audio: None,
        }
    }

    /// A clock the test sets by hand.
    struct ManualClock(AtomicI64);
    impl Clock for ManualClock {
        fn now_wall_ms(&self) -> i64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// Frames at 25 fps, a key frame every 25, from a simulated clock that NTP sets forward
    /// mid-recording: every GOP is written, and the ones after the jump carry the new time.
    #[tokio::test]
    async fn keeps_recording_across_a_clock_jump() {
        let sink = writer::tests::MemorySink::default();
        let clock = Arc::new(ManualClock(AtomicI64::new(10_000)));
        let writer = GopWriter::spawn("cam", sink.clone(), Duration::from_secs(1)).unwrap();
        let mut recorder = CameraRecorder::new("cam", clock.clone(), writer);
        recorder.session_started();
        recorder.event(IngestEvent::Params(Arc::new(test_params())));
        let ntp_ms = 1_764_000_000_000;
        for n in 0..100i64 {
            let pts_90k = n * 3_600;
            let real_ms = 10_000 + n * 40;
            let jumped = n >= 60;
            clock.0.store(
                if jumped { ntp_ms + real_ms } else { real_ms },
                Ordering::Relaxed,
            );
            recorder.event(IngestEvent::Video(VideoFrame {
                pts_90k,
                is_key: n % 25 == 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x26]),
            }));
        }
        recorder.session_ended();
        recorder.close().await.unwrap();
        let gops = sink.gops.lock().unwrap();
        let starts: Vec<i64> = gops.iter().map(|g| g.start_wall_ms).collect();
        assert_eq!(
            starts,
            vec![10_000, 11_000, 12_000, ntp_ms + 13_000],
            "GOPs before the jump follow media time, after it the corrected clock"
        );
        assert_eq!(gops.iter().map(|g| g.frames.len()).sum::<usize>(), 100);
        assert!(gops.iter().all(|g| g.last_frame_duration_90k == 3_600));
    }
}
