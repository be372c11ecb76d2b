//! The PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`), as a
//! load balancer sends it ahead of a connection's own bytes: who the client
//! really is.
//!
//! A listener that asks for it (`ListenerOptions::proxy_protocol`) reads
//! this header before anything else: its connection waits in
//! `AwaitingProxyHeader` until the header is complete, then goes on as any
//! other (to `Handshaking` on a TLS listener, else `Open`), with the
//! client's address as its peer. The rules, from the specification:
//!
//! * never guess whether a header is there: on such a listener it must be;
//!   a connection without one, or with a malformed one, is closed;
//! * nothing after the header is processed before the header is complete;
//! * version 1 is one text line of at most 107 bytes; version 2 a 16-byte
//!   binary header with a length, then the addresses, then TLVs (skipped);
//! * `LOCAL` (v2, a balancer's own health check) and `UNKNOWN` (v1) keep the
//!   connection's real endpoints;
//! * a header that does not arrive in time (`Config::proxy_header_timeout`,
//!   3 s as the specification suggests) closes the connection.
//!
//! [`parse`] is a pure function of the bytes received so far, so it is
//! tested on its own, with random and truncated headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Version 1's header is one line of at most this many bytes, CRLF included.
pub const V1_MAX: usize = 107;

/// What the bytes received so far say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A valid beginning: more bytes are needed.
    Incomplete,
    /// Not a PROXY header, or a malformed one; why.
    Invalid(&'static str),
    /// A complete header of `length` bytes.
    Complete {
        /// Bytes the header took; what follows is the connection's own.
        length: usize,
        /// The client and the address it connected to, as the balancer saw
        /// them; `None` (LOCAL, UNKNOWN, an unspecified or UNIX family):
        /// keep the connection's real endpoints.
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
}

/// Reads a PROXY header (either version) from the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    let v1_prefix = b"PROXY ";
    if bytes.starts_with(v1_prefix) {
        return parse_v1(bytes);
    }
    if bytes.starts_with(&V2_SIGNATURE) {
        return parse_v2(bytes);
    }
    let could_be = |prefix: &[u8]| prefix.starts_with(&bytes[..bytes.len().min(prefix.len())]);
    if could_be(v1_prefix) || could_be(&V2_SIGNATURE) {
        Parsed::Incomplete
    } else {
        Parsed::Invalid("no PROXY protocol header")
    }
}

/// `PROXY TCP4|TCP6 src dst sport dport\r\n` or `PROXY UNKNOWN ...\r\n`.
fn parse_v1(bytes: &[u8]) -> Parsed {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX {
            Parsed::Invalid("v1 header longer than 107 bytes")
        } else if window.contains(&b'\n') {
            Parsed::Invalid("v1 header ends without CRLF")
        } else {
            Parsed::Incomplete
        };
    };
    let length = end + 2;
    let Ok(line) = std::str::from_utf8(&bytes[..end]) else {
        return Parsed::Invalid("v1 header is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.get(1) {
        Some(&"UNKNOWN") => {
            return Parsed::Complete {
                length,
                addresses: None,
            }
        }
        Some(&"TCP4") | Some(&"TCP6") => {}
        _ => return Parsed::Invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN"),
    }
    let [_, family, source, destination, source_port, destination_port] = fields[..] else {
        return Parsed::Invalid("v1 header needs two addresses and two ports");
    };
    let ipv4 = family == "TCP4";
    let address = |text: &str| -> Option<IpAddr> {
        match text.parse().ok()? {
            IpAddr::V4(a) if ipv4 => Some(IpAddr::V4(a)),
            IpAddr::V6(a) if !ipv4 => Some(IpAddr::V6(a)),
            _ => None,
        }
    };
    let port = |text: &str| -> Option<u16> {
        // Decimal without a sign or leading zeros, as the specification
        // writes them.
        let plain = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        plain.then(|| text.parse().ok()).flatten()
    };
    match (
        address(source),
        address(destination),
        port(source_port),
        port(destination_port),
    ) {
        (Some(s), Some(d), Some(sp), Some(dp)) => Parsed::Complete {
            length,
            addresses: Some((SocketAddr::new(s, sp), SocketAddr::new(d, dp))),
        },
        _ => Parsed::Invalid("v1 address or port malformed"),
    }
}

