//! Capture files (pcap and pcapng) as a packet source.
