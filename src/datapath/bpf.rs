//! The XDP program: load it with its knobs, attach it to the ports (netlink attach, so it keeps
//! bridging after the daemon dies), register AF_XDP sockets, write block/bypass entries, read
//! its counters, and detach it again.
//!
//! Nothing is pinned: the program and its maps live while they are attached or while this
//! process holds their file descriptors. After a crash the program stays attached (that is
//! fail-open); the next start finds it by the program attached to the port and its name, and
//! replaces it atomically (`XDP_FLAGS_REPLACE` with the old program's fd).

use std::cell::Cell;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::flow::FlowKey;
use crate::verdict::FailMode;

#[allow(
    clippy::all,
    clippy::pedantic,
    unsafe_op_in_unsafe_fn,
    dead_code,
    non_camel_case_types
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/unmask.skel.rs"));
}

pub use skel::types::{unmask_counter, unmask_flow_entry, unmask_flow_key};

/// Name of our XDP program as the kernel reports it: how a restart recognises its own program.
pub const PROGRAM_NAME: &str = "unmask_xdp";

// Mirrors of the #defines in bpf/unmask_shared.h (BTF carries types, not macros). The map
// sizes derived from them are checked against the compiled object in the tests below.
pub const MAX_QUEUES: u32 = 64;
pub const MAX_PORTS: u32 = 2;
pub const XSK_SLOTS: u32 = MAX_QUEUES * MAX_PORTS;
pub const FLOW_MAP_ENTRIES: u32 = 65536;
/// Slots of the flow-map use flags (`unmask_flow_use`): one per [`FlowMap`].
pub const USE_SLOTS: u32 = 2;

const _: () = assert!(std::mem::size_of::<unmask_flow_key>() == 40);
const _: () = assert!(std::mem::size_of::<unmask_flow_entry>() == ENTRY_BYTES);
/// `sizeof(struct unmask_flow_entry)`.
const ENTRY_BYTES: usize = 56;
const _: () = assert!(std::mem::size_of::<unmask_counter>() == 16);

/// Why a frame left the XDP program the way it did (`enum unmask_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Reason {
    ForeignPort = 0,
    NonTcp = 1,
    Blocked = 2,
    Bypassed = 3,
    ToSocket = 4,
    Unsure = 5,
    NoSocket = 6,
    Expired = 7,
    Tunnel = 8,
}

impl Reason {
    pub const COUNT: usize = 9;
    pub const ALL: [Reason; Self::COUNT] = [
        Reason::ForeignPort,
        Reason::NonTcp,
        Reason::Blocked,
        Reason::Bypassed,
        Reason::ToSocket,
        Reason::Unsure,
        Reason::NoSocket,
        Reason::Expired,
        Reason::Tunnel,
    ];
    pub const NAMES: [&'static str; Self::COUNT] = [
        "foreign_port",
        "non_tcp",
        "blocked",
        "bypassed",
        "to_socket",
        "unsure",
        "no_socket",
        "expired",
        "tunnel",
    ];
}

/// XDP action codes, in the order of the action slots after the reasons.
pub const ACTION_NAMES: [&str; 5] = ["aborted", "drop", "pass", "tx", "redirect"];
/// Reasons then actions (`UNMASK_COUNTERS`).
pub const COUNTER_SLOTS: u32 = (Reason::COUNT + ACTION_NAMES.len()) as u32;

/// One counter slot summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PacketsBytes {
    pub packets: u64,
    pub bytes: u64,
}

/// The XDP program's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpCounters {
    /// Indexed like [`Reason::ALL`].
    pub reasons: [PacketsBytes; Reason::COUNT],
    /// Indexed like [`ACTION_NAMES`].
    pub actions: [PacketsBytes; 5],
}

impl XdpCounters {
    pub fn reason(&self, r: Reason) -> PacketsBytes {
        self.reasons[r as usize]
    }
}

/// Whether the ports are a bump in the wire or a mirror.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Two ports; what is not blocked is forwarded to the other port.
    #[default]
    Inline,
    /// One port receiving a mirror copy; nothing is forwarded.
    Tap,
}

/// How the program is attached.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (veth and most NICs): the fast path.
    #[default]
    Native,
    /// Generic (skb) mode: any device, slow; for drivers without XDP support.
    Generic,
}

impl XdpMode {
    fn flag(self) -> u32 {
        match self {
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

/// Load-time settings of the XDP program.
#[derive(Debug, Clone)]
pub struct ProgramSetup {
    /// Port A, then port B (inline only).
    pub ports: Vec<String>,
    pub topology: Topology,
    pub fail: FailMode,
    pub xdp_mode: XdpMode,
    /// Every frame to the sockets, unparsed (diagnostic loops).
    pub steer_all: bool,
    /// Capacity of the block and bypass maps.
    pub flow_map_entries: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("interface {0:?} not found")]
    NoSuchInterface(String),
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Libbpf {
        what: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another unmask (pid {pid}) is running on {iface}; stop it first (a second instance \
         would take its program away)"
    )]
    AlreadyRunning { iface: String, pid: String },
    #[error(
        "interface {iface} already has a foreign XDP program attached ({name:?}, id {id}); unmask \
         will not replace it. If it is stale, remove it with `ip link set dev {iface} xdp off` \
         and start again"
    )]
    ForeignProgram {
        iface: String,
        name: String,
        id: u32,
    },
    #[error("the XDP program on {iface} changed while unmask was attaching (another instance starting?); try again")]
    Raced { iface: String },
}

fn lib(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    let what = what.into();
    move |source| BpfError::Libbpf { what, source }
}

/// What `attach` found on a port before it attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachOutcome {
    /// Nothing was attached.
    Fresh,
    /// An earlier unmask program (a crashed or running instance) was replaced atomically.
    Replaced { old_id: u32 },
}

#[derive(Debug)]
struct Port {
    name: String,
    ifindex: u32,
    attached: bool,
}

