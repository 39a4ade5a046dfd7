//! The store's camera writer as the sink of the record path.

use super::GopSink;
use crate::media::Gop;
use crate::store::{CameraWriter, EventInfo, StoreError};

impl GopSink for CameraWriter {
    type Error = StoreError;

    fn append(&mut self, gop: &Gop) -> Result<(), StoreError> {
        CameraWriter::append(self, gop)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        CameraWriter::sync(self)
    }

    fn close(self) -> Result<(), StoreError> {
        CameraWriter::close(self)
    }

    fn begin_event(&mut self, event: &EventInfo) -> Result<(), StoreError> {
        let id = CameraWriter::begin_event(self, event.clone())?;
        tracing::debug!(camera = %self.camera(), event = id, "event marked in the store");
        Ok(())
    }

    fn end_event(&mut self, end_wall_ms: i64) -> Result<(), StoreError> {
        // Synced; the segment stays open so the next event fills the rest of its slot.
        CameraWriter::end_event(self, end_wall_ms)
    }
}
