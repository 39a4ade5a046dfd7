//! edgenvr, the box: records RTSP cameras to a wear-aware ring of fragmented MP4 segments, drives
//! PIR sensors and outputs on GPIO, and publishes every sensor's state upstream in a few bytes per
//! change.
//!
//! # Layout
//!
//! One video frame travels, by module:
//!
//! ```text
//! ingest  RTSP session (retina): connect, auth, reconnect with backoff → frames + stream parameters
//!   │ media::VideoFrame
//! record  per camera: group frames into GOPs, RAM pre-roll, continuous | events, post-roll
//!   │ media::Gop
//! mux     fMP4 bytes for one GOP (init segment, moof+mdat); no I/O
//!   │ bytes
//! store   the slot ring on SD/USB: preallocated slots, in-place writes, recovery scan, index
//!   │
//! serve   HTTP: list recordings and events, assemble a clip MP4 across segments
//! ```
//!
//! One PIR edge travels:
//!
//! ```text
//! gpio ──► state (current values + change events) ──► publish (TCP state port, MQTT)
//!             └──► record (event triggers)
//! health (disk, card wear, temperature, camera online/recording) ──► state
//! ```
//!
//! Each arrow is a channel or a method call; every module owns its state, and there is no global
//! mutable state. Binaries are thin: `main.rs` parses arguments and maps errors to exit codes.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod gpio;
pub mod health;
pub mod ingest;
pub mod limits;
pub mod malloc;
pub mod media;
pub mod mux;
pub mod notify;
pub mod publish;
pub mod record;
pub mod serve;
pub mod shutdown;
pub mod simcam;
pub mod state;
pub mod store;
pub mod time;