/// The loaded program with its maps, and where it is attached.
#[derive(Debug)]
pub struct Program {
    prog: OwnedFd,
    prog_id: u32,
    xdp_mode: XdpMode,
    ports: Vec<Port>,
    xsks: MapHandle,
    block: MapHandle,
    bypass: MapHandle,
    flow_use: MapHandle,
    counters: MapHandle,
    _peer: MapHandle,
    /// Flow maps taken over from an earlier unmask program still attached (after a crash).
    reused: Vec<String>,
}

/// Exclusive claim on the ports of a running instance: a `flock` on
/// `/run/unmask/<netns inode>-<ifindex>.lock` per port, released by the kernel when the
/// process ends however it ends. A second instance on the same ports is refused instead of
/// replacing the first one's program under its sockets.
#[derive(Debug)]
pub struct PortLock {
    files: Vec<(String, std::fs::File)>,
}

impl Drop for PortLock {
    fn drop(&mut self) {
        // Removed while still locked, so the directory does not collect a file per namespace
        // a test ever made. (An instance that opened the file just before may then lock the
        // unlinked copy; two starts within that instant are not a case worth a second lock.)
        for (path, _) in &self.files {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub const LOCK_DIR: &str = "/run/unmask";

impl PortLock {
    pub fn acquire(ports: &[String]) -> Result<PortLock, BpfError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::MetadataExt;
        let netns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
        std::fs::create_dir_all(LOCK_DIR).map_err(|source| BpfError::Os {
            what: format!("creating {LOCK_DIR}"),
            source,
        })?;
        let mut files = Vec::with_capacity(ports.len());
        for name in ports {
            let idx = ifindex(name)?;
            let path = format!("{LOCK_DIR}/{netns}-{idx}.lock");
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|source| BpfError::Os {
                    what: format!("opening {path}"),
                    source,
                })?;
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let ret = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if ret != 0 {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                return Err(BpfError::AlreadyRunning {
                    iface: name.clone(),
                    pid: pid.trim().to_string(),
                });
            }
            let _ = f.set_len(0);
            let _ = f.rewind();
            let _ = write!(f, "{}", std::process::id());
            files.push((path, f));
        }
        Ok(PortLock { files })
    }
}

/// The ifindex of an interface by name.
pub fn ifindex(name: &str) -> Result<u32, BpfError> {
    let c = CString::new(name).map_err(|_| BpfError::NoSuchInterface(name.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(BpfError::NoSuchInterface(name.to_string()));
    }
    Ok(idx)
}

/// The id and name of the XDP program attached to an interface, if any.
pub fn attached_program(ifindex: u32) -> Result<Option<(u32, String)>, BpfError> {
    let mut id: u32 = 0;
    // SAFETY: `id` is a valid out-pointer for the duration of the call.
    let ret = unsafe { libbpf_sys::bpf_xdp_query_id(ifindex as i32, 0, &mut id) };
    if ret < 0 {
        return Err(BpfError::Os {
            what: format!("querying the XDP program of ifindex {ifindex}"),
            source: std::io::Error::from_raw_os_error(-ret),
        });
    }
    if id == 0 {
        return Ok(None);
    }
    let fd = prog_fd_by_id(id)?;
    Ok(Some((id, prog_name(&fd)?)))
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    // SAFETY: plain syscall wrapper; no pointers are passed.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(BpfError::Os {
            what: format!("opening BPF program id {id}"),
            source: std::io::Error::from_raw_os_error(-fd),
        });
    }
    // SAFETY: a non-negative return is a fresh descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn prog_info(fd: &OwnedFd) -> Result<libbpf_sys::bpf_prog_info, BpfError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is a zeroed bpf_prog_info of `len` bytes; with every array pointer left
    // zero the kernel only fills the fixed fields.
    let ret = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            fd.as_raw_fd(),
            (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(BpfError::Os {
            what: "reading BPF program info".into(),
            source: std::io::Error::from_raw_os_error(-ret),
        });
    }
    Ok(info)
}