/// The 16-byte binary header, its addresses, and TLVs (skipped).
fn parse_v2(bytes: &[u8]) -> Parsed {
    if bytes.len() < 16 {
        return Parsed::Incomplete;
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 {
        return Parsed::Invalid("v2 header with a version other than 2");
    }
    let local = match command {
        0x0 => true,
        0x1 => false,
        _ => return Parsed::Invalid("v2 command is neither LOCAL nor PROXY"),
    };
    let (family, transport) = (bytes[13] >> 4, bytes[13] & 0x0f);
    let rest = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let length = 16 + rest;
    let needed = match family {
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        0x0 => 0,
        _ => return Parsed::Invalid("v2 address family unknown"),
    };
    if transport > 2 {
        return Parsed::Invalid("v2 transport unknown");
    }
    if rest < needed {
        return Parsed::Invalid("v2 length shorter than its addresses");
    }
    if bytes.len() < length {
        return Parsed::Incomplete;
    }
    // LOCAL (a health check from the balancer itself), UNSPEC, UNIX or a
    // datagram transport: the real endpoints stand.
    if local || transport != 0x1 || !matches!(family, 0x1 | 0x2) {
        return Parsed::Complete {
            length,
            addresses: None,
        };
    }
    let block = &bytes[16..16 + needed];
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let addresses = if family == 0x1 {
        let ip = |at: usize| {
            IpAddr::V4(Ipv4Addr::new(
                block[at],
                block[at + 1],
                block[at + 2],
                block[at + 3],
            ))
        };
        (
            SocketAddr::new(ip(0), port(8)),
            SocketAddr::new(ip(4), port(10)),
        )
    } else {
        let ip = |at: usize| {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&block[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(octets))
        };
        (
            SocketAddr::new(ip(0), port(32)),
            SocketAddr::new(ip(16), port(34)),
        )
    };
    Parsed::Complete {
        length,
        addresses: Some(addresses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend((body.len() as u16).to_be_bytes());
        header.extend(body);
        header
    }

    #[test]
    fn v1_tcp4_and_tcp6_give_the_client() {
        let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        assert_eq!(
            parse(header),
            Parsed::Complete {
                length: header.len() - 5,
                addresses: Some((
                    "192.0.2.1:56324".parse().unwrap(),
                    "198.51.100.2:443".parse().unwrap()
                ))
            }
        );
        let six = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
        assert!(
            matches!(parse(six), Parsed::Complete { addresses: Some((s, _)), .. } if s == "[2001:db8::1]:1".parse().unwrap())
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN whatever\r\n"),
            Parsed::Complete {
                length: 24,
                addresses: None
            }
        );
    }

    #[test]
    fn v1_refuses_what_the_specification_does() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(parse(&[b'P'; 200]), Parsed::Invalid(_)));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
        assert!(matches!(parse(long.as_bytes()), Parsed::Invalid(_)));
    }

    #[test]
    fn v2_proxy_local_and_tlvs() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend(56324u16.to_be_bytes());
        body.extend(443u16.to_be_bytes());
        // A TLV (type 0x04 NOOP, length 3) after the addresses: skipped.
        body.extend([0x04, 0x00, 0x03, 1, 2, 3]);
        let header = v2(0x1, 0x11, &body);
        assert_eq!(
            parse(&header),
            Parsed::Complete {
                length: header.len(),
                addresses: Some((
                    "192.0.2.1:56324".parse().unwrap(),
                    "198.51.100.2:443".parse().unwrap()
                ))
            }
        );
        let local = v2(0x0, 0x11, &body);
        assert_eq!(
            parse(&local),
            Parsed::Complete {
                length: local.len(),
                addresses: None
            }
        );
        assert_eq!(
            parse(&v2(0x1, 0x00, &[])),
            Parsed::Complete {
                length: 16,
                addresses: None
            }
        );
        assert!(matches!(
            parse(&v2(0x1, 0x11, &[1, 2, 3])),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parse(&v2(0x2, 0x11, &body)), Parsed::Invalid(_)));
        let mut wrong_version = v2(0x1, 0x11, &body);
        wrong_version[12] = 0x11;
        assert!(matches!(parse(&wrong_version), Parsed::Invalid(_)));
    }

    #[test]
    fn every_prefix_of_a_valid_header_is_incomplete() {
        let mut body = vec![0u8; 36];
        body[32] = 1;
        let headers = [
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".to_vec(),
            v2(0x1, 0x21, &body),
        ];
        for header in headers {
            for cut in 0..header.len() {
                assert_eq!(parse(&header[..cut]), Parsed::Incomplete, "cut at {cut}");
            }
            assert!(matches!(parse(&header), Parsed::Complete { .. }));
        }
    }
}
