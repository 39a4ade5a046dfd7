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
        CameraWriter::begin_event(self, event.clone())
    }

    fn end_event(&mut self, end_wall_ms: i64) -> Result<(), StoreError> {
        let ended = CameraWriter::end_event(self, end_wall_ms);
        // Events mode writes nothing between events: close the segment (synced) now rather
        // than leaving it open for a sync timer.
        let closed = self.end_segment();
        ended.and(closed)
    }
}
