//! The `http_server` example's `GET /basic_status`: nginx's `stub_status`
//! page, in its exact shape (checked line by line, through curl too), with
//! counts that follow the connections (idle, mid-head, mid-body, the asker
//! itself), and read by prometheus-nginx-exporter, the tool it exists for.
mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{assert_eof, read_response, server};
use common::tools::{have, run_bounded};
use common::wait_until;

/// The page's numbers, in the order nginx prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    active: u64,
    accepts: u64,
    handled: u64,
    requests: u64,
    reading: u64,
    writing: u64,
    waiting: u64,
}

/// Matches `line` against `pattern`, where each `#` stands for one or more
/// decimal digits and every other byte must match exactly (nginx's trailing
/// spaces included); returns the numbers. A regular expression's job,
/// without adding the crate for it.
fn numbers_in(line: &str, pattern: &str) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut rest = line;
    for part in pattern.split_inclusive('#') {
        let (literal, number) = match part.strip_suffix('#') {
            Some(literal) => (literal, true),
            None => (part, false),
        };
        rest = rest
            .strip_prefix(literal)
            .unwrap_or_else(|| panic!("{line:?} does not match {pattern:?}"));
        if number {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            assert!(digits > 0, "{line:?} does not match {pattern:?}");
            numbers.push(rest[..digits].parse().unwrap());
            rest = &rest[digits..];
        }
    }
    assert!(rest.is_empty(), "{line:?} does not match {pattern:?}");
    numbers
}

/// Parses a page, checking its shape: nginx's four lines, byte for byte
/// but for the numbers.
fn parse_page(body: &[u8]) -> Page {
    let text = std::str::from_utf8(body).expect("ASCII page");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 4, "{text:?}");
    let active = numbers_in(lines[0], "Active connections: # \n");
    assert_eq!(lines[1], "server accepts handled requests\n");
    let counters = numbers_in(lines[2], " # # # \n");
    let phases = numbers_in(lines[3], "Reading: # Writing: # Waiting: # \n");
    let page = Page {
        active: active[0],
        accepts: counters[0],
        handled: counters[1],
        requests: counters[2],
        reading: phases[0],
        writing: phases[1],
        waiting: phases[2],
    };
    assert_eq!(
        page.active,
        page.reading + page.writing + page.waiting,
        "{page:?}"
    );
    page
}

/// A keep-alive client that asks for the page.
struct Asker {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Asker {
    fn new(addr: SocketAddr) -> Asker {
        let stream = common::client(addr);
        let reader = BufReader::new(stream.try_clone().unwrap());
        Asker { stream, reader }
    }

