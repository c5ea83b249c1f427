//! Least privilege: once the program is attached and every socket is bound, the appliance
//! needs almost nothing. What stays in use after set-up:
//!
//! - the AF_XDP sockets, the UMEM and the maps are open file descriptors: ring work, map
//!   lookups and updates (the block and bypass maps) need no capability on them (since Linux
//!   6.5 the `unprivileged_bpf_disabled` sysctl only gates creating maps and programs);
//! - the EVE file, the metrics listener and the control socket are open too;
//! - detaching the program at a graceful stop is a netlink request, which needs
//!   **CAP_NET_ADMIN**: the one capability kept. Without it a stop would leave the program
//!   attached, which in fail-closed mode cuts the link.
//!
//! Capabilities belong to threads, not to the process, and `capset(2)` only changes the
//! calling thread, while by now the workers, the EVE writer, the metrics server and the
//! control thread all run. So every thread is asked, through a real-time signal, to drop its
//! own (the way libcap's "psx" does it), and the result is read back from
//! /proc/self/task/*/status: a thread that kept more is an error, not a warning.
//!
//! Each thread: clears its ambient set, drops from its bounding set everything not kept
//! (when it holds CAP_SETPCAP; under a service manager that already bounded it, that step is
//! left to the manager), sets effective = permitted = kept (what it held of it), inheritable
//! = none, and sets no_new_privs, so nothing it could exec gains privileges.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Capability numbers (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
const CAP_SETPCAP: u32 = 8;

/// What `unmask run` keeps, and why: see the module documentation.
pub const KEPT: &[u32] = &[CAP_NET_ADMIN];

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("dropping capabilities: {what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
    #[error("dropping capabilities: thread {tid} ({name}) still has {field} {value:#x} (wanted {wanted:#x})")]
    Kept {
        tid: u32,
        name: String,
        field: &'static str,
        value: u64,
        wanted: u64,
    },
    #[error("dropping capabilities: {0} thread(s) did not answer the request within 2 s")]
    Unanswered(usize),
}

/// What the drop left, for the start-up line and the tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dropped {
    pub threads: usize,
    /// Effective = permitted capabilities of every thread afterwards.
    pub kept: u64,
    /// The bounding set afterwards (unchanged when the process lacked CAP_SETPCAP).
    pub bounding: u64,
}

// The request every thread carries out in its signal handler: plain numbers in statics, so
// the handler touches nothing but atomics and system calls.
static KEEP_MASK: AtomicU64 = AtomicU64::new(0);
static LAST_CAP: AtomicU32 = AtomicU32::new(40);
static ANSWERED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

fn capget() -> Result<[CapData; 2], i32> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array as capget(2) expects for version 3, both
    // live across the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r == 0 {
        Ok(data)
    } else {
        Err(errno())
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Drops the calling thread's capabilities to `keep`. Only system calls: safe to run in a
/// signal handler.
fn drop_own(keep: u64, last_cap: u32) -> Result<(), i32> {
    let now = capget()?;
    let held = u64::from(now[0].permitted) | (u64::from(now[1].permitted) << 32);
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(errno());
    }
    // SAFETY: as above. Fails harmlessly on kernels without ambient capabilities.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if held & (1 << CAP_SETPCAP) != 0 {
        for cap in 0..=last_cap.min(63) {
            if keep & (1 << cap) == 0 {
                // SAFETY: prctl with integer arguments only. EINVAL for a capability this
                // kernel does not know is fine: it cannot be held either.
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            }
        }
    }
    let want = keep & held;
    let data = [
        CapData {
            effective: want as u32,
            permitted: want as u32,
            inheritable: 0,
        },
        CapData {
            effective: (want >> 32) as u32,
            permitted: (want >> 32) as u32,
            inheritable: 0,
        },
    ];
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: header and two data elements as capset(2) expects for version 3.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

extern "C" fn on_drop_request(_: libc::c_int) {
    let saved = errno();
    match drop_own(
        KEEP_MASK.load(Ordering::SeqCst),
        LAST_CAP.load(Ordering::SeqCst),
    ) {
        Ok(()) => ANSWERED.fetch_add(1, Ordering::SeqCst),
        Err(_) => FAILED.fetch_add(1, Ordering::SeqCst),
    };
    // A handler must leave errno as it found it: the interrupted code may be reading it.
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = saved };
}

