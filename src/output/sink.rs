//! The EVE outputs beside the file (`[[output.sinks]]`): a unix stream, a unix datagram socket,
//! the local syslog socket, redis (through its own thread, `output::redis`). Fed only by the
//! writer thread, with each line it already serialised.
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use fasyslog::format::SyslogContext;
use fasyslog::{Facility, Severity};

use crate::config::{SinkConfig, SinkKind};
pub use crate::output::delivery::SinkCounter;
use crate::output::delivery::{Delivery, LineMeta};
use crate::output::redis::RedisSink;

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
        /// A connection was made before: the next one is a reconnect.
        connected_once: bool,
    },
    Syslog {
        socket: Datagrams,
        context: SyslogContext,
        /// The header and the JSON, reused so a record costs no allocation here.
        buf: Vec<u8>,
    },
    Redis(RedisSink),
}

/// One sink as the writer thread drives it.
pub struct Sink {
    path: PathBuf,
    transport: Transport,
    counter: Arc<SinkCounter>,
}

impl Sink {
    /// Creates the sink's socket (for redis, its sender thread). Nothing is connected yet: a
    /// peer that is absent at start-up is a lost record later, not a failed start.
    pub fn open(config: &SinkConfig, counter: Arc<SinkCounter>) -> io::Result<Sink> {
        let path = PathBuf::from(config.path());
        let transport = match config.kind {
            SinkKind::UnixDgram => Transport::Dgram {
                socket: Datagrams::new()?,
            },
            SinkKind::UnixStream => Transport::Stream {
                conn: None,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
                connected_once: false,
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
            SinkKind::Redis => Transport::Redis(RedisSink::spawn(config, Arc::clone(&counter))?),
        };
        Ok(Sink {
            path,
            transport,
            counter,
        })
    }

    /// Hands one EVE line (with its newline) to the sink and counts what became of it.
    pub fn send(&mut self, line: &[u8], meta: LineMeta) {
        let delivery = self.deliver(line, meta);
        match delivery {
            Delivery::Sent => self.counter.add_sent(1),
            Delivery::Lost => self.counter.add_lost(1),
            Delivery::Queued => {}
        }
    }

    /// Waits for a sink with a thread of its own to deliver what it holds.
    pub fn finish(&mut self) {
        if let Transport::Redis(r) = &mut self.transport {
            r.finish();
        }
    }

    fn deliver(&mut self, line: &[u8], meta: LineMeta) -> Delivery {
        let delivered = |ok: bool| if ok { Delivery::Sent } else { Delivery::Lost };
        match &mut self.transport {
            Transport::Redis(r) => r.send(line),
            Transport::Dgram { socket } => delivered(socket.send(line, &self.path)),
            Transport::Syslog {
                socket,
                context,
                buf,
            } => {
                let json = std::str::from_utf8(line).unwrap_or_default().trim_end();
                buf.clear();
                // An empty MSGID and SD; the severity follows the alert's.
                let formatted = context.format_rfc5424(
                    syslog_severity(meta),
                    None::<&str>,
                    Vec::new(),
                    Some(json),
                );
                if write!(buf, "{formatted}").is_err() {
                    return Delivery::Lost;
                }
                delivered(socket.send(buf, &self.path))
            }
            Transport::Stream {
                conn,
                next_attempt,
                backoff,
                connected_once,
            } => {
                let now = Instant::now();
                if conn.is_none() {
                    if now < *next_attempt {
                        return Delivery::Lost;
                    }
                    match connect_stream(&self.path) {
                        Ok(c) => {
                            if *connected_once {
                                self.counter.add_reconnect();
                            }
                            *connected_once = true;
                            *conn = Some(c);
                        }
                        Err(_) => {
                            *next_attempt = now + *backoff;
                            *backoff = (*backoff * 2).min(BACKOFF_MAX);
                            return Delivery::Lost;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else {
                    return Delivery::Lost;
                };
                match write_within(c, line, now + STREAM_WRITE_TIMEOUT) {
                    Ok(()) => {
                        *backoff = BACKOFF_MIN;
                        Delivery::Sent
                    }
                    Err(_) => {
                        // The peer is gone or stuck: whatever part of the line it got ends
                        // the connection, and the next record tries again after the backoff.
                        *conn = None;
                        *next_attempt = now + *backoff;
                        *backoff = (*backoff * 2).min(BACKOFF_MAX);
                        Delivery::Lost
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

/// The syslog severity of a record: an alert's follows its `alert.severity` as SIEMs map
/// Suricata's (1 high: err, 2 medium: warning, 3 low: notice); every other record, and an
/// alert of another severity, is info, the level Suricata's EVE syslog output uses.
pub fn syslog_severity(meta: LineMeta) -> Severity {
    match meta.alert_severity {
        Some(1) => Severity::ERROR,
        Some(2) => Severity::WARNING,
        Some(3) => Severity::NOTICE,
        _ => Severity::INFORMATIONAL,
    }
}

/// Every extra sink, driven by the writer thread.
pub struct Sinks {
    sinks: Vec<Sink>,
}

impl Sinks {
    pub fn new(sinks: Vec<Sink>) -> Sinks {
        Sinks { sinks }
    }

    /// Hands the line to every sink in turn; each counts what it did with it.
    pub fn send(&mut self, line: &[u8], meta: LineMeta) {
        for sink in &mut self.sinks {
            sink.send(line, meta);
        }
    }

    /// Lets every sink deliver what it still holds; its counters are final afterwards.
    pub fn finish(&mut self) {
        for sink in &mut self.sinks {
            sink.finish();
        }
    }
}