/// The ids of the maps a program uses.
fn prog_map_ids(fd: &OwnedFd) -> Result<Vec<u32>, BpfError> {
    let n = prog_info(fd)?.nr_map_ids as usize;
    let mut ids = vec![0u32; n.min(64)];
    let mut info = libbpf_sys::bpf_prog_info {
        nr_map_ids: ids.len() as u32,
        map_ids: ids.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `map_ids` points to `nr_map_ids` writable u32s that outlive the call; the kernel
    // writes at most that many.
    let ret = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            fd.as_raw_fd(),
            (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(BpfError::Os {
            what: "reading the map ids of a BPF program".into(),
            source: std::io::Error::from_raw_os_error(-ret),
        });
    }
    ids.truncate((info.nr_map_ids as usize).min(ids.len()));
    Ok(ids)
}

/// The block and bypass maps of an earlier unmask program attached to one of `ports`, when
/// their layout matches: a restart after a crash keeps the kernel's flow decisions.
fn earlier_flow_maps(ports: &[Port], entries: u32) -> Vec<MapHandle> {
    let mut out = Vec::new();
    for p in ports {
        let Ok(Some((id, name))) = attached_program(p.ifindex) else {
            continue;
        };
        if name != PROGRAM_NAME {
            continue;
        }
        let Ok(fd) = prog_fd_by_id(id) else { continue };
        for map_id in prog_map_ids(&fd).unwrap_or_default() {
            let Ok(m) = MapHandle::from_map_id(map_id) else {
                continue;
            };
            let wanted = m.name().to_str().and_then(FlowMap::by_name).is_some();
            if wanted
                && m.key_size() == 40
                && m.value_size() as usize == ENTRY_BYTES
                && m.max_entries() == entries
                && m.map_type() == libbpf_rs::MapType::LruHash
            {
                out.push(m);
            }
        }
        break;
    }
    out
}

fn prog_name(fd: &OwnedFd) -> Result<String, BpfError> {
    let info = prog_info(fd)?;
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The BPF map key of a flow: ports go to network order, everything else is copied.
pub fn bpf_key(k: &FlowKey) -> unmask_flow_key {
    unmask_flow_key {
        lo_addr: k.lo_addr,
        hi_addr: k.hi_addr,
        lo_port: k.lo_port.to_be(),
        hi_port: k.hi_port.to_be(),
        family: k.family,
        proto: k.proto,
        pad: [0; 2],
    }
}

/// The key's bytes in the layout of `struct unmask_flow_key`.
pub fn key_bytes(k: &unmask_flow_key) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[..16].copy_from_slice(&k.lo_addr);
    b[16..32].copy_from_slice(&k.hi_addr);
    b[32..34].copy_from_slice(&k.lo_port.to_ne_bytes());
    b[34..36].copy_from_slice(&k.hi_port.to_ne_bytes());
    b[36] = k.family;
    b[37] = k.proto;
    b[38..40].copy_from_slice(&k.pad);
    b
}

fn entry_bytes(e: &unmask_flow_entry) -> [u8; ENTRY_BYTES] {
    let mut b = [0u8; ENTRY_BYTES];
    let words = [
        e.expires_ns,
        e.last_ns,
        e.pkts[0],
        e.pkts[1],
        e.bytes[0],
        e.bytes[1],
    ];
    for (chunk, w) in b.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    b[48..50].copy_from_slice(&e.tcp_flags);
    b
}

fn entry_from_bytes(b: &[u8]) -> Option<unmask_flow_entry> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(
            b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    Some(unmask_flow_entry {
        expires_ns: word(0)?,
        last_ns: word(1)?,
        pkts: [word(2)?, word(3)?],
        bytes: [word(4)?, word(5)?],
        tcp_flags: b.get(48..50)?.try_into().ok()?,
        pad: [0; 6],
    })
}

#[cfg(test)]
impl unmask_flow_entry {
    /// Packets the program matched, both sides.
    pub fn hits(&self) -> u64 {
        self.pkts[0].saturating_add(self.pkts[1])
    }
}

impl Program {
    /// Opens the compiled object, sets the load-time knobs and loads it (not attached yet).
    pub fn load(setup: &ProgramSetup) -> Result<Program, BpfError> {
        let want = match setup.topology {
            Topology::Inline => 2,
            Topology::Tap => 1,
        };
        if setup.ports.len() != want {
            return Err(BpfError::Setup(format!(
                "{:?} topology needs {want} port(s), got {}",
                setup.topology,
                setup.ports.len()
            )));
        }
        let mut ports = Vec::with_capacity(want);
        for name in &setup.ports {
            ports.push(Port {
                name: name.clone(),
                ifindex: ifindex(name)?,
                attached: false,
            });
        }
        if want == 2 && ports[0].ifindex == ports[1].ifindex {
            return Err(BpfError::Setup(
                "port A and port B are the same interface".into(),
            ));
        }

        let mut storage = MaybeUninit::uninit();
        let mut open = skel::UnmaskSkelBuilder::default()
            .open(&mut storage)
            .map_err(lib("opening the XDP object"))?;
        {
            let ro = open
                .maps
                .rodata_data
                .as_deref_mut()
                .ok_or_else(|| BpfError::Setup("XDP object has no .rodata".into()))?;
            ro.cfg_ifindex[0] = ports[0].ifindex;
            ro.cfg_ifindex[1] = ports.get(1).map_or(0, |p| p.ifindex);
            ro.cfg_tap = u8::from(setup.topology == Topology::Tap);
            ro.cfg_fail_closed = u8::from(setup.fail == FailMode::FailClosed);
            ro.cfg_steer_all = u8::from(setup.steer_all);
        }
        let entries = setup.flow_map_entries.max(1);
        open.maps
            .unmask_block
            .set_max_entries(entries)
            .map_err(lib("sizing the block map"))?;
        open.maps
            .unmask_bypass
            .set_max_entries(entries)
            .map_err(lib("sizing the bypass map"))?;
        let mut reused = Vec::new();
        let mut kept = Vec::new();
        for m in earlier_flow_maps(&ports, entries) {
            let name = m.name().to_string_lossy().into_owned();
            let Some(which) = FlowMap::by_name(&name) else {
                continue;
            };
            let target = match which {
                FlowMap::Block => &mut open.maps.unmask_block,
                FlowMap::Bypass => &mut open.maps.unmask_bypass,
            };
            if target.reuse_fd(m.as_fd()).is_ok() {
                reused.push(name);
                kept.push(which);
            }
        }
        let loaded = open.load().map_err(lib("loading the XDP program"))?;

        let prog = loaded
            .progs
            .unmask_xdp
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| BpfError::Os {
                what: "duplicating the program fd".into(),
                source,
            })?;
        let handle = |m: &libbpf_rs::MapMut<'_>, what: &str| {
            MapHandle::try_from(m).map_err(lib(format!("keeping the {what} map")))
        };
        let xsks = handle(&loaded.maps.unmask_xsks, "socket")?;
        let peer = handle(&loaded.maps.unmask_peer, "peer")?;
        let block = handle(&loaded.maps.unmask_block, "block")?;
        let bypass = handle(&loaded.maps.unmask_bypass, "bypass")?;
        let flow_use = handle(&loaded.maps.unmask_flow_use, "flow use")?;
        let counters = handle(&loaded.maps.unmask_counters, "counter")?;
        // The object (and its own descriptors) closes here; ours keep everything alive.
        drop(loaded);

        let prog_id = prog_info(&prog)?.id;
        if ports.len() == 2 {
            let (a, b) = (ports[0].ifindex, ports[1].ifindex);
            peer.update(&0u32.to_ne_bytes(), &b.to_ne_bytes(), MapFlags::ANY)
                .map_err(lib("setting the peer of port A"))?;
            peer.update(&1u32.to_ne_bytes(), &a.to_ne_bytes(), MapFlags::ANY)
                .map_err(lib("setting the peer of port B"))?;
        }
        // Kept maps may hold entries already: the program must look them up from the start.
        for which in kept {
            mark_in_use(&flow_use, which)?;
        }
        Ok(Program {
            prog,
            prog_id,
            xdp_mode: setup.xdp_mode,
            ports,
            xsks,
            block,
            bypass,
            flow_use,
            counters,
            _peer: peer,
            reused,
        })
    }

    pub fn id(&self) -> u32 {
        self.prog_id
    }

    /// Names of the flow maps taken over from an earlier instance's program.
    pub fn reused_maps(&self) -> &[String] {
        &self.reused
    }

    pub fn port_names(&self) -> Vec<String> {
        self.ports.iter().map(|p| p.name.clone()).collect()
    }

    /// Checks every port first (a foreign program anywhere refuses the whole start), then
    /// attaches to each one, replacing an earlier unmask program atomically.
    pub fn attach(&mut self) -> Result<Vec<AttachOutcome>, BpfError> {
        let mut found = Vec::with_capacity(self.ports.len());
        for p in &self.ports {
            let cur = attached_program(p.ifindex)?;
            if let Some((id, name)) = &cur {
                if name != PROGRAM_NAME {
                    return Err(BpfError::ForeignProgram {
                        iface: p.name.clone(),
                        name: name.clone(),
                        id: *id,
                    });
                }
            }
            found.push(cur);
        }
        let mut outcomes = Vec::with_capacity(self.ports.len());
        for (i, cur) in found.into_iter().enumerate() {
            let outcome = match cur {
                None => {
                    self.attach_one(i, None)?;
                    AttachOutcome::Fresh
                }
                Some((old_id, _)) => {
                    let old = prog_fd_by_id(old_id)?;
                    self.attach_one(i, Some(&old))?;
                    AttachOutcome::Replaced { old_id }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn attach_one(&mut self, i: usize, old: Option<&OwnedFd>) -> Result<(), BpfError> {
        let Some(port) = self.ports.get_mut(i) else {
            return Ok(());
        };
        let mut opts = libbpf_sys::bpf_xdp_attach_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
            ..Default::default()
        };
        let mut flags = self.xdp_mode.flag();
        match old {
            Some(fd) => {
                flags |= libbpf_sys::XDP_FLAGS_REPLACE;
                opts.old_prog_fd = fd.as_raw_fd();
            }
            None => flags |= libbpf_sys::XDP_FLAGS_UPDATE_IF_NOEXIST,
        }
        // SAFETY: `opts` is a properly sized attach-options struct living across the call; the
        // program fd is ours and open.
        let ret = unsafe {
            libbpf_sys::bpf_xdp_attach(port.ifindex as i32, self.prog.as_raw_fd(), flags, &opts)
        };
        if ret < 0 {
            let err = std::io::Error::from_raw_os_error(-ret);
            // EEXIST: something was attached between our check and our attach, or (REPLACE)
            // the program we meant to replace is no longer the attached one.
            if -ret == libc::EEXIST {
                return Err(BpfError::Raced {
                    iface: port.name.clone(),
                });
            }
            return Err(BpfError::Os {
                what: format!("attaching XDP to {}", port.name),
                source: err,
            });
        }
        port.attached = true;
        Ok(())
    }

    /// Detaches from every port where our program is still the one attached. Idempotent.
    pub fn detach(&mut self) -> Vec<BpfError> {
        let mut errors = Vec::new();
        for port in &mut self.ports {
            if !port.attached {
                continue;
            }
            let opts = libbpf_sys::bpf_xdp_attach_opts {
                sz: std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
                old_prog_fd: self.prog.as_raw_fd(),
                ..Default::default()
            };
            let flags = self.xdp_mode.flag() | libbpf_sys::XDP_FLAGS_REPLACE;
            // SAFETY: as in attach_one; fd -1 with REPLACE detaches only if our program is
            // still the attached one.
            let ret = unsafe { libbpf_sys::bpf_xdp_attach(port.ifindex as i32, -1, flags, &opts) };
            port.attached = false;
            // EEXIST: someone else (a newer instance) replaced us; leave theirs alone.
            // ENODEV: the interface is gone, and the attachment with it.
            if ret < 0 && -ret != libc::EEXIST && -ret != libc::ENODEV {
                errors.push(BpfError::Os {
                    what: format!("detaching XDP from {}", port.name),
                    source: std::io::Error::from_raw_os_error(-ret),
                });
            }
        }
        errors
    }

    /// Registers an AF_XDP socket for (port, queue): the program starts redirecting there.
    pub fn register_socket(&self, port: u8, queue: u32, fd: i32) -> Result<(), BpfError> {
        let slot = xsk_slot(port, queue)?;
        self.xsks
            .update(&slot.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(lib(format!(
                "registering the socket of port {port} queue {queue}"
            )))
    }

    /// Removes the socket of (port, queue): frames there take the fail-mode path again.
    pub fn unregister_socket(&self, port: u8, queue: u32) -> Result<(), BpfError> {
        let slot = xsk_slot(port, queue)?;
        match self.xsks.delete(&slot.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(lib("unregistering a socket")(e)),
        }
    }

    /// Handles on the flow maps for one worker's [`FlowMaps`].
    pub fn flow_maps(&self) -> Result<FlowMaps, BpfError> {
        Ok(FlowMaps {
            block: MapHandle::try_from(&self.block).map_err(lib("sharing the block map"))?,
            bypass: MapHandle::try_from(&self.bypass).map_err(lib("sharing the bypass map"))?,
            flow_use: MapHandle::try_from(&self.flow_use)
                .map_err(lib("sharing the flow use flags"))?,
            marked: [Cell::new(false), Cell::new(false)],
        })
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<XdpCounters, BpfError> {
        read_counters(&self.counters)
    }

    /// A handle another thread (a metrics exporter) can read the counters through.
    pub fn counter_reader(&self) -> Result<CounterReader, BpfError> {
        Ok(CounterReader {
            map: MapHandle::try_from(&self.counters).map_err(lib("sharing the counter map"))?,
        })
    }

    /// Runs the program once over `frame` as if it arrived on `port` queue 0
    /// (BPF_PROG_TEST_RUN) and returns its XDP action. For tests of the parser and the maps
    /// without a network.
    pub fn test_run(&self, port: u8, frame: &[u8]) -> Result<u32, BpfError> {
        let ifindex = self.ports.get(usize::from(port)).map_or(0, |p| p.ifindex);
        let mut ctx = libbpf_sys::xdp_md {
            data_end: frame.len() as u32,
            ingress_ifindex: ifindex,
            ..Default::default()
        };
        let mut data_out = vec![0u8; frame.len() + 256];
        let mut opts = libbpf_sys::bpf_test_run_opts {
            ctx_in: (&mut ctx as *mut libbpf_sys::xdp_md).cast(),
            ctx_size_in: std::mem::size_of::<libbpf_sys::xdp_md>() as _,
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: data_out.as_mut_ptr().cast(),
            data_size_out: data_out.len() as u32,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: the in/out buffers are valid for the sizes given and outlive the call.
        let ret = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog.as_raw_fd(), &mut opts) };
        if ret < 0 {
            return Err(BpfError::Os {
                what: "test-running the XDP program".into(),
                source: std::io::Error::from_raw_os_error(-ret),
            });
        }
        Ok(opts.retval)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // A dropped Program detaches: only a crash leaves the program attached (fail-open).
        for e in self.detach() {
            eprintln!("unmask: {e}");
        }
    }
}

/// Reads the XDP program's counters from any thread; it keeps the counter map alive.
#[derive(Debug)]
pub struct CounterReader {
    map: MapHandle,
}

impl CounterReader {
    pub fn read(&self) -> Result<XdpCounters, BpfError> {
        read_counters(&self.map)
    }
}

fn read_counters(map: &MapHandle) -> Result<XdpCounters, BpfError> {
    let mut out = XdpCounters::default();
    for slot in 0..COUNTER_SLOTS {
        let per_cpu = map
            .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(lib("reading XDP counters"))?
            .unwrap_or_default();
        let mut sum = PacketsBytes::default();
        for v in per_cpu {
            let p = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes);
            let b = v
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes);
            sum.packets = sum.packets.wrapping_add(p.unwrap_or(0));
            sum.bytes = sum.bytes.wrapping_add(b.unwrap_or(0));
        }
        let i = slot as usize;
        if i < Reason::COUNT {
            out.reasons[i] = sum;
        } else if let Some(a) = out.actions.get_mut(i - Reason::COUNT) {
            *a = sum;
        }
    }
    Ok(out)
}

fn xsk_slot(port: u8, queue: u32) -> Result<u32, BpfError> {
    if u32::from(port) >= MAX_PORTS || queue >= MAX_QUEUES {
        return Err(BpfError::Setup(format!(
            "port {port} queue {queue} is beyond the socket map ({MAX_PORTS} ports x {MAX_QUEUES} queues)"
        )));
    }
    Ok(u32::from(port) * MAX_QUEUES + queue)
}

/// A worker's handles on the block and bypass maps.
#[derive(Debug)]
pub struct FlowMaps {
    block: MapHandle,
    bypass: MapHandle,
    /// The program's use flags, and whether this handle has set each (once is enough).
    flow_use: MapHandle,
    marked: [Cell<bool>; 2],
}

/// Tells the program to look `which` up from now on (see `unmask_flow_use` in bpf/).
fn mark_in_use(flow_use: &MapHandle, which: FlowMap) -> Result<(), BpfError> {
    flow_use
        .update(
            &which.use_slot().to_ne_bytes(),
            &1u32.to_ne_bytes(),
            MapFlags::ANY,
        )
        .map_err(lib("setting a flow map's use flag"))
}

/// Which flow map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowMap {
    Block,
    Bypass,
}

