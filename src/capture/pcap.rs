//! Capture files (pcap and pcapng) as a packet source.
//!
//! Files are streamed record by record through one reusable buffer, so a capture of several GB
//! costs no more memory than its largest record. Every format error names the file and the byte
//! offset of the record that broke, so a damaged capture can be looked at with a hex editor.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::capture::{
    Action, Frame, LinkType, PacketSource, Polled, SourceError, Timestamp, MAX_RECORD_LEN,
};

/// Known pcapng blocks carry options beside the packet; allow them room beyond the record cap.
const MAX_BLOCK_LEN: usize = MAX_RECORD_LEN + 64 * 1024;

/// Bytes read from a file at a time. Larger than any record, so that a classic pcap record is
/// always handed out where it was read to.
const READ_BUFFER_LEN: usize = 1024 * 1024;
const _: () = assert!(READ_BUFFER_LEN >= MAX_RECORD_LEN);

const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Alexey Kuznetsov's patched format: longer record headers, never common, not read here.
const PCAP_MAGIC_KUZNETSOV: u32 = 0xa1b2_cd34;
const PCAP_FILE_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;
/// The link-type field also carries FCS-length bits above these (libpcap's LT_LINKTYPE).
const PCAP_LINKTYPE_MASK: u32 = 0x03ff_ffff;

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// Block type, block length, and the trailing copy of the length.
const PCAPNG_BLOCK_OVERHEAD: usize = 12;
const PCAPNG_SHB_MIN_LEN: usize = 28;
const PCAPNG_OPT_END: u16 = 0;
const PCAPNG_OPT_IF_TSRESOL: u16 = 9;
const PCAPNG_OPT_IF_TSOFFSET: u16 = 14;

const NANOS_PER_SEC: u64 = Timestamp::NANOS_PER_SEC;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }

    fn u16_at(self, buf: &[u8], at: usize) -> Option<u16> {
        Some(self.u16(array_at(buf, at)?))
    }

    fn u32_at(self, buf: &[u8], at: usize) -> Option<u32> {
        Some(self.u32(array_at(buf, at)?))
    }
}

fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Whether the caplen and len fields of classic pcap records are in the old order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthOrder {
    Normal,
    /// Versions before 2.3 wrote the original length first.
    Swapped,
    /// Version 2.3 files exist in both orders: a captured length larger than the original
    /// length means the fields are swapped.
    Ambiguous,
}

/// The unit of a pcapng interface's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsUnit {
    /// 10^-n seconds.
    Decimal(u8),
    /// 2^-n seconds.
    Binary(u8),
}

impl TsUnit {
    const MICROS: TsUnit = TsUnit::Decimal(6);

    fn from_option(value: u8) -> Self {
        if value & 0x80 == 0 {
            TsUnit::Decimal(value)
        } else {
            TsUnit::Binary(value & 0x7f)
        }
    }

    fn to_nanos(self, units: u64) -> u64 {
        let nanos = match self {
            TsUnit::Decimal(e) if e <= 9 => {
                let scale = 10u128.pow(u32::from(9 - e));
                u128::from(units) * scale
            }
            TsUnit::Decimal(e) => match 10u128.checked_pow(u32::from(e - 9)) {
                Some(div) => u128::from(units) / div,
                None => 0,
            },
            TsUnit::Binary(e) => (u128::from(units) * u128::from(NANOS_PER_SEC))
                .checked_shr(u32::from(e))
                .unwrap_or(0),
        };
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    link: Option<LinkType>,
    snaplen: u32,
    unit: TsUnit,
    /// if_tsoffset: seconds added to every timestamp of the interface.
    offset_secs: i64,
}

impl Interface {
    fn timestamp(&self, high: u32, low: u32) -> Timestamp {
        let units = (u64::from(high) << 32) | u64::from(low);
        let nanos = self.unit.to_nanos(units);
        let shift = self.offset_secs.saturating_mul(NANOS_PER_SEC as i64);
        let ts = if shift >= 0 {
            nanos.saturating_add(shift.unsigned_abs())
        } else {
            nanos.saturating_sub(shift.unsigned_abs())
        };
        Timestamp(ts)
    }
}

#[derive(Debug)]
enum Format {
    Pcap {
        endian: Endian,
        nanos: bool,
        lengths: LengthOrder,
        link: LinkType,
    },
    Pcapng {
        endian: Endian,
        /// Interfaces of the current section, by interface id.
        interfaces: Vec<Interface>,
    },
}

/// Where one record's bytes sit in the shared buffer, and what the file said about them.
#[derive(Debug, Clone, Copy)]
struct Record {
    start: usize,
    len: usize,
    /// `start` and `len` index the current file's read window, not the record buffer.
    in_window: bool,
    ts: Timestamp,
    link: LinkType,
    wire_len: u32,
}

/// A file's read buffer, which can also hand out a run of bytes where it lies: reading a
/// frame through a `BufReader` into the record buffer copied every byte a second time after
/// the kernel's copy.
#[derive(Debug)]
struct Window {
    file: File,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl Window {
    fn new(file: File, capacity: usize) -> Self {
        Window {
            file,
            buf: vec![0; capacity].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }

    /// Reads from the file until `len` bytes are unread and contiguous, or the file ends;
    /// returns how many of them are.
    #[cold]
    #[inline(never)]
    fn fill_to(&mut self, len: usize) -> io::Result<usize> {
        if self.end - self.pos >= len || len > self.buf.len() {
            return Ok((self.end - self.pos).min(len));
        }
        if self.pos + len > self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < len {
            let Some(room) = self.buf.get_mut(self.end..) else {
                break;
            };
            match self.file.read(room) {
                Ok(0) => break,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((self.end - self.pos).min(len))
    }

    /// Consumes the next `len` bytes in place: `Some(start)` when they are all there, at
    /// `buf[start..start + len]` until the next read. `None` (nothing consumed) at the end of
    /// the file.
    #[inline(always)]
    fn take_in_place(&mut self, len: usize) -> io::Result<Option<usize>> {
        // Almost always there already: the read is the rare, out-of-line case.
        if self.end - self.pos < len && self.fill_to(len)? < len {
            return Ok(None);
        }
        let start = self.pos;
        self.pos += len;
        Ok(Some(start))
    }

    fn taken(&self, start: usize, len: usize) -> Option<&[u8]> {
        self.buf.get(start..start.checked_add(len)?)
    }
}

impl Read for Window {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            if dst.len() >= self.buf.len() {
                return self.file.read(dst);
            }
            self.pos = 0;
            self.end = 0;
            if self.fill_to(1)? == 0 {
                return Ok(0);
            }
        }
        let unread = self.buf.get(self.pos..self.end).unwrap_or(&[]);
        let n = dst.len().min(unread.len());
        if let (Some(to), Some(from)) = (dst.get_mut(..n), unread.get(..n)) {
            to.copy_from_slice(from);
        }
        self.pos += n;
        Ok(n)
    }
}

/// A classic pcap record header's time, captured length and original length.
#[inline(always)]
fn decode_record_header(
    header: &[u8; PCAP_RECORD_HEADER_LEN],
    endian: Endian,
    nanos: bool,
    lengths: LengthOrder,
) -> (Timestamp, u32, u32) {
    let field = |i: usize| endian.u32([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (secs, frac, first, second) = (field(0), field(4), field(8), field(12));
    let swap = match lengths {
        LengthOrder::Normal => false,
        LengthOrder::Swapped => true,
        LengthOrder::Ambiguous => first > second,
    };
    let (caplen, wire_len) = if swap {
        (second, first)
    } else {
        (first, second)
    };
    let frac_nanos = if nanos {
        u64::from(frac)
    } else {
        u64::from(frac) * 1000
    };
    let ts = Timestamp(
        u64::from(secs)
            .saturating_mul(NANOS_PER_SEC)
            .saturating_add(frac_nanos),
    );
    (ts, caplen, wire_len)
}

/// One open capture file, positioned at a record boundary.
#[derive(Debug)]
struct CaptureFile {
    path: PathBuf,
    reader: Window,
    /// Bytes consumed so far; the offset of the next record.
    offset: u64,
    format: Format,
    /// Simple packet blocks carry no time: they get the time of the packet before them.
    last_ts: Timestamp,
}

/// How many bytes a read found, for messages about files that end early.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let Some(rest) = buf.get_mut(got..) else {
            break;
        };
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn path_name(path: &Path) -> String {
    path.display().to_string()
}

impl CaptureFile {
    fn open(path: &Path, buf: &mut Vec<u8>) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path_name(path),
            source,
        })?;
        let mut file = CaptureFile {
            path: path.to_path_buf(),
            reader: Window::new(file, READ_BUFFER_LEN),
            offset: 0,
            last_ts: Timestamp(0),
            // Replaced once the header is read.
            format: Format::Pcapng {
                endian: Endian::Little,
                interfaces: Vec::new(),
            },
        };
        file.read_header(buf)?;
        Ok(file)
    }

