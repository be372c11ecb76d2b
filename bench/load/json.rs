//! The report as `report.json`: every run's raw figures and the ratios, for
//! programs rather than readers. Written by hand because the crate has no
//! JSON library among its dependencies and the shape is fixed and shallow.

use std::fmt::Write as _;

use crate::report::Report;

impl Report<'_> {
    /// `report.json`: options, open-loop rates, skipped scenarios, every
    /// run and the ratios.
    pub(crate) fn json(&self) -> String {
        let mut j = String::new();
        let o = self.options;
        let _ = write!(
            j,
            "{{\"machine\":{},\"pinned\":{},\"quick\":{},\"rounds\":{},\"duration_s\":{},\"warmup_s\":{},\"elapsed_s\":{:.1},\"rates\":{{",
            json_string(&self.machine),
            self.pinned,
            o.quick,
            o.rounds,
            o.duration,
            o.warmup,
            self.elapsed
        );
        let rates: Vec<String> = self
            .rates
            .iter()
            .map(|(k, v)| format!("{}:{v:.1}", json_string(k)))
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(s, why)| {
                format!(
                    "{{\"scenario\":{},\"reason\":{}}}",
                    json_string(&s.name),
                    json_string(why)
                )
            })
            .collect();
        let _ = write!(
            j,
            "{}}},\"skipped\":[{}],\"runs\":[",
            rates.join(","),
            skipped.join(",")
        );
        let runs: Vec<String> = self
            .runs
            .iter()
            .map(|r| {
                let m = &r.m;
                format!(
                    concat!(
                        "{{\"scenario\":{},\"server\":{},\"round\":{},\"messages_per_sec\":{:.1},",
                        "\"mib_per_sec\":{:.3},\"latency_us\":{{\"p50\":{:.2},\"p90\":{:.2},",
                        "\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}},\"server_cpu_s\":{:.3},",
                        "\"window_s\":{:.3},\"server_cpu_us_per_msg\":{:.4},\"server_util\":{:.3},",
                        "\"client_cpu_s\":{:.3},\"client_util\":{},\"steal\":{},",
                        "\"errors\":{},\"mismatched_bytes\":{},",
                        "\"connections\":{{\"requested\":{},\"established\":{}}},",
                        "\"rss_bytes_per_conn\":{},\"loop_bytes\":[{}],\"failure\":{}}}"
                    ),
                    json_string(&r.scenario),
                    json_string(r.peer),
                    r.round,
                    m.msgs_per_sec,
                    m.mib_per_sec,
                    m.latency_us[0],
                    m.latency_us[1],
                    m.latency_us[2],
                    m.latency_us[3],
                    m.latency_us[4],
                    m.server_cpu_s,
                    m.window_s,
                    m.server_us_per_msg,
                    m.server_util(),
                    m.client_cpu_s,
                    m.client_util().map_or("null".into(), |v| format!("{v:.3}")),
                    m.steal.map_or("null".into(), |v| format!("{v:.4}")),
                    m.errors,
                    m.mismatched_bytes,
                    m.requested,
                    m.established,
                    m.rss_per_conn.map_or("null".into(), |v| format!("{v:.1}")),
                    m.loop_bytes
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    m.failure.as_deref().map_or("null".into(), json_string)
                )
            })
            .collect();
        let _ = write!(j, "{}],\"ratios\":[", runs.join(","));
        let ratios: Vec<String> = self
            .ratios()
            .into_iter()
            .map(|r| {
                let num = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.4}"));
                format!(
                    "{{\"scenario\":{},\"peer\":{},\"throughput\":{},\"cpu_per_msg\":{},\"p99\":{}}}",
                    json_string(&r.scenario),
                    json_string(r.peer),
                    num(r.throughput),
                    num(r.cpu),
                    num(r.p99)
                )
            })
            .collect();
        let _ = writeln!(j, "{}]}}", ratios.join(","));
        j
    }
}

/// `s` as a JSON string literal, quotes and control characters escaped.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