fn thread_ids() -> Result<BTreeSet<u32>, PrivilegeError> {
    task_ids().map_err(|source| PrivilegeError::Sys {
        what: "listing /proc/self/task".into(),
        source,
    })
}

/// The ids of this process's threads now (/proc/self/task).
pub(super) fn task_ids() -> std::io::Result<BTreeSet<u32>> {
    Ok(std::fs::read_dir("/proc/self/task")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// One thread's credentials as the kernel reports them.
#[derive(Debug, Clone)]
pub struct ThreadCaps {
    pub tid: u32,
    pub name: String,
    pub effective: u64,
    pub permitted: u64,
    pub bounding: u64,
    pub no_new_privs: bool,
}

/// Every thread of process `pid` (`"self"` for this one), from /proc.
pub fn thread_caps(pid: &str) -> std::io::Result<Vec<ThreadCaps>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let hex = |name: &str| u64::from_str_radix(&field(name), 16).unwrap_or(u64::MAX);
        out.push(ThreadCaps {
            tid: entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            name: field("Name"),
            effective: hex("CapEff"),
            permitted: hex("CapPrm"),
            bounding: hex("CapBnd"),
            no_new_privs: field("NoNewPrivs") == "1",
        });
    }
    Ok(out)
}

/// Drops every capability but `keep` in every thread of the process, and checks it took.
pub fn drop_all_but(keep: &[u32]) -> Result<Dropped, PrivilegeError> {
    let keep_mask = keep.iter().fold(0u64, |m, &c| m | (1 << c));
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let had_setpcap = capget()
        .map(|d| d[0].effective & (1 << CAP_SETPCAP) != 0)
        .unwrap_or(false);
    KEEP_MASK.store(keep_mask, Ordering::SeqCst);
    LAST_CAP.store(last_cap, Ordering::SeqCst);

    let signal = libc::SIGRTMIN() + 7;
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
    // makes system calls and touches atomics.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_drop_request as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(signal, &act, std::ptr::null_mut()) != 0 {
            return Err(PrivilegeError::Sys {
                what: "installing the signal handler".into(),
                source: std::io::Error::last_os_error(),
            });
        }
    }

    let me = gettid();
    drop_own(keep_mask, last_cap).map_err(|e| PrivilegeError::Sys {
        what: "capset on the main thread".into(),
        source: std::io::Error::from_raw_os_error(e),
    })?;
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    let mut asked: BTreeSet<u32> = BTreeSet::from([me]);
    // A thread being created while the others drop may inherit the old set: ask again until
    // no thread is new.
    for _ in 0..8 {
        let fresh: Vec<u32> = thread_ids()?.difference(&asked).copied().collect();
        if fresh.is_empty() {
            break;
        }
        ANSWERED.store(0, Ordering::SeqCst);
        FAILED.store(0, Ordering::SeqCst);
        let mut sent = 0;
        for &tid in &fresh {
            // SAFETY: tgkill with plain integers; ESRCH (the thread ended) is fine.
            let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid as libc::c_int, signal) };
            if r == 0 {
                sent += 1;
            }
            asked.insert(tid);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while ANSWERED.load(Ordering::SeqCst) + FAILED.load(Ordering::SeqCst) < sent {
            if Instant::now() > deadline {
                return Err(PrivilegeError::Unanswered(
                    sent - ANSWERED.load(Ordering::SeqCst) - FAILED.load(Ordering::SeqCst),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    let threads = thread_caps("self").map_err(|source| PrivilegeError::Sys {
        what: "reading /proc/self/task/*/status".into(),
        source,
    })?;
    let kept = capget()
        .map(|d| u64::from(d[0].effective) | (u64::from(d[1].effective) << 32))
        .unwrap_or(0);
    let bounding = threads.first().map(|t| t.bounding).unwrap_or(0);
    for t in &threads {
        let kept_wrong = |field: &'static str, value: u64, wanted: u64| PrivilegeError::Kept {
            tid: t.tid,
            name: t.name.clone(),
            field,
            value,
            wanted,
        };
        if t.effective != kept || t.permitted != kept {
            return Err(kept_wrong("CapEff/CapPrm", t.effective | t.permitted, kept));
        }
        if had_setpcap && t.bounding & !keep_mask != 0 {
            return Err(kept_wrong("CapBnd", t.bounding, keep_mask));
        }
        if !t.no_new_privs {
            return Err(kept_wrong("NoNewPrivs", 0, 1));
        }
    }
    Ok(Dropped {
        threads: threads.len(),
        kept,
        bounding,
    })
}
