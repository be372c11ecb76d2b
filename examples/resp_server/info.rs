//! `INFO [section ...]` for the `resp_server` example: the fields clients
//! read at connect time (ioredis's ready check looks for `loading:0`,
//! others check `redis_version`, `role`, the keyspace), in Redis 7's
//! format. Fields a real Redis has and this server does not measure are
//! left out rather than invented.
//!
//! The reply is a bulk string in RESP2 and a verbatim string (`=`, format
//! `txt`) in RESP3, as Redis sends it.

use std::time::Instant;

use crate::conn::VERSION;
use crate::decimal::push_decimal;
use crate::replies::Replies;
use crate::reply::bulk;

/// What INFO reports about the server beyond the key space.
pub struct Facts {
    /// Connections open now.
    pub clients: usize,
    /// When the server started.
    pub started: Instant,
    /// Keys, and of those with a TTL.
    pub keys: (usize, usize),
}

/// Sections in Redis's order; INFO without arguments (or `default`, `all`,
/// `everything`) gives them all.
const SECTIONS: [&str; 5] = [
    "server",
    "clients",
    "persistence",
    "replication",
    "keyspace",
];

/// `INFO [section ...]`: the named sections (any case) that exist, in
/// Redis's order; unknown names add nothing.
pub fn info(r: &mut Replies<'_, '_>, sections: &[&[u8]], facts: &Facts) {
    let everything = sections.is_empty()
        || sections.iter().any(|s| {
            [&b"default"[..], b"all", b"everything"]
                .iter()
                .any(|all| s.eq_ignore_ascii_case(all))
        });
    let mut text = Vec::new();
    for section in SECTIONS {
        let wanted = everything
            || sections
                .iter()
                .any(|s| s.eq_ignore_ascii_case(section.as_bytes()));
        if !wanted {
            continue;
        }
        if !text.is_empty() {
            text.extend_from_slice(b"\r\n");
        }
        write_section(&mut text, section, facts);
    }
    if r.resp3 {
        let out = r.buf();
        out.push(b'=');
        push_decimal(out, text.len() as u64 + 4);
        out.extend_from_slice(b"\r\ntxt:");
        out.extend_from_slice(&text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(r.buf(), &text);
    }
}

/// One section: its `# Title` line and `field:value` lines.
fn write_section(text: &mut Vec<u8>, section: &str, facts: &Facts) {
    let (first, rest) = section.split_at(1);
    text.extend_from_slice(format!("# {}{rest}\r\n", first.to_ascii_uppercase()).as_bytes());
    let mut line = |field: &str, value: &str| {
        text.extend_from_slice(format!("{field}:{value}\r\n").as_bytes());
    };
    match section {
        "server" => {
            line("redis_version", VERSION);
            line("redis_mode", "standalone");
            line("arch_bits", &(usize::BITS).to_string());
            line("multiplexing_api", "epoll");
            line("process_id", &std::process::id().to_string());
            let uptime = facts.started.elapsed().as_secs();
            line("uptime_in_seconds", &uptime.to_string());
            line("uptime_in_days", &(uptime / 86400).to_string());
        }
        "clients" => line("connected_clients", &facts.clients.to_string()),
        "persistence" => {
            line("loading", "0");
            line("async_loading", "0");
            line("rdb_bgsave_in_progress", "0");
            line("aof_enabled", "0");
        }
        "replication" => {
            line("role", "master");
            line("connected_slaves", "0");
        }
        _ => {
            let (keys, expires) = facts.keys;
            if keys > 0 {
                line("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
            }
        }
    }
}
