//! deploy/nginx-stream.conf, run for real: nginx's stream module in front
//! of two `http_server --proxy-protocol` instances. `/ip` through nginx
//! names the client (nginx's PROXY v1 header), and once one instance has
//! drained and exited, every new connection goes to the other
//! (`proxy_next_upstream`). The committed file is used with its three
//! addresses replaced by the test's, the only lines that differ.
mod common;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::deploy::{free_addr, get, http_server_on};
use common::http::read_response;
use common::tools::have;

fn start_nginx(front: SocketAddr, a: SocketAddr, b: SocketAddr) -> common::nginx::Nginx {
    let dir = std::env::temp_dir().join(format!("reactor-nginx-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stream = include_str!("../deploy/nginx-stream.conf")
        .replace("listen 8080;", &format!("listen {front};"))
        .replace("127.0.0.1:8081", &a.to_string())
        .replace("127.0.0.1:8082", &b.to_string());
    let prefix = dir.display();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
         error_log {prefix}/error.log warn;\nevents {{ worker_connections 256; }}\n{stream}"
    );
    common::nginx::run(dir, &conf, front)
}

#[test]
fn nginx_stream_passes_the_client_and_skips_a_drained_instance() {
    if !have("nginx")
        || !std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists()
    {
        return;
    }
    let (a_addr, b_addr, front) = (free_addr(), free_addr(), free_addr());
    let mut a = http_server_on(a_addr, &["--proxy-protocol", "--drain-delay", "0.5"]);
    let mut b = http_server_on(b_addr, &["--proxy-protocol"]);
    let _nginx = start_nginx(front, a_addr, b_addr);
    // /ip through nginx: this connection's own end, not nginx's.
    let mut stream = common::client(front);
    let me = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /ip HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let ip = read_response(&mut BufReader::new(stream), false);
    assert_eq!(String::from_utf8(ip.body).unwrap(), format!("{me}\n"));
    // A drains and exits; nginx sends every connection to B.
    a.signal("TERM");
    assert_eq!(a.wait_exit(Duration::from_secs(5)), Some(0));
    for _ in 0..20 {
        assert_eq!(get(front, "/").status, 200);
    }
    b.stop_with_report();
}
