//! Packet I/O: capture files, and (in the live appliance) the XDP program and AF_XDP sockets.
//! The only module allowed to use `unsafe`.

#![allow(unsafe_code)]

pub mod pcap;
pub mod pcapwrite;
