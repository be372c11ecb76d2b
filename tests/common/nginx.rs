//! nginx as the reference HTTP/1.1 server for the `http_server` tests: a
//! minimal configuration in a temporary directory, one worker, listening
//! on a free loopback port, answering every path with `Hello, World!` as
//! bench/nginx.conf does. A test sends the same raw request to both
//! servers and compares what they say and whether they close.
//!
//! [`run`] starts nginx with any configuration (the deploy tests' stream
//! one too). [`Nginx`] stops its server when dropped, by SIGTERM to the master's pid
//! (it stops its worker only when asked politely; killed outright, the
//! worker would keep the port), and removes the directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running nginx; stopped when dropped.
pub struct Nginx {
    /// The master process (`daemon off`, so it is our child).
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its prefix: configuration, pid file, logs, temp paths.
    dir: PathBuf,
}

/// Starts nginx. Panics if it does not listen within 5 s (its error log is
/// in the message).
pub fn start() -> Nginx {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "reactor-nginx-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // A port free now; nginx binds it a moment later (a race other tests
    // on this machine could only lose by picking the same port).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prefix = dir.display();
    let conf = format!(
        "worker_processes 1;\n\
         daemon off;\n\
         master_process on;\n\
         pid {prefix}/nginx.pid;\n\
         error_log {prefix}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {prefix}/body;\n\
           proxy_temp_path {prefix}/proxy;\n\
           fastcgi_temp_path {prefix}/fastcgi;\n\
           uwsgi_temp_path {prefix}/uwsgi;\n\
           scgi_temp_path {prefix}/scgi;\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{ default_type text/plain; return 200 \"Hello, World!\"; }}\n\
           }}\n\
         }}\n"
    );
    run(dir, &conf, ([127, 0, 0, 1], port).into())
}

/// Runs nginx with configuration `conf` and `dir` as its prefix (removed
/// when the returned [`Nginx`] is dropped), and waits until it listens on
/// `addr`. Panics if it does not within 5 s (its error log is in the
/// message).
pub fn run(dir: PathBuf, conf: &str, addr: SocketAddr) -> Nginx {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run nginx");
    let mut nginx = Nginx { child, addr, dir };
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        let exited = nginx.child.try_wait().ok().flatten();
        if exited.is_some() || start.elapsed() > Duration::from_secs(5) {
            let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
            panic!("nginx did not start ({exited:?}): {log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let child = &mut self.child;
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