    fn io_error(&self, source: io::Error) -> SourceError {
        SourceError::Io {
            path: path_name(&self.path),
            source,
        }
    }

    fn format_error(&self, offset: u64, reason: String) -> SourceError {
        SourceError::Format {
            path: path_name(&self.path),
            offset,
            reason,
        }
    }

    /// Fills `dst` as far as the file allows; returns how many bytes were read.
    fn read_into(&mut self, dst: &mut [u8]) -> Result<usize, SourceError> {
        let got = read_up_to(&mut self.reader, dst).map_err(|e| self.io_error(e))?;
        self.offset += got as u64;
        Ok(got)
    }

    fn read_header(&mut self, buf: &mut Vec<u8>) -> Result<(), SourceError> {
        let mut magic = [0u8; 4];
        let got = self.read_into(&mut magic)?;
        if got == 0 {
            return Err(self.format_error(0, "empty file: not a pcap or pcapng file".into()));
        }
        if got < magic.len() {
            return Err(self.format_error(
                0,
                format!("file of {got} bytes is too short to be a pcap or pcapng file"),
            ));
        }
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        if le == PCAPNG_SHB {
            return self.read_section_header(0, buf).map(|_| ());
        }
        let (endian, nanos) = match (le, be) {
            (PCAP_MAGIC_MICROS, _) => (Endian::Little, false),
            (_, PCAP_MAGIC_MICROS) => (Endian::Big, false),
            (PCAP_MAGIC_NANOS, _) => (Endian::Little, true),
            (_, PCAP_MAGIC_NANOS) => (Endian::Big, true),
            (PCAP_MAGIC_KUZNETSOV, _) | (_, PCAP_MAGIC_KUZNETSOV) => {
                return Err(self.format_error(
                    0,
                    "modified (Kuznetsov) pcap format is not supported; convert it with editcap"
                        .into(),
                ))
            }
            _ => {
                let hint = if magic[..2] == [0x1f, 0x8b] {
                    " (gzip-compressed: decompress it first)"
                } else {
                    ""
                };
                return Err(self.format_error(
                    0,
                    format!("not a pcap or pcapng file: first 4 bytes 0x{be:08x}{hint}"),
                ));
            }
        };
        let mut rest = [0u8; PCAP_FILE_HEADER_LEN - 4];
        let got = self.read_into(&mut rest)?;
        if got < rest.len() {
            return Err(self.format_error(
                0,
                format!(
                    "file ends inside the pcap file header: {PCAP_FILE_HEADER_LEN} bytes needed, only {} present",
                    got + 4
                ),
            ));
        }
        let major = endian.u16([rest[0], rest[1]]);
        let minor = endian.u16([rest[2], rest[3]]);
        let linktype = endian.u32([rest[16], rest[17], rest[18], rest[19]]) & PCAP_LINKTYPE_MASK;
        // libpcap's reading of the version: lengths swapped before 2.3, either way at 2.3,
        // and swapped in DG/UX's 543.0.
        let lengths = match (major, minor) {
            (2, 0..=2) | (543, _) => LengthOrder::Swapped,
            (2, 3) => LengthOrder::Ambiguous,
            _ => LengthOrder::Normal,
        };
        let link =
            LinkType::from_linktype(linktype).ok_or_else(|| SourceError::UnsupportedLinkType {
                path: path_name(&self.path),
                linktype,
            })?;
        self.format = Format::Pcap {
            endian,
            nanos,
            lengths,
            link,
        };
        Ok(())
    }

    /// The next packet record, `None` at the clean end of the file.
    fn next_record(&mut self, buf: &mut Vec<u8>) -> Result<Option<Record>, SourceError> {
        match self.format {
            Format::Pcap {
                endian,
                nanos,
                lengths,
                link,
            } => self.next_pcap_record(buf, endian, nanos, lengths, link),
            Format::Pcapng { .. } => self.next_pcapng_record(buf),
        }
    }

    /// The next classic pcap record when it lies whole in the read window and its length is
    /// within the limit, as [`CaptureFile::next_pcap_record`] would return it; `None` leaves
    /// everything else (reads, errors, pcapng, the end of the file) to that path. Kept small so
    /// the loop over records does not pass the error type around for every frame.
    #[inline(always)]
    fn next_in_window(&mut self) -> Option<Record> {
        let Format::Pcap {
            endian,
            nanos,
            lengths,
            link,
        } = self.format
        else {
            return None;
        };
        let w = &mut self.reader;
        let header: [u8; PCAP_RECORD_HEADER_LEN] = array_at(w.buf.get(w.pos..w.end)?, 0)?;
        let (ts, caplen, wire_len) = decode_record_header(&header, endian, nanos, lengths);
        let len = usize::try_from(caplen)
            .ok()
            .filter(|l| *l <= MAX_RECORD_LEN)?;
        let start = w.pos + PCAP_RECORD_HEADER_LEN;
        if w.end - start < len {
            return None;
        }
        w.pos = start + len;
        self.offset += (PCAP_RECORD_HEADER_LEN + len) as u64;
        Some(Record {
            start,
            len,
            in_window: true,
            ts,
            link,
            wire_len,
        })
    }

    fn next_pcap_record(
        &mut self,
        buf: &mut Vec<u8>,
        endian: Endian,
        nanos: bool,
        lengths: LengthOrder,
        link: LinkType,
    ) -> Result<Option<Record>, SourceError> {
        let at = self.offset;
        let mut header = [0u8; PCAP_RECORD_HEADER_LEN];
        // In place when the window holds it (a copy of 16 bytes, not a read call); at the end of
        // the file, read to learn how much there is.
        let in_place = self
            .reader
            .take_in_place(PCAP_RECORD_HEADER_LEN)
            .map_err(|e| self.io_error(e))?;
        let got = match in_place.and_then(|start| self.reader.taken(start, header.len())) {
            Some(bytes) => {
                header.copy_from_slice(bytes);
                self.offset += header.len() as u64;
                header.len()
            }
            None => self.read_into(&mut header)?,
        };
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            return Err(self.format_error(
                at,
                format!(
                    "file ends inside a record header: {PCAP_RECORD_HEADER_LEN} bytes needed, only {got} remain"
                ),
            ));
        }
        let (ts, caplen, wire_len) = decode_record_header(&header, endian, nanos, lengths);
        let len = self.checked_record_len(at, caplen)?;
        // In place when the whole record is there; otherwise read as before, which reports
        // how much of it the file holds.
        let in_place = self
            .reader
            .take_in_place(len)
            .map_err(|e| self.io_error(e))?;
        let (start, in_window) = match in_place {
            Some(start) => {
                self.offset += len as u64;
                (start, true)
            }
            None => {
                self.read_body(buf, at, len, PCAP_RECORD_HEADER_LEN)?;
                (0, false)
            }
        };
        Ok(Some(Record {
            start,
            len,
            in_window,
            ts,
            link,
            wire_len,
        }))
    }

