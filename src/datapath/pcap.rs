//! Capture files (pcap and pcapng) as a packet source. (Contract; implemented in the wire branch.)

use std::path::PathBuf;

use crate::source::{Action, Frame, PacketSource, Polled, SourceError};

pub struct CaptureSource {
    _private: (),
}

impl CaptureSource {
    pub fn open(paths: &[PathBuf], batch: usize) -> Result<Self, SourceError> {
        let _ = (paths, batch);
        unimplemented!("capture reader lands with the wire branch")
    }
    pub fn bytes_read(&self) -> u64 {
        unimplemented!()
    }
    pub fn total_bytes(&self) -> u64 {
        unimplemented!()
    }
    pub fn packets_read(&self) -> u64 {
        unimplemented!()
    }
}

impl PacketSource for CaptureSource {
    fn poll_batch<F>(&mut self, handle: F) -> Result<Polled, SourceError>
    where
        F: FnMut(&Frame<'_>) -> Action,
    {
        let _ = handle;
        unimplemented!()
    }
}
