//! chat_server with `--threads 2`: members on both loops see every line of
//! every other member, in the order each sender sent them, and nicknames
//! are unique across loops.
//!
//! Loop `i` of `N` numbers its guests `i+1`, `i+1+N`, ...: with two loops a
//! guest's parity says which loop serves it.
mod common;

use common::chat::Client;

/// Lines each member says.
const LINES: usize = 20;

fn loop_of(client: &Client) -> u64 {
    let number: u64 = client.name["guest".len()..].parse().unwrap();
    (number - 1) % 2
}

fn every_line_reaches_every_member(extra: &[&str]) {
    let mut args = vec!["--threads", "2"];
    args.extend_from_slice(extra);
    let mut server = common::spawn_on_loopback("chat_server", &args);
    let mut clients: Vec<Client> = (0..10).map(|_| Client::join(server.addr)).collect();
    let on_loop_1 = clients.iter().filter(|c| loop_of(c) == 1).count();
    if extra.contains(&"--hand-off") {
        // Equal loads alternate.
        assert_eq!(on_loop_1, 5);
    }
    for k in 0..LINES {
        for client in &mut clients {
            let line = format!("{} {k}", client.name);
            client.send(&line);
        }
    }
    let names: Vec<String> = clients.iter().map(|c| c.name.clone()).collect();
    for client in &mut clients {
        // The next line number expected from each other member.
        let mut next = vec![0; names.len()];
        let me = names.iter().position(|n| *n == client.name).unwrap();
        let mut seen = 0;
        while seen < LINES * (names.len() - 1) {
            let line = client.line();
            if line.starts_with("* ") {
                continue;
            }
            let (from, text) = line.split_once(": ").expect("name: text");
            let sender = names.iter().position(|n| n == from).expect("a member");
            assert_ne!(sender, me, "{}: got its own line back", client.name);
            assert_eq!(
                text,
                format!("{from} {}", next[sender]),
                "{}: out of order from {from}",
                client.name
            );
            next[sender] += 1;
            seen += 1;
        }
    }
    let report = server.stop_with_report();
    assert!(report.contains("10 accepted"), "{report}");
}

#[test]
fn reuseport_loops_relay_every_line_in_order_per_sender() {
    every_line_reaches_every_member(&[]);
}

#[test]
fn hand_off_loops_relay_every_line_in_order_per_sender() {
    every_line_reaches_every_member(&["--hand-off"]);
}

#[test]
fn a_nickname_is_unique_across_loops() {
    let server = common::spawn_on_loopback("chat_server", &["--threads", "2", "--hand-off"]);
    let mut a = Client::join(server.addr);
    let mut b = Client::join(server.addr);
    assert_ne!(loop_of(&a), loop_of(&b), "hand-off alternates");
    a.send("/nick alice");
    a.skip_notices_to(|l| l.ends_with("is now alice"));
    b.send("/nick Alice");
    b.skip_notices_to(|l| l == "error: nickname Alice is taken");
    // Once alice leaves, the name is free on the other loop.
    a.send("/quit");
    a.until_eof();
    let mut tries = 0;
    loop {
        b.send("/nick Alice");
        let line = b.skip_notices_to(|l| l.starts_with("error:") || l.ends_with("is now Alice"));
        if line.ends_with("is now Alice") {
            break;
        }
        tries += 1;
        assert!(tries < 50, "the name was never freed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