    fn page(&mut self) -> Page {
        self.stream
            .write_all(b"GET /basic_status HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut self.reader, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        parse_page(&r.body)
    }

    /// Asks until `check` holds for the page (the server sees other
    /// clients' bytes a moment after they are sent); at most 5 s.
    fn page_when(&mut self, what: &str, check: impl Fn(&Page) -> bool) -> Page {
        let start = Instant::now();
        loop {
            let page = self.page();
            if check(&page) {
                return page;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timed out waiting for {what}: {page:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A connection that has had one `GET /` answered and stays open, idle.
fn idle_client(addr: SocketAddr) -> TcpStream {
    let mut stream = common::client(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).status, 200);
    stream
}

#[test]
fn counts_follow_idle_reading_and_busy_connections() {
    let server = server(&[]);
    let mut asker = Asker::new(server.addr);
    let first = asker.page();
    assert_eq!(
        first,
        Page {
            active: 1,
            accepts: 1,
            handled: 1,
            requests: 1,
            reading: 0,
            writing: 1,
            waiting: 0
        },
        "the asker alone, counted as writing, as nginx counts it"
    );

    let _idle_a = idle_client(server.addr);
    let _idle_b = idle_client(server.addr);
    let mut half = common::client(server.addr);
    half.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    let page = asker.page_when("the half head to be read", |p| p.reading == 1);
    assert_eq!(page.active, 4, "{page:?}");
    assert_eq!((page.accepts, page.handled), (4, 4), "{page:?}");
    assert_eq!((page.writing, page.waiting), (1, 2), "{page:?}");
    // Two `GET /`, and every page asked so far, this one included.
    let asked = page.requests - 2;
    assert!(asked >= 2, "{page:?}");

    // Each request counts once, the one reading the page included.
    let next = asker.page();
    assert_eq!(next.requests, page.requests + 1);
    assert_eq!(next.accepts, page.accepts);

    // A body still arriving makes its connection busy.
    let mut body = common::client(server.addr);
    body.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let page = asker.page_when("the body to begin", |p| p.writing == 2);
    assert_eq!((page.active, page.reading, page.waiting), (5, 1, 2));

    // The head completed, the body finished: both idle again.
    half.write_all(b"st: t\r\n\r\n").unwrap();
    body.write_all(b"defghij").unwrap();
    for stream in [&half, &body] {
        let r = read_response(&mut BufReader::new(stream.try_clone().unwrap()), false);
        assert_eq!(r.status, 200);
    }
    let page = asker.page_when("both to be idle", |p| p.waiting == 4);
    assert_eq!((page.active, page.reading, page.writing), (5, 0, 1));

    // Closed clients leave the count; accepts and handled only grow.
    drop((half, body));
    let page = asker.page_when("two closes", |p| p.active == 3);
    assert_eq!((page.accepts, page.handled), (5, 5));
    assert_eq!((page.reading, page.writing, page.waiting), (0, 1, 2));
}

#[test]
fn head_and_other_methods() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"HEAD /basic_status HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut reader, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // The length GET's page would have: these numbers are one digit each.
    let length = "Active connections: 1 \nserver accepts handled requests\n 1 1 1 \n\
                  Reading: 0 Writing: 1 Waiting: 0 \n"
        .len();
    assert_eq!(r.header("content-length"), Some(&*length.to_string()));
    stream
        .write_all(b"POST /basic_status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut reader, false);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eof(&mut reader);
}

#[test]
fn curl_reads_the_page_byte_for_byte_in_nginx_shape() {
    if !have("curl") {
        return;
    }
    let server = server(&[]);
    let _idle = [idle_client(server.addr), idle_client(server.addr)];
    let url = format!("http://{}/basic_status", server.addr);
    let out = run_bounded(10, "curl", &["-sS", &url]);
    let page = parse_page(out.as_bytes());
    assert_eq!(
        page,
        Page {
            active: 3,
            accepts: 3,
            handled: 3,
            requests: 3,
            reading: 0,
            writing: 1,
            waiting: 2
        }
    );
    let again = parse_page(run_bounded(10, "curl", &["-sS", &url]).as_bytes());
    assert_eq!((again.accepts, again.requests), (4, 4));
}

/// prometheus-nginx-exporter as a child process; killed when dropped.
struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Exporter {
    /// Starts it scraping `scrape` and waits (at most 10 s) until it serves.
    fn start(scrape: SocketAddr) -> Exporter {
        // A port free now; the exporter binds it a moment later.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new("prometheus-nginx-exporter")
            .arg(format!("-nginx.scrape-uri=http://{scrape}/basic_status"))
            .arg(format!("-web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus-nginx-exporter");
        let mut exporter = Exporter { child, addr };
        wait_until("the exporter to listen", Duration::from_secs(10), || {
            let exited = exporter.child.try_wait().unwrap();
            assert!(exited.is_none(), "the exporter exited: {exited:?}");
            TcpStream::connect(addr).is_ok()
        });
        exporter
    }

    /// Its metrics, as (name, value) for the unlabelled `nginx_*` lines.
    fn metrics(&self) -> Vec<(String, f64)> {
        let url = format!("http://{}/metrics", self.addr);
        run_bounded(10, "curl", &["-sS", &url])
            .lines()
            .filter(|l| l.starts_with("nginx_") && !l.contains('{'))
            .map(|l| {
                let (name, value) = l.split_once(' ').expect("metric line");
                (name.to_string(), value.parse().expect("metric value"))
            })
            .collect()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name` among `metrics`.
fn metric(metrics: &[(String, f64)], name: &str) -> u64 {
    let value = metrics
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {metrics:?}"))
        .1;
    value as u64
}

#[test]
fn prometheus_nginx_exporter_reads_the_page() {
    if !have("prometheus-nginx-exporter") || !have("curl") {
        return;
    }
    let server = server(&[]);
    let exporter = Exporter::start(server.addr);
    let _idle = [
        idle_client(server.addr),
        idle_client(server.addr),
        idle_client(server.addr),
    ];
    // Scraped once already at its start (it checks the page then).
    let first = exporter.metrics();
    assert_eq!(metric(&first, "nginx_up"), 1, "{first:?}");

    // The page as a client of ours sees it, then the exporter's view: the
    // same, plus the exporter's own request and, if it did not keep its
    // connection, its new one. Our client stays open, idle.
    let mut ours = Asker::new(server.addr);
    let page = ours.page();
    let m = exporter.metrics();
    assert_eq!(metric(&m, "nginx_up"), 1, "{m:?}");
    let accepted = metric(&m, "nginx_connections_accepted");
    assert!(
        accepted == page.accepts || accepted == page.accepts + 1,
        "{page:?} {m:?}"
    );
    let new_conn = accepted - page.accepts;
    assert_eq!(metric(&m, "nginx_connections_handled"), accepted);
    assert_eq!(
        metric(&m, "nginx_connections_active"),
        page.active + new_conn,
        "{page:?} {m:?}"
    );
    assert_eq!(metric(&m, "nginx_http_requests_total"), page.requests + 1);
    assert_eq!(metric(&m, "nginx_connections_reading"), 0);
    assert_eq!(metric(&m, "nginx_connections_writing"), 1, "the exporter");
    // The idle clients (ours, and any the exporter keeps but did not use
    // for this scrape).
    let waiting = metric(&m, "nginx_connections_waiting");
    assert_eq!(waiting, metric(&m, "nginx_connections_active") - 1);
    assert!(waiting >= 4, "{m:?}");
}
