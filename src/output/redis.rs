//! The redis EVE sink (`kind = "redis"`), as Suricata's redis output: each record pushed onto a
//! list (LPUSH or RPUSH) or published on a channel (PUBLISH).
//!
//! Redis is another process, maybe on another host, and may be slow, restarting or gone. The
//! writer thread therefore never talks to it: it copies each line into a bounded queue and goes
//! on (a full queue loses the record, counted). A dedicated sender thread takes what is queued,
//! up to `batch_size` records, and hands it over in one round trip (one multi-value push, or a
//! pipeline of PUBLISH commands), so one round trip's latency is paid per batch, not per
//! record. When redis is away the thread leaves records queued and tries again after a backoff
//! that doubles from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]; what the queue holds then reaches
//! redis when it is back, in order. A batch whose round trip fails is counted lost, not sent
//! again, since redis may have taken part of it; only a connection found closed after sitting
//! idle (redis's client `timeout`) gets the batch once more on a fresh one ([`IDLE_RETRY`]).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::config::{RedisMode, SinkConfig};
use crate::output::delivery::{Delivery, SinkCounter};

/// The first wait after a failed connection, as the stream sink's.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Doubling stops here so a redis that comes back is found within half a minute.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection attempt to an unreachable host gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A round trip that takes longer ends the connection (redis stuck or the path black-holed);
/// records keep queueing meanwhile, so this only bounds how long a dead peer goes unnoticed.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a sender waiting out its backoff looks whether the writer is finishing.
const CLOSING_POLL: Duration = Duration::from_millis(10);
/// A connection unused this long may have been closed by redis's idle `timeout` (or a NAT or
/// firewall) meanwhile, which shows only when the next batch fails: such a batch is sent again
/// once on a fresh connection rather than counted lost. Redis closes an idle client before
/// reading from it, so the retry does not write the batch twice.
const IDLE_RETRY: Duration = Duration::from_secs(1);

/// The writer thread's end of one redis sink.
pub struct RedisSink {
    tx: Option<Sender<Vec<u8>>>,
    closing: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
    counter: Arc<SinkCounter>,
}

impl RedisSink {
    /// Starts the sender thread. Nothing is connected yet: a redis that is absent at start-up
    /// is a reconnect later, not a failed start.
    pub fn spawn(config: &SinkConfig, counter: Arc<SinkCounter>) -> io::Result<RedisSink> {
        let info = connection_info(config);
        let client = ::redis::Client::open(info).map_err(io::Error::other)?;
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity() as usize);
        let closing = Arc::new(AtomicBool::new(false));
        let mut sender = RedisSender {
            client,
            mode: config.mode(),
            key: config.key().to_string(),
            batch_size: config.batch_size() as usize,
            rx,
            closing: Arc::clone(&closing),
            counter: Arc::clone(&counter),
        };
        let join = std::thread::Builder::new()
            .name("unmask-redis".into())
            .spawn(move || sender.run())?;
        Ok(RedisSink {
            tx: Some(tx),
            closing,
            join: Some(join),
            counter,
        })
    }

    /// Queues one EVE line (the newline is left out, as Suricata pushes the bare JSON).
    pub fn send(&mut self, line: &[u8]) -> Delivery {
        let Some(tx) = &self.tx else {
            return Delivery::Lost;
        };
        let json = line.strip_suffix(b"\n").unwrap_or(line);
        match tx.try_send(json.to_vec()) {
            Ok(()) => Delivery::Queued,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Delivery::Lost,
        }
    }

    /// Lets the sender deliver what is queued (one more connection attempt if redis is away,
    /// none of the backoff) and waits for it, so the counters are final.
    pub fn finish(&mut self) {
        self.closing.store(true, Ordering::Release);
        self.tx = None;
        if let Some(join) = self.join.take() {
            if join.join().is_err() {
                eprintln!(
                    "unmask: EVE sink {}: the sender thread panicked",
                    self.counter.label
                );
            }
        }
    }
}

impl Drop for RedisSink {
    fn drop(&mut self) {
        self.finish();
    }
}

fn connection_info(config: &SinkConfig) -> ::redis::ConnectionInfo {
    let addr = match &config.path {
        Some(path) => ::redis::ConnectionAddr::Unix(PathBuf::from(path)),
        None => ::redis::ConnectionAddr::Tcp(config.server().to_string(), config.port()),
    };
    ::redis::ConnectionInfo {
        addr,
        redis: ::redis::RedisConnectionInfo::default(),
    }
}

/// The sender thread's state.
struct RedisSender {
    client: ::redis::Client,
    mode: RedisMode,
    key: String,
    batch_size: usize,
    rx: Receiver<Vec<u8>>,
    closing: Arc<AtomicBool>,
    counter: Arc<SinkCounter>,
}

