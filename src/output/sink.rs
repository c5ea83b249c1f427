//! The EVE outputs beside the file (`[[output.sinks]]`): a unix stream, a unix datagram socket,
//! the local syslog socket. Fed only by the writer thread, with each line it already serialised.
//!
//! A sink's peer is someone else's process and may be absent, slow or gone. None of that may hold
//! the writer for long, or the workers' queue fills and records are lost for the file too: the
//! datagram sinks wait at most [`DGRAM_WAIT`] for a full peer, not at all after a loss, and never
//! more than [`DGRAM_WAIT_BUDGET`] a second (an absent peer fails at once); the stream sink waits at most [`STREAM_WRITE_TIMEOUT`] and then
//! gives the connection up. Every record a sink could not
//! deliver is counted, per sink.

use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fasyslog::format::SyslogContext;
use fasyslog::{Facility, Severity};

use crate::config::{SinkConfig, SinkKind};

/// How long one record may take to reach a stream peer before the connection is dropped. Long
/// enough for a reader that is merely busy, short enough that the workers' queue (65536 records
/// by default) does not fill behind a stuck one.
pub const STREAM_WRITE_TIMEOUT: Duration = Duration::from_millis(50);
/// How long a datagram may wait for room at a peer that has been keeping up. Linux queues only
/// `net.unix.max_dgram_qlen` datagrams (10 by default outside systemd) per receiver, so a reader
/// that is merely scheduled late would lose most of a burst without it. After a loss the sink
/// sends without waiting until a datagram gets through, so a stuck peer costs one wait, not one
/// per record.
pub const DGRAM_WAIT: Duration = Duration::from_millis(20);
/// At most this much waiting per second and sink, so a peer that keeps taking one record per
/// wait cannot slow the writer below nine tenths of its pace.
pub const DGRAM_WAIT_BUDGET: Duration = Duration::from_millis(100);
/// The first wait after a failed connection; at least a second, as the task asks of reconnects.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Doubling stops here so a peer that comes back is found within half a minute.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Records one sink delivered and lost, readable by the metrics exporter while the writer runs.
#[derive(Debug)]
pub struct SinkCounter {
    pub label: String,
    sent: AtomicU64,
    lost: AtomicU64,
}

