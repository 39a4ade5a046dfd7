//! Record: one camera's frames become GOPs stamped with wall-clock time, and GOPs go to storage.
//!
//! Receives [`IngestEvent`]s from [`crate::ingest`] on the camera's task (as its
//! [`IngestHandler`]); groups them into [`Gop`]s ([`GopAssembler`]), anchors each GOP's media time
//! to the wall clock ([`WallAnchor`], re-anchoring when the clock jumps), and emits every GOP to a
//! [`GopWriter`] whose thread does the blocking store I/O. A change of stream parameters closes
//! the GOP in progress and the next one carries the new parameters (the store starts a new
//! segment). `mode = "continuous"` writes every GOP ([`record_continuous`]); `mode = "events"`
//! keeps GOPs in a [`PreRoll`] ring in RAM and writes only around triggers from the camera's
//! sensors ([`record_events`], state machine in [`EventMachine`]).
//!
//! Both publish what the box's health reports upstream in [`CameraActivity`] (frames received,
//! whether video is being written), read by `health` from another task.
//!
//! Layout: `gop` (assembly), `preroll` (the RAM ring), `events` (event state machine),
//! `writer` (the blocking hand-off).

mod events;
mod gop;
mod preroll;
mod store_sink;
mod writer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

pub use events::{EventMachine, EventOp, MAX_PRE_ROLL_BYTES, STALLED_END_GRACE_MS};
pub use gop::GopAssembler;
pub use preroll::PreRoll;
pub use writer::{GopSink, GopWriter, WriterCounters, QUEUE_GOPS};

use crate::gpio::SensorEvent;

use crate::ingest::{
    self, CameraSource, CameraStatus, IngestError, IngestEvent, IngestHandler, IngestOptions,
};
use crate::media::Gop;
use crate::shutdown::Shutdown;
use crate::time::{Anchoring, Clock, WallAnchor};

/// What a camera is doing, for the box's health sensors: updated by the recorder on the
/// camera's task, read from anywhere.
#[derive(Debug, Default)]
pub struct CameraActivity {
    /// Video frames received since start (frames per second = its rate of change).
    pub video_frames: AtomicU64,
    /// Video payload bytes received since start (bit rate = its rate of change).
    pub video_bytes: AtomicU64,
    /// An event is being recorded (events mode only; continuous mode writes whenever online).
    pub event_recording: AtomicBool,
    /// The camera's writer counters, once its recording started: whether its video really
    /// reaches the store.
    pub writer: std::sync::OnceLock<Arc<WriterCounters>>,
}

impl CameraActivity {
    /// True when the camera's latest GOP could not be written (see
    /// [`WriterCounters::last_write_failed`]).
    pub fn store_failing(&self) -> bool {
        self.writer
            .get()
            .is_some_and(|c| c.last_write_failed.load(Ordering::Relaxed))
    }
}

/// One camera's events-mode state and its writer, shared by the ingest handler (GOPs) and the
/// trigger listener (sensor events, ticks) of the camera's task.
struct EventCore {
    camera: String,
    machine: EventMachine,
    writer: GopWriter,
    ops: Vec<EventOp>,
}

impl EventCore {
    /// Hands the ops the machine emitted to the writer.
    fn flush(&mut self, activity: &CameraActivity) {
        for op in self.ops.drain(..) {
            match op {
                EventOp::Begin { event, pre_roll } => {
                    tracing::info!(camera = %self.camera, sensors = ?event.sensors, pre_roll_gops = pre_roll.len(), "event started");
                    self.writer.begin_event(event, pre_roll);
                }
                // Re-marking the running event with its longer sensor list is a begin again.
                EventOp::Update(event) => self.writer.begin_event(event, Vec::new()),
                EventOp::Gop(gop) => self.writer.offer(gop),
                EventOp::End { end_wall_ms } => {
                    tracing::info!(camera = %self.camera, end_wall_ms, "event ended");
                    self.writer.end_event(end_wall_ms);
                }
            }
        }
        activity
            .event_recording
            .store(self.machine.is_recording(), Ordering::Relaxed);
        self.writer
            .counters()
            .not_recorded_gops
            .store(self.machine.not_recorded_gops(), Ordering::Relaxed);
    }
}

