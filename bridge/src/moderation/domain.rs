//! A server domain as an operator types it into a block: checked strictly and brought to
//! the one form blocks are stored and matched in (lowercase punycode, no trailing dot).

use std::fmt;

/// Longest domain name (RFC 1035).
const MAX_DOMAIN: usize = 253;
/// Longest label (RFC 1035).
const MAX_LABEL: usize = 63;

/// A domain fit to be blocked. Inbound hosts come from parsed URLs, which the `url` crate
/// already turns into lowercase punycode, so a block must be stored in that form to match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockDomain(String);

/// Why a text is not a domain that can be blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidDomain {
    /// Nothing given.
    Empty,
    /// `*.example`, `ex**ple.example` (Mastodon's obfuscated exports), or the like.
    Wildcard,
    /// A URL, an address with a port or path, or other text that is not a host name.
    NotADomain(String),
    /// An IP address: blocks name servers by domain.
    IpAddress,
    /// Longer than 253 characters, or a label longer than 63.
    TooLong,
    /// A label that is empty or has characters no host name has.
    BadLabel(String),
}

impl fmt::Display for InvalidDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no domain given"),
            Self::Wildcard => f.write_str(
                "wildcards and obfuscated domains (`*`) cannot be blocked; give the domain \
                 itself, which covers its subdomains",
            ),
            Self::NotADomain(why) => write!(f, "not a domain name ({why})"),
            Self::IpAddress => f.write_str("an IP address, not a domain name"),
            Self::TooLong => write!(
                f,
                "too long (at most {MAX_DOMAIN} characters, {MAX_LABEL} per label)"
            ),
            Self::BadLabel(label) => write!(f, "`{label}` is not a valid domain label"),
        }
    }
}

impl BlockDomain {
    /// Checks `input` and normalizes it: surrounding space, case and one trailing dot go,
    /// internationalized names become punycode (`bücher.example` → `xn--bcher-kva.example`).
    pub fn parse(input: &str) -> Result<Self, InvalidDomain> {
        let text = input.trim();
        if text.is_empty() {
            return Err(InvalidDomain::Empty);
        }
        if text.contains('*') {
            return Err(InvalidDomain::Wildcard);
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_whitespace() || "/:@?#,;\\".contains(*c))
        {
            let hint = if text.contains("://") {
                "a URL; give its host only".to_owned()
            } else {
                format!("contains `{c}`")
            };
            return Err(InvalidDomain::NotADomain(hint));
        }
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.starts_with('.') || text.is_empty() {
            return Err(InvalidDomain::NotADomain("starts with a dot".into()));
        }
        let ascii = match url::Host::parse(text) {
            Ok(url::Host::Domain(name)) => name,
            Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => return Err(InvalidDomain::IpAddress),
            Err(error) => return Err(InvalidDomain::NotADomain(error.to_string())),
        };
        if ascii.len() > MAX_DOMAIN {
            return Err(InvalidDomain::TooLong);
        }
        for label in ascii.split('.') {
            if label.len() > MAX_LABEL {
                return Err(InvalidDomain::TooLong);
            }
            let valid = !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                return Err(InvalidDomain::BadLabel(label.to_owned()));
            }
        }
        Ok(Self(ascii))
    }

    /// The normalized domain.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlockDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        BlockDomain::parse(input)
            .map(|d| d.as_str().to_owned())
            .unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn case_space_and_the_trailing_dot_are_normalized() {
        assert_eq!(ok("  Evil.EXAMPLE. "), "evil.example");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("a-b_c.example"), "a-b_c.example");
    }

    #[test]
    fn internationalized_names_become_punycode() {
        assert_eq!(ok("Bücher.example"), "xn--bcher-kva.example");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
        // Every spelling of one domain is one block.
        assert_eq!(ok("Exämple.COM."), "xn--exmple-cua.com");
        assert_eq!(ok("EXÄMPLE.com"), "xn--exmple-cua.com");
        assert_eq!(ok("XN--EXMPLE-CUA.COM"), "xn--exmple-cua.com");
    }

    #[test]
    fn wildcards_urls_ports_and_addresses_are_refused() {
        for (input, expected) in [
            ("", InvalidDomain::Empty),
            ("*.evil.example", InvalidDomain::Wildcard),
            ("ev**.example", InvalidDomain::Wildcard),
            ("1.2.3.4", InvalidDomain::IpAddress),
            ("[::1]", InvalidDomain::NotADomain("contains `:`".into())),
        ] {
            assert_eq!(BlockDomain::parse(input), Err(expected), "{input}");
        }
        for input in [
            "https://evil.example/",
            "evil.example:443",
            "evil example",
            "user@evil.example",
            ".evil.example",
            "evil..example",
            "-evil.example",
            "evil.example..",
            "ev!l.example",
            &format!("{}.example", "a".repeat(64)),
            &format!("{}example", "a.".repeat(130)),
        ] {
            assert!(BlockDomain::parse(input).is_err(), "{input} was accepted");
        }
    }
}
