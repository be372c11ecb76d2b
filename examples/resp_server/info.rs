//! `INFO [section ...]` for the `resp_server` example, in Redis 7's format
//! and with Redis's field names, because monitoring tools parse it by name:
//! `redis-cli --stat` reads `connected_clients`, `used_memory`,
//! `total_commands_processed` and the keyspace lines; prometheus's
//! redis_exporter turns every numeric field into a metric; ioredis's ready
//! check looks for `loading:0`.
//!
//! Every value is measured (the loop's counters from `Context::stats`, the
//! server's own in `metrics.rs`, the key space's size from `store.rs`) or
//! is a constant that is true of this server (no replicas, no persistence,
//! no eviction). Fields a real Redis has and this server cannot measure are
//! left out rather than invented.
//!
//! The reply is a bulk string in RESP2 and a verbatim string (`=`, format
//! `txt`) in RESP3, as Redis sends it.

use std::fmt::Display;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::conn::VERSION;
use crate::metrics::{human, Rate};
use crate::replies::Replies;
use crate::reply::verbatim;

/// What INFO reports, gathered by the caller in one place (the loop's
/// counters, the server's, the key space's) so that this module only
/// formats.
pub struct Facts {
    /// When the server started.
    pub started: Instant,
    /// A random id for this run (Redis's `run_id`: 40 hex digits).
    pub run_id: String,
    /// The port the server listens on.
    pub port: u16,
    /// Connections open now, and the most the server accepts.
    pub clients: (usize, usize),
    /// The largest query buffer and output queue among the clients now
    /// (Redis's `client_recent_max_*`, which it keeps over a few seconds).
    pub max_buffers: (usize, usize),
    /// The loop's counters.
    pub stats: reactor::Stats,
    /// Commands run, keyspace hits and misses.
    pub commands: u64,
    pub hits: u64,
    pub misses: u64,
    /// The sampled rates: commands/s, bytes in/s, bytes out/s.
    pub rates: [u64; 3],
    /// Keys removed on expiry.
    pub expired: u64,
    /// Channels and patterns with subscribers.
    pub pubsub: (usize, usize),
    /// Estimated bytes: the key space's, and the clients' (buffers and
    /// per-connection state).
    pub memory: (usize, usize),
    /// The highest `used_memory` INFO has reported.
    pub peak: usize,
    /// The process's resident set size.
    pub rss: u64,
    /// Live keys, and of those with a TTL.
    pub keys: (usize, usize),
}

impl Facts {
    /// Redis's `used_memory`: the key space plus the clients.
    pub fn used_memory(&self) -> usize {
        self.memory.0 + self.memory.1
    }
}

/// Redis 7's default sections, in its order.
const DEFAULT: [&str; 8] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cluster",
    "keyspace",
];

