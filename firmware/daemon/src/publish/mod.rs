//! Publishers: send the state bus upstream.
//!
//! - `frames`: turns bus snapshots and events into wire frames for one session (sequence
//!   numbers, catalog pack and packed snapshot split into parts, batches of changes); no I/O;
//! - `pacing`: when held changes go out (at once on a quiet link, batched on a busy one);
//! - `tcp`: the TCP state port (`[state] listen`), one task per client;
//! - `mqtt`: the broker connection for fleets (`[mqtt] url`), retained catalog and snapshot,
//!   output commands;
//! - `home_assistant`: discovery configs and plain state payloads for Home Assistant; no I/O.

pub mod frames;
pub mod home_assistant;
pub mod mqtt;
pub mod pacing;
pub mod tcp;