/// Why a batch did not arrive.
enum Failure {
    /// The connection is gone or stuck: drop it and back off.
    Connection(::redis::RedisError),
    /// Redis answered with an error (a list key holding another type, out of memory): the
    /// connection stays.
    Refused(::redis::RedisError),
}

impl RedisSender {
    fn run(&mut self) {
        let mut conn: Option<::redis::Connection> = None;
        let mut connected_once = false;
        let mut next_attempt = Instant::now();
        let mut backoff = BACKOFF_MIN;
        // Said once per outage, and only the first refusal: never once per record.
        let mut outage_reported = false;
        let mut refusal_reported = false;
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(self.batch_size);
        let mut pipe = ::redis::Pipeline::with_capacity(self.batch_size);
        // The last time the connection was known to work.
        let mut last_ok = Instant::now();
        loop {
            let closing = self.closing.load(Ordering::Acquire);
            let Some(c) = conn.as_mut() else {
                let now = Instant::now();
                if !closing && now < next_attempt {
                    std::thread::sleep(CLOSING_POLL.min(next_attempt - now));
                    continue;
                }
                match self.connect() {
                    Ok(c) => {
                        if connected_once {
                            self.counter.add_reconnect();
                        }
                        if outage_reported {
                            eprintln!("unmask: EVE sink {}: connected again", self.counter.label);
                        }
                        connected_once = true;
                        outage_reported = false;
                        backoff = BACKOFF_MIN;
                        last_ok = Instant::now();
                        conn = Some(c);
                    }
                    Err(e) => {
                        if !outage_reported {
                            eprintln!(
                                "unmask: EVE sink {}: cannot connect ({e}); records queue up to the sink's queue_capacity, then are lost (counted); trying again in {} s, backing off to {} s",
                                self.counter.label,
                                backoff.as_secs(),
                                BACKOFF_MAX.as_secs()
                            );
                            outage_reported = true;
                        }
                        if closing {
                            // The writer is done and redis is away: what is left is lost.
                            let left = batch.len() as u64 + self.rx.try_iter().count() as u64;
                            self.counter.add_lost(left);
                            return;
                        }
                        next_attempt = Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
                continue;
            };
            if batch.is_empty() {
                match self.rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(line) => batch.push(line),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                while batch.len() < self.batch_size {
                    match self.rx.try_recv() {
                        Ok(line) => batch.push(line),
                        Err(_) => break,
                    }
                }
            }
            let n = batch.len() as u64;
            let idle = last_ok.elapsed() >= IDLE_RETRY;
            let mut result = self.deliver(c, &mut pipe, &batch);
            if idle && matches!(&result, Err(Failure::Connection(e)) if e.is_connection_dropped()) {
                // Closed while idle: one fresh connection, the same batch again.
                if let Ok(fresh) = self.connect() {
                    self.counter.add_reconnect();
                    *c = fresh;
                    result = self.deliver(c, &mut pipe, &batch);
                }
            }
            match result {
                Ok(()) => {
                    self.counter.add_sent(n);
                    last_ok = Instant::now();
                }
                Err(Failure::Refused(e)) => {
                    self.counter.add_lost(n);
                    if !refusal_reported {
                        eprintln!(
                            "unmask: EVE sink {}: redis refused a batch of {n} records ({e}); counted lost (said once)",
                            self.counter.label
                        );
                        refusal_reported = true;
                    }
                }
                Err(Failure::Connection(e)) => {
                    self.counter.add_lost(n);
                    eprintln!(
                        "unmask: EVE sink {}: connection lost ({e}); {n} records in flight counted lost",
                        self.counter.label
                    );
                    outage_reported = true;
                    conn = None;
                    // The first attempt at once: a redis restart is often already over.
                    next_attempt = Instant::now();
                }
            }
            batch.clear();
        }
    }

    fn connect(&self) -> ::redis::RedisResult<::redis::Connection> {
        let c = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_write_timeout(Some(IO_TIMEOUT))?;
        c.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(c)
    }

    /// One round trip for the whole batch: a list gets one push of every record (redis adds
    /// them in the given order, so RPUSH keeps the file's order and LPUSH reverses it, as
    /// one LPUSH per record would); a channel gets one PUBLISH per record, pipelined.
    fn deliver(
        &self,
        c: &mut ::redis::Connection,
        pipe: &mut ::redis::Pipeline,
        batch: &[Vec<u8>],
    ) -> Result<(), Failure> {
        pipe.clear();
        if self.mode.is_list() {
            let push = pipe.cmd(self.mode.command()).arg(&self.key);
            for line in batch {
                push.arg(line.as_slice());
            }
            push.ignore();
        } else {
            for line in batch {
                pipe.cmd("PUBLISH")
                    .arg(&self.key)
                    .arg(line.as_slice())
                    .ignore();
            }
        }
        pipe.query::<()>(c).map_err(|e| {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || !::redis::ConnectionLike::is_open(c)
            {
                Failure::Connection(e)
            } else {
                Failure::Refused(e)
            }
        })
    }
}