/// `INFO [section ...]`: the named sections (any case) that exist, in
/// Redis's order; unknown names add nothing. No argument, `default`, `all`
/// and `everything` give every section (the ones `all` adds to `default`
/// in Redis, per-command statistics, are not kept here).
pub fn info(r: &mut Replies<'_, '_>, sections: &[&[u8]], facts: &Facts) {
    let everything = sections.is_empty()
        || sections.iter().any(|s| {
            [&b"default"[..], b"all", b"everything"]
                .iter()
                .any(|all| s.eq_ignore_ascii_case(all))
        });
    let mut text = String::new();
    for section in DEFAULT {
        let wanted = everything
            || sections
                .iter()
                .any(|s| s.eq_ignore_ascii_case(section.as_bytes()));
        if !wanted {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        write_section(&mut text, section, facts);
    }
    let resp3 = r.resp3;
    verbatim(r.buf(), text.as_bytes(), resp3);
}

/// One section: its `# Title` line and `field:value` lines, each ended by
/// CRLF.
fn write_section(text: &mut String, section: &str, facts: &Facts) {
    let (first, rest) = section.split_at(1);
    text.push_str(&format!("# {}{rest}\r\n", first.to_ascii_uppercase()));
    let mut line = |field: &str, value: &dyn Display| {
        text.push_str(&format!("{field}:{value}\r\n"));
    };
    let stats = &facts.stats;
    match section {
        "server" => {
            line("redis_version", &VERSION);
            line("redis_git_sha1", &"00000000");
            line("redis_git_dirty", &0);
            line("redis_mode", &"standalone");
            line("os", &os());
            line("arch_bits", &usize::BITS);
            line("multiplexing_api", &"epoll");
            line("process_id", &std::process::id());
            line("process_supervised", &"no");
            line("run_id", &facts.run_id);
            line("tcp_port", &facts.port);
            let micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            line("server_time_usec", &micros);
            let uptime = facts.started.elapsed().as_secs();
            line("uptime_in_seconds", &uptime);
            line("uptime_in_days", &(uptime / 86400));
            // The sampler's rate (metrics.rs), which is what `hz` means.
            line("hz", &10);
            line("configured_hz", &10);
            let exe = std::env::current_exe().unwrap_or_default();
            line("executable", &exe.display());
            line("config_file", &"");
            line("io_threads_active", &0);
        }
        "clients" => {
            line("connected_clients", &facts.clients.0);
            line("cluster_connections", &0);
            line("maxclients", &facts.clients.1);
            line("client_recent_max_input_buffer", &facts.max_buffers.0);
            line("client_recent_max_output_buffer", &facts.max_buffers.1);
            // No command blocks here (no BLPOP, no WAIT).
            line("blocked_clients", &0);
            line("tracking_clients", &0);
            line("clients_in_timeout_table", &0);
        }
        "memory" => {
            let used = facts.used_memory();
            line("used_memory", &used);
            line("used_memory_human", &human(used as u64));
            line("used_memory_rss", &facts.rss);
            line("used_memory_rss_human", &human(facts.rss));
            line("used_memory_peak", &facts.peak);
            line("used_memory_peak_human", &human(facts.peak as u64));
            line("used_memory_overhead", &facts.memory.1);
            line("used_memory_dataset", &facts.memory.0);
            let ratio = match used {
                0 => 0.0,
                used => facts.rss as f64 / used as f64,
            };
            line("mem_fragmentation_ratio", &format!("{ratio:.2}"));
            line("maxmemory", &0);
            line("maxmemory_human", &"0B");
            line("maxmemory_policy", &"noeviction");
            line("mem_clients_normal", &facts.memory.1);
            line("mem_clients_slaves", &0);
        }
        "persistence" => {
            line("loading", &0);
            line("async_loading", &0);
            line("rdb_bgsave_in_progress", &0);
            line("aof_enabled", &0);
            line("aof_rewrite_in_progress", &0);
        }
        "stats" => {
            // Redis counts a connection refused at `maxclients` as
            // rejected, not received.
            let received = stats.accepted.saturating_sub(stats.rejected);
            line("total_connections_received", &received);
            line("total_commands_processed", &facts.commands);
            let [ops, input, output] = facts.rates;
            line("instantaneous_ops_per_sec", &ops);
            line("total_net_input_bytes", &stats.bytes_in);
            line("total_net_output_bytes", &stats.bytes_out);
            line("instantaneous_input_kbps", &kbps(input));
            line("instantaneous_output_kbps", &kbps(output));
            line("rejected_connections", &stats.rejected);
            line("expired_keys", &facts.expired);
            line("evicted_keys", &0);
            line("keyspace_hits", &facts.hits);
            line("keyspace_misses", &facts.misses);
            line("pubsub_channels", &facts.pubsub.0);
            line("pubsub_patterns", &facts.pubsub.1);
            line("total_reads_processed", &stats.read_syscalls);
            line("total_writes_processed", &stats.write_syscalls);
        }
        "replication" => {
            line("role", &"master");
            line("connected_slaves", &0);
            line("master_repl_offset", &0);
        }
        "cluster" => line("cluster_enabled", &0),
        _ => {
            let (keys, expires) = facts.keys;
            if keys > 0 {
                line("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
            }
        }
    }
}

/// Bytes per second as Redis prints its `*_kbps`: KiB/s, two decimals.
fn kbps(bytes_per_sec: u64) -> String {
    format!("{:.2}", bytes_per_sec as f64 / 1024.0)
}

/// Redis's `os`: the kernel's name, release and machine, as `uname` gives
/// them (read from /proc, so no libc call is needed).
fn os() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} {} {}",
        if cfg!(target_os = "linux") {
            "Linux"
        } else {
            std::env::consts::OS
        },
        release.trim(),
        std::env::consts::ARCH
    )
}

/// Which rate each `Facts::rates` slot holds.
pub const RATES: [Rate; 3] = [Rate::Commands, Rate::NetInput, Rate::NetOutput];