    fn checked_record_len(&self, at: u64, caplen: u32) -> Result<usize, SourceError> {
        match usize::try_from(caplen) {
            Ok(len) if len <= MAX_RECORD_LEN => Ok(len),
            _ => Err(self.format_error(
                at,
                format!("record length {caplen} exceeds the {MAX_RECORD_LEN}-byte limit"),
            )),
        }
    }

    /// Reads `len` bytes into the front of `buf`; `header_len` bytes of the record (starting at
    /// `at`) were already read.
    fn read_body(
        &mut self,
        buf: &mut Vec<u8>,
        at: u64,
        len: usize,
        header_len: usize,
    ) -> Result<(), SourceError> {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let got = match buf.get_mut(..len) {
            Some(dst) => self.read_into(dst)?,
            None => 0,
        };
        if got < len {
            return Err(self.format_error(
                at,
                format!(
                    "file ends inside a record: header at offset {at} claims {} bytes, only {} remain",
                    header_len + len,
                    header_len + got
                ),
            ));
        }
        Ok(())
    }

    fn next_pcapng_record(&mut self, buf: &mut Vec<u8>) -> Result<Option<Record>, SourceError> {
        loop {
            let at = self.offset;
            let mut head = [0u8; 8];
            let got = self.read_into(&mut head)?;
            if got == 0 {
                return Ok(None);
            }
            if got < head.len() {
                return Err(self.format_error(
                    at,
                    format!("file ends inside a block header: 8 bytes needed, only {got} remain"),
                ));
            }
            let Format::Pcapng { endian, .. } = self.format else {
                return Ok(None);
            };
            let kind_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if kind_le == PCAPNG_SHB {
                // A new section, possibly of the other byte order: re-read from its start.
                self.read_section_header_after(at, [head[4], head[5], head[6], head[7]], buf)?;
                continue;
            }
            let kind = endian.u32([head[0], head[1], head[2], head[3]]);
            let total = endian.u32([head[4], head[5], head[6], head[7]]);
            let total_len = self.checked_block_len(at, total, PCAPNG_BLOCK_OVERHEAD)?;
            let body_len = total_len - PCAPNG_BLOCK_OVERHEAD;
            match kind {
                PCAPNG_EPB | PCAPNG_SPB | PCAPNG_PB | PCAPNG_IDB => {
                    if total_len > MAX_BLOCK_LEN {
                        return Err(self.format_error(
                            at,
                            format!(
                                "block length {total} exceeds the {MAX_BLOCK_LEN}-byte limit for packet and interface blocks"
                            ),
                        ));
                    }
                    self.read_block_body(buf, at, total, body_len)?;
                    let body = buf.get(..body_len).unwrap_or_default();
                    if kind == PCAPNG_IDB {
                        self.add_interface(at, body, endian)?;
                        continue;
                    }
                    let record = self.packet_block(at, kind, body, endian)?;
                    self.last_ts = record.ts;
                    return Ok(Some(record));
                }
                _ => self.skip_block(at, total, body_len, endian)?,
            }
        }
    }

    fn checked_block_len(&self, at: u64, total: u32, min: usize) -> Result<usize, SourceError> {
        let len = usize::try_from(total).unwrap_or(usize::MAX);
        if len < min || len % 4 != 0 {
            return Err(self.format_error(
                at,
                format!("bad block length {total}: must be a multiple of 4 and at least {min}"),
            ));
        }
        Ok(len)
    }

    /// Reads a block's body and its trailing length (the 8 header bytes were read) and checks
    /// the trailer against the header.
    fn read_block_body(
        &mut self,
        buf: &mut Vec<u8>,
        at: u64,
        total: u32,
        body_len: usize,
    ) -> Result<(), SourceError> {
        let with_trailer = body_len + 4;
        if buf.len() < with_trailer {
            buf.resize(with_trailer, 0);
        }
        let got = match buf.get_mut(..with_trailer) {
            Some(dst) => self.read_into(dst)?,
            None => 0,
        };
        if got < with_trailer {
            return Err(self.truncated_block(at, total, got));
        }
        let endian = match self.format {
            Format::Pcapng { endian, .. } => endian,
            Format::Pcap { endian, .. } => endian,
        };
        let trailer = endian.u32_at(buf, body_len).unwrap_or(0);
        if trailer != total {
            return Err(self.format_error(
                at,
                format!("block trailer length {trailer} does not match its header length {total}"),
            ));
        }
        Ok(())
    }

    fn truncated_block(&self, at: u64, total: u32, got_after_header: usize) -> SourceError {
        self.format_error(
            at,
            format!(
                "file ends inside a record: header at offset {at} claims {total} bytes, only {} remain",
                got_after_header + 8
            ),
        )
    }

    /// Skips a block this reader has no use for, without buffering it.
    fn skip_block(
        &mut self,
        at: u64,
        total: u32,
        body_len: usize,
        endian: Endian,
    ) -> Result<(), SourceError> {
        let want = body_len as u64;
        let skipped = io::copy(&mut (&mut self.reader).take(want), &mut io::sink())
            .map_err(|e| self.io_error(e))?;
        self.offset += skipped;
        if skipped < want {
            return Err(self.truncated_block(at, total, skipped as usize));
        }
        let mut trailer = [0u8; 4];
        let got = self.read_into(&mut trailer)?;
        if got < trailer.len() {
            return Err(self.truncated_block(at, total, body_len + got));
        }
        let trailer = endian.u32(trailer);
        if trailer != total {
            return Err(self.format_error(
                at,
                format!("block trailer length {trailer} does not match its header length {total}"),
            ));
        }
        Ok(())
    }

    /// Reads a section header block whose block type was already consumed.
    fn read_section_header(&mut self, at: u64, buf: &mut Vec<u8>) -> Result<Endian, SourceError> {
        let mut len_bytes = [0u8; 4];
        let got = self.read_into(&mut len_bytes)?;
        if got < len_bytes.len() {
            return Err(self.format_error(
                at,
                format!(
                    "file ends inside the pcapng section header: 8 bytes needed, only {} present",
                    4 + got
                ),
            ));
        }
        self.read_section_header_after(at, len_bytes, buf)
    }

