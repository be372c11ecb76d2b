//! The `http_server` example under clients this project did not write:
//! curl (`--data-binary` to `/echo`, `Expect: 100-continue` with a large
//! body, a chunked upload, `--http1.0`, `-I` for HEAD, absolute-form through
//! `-x`), h2load `--h1` pipelining 16 deep, and ab with keep-alive, GET and
//! POST. Each checks for its tool first (`common::tools::have`): in CI a
//! missing one fails the test; .ci/run installs curl, nghttp2-client
//! (h2load) and apache2-utils (ab).
mod common;

use std::path::PathBuf;

use common::http::server;
use common::tools::{have, run_bounded};

/// A file of `len` bytes of every value in the temporary directory, named
/// for this test process and `tag`; removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, len: usize) -> TempFile {
        let path = std::env::temp_dir().join(format!("reactor-http-{}-{tag}", std::process::id()));
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + i / 257) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }

    fn arg(&self) -> String {
        format!("@{}", self.0.display())
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs curl with `args` plus `-o OUT`; returns (what it printed, the body).
fn curl(args: &[&str], tag: &str) -> (String, Vec<u8>) {
    let out = TempFile::new(&format!("{tag}-out"), 0);
    let mut all = vec!["-sS", "--max-time", "10", "-o"];
    let out_path = out.0.display().to_string();
    all.push(&out_path);
    all.extend_from_slice(args);
    let printed = run_bounded(20, "curl", &all);
    (printed, out.bytes())
}

#[test]
fn curl_echoes_binary_bodies_by_length_and_chunked() {
    if !have("curl") {
        return;
    }
    let server = server(&[]);
    let url = format!("http://{}/echo", server.addr);
    let file = TempFile::new("body", 700_000);
    let (printed, body) = curl(
        &[
            "-w",
            "%{http_code} %{content_type}",
            "--data-binary",
            &file.arg(),
            &url,
        ],
        "cl",
    );
    assert_eq!(printed, "200 application/x-www-form-urlencoded");
    assert!(body == file.bytes(), "Content-Length body echoed");

    let (printed, body) = curl(
        &[
            "-w",
            "%{http_code}",
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: application/x-test",
            "-v",
            "--data-binary",
            &file.arg(),
            &url,
        ],
        "chunked",
    );
    assert!(
        printed.contains("> Transfer-Encoding: chunked"),
        "{printed}"
    );
    assert!(
        printed.contains("< Content-Type: application/x-test"),
        "{printed}"
    );
    // run_bounded puts stdout (`-w`) before stderr (`-v`).
    assert!(printed.starts_with("200"), "{printed}");
    assert!(body == file.bytes(), "chunked body echoed");
}

#[test]
fn curl_expect_100_continue_gets_continue_or_a_final_refusal() {
    if !have("curl") {
        return;
    }
    let server = server(&[]);
    let url = format!("http://{}/echo", server.addr);
    let file = TempFile::new("expect", 900_000);
    // A long expect timeout: the body must go because of the 100, not
    // because curl gave up waiting for it.
    let (printed, body) = curl(
        &[
            "-v",
            "--expect100-timeout",
            "8",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &file.arg(),
            &url,
        ],
        "expect",
    );
    assert!(printed.contains("< HTTP/1.1 100 Continue"), "{printed}");
    assert!(printed.contains("< HTTP/1.1 200 OK"), "{printed}");
    assert!(body == file.bytes());

    let big = TempFile::new("expect-big", 2 * 1024 * 1024);
    let (printed, _) = curl(
        &[
            "-v",
            "--expect100-timeout",
            "8",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &big.arg(),
            &url,
        ],
        "expect-big",
    );
    assert!(printed.contains("< HTTP/1.1 413"), "{printed}");
    assert!(!printed.contains("100 Continue"), "{printed}");
    assert!(printed.contains("< Connection: close"), "{printed}");
}

#[test]
fn curl_http_1_0_head_and_absolute_form() {
    if !have("curl") {
        return;
    }
    let server = server(&[]);
    let root = format!("http://{}/", server.addr);
    let (printed, body) = curl(&["-v", "--http1.0", &root], "v10");
    assert!(printed.contains("> GET / HTTP/1.0"), "{printed}");
    assert!(printed.contains("< Connection: close"), "{printed}");
    assert_eq!(body, b"Hello, World!");
    let (_, body) = curl(
        &[
            "--http1.0",
            "--data-binary",
            "one-point-oh",
            &format!("{root}echo"),
        ],
        "v10-echo",
    );
    assert_eq!(body, b"one-point-oh");

    // HEAD: the headers GET would get, and curl reads no body.
    for (path, length) in [("", "13"), ("echo", "0"), ("missing", "10")] {
        let (printed, head) = curl(
            &["-I", "-w", "%{http_code}", &format!("{root}{path}")],
            "head",
        );
        let head = String::from_utf8(head).unwrap();
        assert!(
            head.contains(&format!("Content-Length: {length}\r\n")),
            "{path}: {head}"
        );
        assert!(
            printed == "200" || (path == "missing" && printed == "404"),
            "{printed}"
        );
    }

    // Through the server as a proxy, curl sends absolute-form targets.
    let proxy = format!("http://{}", server.addr);
    let (_, body) = curl(&["-x", &proxy, "http://example.invalid/"], "proxy");
    assert_eq!(body, b"Hello, World!");
    let (_, body) = curl(
        &[
            "-x",
            &proxy,
            "--data-binary",
            "via-proxy",
            "http://example.invalid:8080/echo?x=1",
        ],
        "proxy-echo",
    );
    assert_eq!(body, b"via-proxy");
}

/// Checks an h2load report: every request done and 2xx, none failed.
fn check_h2load(report: &str, n: u32) {
    eprintln!("{report}");
    let requests = format!(
        "requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored, 0 timeout"
    );
    assert!(report.contains(&requests), "{report}");
    assert!(
        report.contains(&format!("status codes: {n} 2xx, 0 3xx, 0 4xx, 0 5xx")),
        "{report}"
    );
}

#[test]
fn h2load_pipelined_16_deep_has_no_errors() {
    if !have("h2load") {
        return;
    }
    let server = server(&[]);
    let url = format!("http://{}/", server.addr);
    let report = run_bounded(
        60,
        "h2load",
        &["--h1", "-n", "2000", "-c", "10", "-m", "16", &url],
    );
    check_h2load(&report, 2000);
    // POSTs to /echo, pipelined too.
    let file = TempFile::new("h2load", 3000);
    let file_arg = file.0.display().to_string();
    let url = format!("{url}echo");
    let report = run_bounded(
        60,
        "h2load",
        &[
            "--h1", "-n", "1000", "-c", "10", "-m", "8", "-d", &file_arg, &url,
        ],
    );
    check_h2load(&report, 1000);
}

/// Checks an ab report: every request complete, none failed, all 2xx.
fn check_ab(report: &str, n: u32, keep_alive: bool) {
    eprintln!("{report}");
    assert!(
        report.contains(&format!("Complete requests:      {n}")),
        "{report}"
    );
    assert!(report.contains("Failed requests:        0"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    if keep_alive {
        assert!(
            report.contains(&format!("Keep-Alive requests:    {n}")),
            "{report}"
        );
    }
}

#[test]
fn ab_keep_alive_get_and_post_run_clean() {
    if !have("ab") {
        return;
    }
    let server = server(&[]);
    let url = format!("http://{}/", server.addr);
    check_ab(
        &run_bounded(60, "ab", &["-q", "-n", "2000", "-c", "20", "-k", &url]),
        2000,
        true,
    );
    let file = TempFile::new("ab", 5000);
    let file_arg = file.0.display().to_string();
    let report = run_bounded(
        60,
        "ab",
        &[
            "-q",
            "-n",
            "500",
            "-c",
            "10",
            "-k",
            "-p",
            &file_arg,
            "-T",
            "application/x-ab",
            &format!("{url}echo"),
        ],
    );
    check_ab(&report, 500, true);
    // Echoed in full: ab counts the bytes of each response's body.
    assert!(
        report.contains("Document Length:        5000 bytes"),
        "{report}"
    );
}
