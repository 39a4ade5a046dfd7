//! Publishers: send the state bus upstream.
//!
//! - `frames`: turns bus snapshots and events into wire frames for one session (sequence
//!   numbers, catalog and snapshot split into parts, batches of changes); no I/O;
//! - `tcp`: the TCP state port (`[state] listen`), one task per client;
//! - `mqtt`: the broker connection for fleets (`[mqtt] url`), retained catalog and snapshot.

pub mod frames;
pub mod mqtt;
pub mod tcp;