impl FlowMap {
    /// The flow map a program map of this name is (an earlier program's, to be kept).
    fn by_name(name: &str) -> Option<FlowMap> {
        match name {
            "unmask_block" => Some(FlowMap::Block),
            "unmask_bypass" => Some(FlowMap::Bypass),
            _ => None,
        }
    }

    fn use_slot(self) -> u32 {
        match self {
            FlowMap::Block => 0,
            FlowMap::Bypass => 1,
        }
    }
}

impl FlowMaps {
    fn map(&self, which: FlowMap) -> &MapHandle {
        match which {
            FlowMap::Block => &self.block,
            FlowMap::Bypass => &self.bypass,
        }
    }

    /// Inserts or refreshes an entry that expires `ttl_ns` from now (0 = never).
    pub fn insert(&self, which: FlowMap, key: &FlowKey, ttl_ns: u64) -> Result<(), BpfError> {
        let expires_ns = if ttl_ns == 0 {
            0
        } else {
            monotonic_ns().saturating_add(ttl_ns)
        };
        let entry = unmask_flow_entry {
            expires_ns,
            ..unmask_flow_entry::default()
        };
        // The flag goes first: with the entry in place and the flag not yet set, the program
        // would let the flow's frames by unjudged.
        let marked = &self.marked[which.use_slot() as usize];
        if !marked.get() {
            mark_in_use(&self.flow_use, which)?;
            marked.set(true);
        }
        self.map(which)
            .update(
                &key_bytes(&bpf_key(key)),
                &entry_bytes(&entry),
                MapFlags::ANY,
            )
            .map_err(lib("writing a flow entry"))
    }