impl SinkCounter {
    pub fn new(label: String) -> SinkCounter {
        SinkCounter {
            label,
            sent: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// A datagram socket that waits up to [`DGRAM_WAIT`] while its peer keeps up and the second's
/// [`DGRAM_WAIT_BUDGET`] lasts, and not at all once it has lost a record.
struct Datagrams {
    socket: UnixDatagram,
    /// Whether the socket blocks (up to `DGRAM_WAIT`); changed only when the answer changes.
    patient: bool,
    /// The last send failed: no waiting until one succeeds.
    lost: bool,
    second: Instant,
    waited: Duration,
}

impl Datagrams {
    fn new() -> io::Result<Datagrams> {
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(DGRAM_WAIT))?;
        Ok(Datagrams {
            socket,
            patient: true,
            lost: false,
            second: Instant::now(),
            waited: Duration::ZERO,
        })
    }

    fn send(&mut self, buf: &[u8], path: &std::path::Path) -> bool {
        let start = Instant::now();
        if start.duration_since(self.second) >= Duration::from_secs(1) {
            self.second = start;
            self.waited = Duration::ZERO;
        }
        let patient = !self.lost && self.waited < DGRAM_WAIT_BUDGET;
        if patient != self.patient && self.socket.set_nonblocking(!patient).is_ok() {
            self.patient = patient;
        }
        let ok = self.socket.send_to(buf, path).is_ok();
        if self.patient {
            self.waited += start.elapsed();
        }
        self.lost = !ok;
        ok
    }
}

enum Transport {
    Dgram {
        socket: Datagrams,
    },
    Stream {
        conn: Option<UnixStream>,
        /// No connection attempt before this instant.
        next_attempt: Instant,
        backoff: Duration,
    },
    Syslog {
        socket: Datagrams,
        context: SyslogContext,
        /// The header and the JSON, reused so a record costs no allocation here.
        buf: Vec<u8>,
    },
}

/// One sink as the writer thread drives it.
pub struct Sink {
    path: PathBuf,
    transport: Transport,
}

impl Sink {
    /// Creates the sink's socket. Nothing is connected yet: a peer that is absent at start-up
    /// is a lost record later, not a failed start.
    pub fn open(config: &SinkConfig) -> io::Result<Sink> {
        let path = PathBuf::from(config.path());
        let transport = match config.kind {
            SinkKind::UnixDgram => Transport::Dgram {
                socket: Datagrams::new()?,
            },
            SinkKind::UnixStream => Transport::Stream {
                conn: None,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
            },
            SinkKind::Syslog => {
                // Validation accepted the facility, so the parse cannot fail.
                let facility = config.facility().parse().unwrap_or(Facility::LOCAL5);
                let mut context = SyslogContext::new();
                context.facility(facility).appname(config.identity());
                Transport::Syslog {
                    socket: Datagrams::new()?,
                    context,
                    buf: Vec::with_capacity(4096),
                }
            }
        };
        Ok(Sink { path, transport })
    }

    /// Hands one EVE line (with its newline) to the sink; false if the record was lost.
    pub fn send(&mut self, line: &[u8]) -> bool {
        match &mut self.transport {
            Transport::Dgram { socket } => socket.send(line, &self.path),
            Transport::Syslog {
                socket,
                context,
                buf,
            } => {
                let json = std::str::from_utf8(line).unwrap_or_default().trim_end();
                buf.clear();
                // Suricata logs EVE to syslog at Info; an empty MSGID and SD, as the task asks.
                let formatted = context.format_rfc5424(
                    Severity::INFORMATIONAL,
                    None::<&str>,
                    Vec::new(),
                    Some(json),
                );
                if write!(buf, "{formatted}").is_err() {
                    return false;
                }
                socket.send(buf, &self.path)
            }
            Transport::Stream {
                conn,
                next_attempt,
                backoff,
            } => {
                let now = Instant::now();
                if conn.is_none() {
                    if now < *next_attempt {
                        return false;
                    }
                    match connect_stream(&self.path) {
                        Ok(c) => *conn = Some(c),
                        Err(_) => {
                            *next_attempt = now + *backoff;
                            *backoff = (*backoff * 2).min(BACKOFF_MAX);
                            return false;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else {
                    return false;
                };
                match write_within(c, line, now + STREAM_WRITE_TIMEOUT) {
                    Ok(()) => {
                        *backoff = BACKOFF_MIN;
                        true
                    }
                    Err(_) => {
                        // The peer is gone or stuck: whatever part of the line it got ends
                        // the connection, and the next record tries again after the backoff.
                        *conn = None;
                        *next_attempt = now + *backoff;
                        *backoff = (*backoff * 2).min(BACKOFF_MAX);
                        false
                    }
                }
            }
        }
    }
}

/// Writes all of `buf` or fails at `deadline`: a peer that drains a few bytes at a time must not
/// stretch one record into many timeouts.
fn write_within(c: &mut UnixStream, mut buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut writes = 0u32;
    while !buf.is_empty() {
        if writes > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            c.set_write_timeout(Some(left))?;
        }
        match c.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        writes += 1;
    }
    if writes > 1 {
        // Back to the full timeout for the next record, which starts with one write.
        c.set_write_timeout(Some(STREAM_WRITE_TIMEOUT))?;
    }
    Ok(())
}

/// Connects without waiting: a blocking connect to a listener whose backlog is full would wait
/// until it accepts, which a stuck reader never does.
fn connect_stream(path: &std::path::Path) -> io::Result<UnixStream> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
    let stream = UnixStream::from(fd);
    // Writes wait, but never longer than the timeout.
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(STREAM_WRITE_TIMEOUT))?;
    Ok(stream)
}

/// Every extra sink with its counters, driven by the writer thread.
pub struct Sinks {
    sinks: Vec<(Sink, std::sync::Arc<SinkCounter>)>,
}

impl Sinks {
    pub fn new(sinks: Vec<(Sink, std::sync::Arc<SinkCounter>)>) -> Sinks {
        Sinks { sinks }
    }

    /// Hands the line to every sink in turn and counts what each did with it.
    pub fn send(&mut self, line: &[u8]) {
        for (sink, counter) in &mut self.sinks {
            let slot = if sink.send(line) {
                &counter.sent
            } else {
                &counter.lost
            };
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }
}
