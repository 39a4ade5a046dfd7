//! The store's camera writer as the sink of the record path.

use super::GopSink;
use crate::media::Gop;
use crate::store::{CameraWriter, StoreError};

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
}
