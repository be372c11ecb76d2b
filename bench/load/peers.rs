//! The servers under comparison: what each speaks, how it is started, and
//! which of them this machine can run.
//!
//! The list is built at run time, not fixed: a peer whose program or load
//! tool is not installed is left out with a note, so a machine without
//! nginx or redis still compares what it can.

use std::path::PathBuf;

/// What a server speaks, and so which load tool and scenarios apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Raw byte echo over TCP, driven by `loadgen`.
    Echo,
    /// HTTP/1.1 `GET /` with keep-alive, driven by `wrk`.
    Http,
    /// Redis protocol `PING`, `SET` and `GET`, driven by `redis-benchmark`.
    Resp,
}

/// How to start a server. Examples and C peers take `--addr 127.0.0.1:0`
/// and print "... listening on ADDR" on stderr; nginx and redis are given a
/// free port and waited on until it accepts.
#[derive(Clone, Debug)]
pub(crate) enum Launch {
    /// An example of the reactor (`examples/`) or of this package
    /// (`bench/examples/`), built with `--release`.
    Example(&'static str),
    /// A program compiled by this bench (a C peer): path once built.
    Command(PathBuf),
    /// nginx with `bench/nginx.conf` (one worker) on a port picked here.
    Nginx,
    /// `redis-server` without persistence on a port picked here.
    Redis,
}

/// One server under comparison.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// Short name used in tables, charts and `--peers`.
    pub(crate) name: &'static str,
    /// What it speaks.
    pub(crate) protocol: Protocol,
    /// How to start it.
    pub(crate) launch: Launch,
    /// The project's own server for its protocol: ratios are computed
    /// against it. One per protocol.
    pub(crate) is_project: bool,
    /// A client-ceiling peer (c-http): the least work a server can do per
    /// request, not a server compared on its merits. Other peers of its
    /// protocol are also given as a share of its throughput. At most one
    /// per protocol, never the project.
    pub(crate) ceiling: bool,
    /// Remark shown in the report (threads, buffering model).
    pub(crate) note: &'static str,
}

/// The servers compared. The first is the project; the C peers' paths are
/// filled in once they are compiled (`None`: left out).
pub(crate) fn peers(c_echo: Option<PathBuf>, c_http: Option<PathBuf>) -> Vec<Peer> {
    let mut peers = vec![
        Peer {
            name: "reactor",
            protocol: Protocol::Echo,
            launch: Launch::Example("echo_server"),
            is_project: true,
            ceiling: false,
            note: "examples/echo_server.rs: this crate, one thread",
        },
        Peer {
            name: "tokio",
            protocol: Protocol::Echo,
            launch: Launch::Example("tokio_echo"),
            is_project: false,
            ceiling: false,
            note: "bench/examples/tokio_echo.rs: current-thread runtime, task per connection",
        },
        Peer {
            name: "threaded",
            protocol: Protocol::Echo,
            launch: Launch::Example("threaded_echo"),
            is_project: false,
            ceiling: false,
            note: "bench/examples/threaded_echo.rs: std, one blocking thread per connection",
        },
    ];
    if let Some(path) = c_echo {
        peers.push(Peer {
            name: "c-epoll",
            protocol: Protocol::Echo,
            launch: Launch::Command(path),
            is_project: false,
            ceiling: false,
            note: "bench/c/epoll_echo.c: cc -O2, one thread, edge-triggered",
        });
    }
    // HTTP and RESP compare only when the tools are installed; without them
    // the peers are left out with a note, never a failure.
    if has_program("wrk") {
        peers.push(Peer {
            name: "reactor-http",
            protocol: Protocol::Http,
            launch: Launch::Example("http_server"),
            is_project: true,
            ceiling: false,
            note: "examples/http_server.rs: this crate, one thread",
        });
        if has_program("nginx") {
            peers.push(Peer {
                name: "nginx",
                protocol: Protocol::Http,
                launch: Launch::Nginx,
                is_project: false,
                ceiling: false,
                note: "nginx, bench/nginx.conf: one worker, access log off, `return 200`",
            });
        } else {
            eprintln!("load: nginx not installed; HTTP has no peer");
        }
        if let Some(path) = c_http {
            peers.push(Peer {
                name: "c-http",
                protocol: Protocol::Http,
                launch: Launch::Command(path),
                is_project: false,
                ceiling: true,
                note: "bench/c/http_canned.c: canned response per request head; the client's ceiling, not an HTTP server",
            });
        }
    } else {
        eprintln!("load: wrk not installed; skipping HTTP");
    }
    if has_program("redis-benchmark") {
        peers.push(Peer {
            name: "reactor-resp",
            protocol: Protocol::Resp,
            launch: Launch::Example("resp_server"),
            is_project: true,
            ceiling: false,
            note: "examples/resp_server.rs: this crate, one thread",
        });
        if has_program("redis-server") {
            peers.push(Peer {
                name: "redis",
                protocol: Protocol::Resp,
                launch: Launch::Redis,
                is_project: false,
                ceiling: false,
                note: "redis-server: no persistence, io-threads 1",
            });
        } else {
            eprintln!("load: redis-server not installed; RESP has no peer");
        }
    } else {
        eprintln!("load: redis-benchmark not installed; skipping RESP");
    }
    peers
}

/// Where `program` is: on the PATH, or in an sbin directory (nginx lives
/// in /usr/sbin, which a non-root PATH may lack).
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn has_program(program: &str) -> bool {
    find_program(program).is_some()
}
