//! Tunnelled traffic through `unmask run`: the kernel's own VXLAN devices in the client and
//! server namespaces carry an overlay (10.78.0.0/24) across the appliance, so every frame the
//! appliance sees is UDP to 4789 with Ethernet, IP and TCP inside. The XDP program hands tunnel
//! carriers to the worker, the engine opens them, and an impersonation inside is cut while
//! benign traffic inside arrives intact.
//!
//! Needs root and the tools from scripts/deps.sh; prints "skipped" and passes without them.

mod common;

use common::lab::*;

const SSH_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n";

/// A VXLAN device (VNI 77, UDP 4789) on each end of the lab, with overlay addresses
/// 10.78.0.1 (client) and 10.78.0.2 (server), checksums computed in software so frames the
/// appliance re-sends stay valid.
fn overlay(lab: &Lab) {
    for (role, ifc, local, remote, addr) in [
        (
            "client",
            lab.iface('c'),
            "10.77.0.1",
            "10.77.0.2",
            "10.78.0.1/24",
        ),
        (
            "server",
            lab.iface('s'),
            "10.77.0.2",
            "10.77.0.1",
            "10.78.0.2/24",
        ),
    ] {
        for args in [
            vec![
                "ip", "link", "add", "vx77", "type", "vxlan", "id", "77", "dstport", "4789",
                "local", local, "remote", remote, "dev", &ifc,
            ],
            vec!["ip", "addr", "add", addr, "dev", "vx77"],
            vec!["ip", "link", "set", "vx77", "up"],
            vec!["ethtool", "-K", "vx77", "tx", "off"],
        ] {
            let out = lab.run(role, &args);
            assert!(
                out.status.success(),
                "{role}: {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn lab_vxlan_impersonation_inside_the_tunnel_is_cut_and_benign_traffic_passes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_vxlan") || !have("openssl") {
        return;
    }
    let mut lab = Lab::up("vx", 1);
    overlay(&lab);
    let cfg = lab.config("block", "inline", 1, "fail-open");
    // Judged clean flows move into the kernel, so both map kinds meet tunnelled flows.
    let text = std::fs::read_to_string(&cfg).expect("read config");
    std::fs::write(
        &cfg,
        text.replacen("[verdict]\n", "[verdict]\nbypass = \"clean\"\n", 1),
    )
    .expect("write config");
    let unmask = lab.unmask(&cfg);
    assert!(ping(&lab, "10.78.0.2"), "ping across the overlay");

    // Benign: an HTTPS download inside the tunnel.
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www dir");
    let blob = www.join("blob");
    random_file(&blob, 2 * 1024 * 1024);
    let (ca, cert, key) = make_certs(lab.dir.path(), "www.lab.example");
    let cmd = format!(
        "cd {} && exec openssl s_server -quiet -accept 10.78.0.2:443 -cert {} -key {} -WWW",
        www.display(),
        cert.display(),
        key.display()
    );
    lab.spawn("server", &["sh", "-c", &cmd]);
    std::thread::sleep(Duration::from_millis(500));
    let out = lab.path("blob.out");
    let ca = ca.to_string_lossy().into_owned();
    let r = lab.curl(
        "https://www.lab.example/blob",
        &out,
        &[
            "--cacert",
            &ca,
            "--resolve",
            "www.lab.example:443:10.78.0.2",
            "--max-time",
            "60",
        ],
    );
    assert!(
        r.status.success() && sha(&out) == sha(&blob),
        "HTTPS inside VXLAN arrived intact: {}",
        String::from_utf8_lossy(&r.stderr)
    );

    // Impersonation: SSH on 443 inside the tunnel, to a second overlay address.
    let out = lab.run(
        "server",
        &["ip", "addr", "add", "10.78.0.3/24", "dev", "vx77"],
    );
    assert!(out.status.success(), "second overlay address");
    let ssh = lab.sink("10.78.0.3:443", &["--banner", SSH_BANNER]);
    let sent = 20 * 1000;
    lab.send(
        "10.78.0.3:443",
        &[
            "--hello",
            SSH_BANNER,
            "--chunks",
            "20",
            "--chunk-size",
            "1000",
            "--pause",
            "0.05",
        ],
    );
    let got = count(&ssh);
    // After the stop: the writer has flushed every record by then.
    let eve = unmask.eve.clone();
    let report = unmask.stop();
    let records = eve_records(&eve);
    // An alert is oriented as the packet that raised it: the server's banner (to the client)
    // or the client's hello, whichever the worker reads first.
    let of_ssh_flow =
        |r: &serde_json::Value| r["dest_ip"] == "10.78.0.3" || r["src_ip"] == "10.78.0.3";
    assert!(
        got < sent,
        "SSH on 443 inside VXLAN was cut: {got} of {sent} bytes"
    );
    let alerts: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event_type"] == "alert" && of_ssh_flow(r))
        .collect();
    // Every record of that flow and the engine's counters, to tell a miss from a lost record.
    let flow_records: Vec<&serde_json::Value> = records.iter().filter(|r| of_ssh_flow(r)).collect();
    assert!(
        alerts
            .iter()
            .any(|r| r["unmask"]["finding"] == "protocol_port_mismatch"
                && r["alert"]["action"] == "blocked"),
        "{flow_records:#?}\n{}",
        report
    );
    // The inner flow's records say which tunnel carried it.
    assert!(
        alerts.iter().all(|r| r["tunnel"].is_object()),
        "no tunnel object: {alerts:#?}"
    );
    for r in records.iter().filter(|r| r["event_type"] == "alert") {
        assert!(
            r["dest_ip"] != "10.78.0.2" && r["src_ip"] != "10.78.0.2",
            "benign traffic in the tunnel alerted: {r}"
        );
    }
    assert!(
        xdp_reason(&report["datapath"], 8) > 0,
        "tunnel frames went to the worker: {}",
        report["datapath"]["xdp"]
    );
    // The XDP program opens VXLAN and looks the inner flow up: after the worker's verdicts,
    // the rest of the cut flow is dropped and the rest of the download bridged in the kernel.
    assert!(
        xdp_reason(&report["datapath"], 2) > 0,
        "the kernel dropped frames of the blocked inner flow: {}",
        report["datapath"]["xdp"]
    );
    assert!(
        xdp_reason(&report["datapath"], 3) > 0,
        "the kernel bridged frames of the bypassed inner flow: {}",
        report["datapath"]["xdp"]
    );
}
