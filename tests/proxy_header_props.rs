//! Property tests of the PROXY protocol parser (`reactor::proxy_header`):
//! any bytes at all never panic it and never make it claim more than it
//! was given; every header it should accept, v1 or v2 with any addresses,
//! ports and TLVs, parses back to what was encoded, at every split point
//! it is `Incomplete` until the last byte; and a corrupted signature or
//! version is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use reactor::proxy_header::{parse, Parsed, V2_SIGNATURE};

fn v1(client: SocketAddr, reached: SocketAddr) -> Vec<u8> {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        reached.ip(),
        client.port(),
        reached.port()
    )
    .into_bytes()
}

fn v2(client: SocketAddr, reached: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (client.ip(), reached.ip()) {
        (IpAddr::V4(c), IpAddr::V4(r)) => {
            body.extend(c.octets());
            body.extend(r.octets());
            0x11
        }
        (IpAddr::V6(c), IpAddr::V6(r)) => {
            body.extend(c.octets());
            body.extend(r.octets());
            0x21
        }
        _ => unreachable!("the strategy pairs families"),
    };
    body.extend(client.port().to_be_bytes());
    body.extend(reached.port().to_be_bytes());
    body.extend(tlvs);
    let mut header = V2_SIGNATURE.to_vec();
    header.extend([0x21, family]);
    header.extend((body.len() as u16).to_be_bytes());
    header.extend(body);
    header
}

/// A pair of addresses of one family.
fn address_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    let v4 = (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(a, b, p, q)| {
            (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(b)), q),
            )
        });
    let v6 = (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(a, b, p, q)| {
            (
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), p),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(b)), q),
            )
        });
    prop_oneof![v4, v6]
}

proptest! {
    #[test]
    fn any_bytes_never_panic_and_never_overclaim(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Parsed::Complete { length, .. } = parse(&bytes) {
            prop_assert!(length <= bytes.len());
        }
    }

    #[test]
    fn random_bytes_after_a_signature_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..300),
        v1_start in any::<bool>(),
    ) {
        let mut bytes = if v1_start { b"PROXY ".to_vec() } else { V2_SIGNATURE.to_vec() };
        bytes.extend(tail);
        if let Parsed::Complete { length, .. } = parse(&bytes) {
            prop_assert!(length <= bytes.len());
        }
    }

    #[test]
    fn encoded_headers_parse_back_and_every_prefix_is_incomplete(
        (client, reached) in address_pair(),
        version_2 in any::<bool>(),
        tlvs in proptest::collection::vec(any::<u8>(), 0..64),
        after in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let header = if version_2 { v2(client, reached, &tlvs) } else { v1(client, reached) };
        for cut in 0..header.len() {
            prop_assert_eq!(parse(&header[..cut]), Parsed::Incomplete, "cut at {}", cut);
        }
        let mut bytes = header.clone();
        bytes.extend(&after);
        prop_assert_eq!(
            parse(&bytes),
            Parsed::Complete { length: header.len(), addresses: Some((client, reached)) }
        );
    }

    #[test]
    fn a_corrupted_signature_or_version_is_refused(
        (client, reached) in address_pair(),
        at in 0usize..12,
        flip in 1u8..=255,
        version in 0u8..16,
    ) {
        let mut header = v2(client, reached, &[]);
        header[at] ^= flip;
        prop_assert!(matches!(parse(&header), Parsed::Invalid(_)), "{:?}", parse(&header));
        // The version nibble must be 2 (the command nibble stays PROXY).
        let mut header = v2(client, reached, &[]);
        header[12] = (version << 4) | 0x1;
        let parsed = parse(&header);
        prop_assert_eq!(version == 2, matches!(parsed, Parsed::Complete { .. }), "{:?}", parsed);
    }
}