    /// Reads the rest of a section header block after its type and length fields.
    fn read_section_header_after(
        &mut self,
        at: u64,
        len_bytes: [u8; 4],
        buf: &mut Vec<u8>,
    ) -> Result<Endian, SourceError> {
        let mut bom = [0u8; 4];
        let got = self.read_into(&mut bom)?;
        if got < bom.len() {
            return Err(self.format_error(
                at,
                format!("file ends inside a section header: its byte-order magic is missing ({got} of 4 bytes)"),
            ));
        }
        let endian = if u32::from_le_bytes(bom) == PCAPNG_BYTE_ORDER_MAGIC {
            Endian::Little
        } else if u32::from_be_bytes(bom) == PCAPNG_BYTE_ORDER_MAGIC {
            Endian::Big
        } else {
            return Err(self.format_error(
                at,
                format!(
                    "section header has byte-order magic 0x{:08x}, expected 0x{PCAPNG_BYTE_ORDER_MAGIC:08x}",
                    u32::from_be_bytes(bom)
                ),
            ));
        };
        // The new section's byte order applies to its own trailer.
        let total = endian.u32(len_bytes);
        let total_len = self.checked_block_len(at, total, PCAPNG_SHB_MIN_LEN)?;
        if total_len > MAX_BLOCK_LEN {
            return Err(self.format_error(
                at,
                format!("section header length {total} exceeds the {MAX_BLOCK_LEN}-byte limit"),
            ));
        }
        // Version (4), section length (8), options, trailer (4); the magic was 4 more bytes.
        let rest_len = total_len - PCAPNG_BLOCK_OVERHEAD - 4;
        match &mut self.format {
            Format::Pcapng {
                endian: current,
                interfaces,
            } => {
                *current = endian;
                interfaces.clear();
            }
            other => {
                *other = Format::Pcapng {
                    endian,
                    interfaces: Vec::new(),
                }
            }
        }
        self.read_block_body(buf, at, total, rest_len)?;
        let major = endian.u16_at(buf, 0).unwrap_or(0);
        let minor = endian.u16_at(buf, 2).unwrap_or(0);
        if major != 1 {
            return Err(self.format_error(
                at,
                format!("unsupported pcapng version {major}.{minor} (only 1.x is defined)"),
            ));
        }
        Ok(endian)
    }

    fn add_interface(&mut self, at: u64, body: &[u8], endian: Endian) -> Result<(), SourceError> {
        let (Some(linktype), Some(snaplen)) = (endian.u16_at(body, 0), endian.u32_at(body, 4))
        else {
            return Err(self.format_error(
                at,
                format!(
                    "interface description block too short ({} bytes of body)",
                    body.len()
                ),
            ));
        };
        let linktype = u32::from(linktype);
        let mut iface = Interface {
            linktype,
            link: LinkType::from_linktype(linktype),
            snaplen,
            unit: TsUnit::MICROS,
            offset_secs: 0,
        };
        // Options are metadata: a malformed one ends the walk, it does not fail the file.
        let mut pos = 8usize;
        while let (Some(code), Some(len)) = (endian.u16_at(body, pos), endian.u16_at(body, pos + 2))
        {
            if code == PCAPNG_OPT_END {
                break;
            }
            let start = pos + 4;
            let Some(value) = body.get(start..start + usize::from(len)) else {
                break;
            };
            match (code, value) {
                (PCAPNG_OPT_IF_TSRESOL, &[resol]) => iface.unit = TsUnit::from_option(resol),
                (PCAPNG_OPT_IF_TSOFFSET, v) if v.len() == 8 => {
                    let raw = array_at(v, 0).map(|b| endian.u64(b)).unwrap_or(0);
                    iface.offset_secs = raw as i64;
                }
                _ => {}
            }
            pos = start + usize::from(len).next_multiple_of(4);
        }
        if let Format::Pcapng { interfaces, .. } = &mut self.format {
            interfaces.push(iface);
        }
        Ok(())
    }

    fn interface(&self, at: u64, id: u32) -> Result<Interface, SourceError> {
        let Format::Pcapng { interfaces, .. } = &self.format else {
            return Err(self.format_error(at, "packet block outside a pcapng section".into()));
        };
        let iface = usize::try_from(id)
            .ok()
            .and_then(|i| interfaces.get(i))
            .copied()
            .ok_or_else(|| {
                self.format_error(
                    at,
                    format!(
                        "packet block refers to interface {id}, but the section describes only {}",
                        interfaces.len()
                    ),
                )
            })?;
        if iface.link.is_none() {
            return Err(SourceError::UnsupportedLinkType {
                path: path_name(&self.path),
                linktype: iface.linktype,
            });
        }
        Ok(iface)
    }

    fn packet_block(
        &self,
        at: u64,
        kind: u32,
        body: &[u8],
        endian: Endian,
    ) -> Result<Record, SourceError> {
        let short = || {
            self.format_error(
                at,
                format!("packet block too short ({} bytes of body)", body.len()),
            )
        };
        let u32_at = |i: usize| endian.u32_at(body, i).ok_or_else(short);
        let (iface, ts, caplen, wire_len, data_at) = match kind {
            PCAPNG_EPB | PCAPNG_PB => {
                let id = if kind == PCAPNG_EPB {
                    u32_at(0)?
                } else {
                    u32::from(endian.u16_at(body, 0).ok_or_else(short)?)
                };
                let iface = self.interface(at, id)?;
                let ts = iface.timestamp(u32_at(4)?, u32_at(8)?);
                (iface, ts, u32_at(12)?, u32_at(16)?, 20usize)
            }
            _ => {
                // Simple packet block: interface 0, no timestamp, captured length implied.
                let iface = self.interface(at, 0)?;
                let wire_len = u32_at(0)?;
                let room = u32::try_from(body.len().saturating_sub(4)).unwrap_or(u32::MAX);
                let mut caplen = wire_len.min(room);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen);
                }
                (iface, self.last_ts, caplen, wire_len, 4usize)
            }
        };
        let len = self.checked_record_len(at, caplen)?;
        if data_at + len > body.len() {
            return Err(self.format_error(
                at,
                format!(
                    "captured length {caplen} runs past the end of its block ({} bytes of body)",
                    body.len()
                ),
            ));
        }
        Ok(Record {
            start: data_at,
            len,
            in_window: false,
            ts,
            link: iface.link.unwrap_or(LinkType::Ethernet),
            wire_len,
        })
    }
}

/// Capture files read in order as one stream of frames.
///
/// After a format or I/O error, the frames already handed out stay handed out; the error comes
/// from the next [`PacketSource::poll_batch`], and polling again moves on to the next file.
#[derive(Debug)]
pub struct CaptureSource {
    paths: Vec<PathBuf>,
    sizes: Vec<u64>,
    /// Index of the next file to open.
    next: usize,
    current: Option<CaptureFile>,
    /// The one record buffer, grown to the largest record seen.
    buf: Vec<u8>,
    batch: usize,
    /// Sizes of the files already finished or abandoned.
    done_bytes: u64,
    total_bytes: u64,
    packets: u64,
    pending: Option<SourceError>,
}