fn count_assembled(counters: &WriterCounters) {
    counters.assembled_gops.fetch_add(1, Ordering::Relaxed);
}

/// Copies the frames the camera sent into the counters the close line reports.
fn count_frames(counters: &WriterCounters, activity: &CameraActivity) {
    counters.frames_received.store(
        activity.video_frames.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
}

type SharedEventCore = Arc<Mutex<EventCore>>;

fn lock(core: &SharedEventCore) -> MutexGuard<'_, EventCore> {
    // Nothing in the core is left half-changed by a panic that matters more than stopping.
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where finished GOPs go.
enum Destination {
    /// Every GOP to the writer.
    Continuous(GopWriter),
    /// Through the event state machine.
    Events(SharedEventCore),
}

/// Feeds one camera's sessions into GOPs and hands them to the writer (continuous) or the event
/// state machine (events). The camera's [`IngestHandler`].
pub struct CameraRecorder {
    camera: String,
    clock: Arc<dyn Clock>,
    anchor: WallAnchor,
    assembler: GopAssembler,
    destination: Destination,
    activity: Arc<CameraActivity>,
}

impl CameraRecorder {
    /// A recorder for `camera` that stamps GOPs with `clock` and writes them through `writer`.
    pub fn new(camera: &str, clock: Arc<dyn Clock>, writer: GopWriter) -> Self {
        Self::with_destination(camera, clock, Destination::Continuous(writer))
    }

    fn with_destination(camera: &str, clock: Arc<dyn Clock>, destination: Destination) -> Self {
        Self {
            camera: camera.to_owned(),
            clock,
            anchor: WallAnchor::new(),
            assembler: GopAssembler::new(),
            destination,
            activity: Arc::new(CameraActivity::default()),
        }
    }

    /// Flushes the GOP in progress and closes the writer (waits for the store to close). A
    /// running event is ended first.
    pub async fn close(mut self) -> Result<(), String> {
        if let Some(gop) = self.assembler.finish() {
            self.deliver(gop);
        }
        let writer = match self.destination {
            Destination::Continuous(writer) => writer,
            Destination::Events(core) => {
                let now_wall_ms = self.clock.now_wall_ms();
                let core = match Arc::try_unwrap(core) {
                    Ok(core) => core.into_inner().unwrap_or_else(|p| p.into_inner()),
                    Err(_) => {
                        return Err(format!(
                            "camera {}: event state still shared at close",
                            self.camera
                        ))
                    }
                };
                let mut core = core;
                core.machine.finish(now_wall_ms, &mut core.ops);
                core.flush(&self.activity);
                core.writer
            }
        };
        writer.close().await
    }

    fn deliver(&self, gop: Gop) {
        match &self.destination {
            Destination::Continuous(writer) => {
                count_assembled(&writer.counters());
                writer.offer(gop)
            }
            Destination::Events(core) => {
                let mut core = lock(core);
                let core = &mut *core;
                count_assembled(&core.writer.counters());
                core.machine.gop(gop, &mut core.ops);
                core.flush(&self.activity);
            }
        }
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
                self.activity.video_frames.fetch_add(1, Ordering::Relaxed);
                self.activity
                    .video_bytes
                    .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
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

/// What an events-mode camera records around.
#[derive(Clone, Debug)]
pub struct EventPlan {
    /// Video kept in RAM before a trigger.
    pub pre_roll: Duration,
    /// Video written after the last trigger clears.
    pub post_roll: Duration,
    /// The sensors whose triggers start and extend events.
    pub triggers: Vec<String>,
}

/// How often the trigger listener looks at the clock, to end events of a camera that stopped
/// sending: a second is fine next to [`STALLED_END_GRACE_MS`].
const EVENT_TICK: Duration = Duration::from_secs(1);

/// Records `source` in events mode into `sink` until shutdown: GOPs stay in RAM until a
/// [`SensorEvent`] from one of `plan.triggers` arrives on `sensor_events`, then pre-roll, live
/// video and post-roll are written as one event (see [`EventMachine`]). Idle, nothing reaches the
/// sink. `activity` is updated as it goes. Returns the writer's counters.
#[allow(clippy::too_many_arguments)]
pub async fn record_events<S: GopSink>(
    source: &CameraSource,
    options: &IngestOptions,
    sink: S,
    plan: &EventPlan,
    mut sensor_events: broadcast::Receiver<SensorEvent>,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
    status: &watch::Sender<CameraStatus>,
    activity: Arc<CameraActivity>,
) -> Result<Arc<WriterCounters>, RecordError> {
    // Idle events mode writes nothing, so the writer thread never has anything to sync; its
    // idle timer only wakes it. An hour keeps it asleep (end_event closes segments synced).
    let writer = GopWriter::spawn(&source.name, sink, Duration::from_secs(3600)).map_err(|e| {
        RecordError::Spawn {
            camera: source.name.clone(),
            source: e,
        }
    })?;
    let counters = writer.counters();
    let _ = activity.writer.set(counters.clone());
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let core = Arc::new(Mutex::new(EventCore {
        camera: source.name.clone(),
        machine: EventMachine::new(ms(plan.pre_roll), ms(plan.post_roll), MAX_PRE_ROLL_BYTES),
        writer,
        ops: Vec::new(),
    }));
    let mut recorder = CameraRecorder::with_destination(
        &source.name,
        clock.clone(),
        Destination::Events(core.clone()),
    );
    recorder.activity = activity.clone();
    let triggers: HashSet<&str> = plan.triggers.iter().map(String::as_str).collect();
    let listen = {
        let mut shutdown = shutdown.clone();
        let core = core.clone();
        let activity = activity.clone();
        let camera = source.name.clone();
        async move {
            let mut tick = tokio::time::interval(EVENT_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.requested() => break,
                    received = sensor_events.recv() => match received {
                        Ok(event) if triggers.contains(&*event.name) => {
                            let at_wall_ms = event
                                .at_wall
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                            let mut core = lock(&core);
                            let core = &mut *core;
                            core.machine.trigger(&event.name, event.triggered, at_wall_ms, &mut core.ops);
                            core.flush(&activity);
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(camera = %camera, missed, "sensor events missed");
                        }
                        // No sensor task left: triggers can no longer come; keep recording.
                        Err(broadcast::error::RecvError::Closed) => {
                            shutdown.requested().await;
                            break;
                        }
                    },
                    _ = tick.tick() => {
                        let mut core = lock(&core);
                        let core = &mut *core;
                        core.machine.tick(clock.now_wall_ms(), &mut core.ops);
                        core.flush(&activity);
                    }
                }
            }
        }
    };
    drop(core);
    let (ingest_result, ()) = tokio::join!(
        ingest::run(source, options, shutdown, status, &mut recorder),
        listen
    );
    let close_result = recorder.close().await;
    count_frames(&counters, &activity);
    ingest_result?;
    close_result.map_err(|message| RecordError::Close {
        camera: source.name.clone(),
        message,
    })?;
    Ok(counters)
}

/// Records `source` continuously into `sink` until shutdown; the sink is synced after
/// `idle_sync` without a GOP; `activity` counts frames as they come. Returns the writer's counters; on a
/// give-up failure the recording is still closed cleanly before the error is returned.
#[allow(clippy::too_many_arguments)]
pub async fn record_continuous<S: GopSink>(
    source: &CameraSource,
    options: &IngestOptions,
    sink: S,
    idle_sync: Duration,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
    status: &watch::Sender<CameraStatus>,
    activity: Arc<CameraActivity>,
) -> Result<Arc<WriterCounters>, RecordError> {
    let writer =
        GopWriter::spawn(&source.name, sink, idle_sync).map_err(|e| RecordError::Spawn {
            camera: source.name.clone(),
            source: e,
        })?;
    let counters = writer.counters();
    let _ = activity.writer.set(counters.clone());
    let mut recorder = CameraRecorder::new(&source.name, clock, writer);
    recorder.activity = activity.clone();
    let ingest_result = ingest::run(source, options, shutdown, status, &mut recorder).await;
    let close_result = recorder.close().await;
    count_frames(&counters, &activity);
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
    #[test]
    fn a_camera_is_store_failing_only_while_its_writer_says_so() {
        let activity = CameraActivity::default();
        assert!(!activity.store_failing(), "no writer yet: nothing failed");
        let counters = Arc::new(WriterCounters::default());
        let _ = activity.writer.set(counters.clone());
        assert!(!activity.store_failing());
        counters.last_write_failed.store(true, Ordering::Relaxed);
        assert!(activity.store_failing());
    }

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

    /// The events path from frames to the sink: 25 fps with a key frame a second on a simulated
    /// clock, pre_roll 2 s, post_roll 2 s, a trigger at 10.5 s cleared at 11.5 s. The sink sees
    /// nothing before the trigger, then the event mark, the pre-roll and live GOPs, then the end,
    /// and nothing after it; the activity counters follow.
    #[tokio::test]
    async fn events_mode_writes_only_around_the_trigger() {
        let sink = writer::tests::MemorySink::default();
        let clock = Arc::new(ManualClock(AtomicI64::new(0)));
        let writer = GopWriter::spawn("cam", sink.clone(), Duration::from_secs(3600)).unwrap();
        let core = Arc::new(Mutex::new(EventCore {
            camera: "cam".into(),
            machine: EventMachine::new(2_000, 2_000, MAX_PRE_ROLL_BYTES),
            writer,
            ops: Vec::new(),
        }));
        let mut recorder = CameraRecorder::with_destination(
            "cam",
            clock.clone(),
            Destination::Events(core.clone()),
        );
        let activity = recorder.activity.clone();
        recorder.session_started();
        recorder.event(IngestEvent::Params(Arc::new(test_params())));
        let trigger = |on: bool, at_ms: i64| {
            let mut core = lock(&core);
            let core = &mut *core;
            core.machine.trigger("pir", on, at_ms, &mut core.ops);
            core.flush(&activity);
        };
        let mut recording_seen = false;
        for n in 0..750i64 {
            let now_ms = n * 40;
            clock.0.store(now_ms, Ordering::Relaxed);
            if now_ms == 10_520 {
                trigger(true, now_ms);
            }
            if now_ms == 11_520 {
                trigger(false, now_ms);
            }
            recorder.event(IngestEvent::Video(VideoFrame {
                pts_90k: n * 3_600,
                is_key: n % 25 == 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x26]),
            }));
            recording_seen |= activity.event_recording.load(Ordering::Relaxed);
        }
        recorder.session_ended();
        let counters = lock(&core).writer.counters();
        drop(core);
        recorder.close().await.unwrap();
        // Every GOP accounted for: 30 assembled, 6 written, the other 24 let go from RAM.
        assert_eq!(counters.assembled_gops.load(Ordering::Relaxed), 30);
        assert_eq!(counters.written_gops.load(Ordering::Relaxed), 6);
        assert_eq!(counters.not_recorded_gops.load(Ordering::Relaxed), 24);
        assert_eq!(counters.unaccounted_gops(), 0);
        assert!(recording_seen);
        assert!(!activity.event_recording.load(Ordering::Relaxed));
        assert_eq!(activity.video_frames.load(Ordering::Relaxed), 750);
        let starts: Vec<i64> = sink
            .gops
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.start_wall_ms)
            .collect();
        // Pre-roll from 8 s (the GOP holding 10.52 − 2 s), live until the GOP starting at or
        // after 11.52 + 2 s: the one at 14 s is the first left out.
        assert_eq!(starts, vec![8_000, 9_000, 10_000, 11_000, 12_000, 13_000]);
        let events = sink.events.lock().unwrap().clone();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0],
            (
                0,
                writer::tests::SinkEvent::Begin(crate::store::EventInfo {
                    id: 0,
                    start_wall_ms: 10_520,
                    video_from_wall_ms: 8_520,
                    end_wall_ms: None,
                    sensors: vec!["pir".into()],
                })
            )
        );
        assert_eq!(events[1], (6, writer::tests::SinkEvent::End(13_520)));
    }
}
