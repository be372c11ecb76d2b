//! The deployment tests' helpers (tests/deploy*.rs): `http_server`
//! instances on chosen ports, one-shot GETs, HAProxy run on the committed
//! deploy/haproxy.cfg with the test's ports, and wrk's summary read back.
//!
//! HAProxy gets its addresses from the environment (the configuration says
//! `bind "${FRONT_ADDR}"`), so the file the docs explain is the file the
//! test runs: one source of truth, nothing substituted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::http::Response;
use super::{example_bin, spawn_example, ChildServer};

/// A loopback address with a port free now (a server binds it a moment
/// later; another test on this machine could only lose that race by
/// picking the same port).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `http_server` on `addr` with `extra` flags.
pub fn http_server_on(addr: SocketAddr, extra: &[&str]) -> ChildServer {
    let addr = addr.to_string();
    let mut args = vec!["--addr", addr.as_str()];
    args.extend_from_slice(extra);
    spawn_example("http_server", &args, None)
}

/// Sends `GET path` with `Connection: close` on a new connection, after
/// `preface` (a PROXY header, say), and reads the response to the close.
/// Every failure (refused, reset, cut short, malformed) is an error, for
/// callers that count them.
pub fn get_with(addr: SocketAddr, preface: &[u8], path: &str) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = preface.to_vec();
    request.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    stream.write_all(&request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad response {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

/// One whole response (status line, headers, exactly `Content-Length`
/// bytes of body), or `None`.
fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            l.split_once(": ")
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect::<Option<_>>()?;
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")?
        .1
        .parse()
        .ok()?;
    let body = raw[end + 4..].to_vec();
    (body.len() == length).then_some(Response {
        status,
        headers,
        body,
    })
}

/// `GET path`, which must succeed.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    get_with(addr, b"", path).unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

/// A running HAProxy on deploy/haproxy.cfg; killed (by its pid) when dropped.
pub struct Haproxy {
    child: Child,
    /// Where clients connect.
    pub front: SocketAddr,
    /// The stats page.
    pub stats: SocketAddr,
    /// Its stderr (server state changes), as lines arrive.
    log: mpsc::Receiver<String>,
}

impl Haproxy {
    /// Starts HAProxy in the foreground with servers `a` and `b`; waits
    /// until its frontend accepts connections.
    pub fn start(a: SocketAddr, b: SocketAddr) -> Haproxy {
        let front = free_addr();
        let stats = free_addr();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg");
        let mut child = Command::new("haproxy")
            .args(["-f", config])
            .env("FRONT_ADDR", front.to_string())
            .env("STATS_ADDR", stats.to_string())
            .env("SERVER_A", a.to_string())
            .env("SERVER_B", b.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run haproxy");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let haproxy = Haproxy {
            child,
            front,
            stats,
            log,
        };
        super::wait_until("haproxy listens", Duration::from_secs(10), || {
            TcpStream::connect(front).is_ok()
        });
        haproxy
    }

    /// The status HAProxy gives server `name` of backend `app` ("UP",
    /// "DOWN", "UP 1/2", ...), from the stats page's CSV.
    pub fn server_status(&self, name: &str) -> String {
        // The page comes chunked even to HTTP/1.0, in one chunk at this
        // size: the chunk-size lines are skipped as lines that are not CSV.
        let mut stream = TcpStream::connect(self.stats).expect("haproxy stats");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /stats;csv HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("stats page");
        let text = raw.split_once("\r\n\r\n").expect("stats response").1;
        let header = text
            .lines()
            .find(|l| l.starts_with("# pxname"))
            .expect("csv header");
        let column = header
            .trim_start_matches("# ")
            .split(',')
            .position(|c| c == "status")
            .expect("status column");
        text.lines()
            .find(|l| l.starts_with(&format!("app,{name},")))
            .and_then(|l| l.split(',').nth(column))
            .unwrap_or_else(|| panic!("no server {name} in {text}"))
            .to_string()
    }

    /// Waits (at most 10 s) until HAProxy says server `name` is `status`.
    pub fn wait_status(&self, name: &str, status: &str) {
        let start = Instant::now();
        loop {
            let now = self.server_status(name);
            if now == status {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "haproxy's server {name} stayed {now}, not {status}; log: {:?}",
                self.log.try_iter().collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What wrk reported: requests, socket errors (connect, read, write,
/// timeout, summed) and non-2xx/3xx responses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WrkSummary {
    pub requests: u64,
    pub socket_errors: u64,
    pub non_2xx: u64,
}

/// Reads wrk's summary: "N requests in ...", the "Socket errors: connect
/// A, read B, write C, timeout D" line (absent when all are 0) and "Non-2xx
/// or 3xx responses: N" (absent when 0).
pub fn parse_wrk(output: &str) -> WrkSummary {
    let mut summary = WrkSummary::default();
    for line in output.lines().map(str::trim) {
        if let Some(n) = line
            .split_once(" requests in ")
            .and_then(|(n, _)| n.parse().ok())
        {
            summary.requests = n;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            summary.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            summary.non_2xx = rest.trim().parse().expect("non-2xx count");
        }
    }
    assert!(
        summary.requests > 0,
        "no request count in wrk's output:\n{output}"
    );
    summary
}

/// `http_server` started by `systemd-socket-activate -l addr`, which binds
/// the socket, and execs the server (same pid, `LISTEN_PID` its own) with
/// the socket as descriptor 3 once a connection arrives. `--addr` points
/// somewhere unusable, so only the handed-over socket can serve.
pub fn socket_activated_http_server(addr: SocketAddr) -> (Child, mpsc::Receiver<String>) {
    let bin = example_bin("http_server");
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(addr.to_string())
        .arg(&bin)
        .args(["--addr", "127.0.0.1:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run systemd-socket-activate");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}
