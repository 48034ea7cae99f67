//! Which remote URLs and addresses the bridge may contact (SSRF defence).
//!
//! Names are checked here before a request; every resolved address is checked again at
//! connect time by [`super::resolver::GuardedResolver`], which also covers redirects and
//! DNS rebinding. IP-literal URLs never reach a resolver, so they are checked here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::remote_failure::RemoteFailure;
use crate::Error;

/// What kinds of remote addresses may be contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Allow http and loopback/private/link-local peers (config
    /// `federation.allow_private_addresses`; development and tests only).
    pub allow_private: bool,
}

/// Ports of protocols other than HTTP, which a remote document could otherwise aim our
/// requests at (cross-protocol attacks on SMTP, IRC, …): the "bad ports" browsers refuse
/// (WHATWG Fetch), so no ActivityPub server can be using one.
const BAD_PORTS: [u16; 83] = [
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427,
    465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990,
    993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
    6668, 6669, 6679, 6697, 10080,
];

/// Refuses URLs the bridge must not fetch from or deliver to: anything but https (http too
/// when private addresses are allowed), no host, userinfo, ports of other protocols, and,
/// unless private addresses are allowed, non-public IP literals and local-only names
/// (`localhost`, `*.localhost`, `*.local`, `*.internal`, `*.home.arpa`, single-label names).
pub fn validate_remote_url(url: &Url, policy: AddressPolicy) -> Result<(), Error> {
    let refuse = |reason: String| Error::Remote {
        url: url.to_string(),
        failure: RemoteFailure::Forbidden(reason),
    };
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        other => return Err(refuse(format!("scheme `{other}` is not allowed"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("URLs with credentials are not allowed".into()));
    }
    if let Some(port) = url.port()
        && BAD_PORTS.contains(&port)
    {
        return Err(refuse(format!("port {port} belongs to another protocol")));
    }
    let host = url
        .host()
        .ok_or_else(|| refuse("the URL has no host".into()))?;
    if policy.allow_private {
        return Ok(());
    }
    match host {
        Host::Ipv4(ip) if !is_public_ip(IpAddr::V4(ip)) => {
            Err(refuse(format!("{ip} is not a public address")))
        }
        Host::Ipv6(ip) if !is_public_ip(IpAddr::V6(ip)) => {
            Err(refuse(format!("{ip} is not a public address")))
        }
        Host::Domain(name) if is_local_name(name) => {
            Err(refuse(format!("`{name}` is a local name")))
        }
        _ => Ok(()),
    }
}

/// The one canonical form of a URL's host: lowercase, IDNA (punycode) as the url crate
/// parses it, no trailing dot, `:port` only when not the scheme's default.
pub fn canonical_host(url: &Url) -> String {
    let host = match url.host() {
        Some(Host::Domain(name)) => name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        None => String::new(),
    };
    // Url::port() is None when the port is the scheme's default.
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    // A single label is completed by the resolver's search domains, i.e. the local network.
    !name.contains('.')
        || [
            ".localhost",
            ".local",
            ".internal",
            ".home.arpa",
            ".localdomain",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Whether an address is globally routable unicast, i.e. safe to contact from the bridge.
/// Everything in an IANA special-purpose range is refused, including IPv4 embedded in
/// IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) IPv6 addresses.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_ipv4(v4),
        IpAddr::V6(v6) => is_public_ipv6(v6),
    }
}

/// IPv4 ranges that are not public (RFC 6890 and successors), as (network, prefix length).
const NON_PUBLIC_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // TEST-NET-1
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // TEST-NET-2
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // TEST-NET-3
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, includes 255.255.255.255
];

fn is_public_ipv4(ip: Ipv4Addr) -> bool {
    // std has no prefix match and ipnet would be a dependency for four lines.
    let ip = u32::from(ip);
    !NON_PUBLIC_V4.iter().any(|(network, prefix)| {
        let mask = u32::MAX << (32 - u32::from(*prefix));
        ip & mask == u32::from(*network)
    })
}

