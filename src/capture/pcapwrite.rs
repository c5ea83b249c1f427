//! A classic pcap writer (nanosecond timestamps) for tests and fixture generators.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::capture::MAX_RECORD_LEN;
use crate::capture::{LinkType, SourceError, Timestamp};

/// LINKTYPE_ETHERNET, the default link type of written captures.
pub const LINKTYPE_ETHERNET: u32 = 1;

const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const SNAPLEN: u32 = MAX_RECORD_LEN as u32;

/// The LINKTYPE_ value a capture of `link` frames is written with.
pub fn linktype_of(link: LinkType) -> u32 {
    match link {
        LinkType::Null => 0,
        LinkType::Ethernet => LINKTYPE_ETHERNET,
        LinkType::RawIp => 101,
        LinkType::LinuxSll => 113,
        LinkType::Ipv4 => 228,
        LinkType::Ipv6 => 229,
        LinkType::LinuxSll2 => 276,
    }
}

/// Writes a little-endian, nanosecond-resolution pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write = BufWriter<File>> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(path: &Path, linktype: u32) -> Result<Self, SourceError> {
        let io_err = |source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::create(path).map_err(io_err)?;
        PcapWriter::new(BufWriter::new(file), linktype).map_err(io_err)
    }

    /// [`PcapWriter::create`] with the Ethernet link type.
    pub fn create_ethernet(path: &Path) -> Result<Self, SourceError> {
        Self::create(path, LINKTYPE_ETHERNET)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out })
    }

    /// Writes a whole frame (nothing cut).
    pub fn write(&mut self, ts: Timestamp, frame: &[u8]) -> io::Result<()> {
        let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.write_record(ts, frame, wire_len)
    }

    /// Writes `data` as captured from a frame of `wire_len` bytes on the wire.
    pub fn write_record(&mut self, ts: Timestamp, data: &[u8], wire_len: u32) -> io::Result<()> {
        if data.len() > MAX_RECORD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the {MAX_RECORD_LEN}-byte record limit",
                    data.len()
                ),
            ));
        }
        let secs = u32::try_from(ts.secs()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "timestamp beyond the pcap format's 32-bit seconds",
            )
        })?;
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&ts.subsec_nanos().to_le_bytes());
        header[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        header[12..].copy_from_slice(&wire_len.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(data)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