impl CaptureSource {
    /// Opens `paths` for reading in order; the first file's header is read now, so a file
    /// that is not a capture is reported before any frame.
    pub fn open(paths: &[PathBuf], batch: usize) -> Result<Self, SourceError> {
        let mut sizes = Vec::with_capacity(paths.len());
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
                path: path_name(path),
                source,
            })?;
            sizes.push(meta.len());
        }
        let mut source = CaptureSource {
            paths: paths.to_vec(),
            total_bytes: sizes.iter().sum(),
            sizes,
            next: 0,
            current: None,
            buf: Vec::with_capacity(64 * 1024),
            batch: batch.max(1),
            done_bytes: 0,
            packets: 0,
            pending: None,
        };
        if !source.paths.is_empty() {
            source.open_next()?;
        }
        Ok(source)
    }

    /// Bytes consumed so far over all files (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.done_bytes + self.current.as_ref().map_or(0, |f| f.offset)
    }

    /// Sum of the sizes of all files, as they were when opened.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Frames handed out so far.
    pub fn packets_read(&self) -> u64 {
        self.packets
    }

    /// The file being read now.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|f| f.path.as_path())
    }

    fn open_next(&mut self) -> Result<(), SourceError> {
        let index = self.next;
        self.next += 1;
        let Some(path) = self.paths.get(index) else {
            return Ok(());
        };
        match CaptureFile::open(path, &mut self.buf) {
            Ok(file) => {
                self.current = Some(file);
                Ok(())
            }
            Err(e) => {
                self.done_bytes += self.sizes.get(index).copied().unwrap_or(0);
                Err(e)
            }
        }
    }

    /// Counts the current file as done (read to its end or abandoned after an error).
    fn close_current(&mut self) {
        if self.current.take().is_some() {
            let index = self.next.saturating_sub(1);
            self.done_bytes += self.sizes.get(index).copied().unwrap_or(0);
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, SourceError> {
        loop {
            if let Some(file) = self.current.as_mut() {
                match file.next_record(&mut self.buf) {
                    Ok(Some(record)) => return Ok(Some(record)),
                    Ok(None) => self.close_current(),
                    Err(e) => {
                        self.close_current();
                        return Err(e);
                    }
                }
            }
            if self.next >= self.paths.len() {
                return Ok(None);
            }
            self.open_next()?;
        }
    }
}

impl PacketSource for CaptureSource {
    fn poll_batch<F>(&mut self, mut handle: F) -> Result<Polled, SourceError>
    where
        F: FnMut(&Frame<'_>) -> Action,
    {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut handed = 0;
        while handed < self.batch {
            let next = match self.current.as_mut().and_then(CaptureFile::next_in_window) {
                Some(record) => Ok(Some(record)),
                None => self.next_record(),
            };
            match next {
                Ok(Some(record)) => {
                    let data = if record.in_window {
                        self.current
                            .as_ref()
                            .and_then(|f| f.reader.taken(record.start, record.len))
                    } else {
                        self.buf.get(record.start..record.start + record.len)
                    }
                    .unwrap_or_default();
                    let frame = Frame {
                        data,
                        ts: record.ts,
                        link: record.link,
                        wire_len: record.wire_len,
                        port: 0,
                        queue: 0,
                    };
                    // A replay has nowhere to forward to: both actions just release the frame.
                    let _ = handle(&frame);
                    handed += 1;
                    self.packets += 1;
                }
                Ok(None) => break,
                Err(e) if handed == 0 => return Err(e),
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        Ok(if handed == 0 {
            Polled::End
        } else {
            Polled::Frames(handed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pcapwrite::{PcapWriter, LINKTYPE_ETHERNET};

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Got {
        link: LinkType,
        ts: Timestamp,
        data: Vec<u8>,
        wire_len: u32,
    }

    /// Polls until the end or the first error.
    fn drain(source: &mut CaptureSource) -> (Vec<Got>, Option<SourceError>) {
        let mut got = Vec::new();
        loop {
            let polled = source.poll_batch(|f| {
                got.push(Got {
                    link: f.link,
                    ts: f.ts,
                    data: f.data.to_vec(),
                    wire_len: f.wire_len,
                });
                Action::Forward
            });
            match polled {
                Ok(Polled::End) => return (got, None),
                Ok(_) => {}
                Err(e) => return (got, Some(e)),
            }
        }
    }

    fn read_file(path: &Path) -> (Vec<Got>, Option<SourceError>) {
        match CaptureSource::open(&[path.to_path_buf()], 4) {
            Ok(mut source) => drain(&mut source),
            Err(e) => (Vec::new(), Some(e)),
        }
    }

    /// For tests that rewrite a file thousands of times: that is slow on a disk mounted with
    /// `discard`, and fast on tmpfs where there is one.
    fn scratch_dir() -> tempfile::TempDir {
        tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap()
    }

    fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn frame(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|b| (b * 7 + i) as u8).collect()
    }

    fn put16(out: &mut Vec<u8>, e: Endian, v: u16) {
        out.extend_from_slice(&match e {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        });
    }

    fn put32(out: &mut Vec<u8>, e: Endian, v: u32) {
        out.extend_from_slice(&match e {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        });
    }

    /// A classic pcap file written by hand: records are (secs, fraction, data, wire length).
    fn classic(
        e: Endian,
        magic: u32,
        version: (u16, u16),
        linktype: u32,
        records: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let swapped = version.0 == 2 && version.1 < 3;
        let mut out = Vec::new();
        put32(&mut out, e, magic);
        put16(&mut out, e, version.0);
        put16(&mut out, e, version.1);
        put32(&mut out, e, 0);
        put32(&mut out, e, 0);
        put32(&mut out, e, 65535);
        put32(&mut out, e, linktype);
        for &(secs, frac, data, wire_len) in records {
            put32(&mut out, e, secs);
            put32(&mut out, e, frac);
            let (first, second) = if swapped {
                (wire_len, data.len() as u32)
            } else {
                (data.len() as u32, wire_len)
            };
            put32(&mut out, e, first);
            put32(&mut out, e, second);
            out.extend_from_slice(data);
        }
        out
    }

    /// A pcapng file written by hand, block by block.
    struct Ng {
        e: Endian,
        out: Vec<u8>,
    }

    impl Ng {
        fn new() -> Self {
            Ng {
                e: Endian::Little,
                out: Vec::new(),
            }
        }

        fn block(&mut self, kind: u32, body: &[u8]) -> &mut Self {
            let mut body = body.to_vec();
            while body.len() % 4 != 0 {
                body.push(0);
            }
            let total = body.len() as u32 + 12;
            let e = self.e;
            put32(&mut self.out, e, kind);
            put32(&mut self.out, e, total);
            self.out.extend_from_slice(&body);
            put32(&mut self.out, e, total);
            self
        }

        fn shb(&mut self, e: Endian) -> &mut Self {
            self.e = e;
            let mut body = Vec::new();
            put32(&mut body, e, PCAPNG_BYTE_ORDER_MAGIC);
            put16(&mut body, e, 1);
            put16(&mut body, e, 0);
            body.extend_from_slice(&[0xff; 8]);
            self.block(PCAPNG_SHB, &body)
        }

        fn idb(&mut self, linktype: u16, snaplen: u32, options: &[(u16, &[u8])]) -> &mut Self {
            let e = self.e;
            let mut body = Vec::new();
            put16(&mut body, e, linktype);
            put16(&mut body, e, 0);
            put32(&mut body, e, snaplen);
            for &(code, value) in options {
                put16(&mut body, e, code);
                put16(&mut body, e, value.len() as u16);
                body.extend_from_slice(value);
                while body.len() % 4 != 0 {
                    body.push(0);
                }
            }
            if !options.is_empty() {
                body.extend_from_slice(&[0; 4]);
            }
            self.block(PCAPNG_IDB, &body)
        }

        fn epb(&mut self, iface: u32, ts: u64, data: &[u8], wire_len: u32) -> &mut Self {
            let e = self.e;
            let mut body = Vec::new();
            put32(&mut body, e, iface);
            put32(&mut body, e, (ts >> 32) as u32);
            put32(&mut body, e, ts as u32);
            put32(&mut body, e, data.len() as u32);
            put32(&mut body, e, wire_len);
            body.extend_from_slice(data);
            self.block(PCAPNG_EPB, &body)
        }

        fn pb(&mut self, iface: u16, ts: u64, data: &[u8]) -> &mut Self {
            let e = self.e;
            let mut body = Vec::new();
            put16(&mut body, e, iface);
            put16(&mut body, e, 0);
            put32(&mut body, e, (ts >> 32) as u32);
            put32(&mut body, e, ts as u32);
            put32(&mut body, e, data.len() as u32);
            put32(&mut body, e, data.len() as u32);
            body.extend_from_slice(data);
            self.block(PCAPNG_PB, &body)
        }

        fn spb(&mut self, wire_len: u32, data: &[u8]) -> &mut Self {
            let e = self.e;
            let mut body = Vec::new();
            put32(&mut body, e, wire_len);
            body.extend_from_slice(data);
            self.block(PCAPNG_SPB, &body)
        }
    }

    #[test]
    fn writer_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.pcap");
        let mut w = PcapWriter::create_ethernet(&path).unwrap();
        let frames: Vec<Vec<u8>> = (0..9).map(|i| frame(i, 60 + i * 100)).collect();
        for (i, f) in frames.iter().enumerate() {
            let ts = Timestamp::from_secs_nanos(1_700_000_000 + i as u64, 123_456_789);
            if i == 3 {
                w.write_record(ts, &f[..20], f.len() as u32).unwrap();
            } else {
                w.write(ts, f).unwrap();
            }
        }
        w.finish().unwrap();
        let (got, err) = read_file(&path);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), frames.len());
        for (i, (g, f)) in got.iter().zip(&frames).enumerate() {
            assert_eq!(g.link, LinkType::Ethernet);
            assert_eq!(
                g.ts,
                Timestamp::from_secs_nanos(1_700_000_000 + i as u64, 123_456_789)
            );
            assert_eq!(g.wire_len as usize, f.len());
            let want = if i == 3 { &f[..20] } else { &f[..] };
            assert_eq!(g.data, want);
        }
        assert!(PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET)
            .unwrap()
            .write(Timestamp(0), &vec![0; MAX_RECORD_LEN + 1])
            .is_err());
    }

    #[test]
    fn records_straddling_the_read_window_come_out_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pcap");
        let mut w = PcapWriter::create_ethernet(&path).unwrap();
        // Odd sizes, some of the largest allowed, past several read windows.
        let frames: Vec<Vec<u8>> = (0..60)
            .map(|i| match i % 5 {
                0 => frame(i, MAX_RECORD_LEN),
                1 => frame(i, 1),
                _ => frame(i, 1000 + i * 9_973 % 60_000),
            })
            .collect();
        let total: usize = frames.iter().map(Vec::len).sum();
        assert!(total > 3 * READ_BUFFER_LEN);
        for (i, f) in frames.iter().enumerate() {
            w.write(Timestamp::from_secs_nanos(i as u64, 0), f).unwrap();
        }
        w.finish().unwrap();
        let (got, err) = read_file(&path);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), frames.len());
        for (i, (g, f)) in got.iter().zip(&frames).enumerate() {
            assert_eq!(g.data, *f, "frame {i}");
            assert_eq!(g.ts, Timestamp::from_secs_nanos(i as u64, 0));
        }
        // Cut inside the last record: every earlier frame, then the error naming what is left.
        let bytes = std::fs::read(&path).unwrap();
        let cut = write_tmp(dir.path(), "cut.pcap", &bytes[..bytes.len() - 10]);
        let (got, err) = read_file(&cut);
        assert_eq!(got.len(), frames.len() - 1);
        let last = frames.last().unwrap().len();
        let msg = err.expect("truncated").to_string();
        assert!(
            msg.contains(&format!("only {} remain", 16 + last - 10)),
            "{msg}"
        );
    }

    #[test]
    fn classic_both_magics_both_byte_orders() {
        let dir = tempfile::tempdir().unwrap();
        let a = frame(1, 70);
        let b = frame(2, 1500);
        for e in [Endian::Little, Endian::Big] {
            for (magic, nanos) in [(PCAP_MAGIC_MICROS, false), (PCAP_MAGIC_NANOS, true)] {
                let bytes = classic(
                    e,
                    magic,
                    (2, 4),
                    101,
                    &[(10, 999_999, &a, 70), (11, 5, &b[..100], 1500)],
                );
                let path = write_tmp(dir.path(), "c.pcap", &bytes);
                let (got, err) = read_file(&path);
                assert!(err.is_none(), "{e:?} {nanos}: {err:?}");
                let scale = if nanos { 1 } else { 1000 };
                assert_eq!(got.len(), 2);
                assert_eq!(got[0].ts, Timestamp(10 * NANOS_PER_SEC + 999_999 * scale));
                assert_eq!(got[1].ts, Timestamp(11 * NANOS_PER_SEC + 5 * scale));
                assert_eq!((got[0].data.as_slice(), got[0].wire_len), (&a[..], 70));
                assert_eq!((got[1].data.as_slice(), got[1].wire_len), (&b[..100], 1500));
                assert!(got.iter().all(|g| g.link == LinkType::RawIp));
            }
        }
    }

    #[test]
    fn classic_old_versions_and_linktype_flags() {
        let dir = tempfile::tempdir().unwrap();
        let data = frame(0, 80);
        // Version 2.0 writes the original length first.
        let bytes = classic(
            Endian::Little,
            PCAP_MAGIC_MICROS,
            (2, 0),
            1,
            &[(1, 0, &data[..50], 80)],
        );
        let (got, err) = read_file(&write_tmp(dir.path(), "v20.pcap", &bytes));
        assert!(err.is_none());
        assert_eq!((got[0].data.len(), got[0].wire_len), (50, 80));
        // Version 2.3 in either order: the larger field is the original length.
        let mut bytes = classic(
            Endian::Little,
            PCAP_MAGIC_MICROS,
            (2, 4),
            1,
            &[(1, 0, &data[..50], 80)],
        );
        bytes[6] = 3;
        let (got, err) = read_file(&write_tmp(dir.path(), "v23.pcap", &bytes));
        assert!(err.is_none());
        assert_eq!((got[0].data.len(), got[0].wire_len), (50, 80));
        // FCS-length bits above the link type (4 bytes of FCS, present flag) are not part of it.
        let flagged = (2 << 28) | 0x0400_0000 | 1;
        let bytes = classic(
            Endian::Big,
            PCAP_MAGIC_NANOS,
            (2, 4),
            flagged,
            &[(1, 0, &data, 80)],
        );
        let (got, err) = read_file(&write_tmp(dir.path(), "fcs.pcap", &bytes));
        assert!(err.is_none());
        assert_eq!(got[0].link, LinkType::Ethernet);
    }

    fn two_section_pcapng() -> (Vec<u8>, Vec<Got>) {
        let eth = frame(1, 90);
        let raw = frame(2, 40);
        let sll = frame(3, 120);
        let mut ng = Ng::new();
        ng.shb(Endian::Little)
            // Interface 0: Ethernet, default microseconds, snaplen 64.
            .idb(1, 64, &[])
            // Interface 1: raw IP, nanoseconds, one-second offset.
            .idb(
                101,
                0,
                &[
                    (PCAPNG_OPT_IF_TSRESOL, &[9]),
                    (PCAPNG_OPT_IF_TSOFFSET, &1u64.to_le_bytes()),
                ],
            )
            // Interface 2: a link type this reader does not support, with no packets.
            .idb(147, 0, &[(PCAPNG_OPT_IF_TSRESOL, &[3])])
            .epb(0, 1_500_000_250_000, &eth[..64], 90)
            .block(4, &[0; 20]) // name resolution: skipped
            .epb(1, 2_000_000_000_123, &raw, 40)
            .spb(90, &eth[..64])
            .block(0x4000_0bad, &[7; 13]) // custom block: skipped
            .pb(0, 1_000_000, &raw)
            .block(5, &[0; 24]); // interface statistics: skipped
                                 // A second section in the other byte order, where interface 0 is something else.
        ng.shb(Endian::Big)
            .idb(113, 0, &[(PCAPNG_OPT_IF_TSRESOL, &[0x80 | 20])])
            .epb(0, 3 << 20, &sll, 120);
        let expected = vec![
            Got {
                link: LinkType::Ethernet,
                ts: Timestamp(1_500_000_250_000_000),
                data: eth[..64].to_vec(),
                wire_len: 90,
            },
            Got {
                link: LinkType::RawIp,
                ts: Timestamp(2_000_000_000_123 + NANOS_PER_SEC),
                data: raw.clone(),
                wire_len: 40,
            },
            // Simple packet blocks carry no time: the previous packet's is kept.
            Got {
                link: LinkType::Ethernet,
                ts: Timestamp(2_000_000_000_123 + NANOS_PER_SEC),
                data: eth[..64].to_vec(),
                wire_len: 90,
            },
            Got {
                link: LinkType::Ethernet,
                ts: Timestamp(1_000_000_000),
                data: raw.clone(),
                wire_len: 40,
            },
            Got {
                link: LinkType::LinuxSll,
                ts: Timestamp(3 * NANOS_PER_SEC),
                data: sll,
                wire_len: 120,
            },
        ];
        (ng.out, expected)
    }

    #[test]
    fn pcapng_sections_interfaces_and_block_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, expected) = two_section_pcapng();
        let path = write_tmp(dir.path(), "two.pcapng", &bytes);
        let (got, err) = read_file(&path);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, expected);
    }

    #[test]
    fn pcapng_simple_packet_block_snaplen() {
        let dir = tempfile::tempdir().unwrap();
        let data = frame(9, 100);
        let mut ng = Ng::new();
        ng.shb(Endian::Big).idb(1, 30, &[]).spb(100, &data[..30]);
        let (got, err) = read_file(&write_tmp(dir.path(), "spb.pcapng", &ng.out));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            (got[0].data.as_slice(), got[0].wire_len),
            (&data[..30], 100)
        );
    }

    #[test]
    fn pcapng_unsupported_interface_fails_at_its_packet() {
        let dir = tempfile::tempdir().unwrap();
        let mut ng = Ng::new();
        ng.shb(Endian::Little)
            .idb(1, 0, &[])
            .idb(147, 0, &[])
            .epb(0, 1, &[1; 20], 20)
            .epb(1, 2, &[2; 20], 20);
        let path = write_tmp(dir.path(), "usb.pcapng", &ng.out);
        let (got, err) = read_file(&path);
        assert_eq!(got.len(), 1);
        match err {
            Some(SourceError::UnsupportedLinkType { path: p, linktype }) => {
                assert_eq!(linktype, 147);
                assert!(p.ends_with("usb.pcapng"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_link_type_in_classic_pcap() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = classic(Endian::Little, PCAP_MAGIC_MICROS, (2, 4), 147, &[]);
        let path = write_tmp(dir.path(), "usb.pcap", &bytes);
        let err = CaptureSource::open(&[path], 8).unwrap_err();
        assert!(matches!(
            err,
            SourceError::UnsupportedLinkType { linktype: 147, .. }
        ));
        assert!(err.to_string().contains("usb.pcap"), "{err}");
    }

    fn format_error(err: Option<SourceError>) -> (u64, String) {
        match err {
            Some(SourceError::Format { offset, reason, .. }) => (offset, reason),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn not_a_capture() {
        let dir = tempfile::tempdir().unwrap();
        let text = write_tmp(dir.path(), "notes.txt", b"<html>hello</html>\n");
        let err = CaptureSource::open(&[text], 8).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("notes.txt"), "{msg}");
        assert!(
            msg.contains("not a pcap or pcapng file: first 4 bytes 0x3c68746d"),
            "{msg}"
        );
        let empty = write_tmp(dir.path(), "empty.pcap", b"");
        let (offset, reason) = format_error(CaptureSource::open(&[empty], 8).err());
        assert_eq!(offset, 0);
        assert!(reason.contains("empty file"), "{reason}");
        let gz = write_tmp(dir.path(), "x.pcap.gz", &[0x1f, 0x8b, 8, 0, 0, 0]);
        let (_, reason) = format_error(CaptureSource::open(&[gz], 8).err());
        assert!(reason.contains("gzip"), "{reason}");
        let missing = dir.path().join("missing.pcap");
        let err = CaptureSource::open(&[missing], 8).unwrap_err();
        assert!(matches!(err, SourceError::Io { ref path, .. } if path.ends_with("missing.pcap")));
    }

    #[test]
    fn absurd_lengths_and_broken_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = classic(
            Endian::Little,
            PCAP_MAGIC_MICROS,
            (2, 4),
            1,
            &[(1, 0, &[0; 10], 10)],
        );
        // Second record claims 300000 bytes.
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&300_000u32.to_le_bytes());
        bytes.extend_from_slice(&300_000u32.to_le_bytes());
        let (got, err) = read_file(&write_tmp(dir.path(), "big.pcap", &bytes));
        assert_eq!(got.len(), 1);
        let (offset, reason) = format_error(err);
        assert_eq!(offset, 24 + 16 + 10);
        assert!(reason.contains("record length 300000 exceeds"), "{reason}");

        let mut ng = Ng::new();
        ng.shb(Endian::Little).idb(1, 0, &[]);
        let at = ng.out.len() as u64;
        ng.epb(0, 0, &[1; 8], 8);
        let n = ng.out.len();
        ng.out[n - 4] ^= 4; // trailer disagrees with the header
        let (_, err) = read_file(&write_tmp(dir.path(), "trailer.pcapng", &ng.out));
        let (offset, reason) = format_error(err);
        assert_eq!(offset, at);
        assert!(reason.contains("trailer"), "{reason}");

        let mut ng = Ng::new();
        ng.shb(Endian::Little).idb(1, 0, &[]).epb(3, 0, &[1; 8], 8);
        let (_, err) = read_file(&write_tmp(dir.path(), "iface.pcapng", &ng.out));
        assert!(format_error(err).1.contains("interface 3"));

        let mut ng = Ng::new();
        ng.shb(Endian::Little).idb(1, 0, &[]);
        let at = ng.out.len() as u64;
        ng.out.extend_from_slice(&6u32.to_le_bytes());
        ng.out.extend_from_slice(&13u32.to_le_bytes());
        ng.out.extend_from_slice(&[0; 9]);
        let (_, err) = read_file(&write_tmp(dir.path(), "len.pcapng", &ng.out));
        assert_eq!(
            format_error(err),
            (
                at,
                "bad block length 13: must be a multiple of 4 and at least 12".into()
            )
        );

        // Captured length larger than the block that holds it.
        let mut ng = Ng::new();
        ng.shb(Endian::Little).idb(1, 0, &[]);
        let at = ng.out.len() as u64;
        ng.epb(0, 0, &[1; 8], 8);
        let cap_at = at as usize + 8 + 12;
        ng.out[cap_at..cap_at + 4].copy_from_slice(&200u32.to_le_bytes());
        let (_, err) = read_file(&write_tmp(dir.path(), "cap.pcapng", &ng.out));
        let (offset, reason) = format_error(err);
        assert_eq!(offset, at);
        assert!(reason.contains("captured length 200 runs past"), "{reason}");
    }

    /// Cuts `bytes` at every length: a cut at a record boundary is a shorter valid file, any
    /// other cut is a format error naming the offset of the record it fell in.
    fn check_every_cut(bytes: &[u8], boundaries: &[usize], name: &str) {
        let dir = scratch_dir();
        let path = dir.path().join(name);
        for len in 0..=bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            let (got, err) = read_file(&path);
            // Boundaries after the file header: index k means k records complete.
            let complete = boundaries.iter().skip(1).filter(|&&b| b <= len).count();
            if len >= boundaries[0] && boundaries.contains(&len) {
                assert!(err.is_none(), "{name} cut at {len}: {err:?}");
                assert_eq!(got.len(), complete, "{name} cut at {len}");
                continue;
            }
            let (offset, reason) = format_error(err);
            let start = boundaries
                .iter()
                .rev()
                .find(|&&b| b <= len)
                .copied()
                .unwrap_or(0);
            let start = if len < boundaries[0] { 0 } else { start };
            assert_eq!(offset, start as u64, "{name} cut at {len}: {reason}");
            assert!(!reason.is_empty());
            assert_eq!(got.len(), complete, "{name} cut at {len}");
        }
    }

    #[test]
    fn truncated_at_every_length() {
        let a = frame(1, 33);
        let b = frame(2, 7);
        let bytes = classic(
            Endian::Big,
            PCAP_MAGIC_NANOS,
            (2, 4),
            1,
            &[(1, 2, &a, 33), (3, 4, &b, 7)],
        );
        check_every_cut(
            &bytes,
            &[24, 24 + 16 + 33, 24 + 16 + 33 + 16 + 7],
            "cut.pcap",
        );

        let mut ng = Ng::new();
        ng.shb(Endian::Little);
        let mut marks = vec![ng.out.len()];
        ng.idb(1, 0, &[(PCAPNG_OPT_IF_TSRESOL, &[9])]);
        let idb_end = ng.out.len();
        ng.epb(0, 5, &a, 33);
        marks.push(ng.out.len());
        ng.block(4, &[0; 8]);
        let nrb_end = ng.out.len();
        ng.pb(0, 6, &b);
        marks.push(ng.out.len());
        // The IDB and the skipped block end at valid cuts too, but hold no records: check
        // those lengths separately.
        let dir = scratch_dir();
        for len in [idb_end, nrb_end] {
            let path = write_tmp(dir.path(), "mid.pcapng", &ng.out[..len]);
            assert!(read_file(&path).1.is_none());
        }
        let bytes = ng.out.clone();
        let dir = scratch_dir();
        let path = dir.path().join("cut.pcapng");
        for len in 0..=bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            let (got, err) = read_file(&path);
            let complete = marks.iter().skip(1).filter(|&&m| m <= len).count();
            assert_eq!(got.len(), complete, "cut at {len}");
            let block_ends = [marks[0], idb_end, marks[1], nrb_end, marks[2]];
            if block_ends.contains(&len) {
                assert!(err.is_none(), "cut at {len}: {err:?}");
            } else {
                let (offset, _) = format_error(err);
                let start = block_ends
                    .iter()
                    .rev()
                    .find(|&&m| m <= len)
                    .copied()
                    .unwrap_or(0);
                assert_eq!(offset, start as u64, "cut at {len}");
            }
        }
    }

    #[test]
    fn files_in_order_progress_and_error_after_frames() {
        let dir = tempfile::tempdir().unwrap();
        let one = classic(
            Endian::Little,
            PCAP_MAGIC_MICROS,
            (2, 4),
            1,
            &[
                (1, 0, &[1; 60], 60),
                (2, 0, &[2; 60], 60),
                (3, 0, &[3; 60], 60),
            ],
        );
        let mut broken = classic(
            Endian::Little,
            PCAP_MAGIC_MICROS,
            (2, 4),
            101,
            &[(4, 0, &[4; 40], 40)],
        );
        broken.extend_from_slice(&[9; 5]);
        let (two, _) = two_section_pcapng();
        let paths = vec![
            write_tmp(dir.path(), "1.pcap", &one),
            write_tmp(dir.path(), "2.pcap", &broken),
            write_tmp(dir.path(), "3.pcapng", &two),
        ];
        let total = (one.len() + broken.len() + two.len()) as u64;
        let mut source = CaptureSource::open(&paths, 2).unwrap();
        assert_eq!(source.total_bytes(), total);
        assert_eq!(source.bytes_read(), 24);
        let mut seen = Vec::new();
        let mut poll = |s: &mut CaptureSource| {
            s.poll_batch(|f| {
                seen.push(f.data[0]);
                Action::Forward
            })
        };
        assert_eq!(poll(&mut source).unwrap(), Polled::Frames(2));
        assert_eq!(source.bytes_read(), 24 + 2 * 76);
        assert_eq!(poll(&mut source).unwrap(), Polled::Frames(2));
        assert_eq!(source.current_path(), Some(paths[1].as_path()));
        // The frame before the damage was handed out; the error comes next, then file 3.
        let err = poll(&mut source).unwrap_err();
        assert!(err.to_string().contains("2.pcap"), "{err}");
        assert_eq!(source.bytes_read(), (one.len() + broken.len()) as u64);
        let mut rest = 0;
        loop {
            match poll(&mut source).unwrap() {
                Polled::Frames(n) => rest += n,
                Polled::End => break,
                Polled::Idle => unreachable!(),
            }
        }
        assert_eq!(rest, 5);
        assert_eq!(poll(&mut source).unwrap(), Polled::End);
        assert_eq!(seen[..4], [1, 2, 3, 4]);
        assert_eq!(source.packets_read(), 9);
        assert_eq!(source.bytes_read(), total);
    }

    #[test]
    fn one_buffer_reused_and_big_skipped_blocks_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let mut ng = Ng::new();
        ng.shb(Endian::Little).idb(1, 0, &[]);
        ng.block(0x0bad, &vec![0; 4 << 20]);
        for i in 0..200 {
            ng.epb(0, i, &frame(i as usize, 1000), 1000);
        }
        let path = write_tmp(dir.path(), "many.pcapng", &ng.out);
        let mut source = CaptureSource::open(&[path], 1).unwrap();
        assert_eq!(
            source.poll_batch(|_| Action::Forward).unwrap(),
            Polled::Frames(1)
        );
        let warm = (source.buf.as_ptr(), source.buf.capacity());
        assert!(warm.1 < MAX_BLOCK_LEN, "the 4 MiB block was not buffered");
        let mut frames = 1;
        while let Polled::Frames(n) = source.poll_batch(|_| Action::Forward).unwrap() {
            frames += n;
            assert_eq!((source.buf.as_ptr(), source.buf.capacity()), warm);
        }
        assert_eq!(frames, 200);
    }

    /// Every byte of a valid pcapng file (and of a classic one) flipped in turn: the reader
    /// may report errors but never panics (debug builds also trap arithmetic overflow), and
    /// whatever it hands out came from the file.
    #[test]
    fn mutated_files_never_panic() {
        let dir = scratch_dir();
        let path = dir.path().join("m.cap");
        let (ng, expected) = two_section_pcapng();
        let classic_bytes = classic(
            Endian::Little,
            PCAP_MAGIC_MICROS,
            (2, 4),
            1,
            &[(1, 0, &[1; 30], 30), (2, 0, &[2; 9], 9)],
        );
        assert_eq!(expected.len(), 5);
        for bytes in [ng, classic_bytes] {
            for i in 0..bytes.len() {
                for mask in [0x01, 0x80, 0xff] {
                    let mut m = bytes.clone();
                    m[i] ^= mask;
                    std::fs::write(&path, &m).unwrap();
                    let (got, _) = read_file(&path);
                    let handed: usize = got.iter().map(|g| g.data.len() + 16).sum();
                    assert!(handed <= m.len(), "byte {i} mask {mask:#x}");
                }
            }
        }
    }

    #[test]
    fn timestamp_units() {
        assert_eq!(TsUnit::Decimal(6).to_nanos(1_500_000), 1_500_000_000);
        assert_eq!(TsUnit::Decimal(9).to_nanos(7), 7);
        assert_eq!(TsUnit::Decimal(12).to_nanos(7_000), 7);
        assert_eq!(TsUnit::Decimal(0).to_nanos(3), 3_000_000_000);
        assert_eq!(TsUnit::Decimal(127).to_nanos(u64::MAX), 0);
        assert_eq!(TsUnit::Binary(10).to_nanos(1024), 1_000_000_000);
        assert_eq!(TsUnit::Binary(127).to_nanos(u64::MAX), 0);
        assert_eq!(TsUnit::Decimal(0).to_nanos(u64::MAX), u64::MAX);
        assert_eq!(TsUnit::from_option(0x80 | 20), TsUnit::Binary(20));
    }
}
