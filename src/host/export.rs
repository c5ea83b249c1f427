//! The baseline as JSON lines, for `unmask baseline export|import|stats`: one object per pair,
//! with the times both as nanoseconds (what import reads back exactly) and as UTC text.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::baseline::{Baseline, Pair, PairKind, Seen, MAX_VALUE};
use super::ip_text;
use crate::capture::Timestamp;
use crate::text::civil_from_days;
use crate::wire::Family;

fn utc(ts: Timestamp) -> String {
    let secs = ts.secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// One pair as an export row.
pub fn row(p: &Pair, s: &Seen) -> Value {
    let mut v = json!({
        "type": p.kind.name(),
        "ip": ip_text(p.family, &p.addr),
        "value": p.value,
        "first_seen": utc(s.first),
        "last_seen": utc(s.last),
        "first_seen_ns": s.first.0,
        "last_seen_ns": s.last.0,
        "count": s.count,
    });
    if !p.kind.is_client() {
        v["port"] = p.port.into();
    }
    v
}

/// A row back into a pair; the message names the field and what is accepted.
pub fn parse_row(line: &str) -> Result<(Pair, Seen), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let text = |k: &str| {
        v[k].as_str()
            .ok_or_else(|| format!("field `{k}`: missing or not a string"))
    };
    let num = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("field `{k}`: missing or not a non-negative integer"))
    };
    let ty = text("type")?;
    let kind = PairKind::from_name(ty).ok_or_else(|| {
        let names: Vec<&str> = PairKind::ALL.iter().map(|k| k.name()).collect();
        format!("field `type`: {ty:?}; accepted: {}", names.join(", "))
    })?;
    let ip_s = text("ip")?;
    let ip: IpAddr = ip_s
        .parse()
        .map_err(|_| format!("field `ip`: {ip_s:?} is not an IPv4 or IPv6 address"))?;
    let (family, addr) = match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (Family::V4, b)
        }
        IpAddr::V6(a) => (Family::V6, a.octets()),
    };
    let port = if kind.is_client() {
        0
    } else {
        let p = num("port")?;
        u16::try_from(p).map_err(|_| format!("field `port`: {p}; accepted: 0 to 65535"))?
    };
    let value = text("value")?;
    if value.len() > MAX_VALUE {
        return Err(format!(
            "field `value`: {} bytes; accepted: at most {MAX_VALUE}",
            value.len()
        ));
    }
    let seen = Seen {
        first: Timestamp(num("first_seen_ns")?),
        last: Timestamp(num("last_seen_ns")?),
        count: num("count")?,
    };
    if seen.first > seen.last {
        return Err("field `first_seen_ns` is after `last_seen_ns`".into());
    }
    Ok((
        Pair {
            kind,
            family,
            addr,
            port,
            value: value.into(),
        },
        seen,
    ))
}

/// What `baseline stats` prints.
pub fn stats(b: &Baseline) -> Value {
    let pairs = b.pairs();
    let mut by_type = serde_json::Map::new();
    for k in PairKind::ALL {
        let n = pairs.iter().filter(|(p, _)| p.kind == k).count();
        by_type.insert(k.name().into(), n.into());
    }
    let mut hosts: Vec<(Family, [u8; 16])> = pairs
        .iter()
        .filter(|(p, _)| p.kind.is_client())
        .map(|(p, _)| (p.family, p.addr))
        .collect();
    hosts.sort();
    hosts.dedup();
    let meta = b.meta();
    let size = std::fs::metadata(b.path()).map(|m| m.len()).unwrap_or(0);
    json!({
        "store": b.path(),
        "file_bytes": size,
        "pairs": pairs.len(),
        "by_type": by_type,
        "client_hosts": hosts.len(),
        "learning_since": (meta.created_ns != 0).then(|| utc(Timestamp(meta.created_ns))),
        "latest_seen": (meta.clock_ns != 0).then(|| utc(Timestamp(meta.clock_ns))),
        "observations": pairs.iter().map(|(_, s)| s.count).sum::<u64>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_parses_back_to_the_same_pair() {
        let p = Pair {
            kind: PairKind::ServerJa3s,
            family: Family::V6,
            addr: "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            port: 8443,
            value: "abc".into(),
        };
        let s = Seen {
            first: Timestamp(5),
            last: Timestamp(9_000_000_000),
            count: 3,
        };
        let line = row(&p, &s).to_string();
        assert_eq!(parse_row(&line).unwrap(), (p, s));
        assert!(
            line.contains("\"last_seen\":\"1970-01-01T00:00:09Z\""),
            "{line}"
        );
    }

    #[test]
    fn bad_rows_name_the_field_and_what_is_accepted() {
        let e = parse_row(r#"{"type":"client_ja5","ip":"10.0.0.1"}"#).unwrap_err();
        assert!(e.contains("`type`") && e.contains("client_ja4"), "{e}");
        let e = parse_row(r#"{"type":"client_ja4","ip":"10.0.0"}"#).unwrap_err();
        assert!(e.contains("`ip`"), "{e}");
        let e = parse_row(
            r#"{"type":"server_cert","ip":"10.0.0.1","port":70000,"value":"x","first_seen_ns":1,"last_seen_ns":2,"count":1}"#,
        )
        .unwrap_err();
        assert!(e.contains("`port`") && e.contains("65535"), "{e}");
    }
}
