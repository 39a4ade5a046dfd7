//! How much of the card holds video when the ring first wraps (issue 11): an events-only camera
//! with short (2 s) and long (60 s) events, and a continuous camera, each at 4 Mbit/s with 1 s
//! GOPs on 16 MiB slots (the default size), written through the store's real camera writer.
//!
//! Shows: events share slots across the quiet between them, so at least 90 % of the slot bytes
//! hold video when the first slot is overwritten, whatever the event length — and the same for
//! continuous recording, whose segments fill their slot. For comparison it prints what a
//! 10-second segment cap (the old default) leaves of the same card. Nothing is overwritten
//! before every slot is full.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgenvr::media::{synthetic, Gop, StreamParams};
use edgenvr::store::{init_store, EventInfo, InitOptions, Store, WriterOptions};

const SLOT_BYTES: u64 = 16 << 20;
const SLOTS: u32 = 8;
/// 4 Mbit/s with a key frame a second: a 100 kB key frame and 24 frames of 16.5 kB.
const KEY_FRAME_BYTES: usize = 100_000;
const FRAME_BYTES: usize = 16_500;
const PRE_ROLL_S: i64 = 5;
const POST_ROLL_S: i64 = 5;

struct Stream {
    params: Arc<StreamParams>,
    key: Bytes,
    frame: Bytes,
    next_second: i64,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            params: synthetic::h264_params(1920, 1080),
            key: Bytes::from(vec![0x65; KEY_FRAME_BYTES]),
            frame: Bytes::from(vec![0x41; FRAME_BYTES]),
            next_second: 0,
        }
    }

    /// The next one-second GOP.
    fn gop(&mut self) -> Gop {
        let second = self.next_second;
        self.next_second += 1;
        let frames = std::iter::once(self.key.clone()).chain((0..24).map(|_| self.frame.clone()));
        synthetic::gop(
            &self.params,
            1_767_225_600_000 + second * 1000,
            second * 90_000,
            3600,
            frames,
        )
    }
}

/// Share of all slot bytes that fragment bodies (video) take.
fn video_share(store: &Store) -> f64 {
    let video: u64 = store
        .segments()
        .iter()
        .flat_map(|s| &s.fragments)
        .map(|f| u64::from(f.body_len))
        .sum();
    video as f64 / (SLOT_BYTES * u64::from(SLOTS)) as f64
}

/// Writes until the ring first wraps; returns the video share just before the first overwrite
/// and the number of events (or 0) written by then.
fn fill_until_wrap(segment_90k: Option<i64>, event_seconds: Option<i64>) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    init_store(
        dir.path(),
        &InitOptions {
            size_bytes: SLOT_BYTES * u64::from(SLOTS),
            slot_bytes: Some(SLOT_BYTES),
            slot_count: None,
        },
        &mut |_| {},
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut writer = store
        .camera_writer(
            "cam",
            WriterOptions {
                segment_90k,
                sync_interval: Duration::from_secs(3600),
                share_slots: None,
            },
        )
        .unwrap();
    let mut stream = Stream::new();
    let mut events = 0;
    let wrapped = |store: &Store| store.camera_totals()[0].fragments_overwritten > 0;
    let share_before = 'writing: loop {
        let gops = match event_seconds {
            Some(length) => {
                // An event: pre-roll, the motion, post-roll; then a quiet minute (a media jump).
                let start = stream.next_second + PRE_ROLL_S;
                writer
                    .begin_event(EventInfo {
                        id: 0,
                        start_wall_ms: 1_767_225_600_000 + start * 1000,
                        video_from_wall_ms: 1_767_225_600_000 + (start - PRE_ROLL_S) * 1000,
                        end_wall_ms: None,
                        sensors: vec!["pir".into()],
                    })
                    .unwrap();
                PRE_ROLL_S + length + POST_ROLL_S
            }
            None => 1,
        };
        for _ in 0..gops {
            let gop = stream.gop();
            let share = video_share(&store);
            writer.append(&gop).unwrap();
            if wrapped(&store) {
                break 'writing share;
            }
        }
        if event_seconds.is_some() {
            writer
                .end_event(1_767_225_600_000 + stream.next_second * 1000)
                .unwrap();
            events += 1;
            stream.next_second += 60;
        }
    };
    writer.close().unwrap();
    (share_before, events)
}

#[test]
fn events_and_continuous_video_fill_at_least_90_percent_of_the_slots_before_the_first_wrap() {
    let (short, short_events) = fill_until_wrap(None, Some(2));
    let (long, long_events) = fill_until_wrap(None, Some(60));
    let (continuous, _) = fill_until_wrap(None, None);
    let (capped, _) = fill_until_wrap(Some(10 * 90_000), None);
    eprintln!(
        "measured: video share of {SLOTS} x 16 MiB slots at the first wrap, 4 Mbit/s, 1 s GOPs: \
         2 s events {:.1} % ({short_events} events), 60 s events {:.1} % ({long_events} events), \
         continuous {:.1} %; continuous with a 10 s segment cap {:.1} %",
        short * 100.0,
        long * 100.0,
        continuous * 100.0,
        capped * 100.0
    );
    for (what, share) in [
        ("2 s events", short),
        ("60 s events", long),
        ("continuous", continuous),
    ] {
        assert!(
            share >= 0.90,
            "{what}: {:.1} % of the slot bytes",
            share * 100.0
        );
    }
    // 12-GOP events: far more events than slots fit before the ring wraps.
    assert!(short_events > SLOTS as usize * 2, "{short_events}");
}