fn is_public_ipv6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let in_net = |network: u128, prefix: u32| bits & (u128::MAX << (128 - prefix)) == network;
    let embedded_v4 = |shift: u32| Ipv4Addr::from(((bits >> shift) & 0xffff_ffff) as u32);

    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_ipv4(v4);
    }
    if in_net(0x0064_ff9b << 96, 96) {
        return is_public_ipv4(embedded_v4(0));
    }
    if in_net(0x2002 << 112, 16) {
        return is_public_ipv4(embedded_v4(80));
    }
    // Only 2000::/3 is global unicast; this refuses ::, ::1, IPv4-compatible ::/96,
    // 100::/64, 64:ff9b:1::/48, fc00::/7, fec0::/10, fe80::/10 and ff00::/8.
    if !in_net(0x2 << 124, 3) {
        return false;
    }
    let special = [
        (0x2001_0000 << 96, 23), // IETF protocol assignments: Teredo 2001::/32, ORCHID, benchmarking
        (0x2001_0db8 << 96, 32), // documentation
        (0x3fff_0000 << 96, 20), // documentation (RFC 9637)
        (0x5f00 << 112, 16),     // SRv6 SIDs
    ];
    !special
        .iter()
        .any(|(network, prefix)| in_net(*network, *prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    const STRICT: AddressPolicy = AddressPolicy {
        allow_private: false,
    };
    const LAX: AddressPolicy = AddressPolicy {
        allow_private: true,
    };

    #[test]
    fn non_public_ipv4_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!is_public_ip(ip), "{ip} passed as public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_public_ip(ip), "{ip} refused");
        }
    }

    #[test]
    fn non_public_ipv6_ranges_and_embedded_ipv4_are_refused() {
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!is_public_ip(ip), "{ip} passed as public");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_public_ip(ip), "{ip} refused");
        }
    }

    #[test]
    fn strict_policy_refuses_unsafe_urls() {
        for bad in [
            "http://mastodon.example/users/a",
            "ftp://mastodon.example/a",
            "file:///etc/passwd",
            "data:application/json,{}",
            "https://user:pw@mastodon.example/a",
            "https://user@mastodon.example/a",
            "https://127.0.0.1/a",
            "https://0x7f.1/a",
            "https://2130706433/a",
            "https://[::1]/a",
            "https://[::ffff:127.0.0.1]/a",
            "https://[fe80::1]/a",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/a",
            "https://LOCALHOST./a",
            "https://api.localhost/a",
            "https://printer.local/a",
            "https://metadata.google.internal/a",
            "https://intranet/a",
        ] {
            let err = validate_remote_url(&url(bad), STRICT).expect_err(bad);
            assert!(
                matches!(
                    err,
                    Error::Remote {
                        failure: RemoteFailure::Forbidden(_),
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        validate_remote_url(&url("https://mastodon.example:8443/users/a"), STRICT).expect("ok");
        validate_remote_url(&url("https://1.1.1.1/a"), STRICT).expect("public literal");
    }

    #[test]
    fn lax_policy_allows_http_and_private_but_not_credentials() {
        validate_remote_url(&url("http://127.0.0.1:8080/inbox"), LAX).expect("local");
        validate_remote_url(&url("http://localhost/inbox"), LAX).expect("localhost");
        assert!(validate_remote_url(&url("http://u:p@127.0.0.1/"), LAX).is_err());
        assert!(validate_remote_url(&url("gopher://127.0.0.1/"), LAX).is_err());
    }

    #[test]
    fn ports_of_other_protocols_are_refused_under_both_policies() {
        for bad in [
            "https://mastodon.example:25/inbox",
            "https://mastodon.example:22/inbox",
            "https://mastodon.example:6667/inbox",
        ] {
            assert!(validate_remote_url(&url(bad), STRICT).is_err(), "{bad}");
        }
        assert!(validate_remote_url(&url("http://127.0.0.1:25/inbox"), LAX).is_err());
        validate_remote_url(&url("https://mastodon.example:8443/inbox"), STRICT).expect("8443");
        validate_remote_url(&url("https://mastodon.example:443/inbox"), STRICT).expect("443");
    }

    #[test]
    fn canonical_host_is_lowercase_punycode_without_default_port_or_trailing_dot() {
        assert_eq!(
            canonical_host(&url("https://Mastodon.EXAMPLE./a")),
            "mastodon.example"
        );
        assert_eq!(
            canonical_host(&url("https://bücher.example:443/")),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            canonical_host(&url("https://a.example:8443/")),
            "a.example:8443"
        );
        assert_eq!(canonical_host(&url("http://a.example:80/")), "a.example");
        assert_eq!(
            canonical_host(&url("http://127.0.0.1:8080/")),
            "127.0.0.1:8080"
        );
        assert_eq!(canonical_host(&url("http://[::1]:8080/")), "[::1]:8080");
    }
}
