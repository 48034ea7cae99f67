//! A DNS resolver for reqwest that refuses non-public addresses at connect time.
//!
//! Because reqwest calls it for every connection, including each redirect hop, an address
//! checked here is the address connected to: a name that resolves to a public address for
//! a pre-check and to 127.0.0.1 a moment later (DNS rebinding) is still refused.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address_policy::{AddressPolicy, is_public_ip};

/// Resolves with the system resolver (through tokio) and, unless the policy allows private
/// addresses, fails when any address of the name is not public.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    /// Resolves `host` and applies the policy; the port of the results is 0.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| ResolveError::Lookup(format!("{host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(ResolveError::Lookup(format!("{host}: no addresses")));
        }
        if !self.policy.allow_private {
            // Refusing the whole name (not just dropping the bad addresses) keeps a
            // half-private name from working by chance, and makes the reason visible.
            if let Some(bad) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
                return Err(ResolveError::Forbidden {
                    host: host.to_owned(),
                    address: bad.ip().to_string(),
                });
            }
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.resolve_host(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why a name could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name resolves to an address the policy refuses.
    #[error("{host} resolves to {address}, which is not a public address")]
    Forbidden {
        /// The name looked up.
        host: String,
        /// The first refused address.
        address: String,
    },
    /// The lookup itself failed.
    #[error("DNS lookup failed: {0}")]
    Lookup(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_is_refused_under_the_strict_policy() {
        let strict = GuardedResolver::new(AddressPolicy {
            allow_private: false,
        });
        let err = strict.resolve_host("localhost").await.expect_err("refused");
        assert!(matches!(err, ResolveError::Forbidden { .. }), "{err}");
        let err = strict.resolve_host("127.0.0.1").await.expect_err("refused");
        assert!(matches!(err, ResolveError::Forbidden { .. }), "{err}");
        let err = strict
            .resolve_host("::ffff:10.0.0.1")
            .await
            .expect_err("refused");
        assert!(matches!(err, ResolveError::Forbidden { .. }), "{err}");
    }

    #[tokio::test]
    async fn localhost_resolves_under_the_lax_policy() {
        let lax = GuardedResolver::new(AddressPolicy {
            allow_private: true,
        });
        let addrs = lax.resolve_host("localhost").await.expect("resolves");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[tokio::test]
    async fn the_reqwest_entry_point_applies_the_policy() {
        let strict = GuardedResolver::new(AddressPolicy {
            allow_private: false,
        });
        let name: Name = "localhost".parse().expect("name");
        let err = match strict.resolve(name).await {
            Ok(_) => panic!("localhost resolved under the strict policy"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<ResolveError>().is_some(), "{err}");
    }
}
