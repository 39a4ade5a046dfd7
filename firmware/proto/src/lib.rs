//! edgenvr's wire contract, shared by the box, `nvrctl` and microcontroller sensor nodes.
//!
//! A sender opens a session with [`Body::Hello`], announces its sensors with
//! [`Body::Catalog`] (id → name, kind, role), sends the current values as a
//! [`Body::Snapshot`], and from then on only [`Body::Changes`] — a few bytes per change, since
//! ids are varints and values carry no type (the catalog says it) — and [`Body::Heartbeat`]s
//! when idle. Every frame has a sequence number; a gap means the receiver must resynchronise.
//!
//! # Layout
//!
//! - `frame`: the frame types and the byte layout of a frame's body;
//! - `codec`: framing on a byte stream — [`encode`] (COBS + CRC-16 + `0x00` delimiter, built
//!   from postcard's flavors) and the streaming [`FrameDecoder`];
//! - `policy`: report by exception for scalar sensors ([`ScalarReporter`]);
//! - `status`: the codes of status values (a camera's state and why, the store's state);
//! - `pack` (feature `pack`, needs an allocator): the compressed catalog of version 2;
//! - `error`: why a frame was rejected or could not be written.
//!
//! `#![no_std]` and no allocator: frames to send borrow the caller's slices, received frames
//! borrow the decoder's buffer. The byte-level format is described in the crate's README.md.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

#[cfg(feature = "pack")]
extern crate alloc;

mod codec;
mod error;
mod frame;
#[cfg(feature = "pack")]
pub mod pack;
mod policy;
mod status;

pub use codec::{
    catalog_entries_fitting, catalog_pack_part_capacity, changes_fitting, encode,
    packed_snapshot_fitting, Feed, FrameDecoder, DELIMITER, MAX_FRAME_BYTES,
};
pub use error::{EncodeError, FrameError};
pub use frame::{
    Batch, Body, CameraRole, Catalog, CatalogEntries, CatalogEntry, CatalogHasher, CatalogId,
    CatalogPackPart, Change, Changes, Frame, Hello, Kind, PackedSnapshot, PackedValues, Role,
    SensorId, Snapshot, Value, ValueKind, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use policy::{Deadband, ReportPolicy, ScalarReporter};
pub use status::{
    camera_status_code, split_camera_status, CameraReason, CameraState, CameraStatusWords,
    StoreState, StoreStatusWords,
};