    /// Removes an entry; absent is fine.
    pub fn remove(&self, which: FlowMap, key: &FlowKey) -> Result<(), BpfError> {
        match self.map(which).delete(&key_bytes(&bpf_key(key))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(lib("removing a flow entry")(e)),
        }
    }

    pub fn get(
        &self,
        which: FlowMap,
        key: &FlowKey,
    ) -> Result<Option<unmask_flow_entry>, BpfError> {
        let v = self
            .map(which)
            .lookup(&key_bytes(&bpf_key(key)), MapFlags::ANY)
            .map_err(lib("reading a flow entry"))?;
        Ok(v.and_then(|b| entry_from_bytes(&b)))
    }

    /// Every entry of a map (control plane: allocates).
    pub fn entries(&self, which: FlowMap) -> Vec<([u8; 40], unmask_flow_entry)> {
        let map = self.map(which);
        let mut out = Vec::new();
        for k in map.keys() {
            let Ok(kb) = <[u8; 40]>::try_from(k.as_slice()) else {
                continue;
            };
            if let Ok(Some(v)) = map.lookup(&k, MapFlags::ANY) {
                if let Some(e) = entry_from_bytes(&v) {
                    out.push((kb, e));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::steer::tcp_flow_key;
    use crate::datapath::steer::tests::{tcp4, tcp6};

    const XDP_DROP: u32 = 1;
    const XDP_PASS: u32 = 2;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn compiled_object_matches_the_rust_mirrors() {
        let mut storage = MaybeUninit::uninit();
        let open = skel::UnmaskSkelBuilder::default()
            .open(&mut storage)
            .expect("the XDP object opens without privileges");
        assert_eq!(open.maps.unmask_xsks.max_entries(), XSK_SLOTS);
        assert_eq!(open.maps.unmask_counters.max_entries(), COUNTER_SLOTS);
        assert_eq!(open.maps.unmask_peer.max_entries(), MAX_PORTS);
        assert_eq!(open.maps.unmask_block.max_entries(), FLOW_MAP_ENTRIES);
        assert_eq!(open.maps.unmask_flow_use.max_entries(), USE_SLOTS);
    }

    #[test]
    fn bpf_key_puts_ports_in_network_order() {
        let k = tcp_flow_key(&tcp4([10, 0, 0, 1], 0x1234, [10, 0, 0, 2], 80)).unwrap();
        let b = key_bytes(&bpf_key(&k));
        assert_eq!(&b[0..4], &[10, 0, 0, 1]);
        assert_eq!(&b[16..20], &[10, 0, 0, 2]);
        assert_eq!(&b[32..36], &[0x12, 0x34, 0, 80]);
        assert_eq!((b[36], b[37]), (4, 6));
    }

    fn tap_on_lo(fail: FailMode) -> Option<Program> {
        if !root() {
            eprintln!("skipped: loading XDP needs root");
            return None;
        }
        Some(
            Program::load(&ProgramSetup {
                ports: vec!["lo".into()],
                topology: Topology::Tap,
                fail,
                xdp_mode: XdpMode::Native,
                steer_all: false,
                flow_map_entries: 1024,
            })
            .expect("load"),
        )
    }

    #[test]
    fn program_sorts_frames_by_reason() {
        let Some(p) = tap_on_lo(FailMode::FailOpen) else {
            return;
        };
        let syn = tcp4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 443);
        let reply = tcp4([10, 0, 0, 2], 443, [10, 0, 0, 1], 40000);
        let mut udp = syn.clone();
        udp[23] = 17;
        let mut frag = syn.clone();
        frag[20] = 0x20;
        let v6 = tcp6([0xfd; 16], 1, [0xfe; 16], 2);

        // No socket, fail-open, tap: passed up.
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_PASS);
        assert_eq!(p.test_run(0, &v6).unwrap(), XDP_PASS);
        // Non-TCP in tap mode is dropped.
        assert_eq!(p.test_run(0, &udp).unwrap(), XDP_DROP);
        let mut arp = syn.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(p.test_run(0, &arp).unwrap(), XDP_DROP);
        // IPv4 cut short could hide TCP: the socket way (no socket: pass).
        assert_eq!(p.test_run(0, &syn[..20]).unwrap(), XDP_PASS);
        // A fragment is not keyable: it goes the socket way (here: no socket, pass).
        assert_eq!(p.test_run(0, &frag).unwrap(), XDP_PASS);
        // A truncated TCP header likewise.
        assert_eq!(p.test_run(0, &syn[..40]).unwrap(), XDP_PASS);
        // Tunnel carriers and non-TCP fragments go the socket way too, so the worker can
        // open them: VXLAN (UDP to 4789), GRE, and a UDP fragment.
        let mut vxlan = udp.clone();
        vxlan[36..38].copy_from_slice(&4789u16.to_be_bytes());
        let mut gre = syn.clone();
        gre[23] = 47;
        let mut udp_frag = udp.clone();
        udp_frag[20] = 0x20;
        for f in [&vxlan, &gre, &udp_frag] {
            assert_eq!(p.test_run(0, f).unwrap(), XDP_PASS);
        }

        let c = p.counters().unwrap();
        assert_eq!(c.reason(Reason::NoSocket).packets, 8);
        assert_eq!(c.reason(Reason::NonTcp).packets, 2);
        assert_eq!(
            c.reason(Reason::Tunnel).packets,
            0,
            "tunnel only counts delivered frames"
        );
        assert_eq!(
            c.reason(Reason::Unsure).packets,
            0,
            "unsure only counts delivered frames"
        );
        assert_eq!(c.actions[2].packets, 8, "pass");
        assert_eq!(c.actions[1].packets, 2, "drop");

        // Block the flow: both directions dropped by the kernel, with hits counted.
        let maps = p.flow_maps().unwrap();
        let key = tcp_flow_key(&syn).unwrap();
        maps.insert(FlowMap::Block, &key, 0).unwrap();
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_DROP);
        assert_eq!(p.test_run(0, &reply).unwrap(), XDP_DROP);
        assert_eq!(maps.get(FlowMap::Block, &key).unwrap().unwrap().hits(), 2);
        assert_eq!(p.counters().unwrap().reason(Reason::Blocked).packets, 2);

        // An expired entry is ignored and removed.
        maps.insert(FlowMap::Block, &key, 1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_PASS);
        assert!(maps.get(FlowMap::Block, &key).unwrap().is_none());
        assert_eq!(p.counters().unwrap().reason(Reason::Expired).packets, 1);

        // Bypass: let through without a worker (tap: nothing to forward, dropped), counted
        // per sending side with its flags and time, for the worker that bypassed it.
        maps.insert(FlowMap::Bypass, &key, 0).unwrap();
        assert_eq!(maps.get(FlowMap::Bypass, &key).unwrap().unwrap().last_ns, 0);
        let before = monotonic_ns();
        assert_eq!(p.test_run(0, &reply).unwrap(), XDP_DROP);
        let mut fin = syn.clone();
        fin[47] = 0x11;
        assert_eq!(p.test_run(0, &fin).unwrap(), XDP_DROP);
        assert_eq!(p.test_run(0, &fin).unwrap(), XDP_DROP);
        assert_eq!(p.counters().unwrap().reason(Reason::Bypassed).packets, 3);
        let e = maps.get(FlowMap::Bypass, &key).unwrap().unwrap();
        // The SYN's source 10.0.0.1:40000 is the key's lo endpoint: side 0.
        assert_eq!(e.pkts, [2, 1]);
        assert_eq!(e.bytes, [2 * fin.len() as u64, reply.len() as u64]);
        assert_eq!(e.tcp_flags, [0x11, reply[47]]);
        assert!(e.last_ns >= before && e.last_ns <= monotonic_ns());
        maps.remove(FlowMap::Bypass, &key).unwrap();
        maps.remove(FlowMap::Bypass, &key).unwrap();
        assert_eq!(p.test_run(0, &reply).unwrap(), XDP_PASS);
    }

    #[test]
    fn program_looks_up_a_flow_map_only_once_told_it_is_in_use() {
        let Some(p) = tap_on_lo(FailMode::FailOpen) else {
            return;
        };
        let syn = tcp4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 443);
        let key = tcp_flow_key(&syn).unwrap();
        let entry = entry_bytes(&unmask_flow_entry::default());
        let raw_insert = |map: &MapHandle| {
            map.update(&key_bytes(&bpf_key(&key)), &entry, MapFlags::ANY)
                .unwrap()
        };
        let flag = |which: FlowMap| {
            let v = p
                .flow_use
                .lookup(&which.use_slot().to_ne_bytes(), MapFlags::ANY)
                .unwrap()
                .unwrap();
            u32::from_ne_bytes(v[..4].try_into().unwrap())
        };
        assert_eq!((flag(FlowMap::Block), flag(FlowMap::Bypass)), (0, 0));
        // Written behind the flags' back, the entry is not looked up: the frame goes the
        // socket way (no socket, fail-open tap: passed up).
        raw_insert(&p.block);
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_PASS);
        // The bypass map's flag does not turn on the block map's lookup.
        let maps = p.flow_maps().unwrap();
        let other = tcp_flow_key(&tcp4([10, 0, 0, 3], 1, [10, 0, 0, 4], 2)).unwrap();
        maps.insert(FlowMap::Bypass, &other, 0).unwrap();
        assert_eq!((flag(FlowMap::Block), flag(FlowMap::Bypass)), (0, 1));
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_PASS);
        // Through FlowMaps the flag is set first, and from then on the map is consulted.
        maps.insert(FlowMap::Block, &key, 0).unwrap();
        assert_eq!((flag(FlowMap::Block), flag(FlowMap::Bypass)), (1, 1));
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_DROP);
        assert_eq!(p.counters().unwrap().reason(Reason::Blocked).packets, 1);
    }

    #[test]
    fn program_and_userspace_agree_on_ipv6_keys_with_extension_headers() {
        let Some(p) = tap_on_lo(FailMode::FailOpen) else {
            return;
        };
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = 7;
        let mut b = a;
        b[15] = 3;
        let plain = tcp6(a, 5000, b, 443);
        let mut hbh = plain.clone();
        hbh[20] = 0;
        hbh.splice(54..54, [6u8, 0, 1, 4, 0, 0, 0, 0]);
        let key = tcp_flow_key(&hbh).expect("keyable");
        assert_eq!(Some(key), tcp_flow_key(&plain));
        let maps = p.flow_maps().unwrap();
        maps.insert(FlowMap::Block, &key, 0).unwrap();
        assert_eq!(
            p.test_run(0, &hbh).unwrap(),
            XDP_DROP,
            "kernel found the same key"
        );
        assert_eq!(
            p.test_run(0, &tcp6(b, 443, a, 5000)).unwrap(),
            XDP_DROP,
            "reply too"
        );
        assert_eq!(maps.get(FlowMap::Block, &key).unwrap().unwrap().hits(), 2);
    }

    /// `inner` (an Ethernet frame) carried over IPv4 from 192.0.2.1 to 192.0.2.2: `proto` is
    /// the outer IP protocol, `head` the tunnel's own header(s) after the IP header, and the
    /// inner frame goes in whole (`ethernet`) or from its IP header on.
    fn encap(proto: u8, head: &[u8], inner: &[u8], ethernet: bool) -> Vec<u8> {
        let mut f = tcp4([192, 0, 2, 1], 1, [192, 0, 2, 2], 2);
        f.truncate(14 + 20);
        f[23] = proto;
        f.extend_from_slice(head);
        f.extend_from_slice(if ethernet { inner } else { &inner[14..] });
        let ip_len = u16::try_from(f.len() - 14).unwrap();
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f
    }

    fn udp_head(sport: u16, dport: u16, tunnel: &[u8]) -> Vec<u8> {
        let mut h = sport.to_be_bytes().to_vec();
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]);
        h.extend_from_slice(tunnel);
        h
    }

    #[test]
    fn kernel_settles_block_and_bypass_entries_of_tunnelled_flows_by_their_inner_key() {
        let Some(p) = tap_on_lo(FailMode::FailOpen) else {
            return;
        };
        let inner = tcp4([10, 78, 0, 1], 40000, [10, 78, 0, 3], 443);
        let reply = tcp4([10, 78, 0, 3], 443, [10, 78, 0, 1], 40000);
        let mut a6 = [0u8; 16];
        a6[0] = 0xfd;
        a6[15] = 1;
        let mut b6 = a6;
        b6[15] = 2;
        let inner6 = tcp6(a6, 40000, b6, 443);
        let vxlan = [0x08, 0, 0, 0, 0, 0, 77, 0];
        let geneve_teb = [0x01, 0, 0x65, 0x58, 0, 0, 77, 0, 1, 2, 3, 4];
        let gtp = [0x30, 0xff, 0, 40, 0, 0, 0, 1];
        let gtp_seq = [0x32, 0xff, 0, 44, 0, 0, 0, 1, 0, 7, 0, 0];
        let gre_teb = [0, 0, 0x65, 0x58];
        let gre_key_ip = [0x20, 0, 0x08, 0x00, 0, 0, 0, 9];
        let carried = |i: &[u8], j: &[u8]| {
            vec![
                (
                    "vxlan",
                    encap(17, &udp_head(5555, 4789, &vxlan), i, true),
                    j.to_vec(),
                ),
                (
                    "geneve",
                    encap(17, &udp_head(5555, 6081, &geneve_teb), i, true),
                    j.to_vec(),
                ),
                (
                    "gtp-u",
                    encap(17, &udp_head(2152, 2152, &gtp), i, false),
                    j.to_vec(),
                ),
                (
                    "gtp-u with a sequence number",
                    encap(17, &udp_head(2152, 2152, &gtp_seq), i, false),
                    j.to_vec(),
                ),
                ("gre bridging", encap(47, &gre_teb, i, true), j.to_vec()),
                (
                    "gre with a key",
                    encap(47, &gre_key_ip, i, false),
                    j.to_vec(),
                ),
            ]
        };
        let mut cases = carried(&inner, &reply);
        cases.push(("ip in ip", encap(4, &[], &inner, false), reply.clone()));
        cases.push(("ipv6 in ip", encap(41, &[], &inner6, false), inner6.clone()));

        let maps = p.flow_maps().unwrap();
        for (name, frame, plain) in &cases {
            let key = tcp_flow_key(plain).unwrap();
            // No entry: the worker's (no socket here, so fail-open passes it up).
            assert_eq!(p.test_run(0, frame).unwrap(), XDP_PASS, "{name}: no entry");
            maps.insert(FlowMap::Block, &key, 0).unwrap();
            assert_eq!(p.test_run(0, frame).unwrap(), XDP_DROP, "{name}: blocked");
            assert_eq!(
                maps.get(FlowMap::Block, &key).unwrap().unwrap().hits(),
                1,
                "{name}: the hit is the inner flow's"
            );
            maps.remove(FlowMap::Block, &key).unwrap();
            maps.insert(FlowMap::Bypass, &key, 0).unwrap();
            // Tap: bypassed frames are not forwarded, so dropped; the reason tells it apart.
            let before = p.counters().unwrap().reason(Reason::Bypassed).packets;
            assert_eq!(p.test_run(0, frame).unwrap(), XDP_DROP, "{name}: bypassed");
            assert_eq!(
                p.counters().unwrap().reason(Reason::Bypassed).packets,
                before + 1,
                "{name}"
            );
            maps.remove(FlowMap::Bypass, &key).unwrap();
        }

        // What the one-level opener leaves to the worker, even with the inner flow blocked:
        // VXLAN without its I flag, PPTP's GRE, a GTP-U extension header, a tunnel in a tunnel.
        let key = tcp_flow_key(&inner).unwrap();
        maps.insert(FlowMap::Block, &key, 0).unwrap();
        let no_i = encap(17, &udp_head(5555, 4789, &[0; 8]), &inner, true);
        let pptp = encap(47, &[0x00, 0x01, 0x08, 0x00], &inner, false);
        let gtp_ext = encap(
            17,
            &udp_head(
                2152,
                2152,
                &[0x34, 0xff, 0, 48, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 0, 0],
            ),
            &inner,
            false,
        );
        let nested = encap(4, &[], &encap(4, &[], &inner, false), false);
        for (name, frame) in [
            ("vxlan without I", no_i),
            ("pptp gre", pptp),
            ("gtp-u extension", gtp_ext),
            ("nested", nested),
        ] {
            assert_eq!(p.test_run(0, &frame).unwrap(), XDP_PASS, "{name}");
        }
        assert_eq!(maps.get(FlowMap::Block, &key).unwrap().unwrap().hits(), 0);
    }

    #[test]
    fn fail_closed_drops_tcp_without_a_socket() {
        let Some(p) = tap_on_lo(FailMode::FailClosed) else {
            return;
        };
        let syn = tcp4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 443);
        assert_eq!(p.test_run(0, &syn).unwrap(), XDP_DROP);
        assert_eq!(p.counters().unwrap().reason(Reason::NoSocket).packets, 1);
    }

    #[test]
    fn inline_needs_two_distinct_ports() {
        let setup = |ports: Vec<String>| ProgramSetup {
            ports,
            topology: Topology::Inline,
            fail: FailMode::FailOpen,
            xdp_mode: XdpMode::Native,
            steer_all: false,
            flow_map_entries: 16,
        };
        assert!(matches!(
            Program::load(&setup(vec!["lo".into()])),
            Err(BpfError::Setup(_))
        ));
        assert!(matches!(
            Program::load(&setup(vec!["lo".into(), "lo".into()])),
            Err(BpfError::Setup(_))
        ));
        assert!(matches!(
            Program::load(&setup(vec!["lo".into(), "no-such-if0".into()])),
            Err(BpfError::NoSuchInterface(_))
        ));
    }
}
