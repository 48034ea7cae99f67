//! RSA key pairs of local actors, signing keys, and caches of parsed keys.
//!
//! Parsing an RSA key from PEM costs far more than using it, and both the delivery engine
//! (signing) and the inbox (verifying) work with a small set of hot keys, so parsed keys are
//! kept in bounded LRU caches.

use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use lru::LruCache;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use sha2::{Digest, Sha256};
use url::Url;

use crate::Error;

/// RSA modulus size of generated keys; 2048 bits is what Mastodon generates and accepts.
const RSA_BITS: u32 = 2048;

/// Parsed keys each cache holds at most.
const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// A freshly generated RSA key pair, PEM encoded.
#[derive(Clone)]
pub struct KeyPair {
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), as published in actors.
    pub public_key_pem: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private half must never reach a log line.
        f.debug_struct("KeyPair")
            .field("public_key_pem", &self.public_key_pem)
            .finish_non_exhaustive()
    }
}

/// Generates an RSA-2048 key pair for a new local actor.
pub fn generate_rsa_keypair() -> Result<KeyPair, Error> {
    let rsa = Rsa::generate(RSA_BITS).map_err(key_error("generating an RSA key"))?;
    let pkey = PKey::from_rsa(rsa).map_err(key_error("wrapping the RSA key"))?;
    let public = pkey
        .public_key_to_pem()
        .map_err(key_error("encoding the public key"))?;
    let private = pkey
        .private_key_to_pem_pkcs8()
        .map_err(key_error("encoding the private key"))?;
    Ok(KeyPair {
        public_key_pem: pem_string(public)?,
        private_key_pem: pem_string(private)?,
    })
}

/// A local actor's private key together with the key id remote servers resolve it by.
#[derive(Clone)]
pub struct SigningKey {
    /// The key id, e.g. `https://bridge.example/users/1#main-key`.
    pub key_id: Url,
    /// The parsed private key.
    pub private: Arc<PKey<Private>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id.as_str())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Builds a signing key from a PKCS#8 (or PKCS#1) PEM, parsing it once per process.
    pub fn from_pem(key_id: Url, private_key_pem: &str) -> Result<Self, Error> {
        let private = KeyCache::global().private_key(&key_id, private_key_pem)?;
        Ok(Self { key_id, private })
    }
}

/// Bounded, thread-safe caches of parsed private keys (by key id) and public keys (by a
/// SHA-256 of their PEM).
pub struct KeyCache {
    private: Mutex<LruCache<String, CachedPrivateKey>>,
    public: Mutex<LruCache<PemHash, Arc<PKey<Public>>>>,
}

type PemHash = [u8; 32];

/// A parsed private key and the hash of the PEM it came from, to notice rotation.
type CachedPrivateKey = (PemHash, Arc<PKey<Private>>);

impl KeyCache {
    /// A cache holding at most `capacity` keys of each kind.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            private: Mutex::new(LruCache::new(capacity)),
            public: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The process-wide cache used by [`SigningKey::from_pem`] and signature verification.
    pub fn global() -> &'static KeyCache {
        static GLOBAL: LazyLock<KeyCache> = LazyLock::new(|| {
            KeyCache::new(NonZeroUsize::new(DEFAULT_CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN))
        });
        &GLOBAL
    }

    /// The parsed private key for `key_id`, re-parsed only when the PEM changed (rotation).
    pub fn private_key(&self, key_id: &Url, pem: &str) -> Result<Arc<PKey<Private>>, Error> {
        let hash = pem_hash(pem);
        if let Some((cached_hash, key)) = lock(&self.private).get(key_id.as_str())
            && *cached_hash == hash
        {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(
            PKey::private_key_from_pem(pem.as_bytes())
                .map_err(key_error("parsing a private key PEM"))?,
        );
        lock(&self.private).put(key_id.as_str().to_owned(), (hash, Arc::clone(&key)));
        Ok(key)
    }

    /// The parsed public key for a SubjectPublicKeyInfo (or PKCS#1 `RSA PUBLIC KEY`) PEM.
    pub fn public_key(&self, pem: &str) -> Result<Arc<PKey<Public>>, Error> {
        let hash = pem_hash(pem);
        if let Some(key) = lock(&self.public).get(&hash) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(parse_public_pem(pem)?);
        lock(&self.public).put(hash, Arc::clone(&key));
        Ok(key)
    }

    /// How many private and public keys are cached.
    pub fn len(&self) -> (usize, usize) {
        (lock(&self.private).len(), lock(&self.public).len())
    }
}

fn parse_public_pem(pem: &str) -> Result<PKey<Public>, Error> {
    // Some older servers publish PKCS#1 ("BEGIN RSA PUBLIC KEY") rather than SPKI.
    if pem.contains("BEGIN RSA PUBLIC KEY") {
        let rsa = Rsa::public_key_from_pem_pkcs1(pem.as_bytes())
            .map_err(key_error("parsing a PKCS#1 public key PEM"))?;
        return PKey::from_rsa(rsa).map_err(key_error("wrapping a public key"));
    }
    PKey::public_key_from_pem(pem.as_bytes()).map_err(key_error("parsing a public key PEM"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave an LRU map half-updated in a way that
    // matters (worst case: a missing entry), so a poisoned cache is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pem_hash(pem: &str) -> PemHash {
    Sha256::digest(pem.trim().as_bytes()).into()
}

fn pem_string(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| Error::Key(format!("PEM is not UTF-8: {e}")))
}

fn key_error(context: &'static str) -> impl Fn(openssl::error::ErrorStack) -> Error {
    move |e| Error::Key(format!("{context}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_id(n: u32) -> Url {
        Url::parse(&format!("https://bridge.example/users/{n}#main-key")).expect("url")
    }

    #[test]
    fn generated_pair_has_spki_and_pkcs8_pems_of_2048_bits() {
        let pair = generate_rsa_keypair().expect("generate");
        assert!(
            pair.public_key_pem
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        assert!(
            pair.private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let public = PKey::public_key_from_pem(pair.public_key_pem.as_bytes()).expect("public");
        let private = PKey::private_key_from_pem(pair.private_key_pem.as_bytes()).expect("priv");
        assert_eq!(public.bits(), 2048);
        assert!(public.public_eq(&private));
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }

    #[test]
    fn caches_reuse_parsed_keys_and_notice_rotation() {
        let cache = KeyCache::new(NonZeroUsize::new(2).expect("nonzero"));
        let a = generate_rsa_keypair().expect("a");
        let b = generate_rsa_keypair().expect("b");

        let first = cache
            .private_key(&key_id(1), &a.private_key_pem)
            .expect("parse");
        let again = cache
            .private_key(&key_id(1), &a.private_key_pem)
            .expect("cached");
        assert!(Arc::ptr_eq(&first, &again));
        let rotated = cache
            .private_key(&key_id(1), &b.private_key_pem)
            .expect("rotated");
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert!(rotated.public_eq(&*cache.public_key(&b.public_key_pem).expect("public b")));

        let pa = cache.public_key(&a.public_key_pem).expect("public a");
        let pa2 = cache.public_key(&a.public_key_pem).expect("public a again");
        assert!(Arc::ptr_eq(&pa, &pa2));
    }

    #[test]
    fn caches_are_bounded() {
        let cache = KeyCache::new(NonZeroUsize::new(2).expect("nonzero"));
        let pair = generate_rsa_keypair().expect("pair");
        for n in 0..5 {
            cache
                .private_key(&key_id(n), &pair.private_key_pem)
                .expect("parse");
        }
        assert_eq!(cache.len().0, 2);
    }

    #[test]
    fn garbage_pem_is_an_error_not_a_panic() {
        let cache = KeyCache::new(NonZeroUsize::new(2).expect("nonzero"));
        assert!(matches!(cache.public_key("nope"), Err(Error::Key(_))));
        assert!(matches!(
            cache.private_key(
                &key_id(1),
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            ),
            Err(Error::Key(_))
        ));
    }

    #[test]
    fn pkcs1_public_keys_are_accepted() {
        let pair = generate_rsa_keypair().expect("pair");
        let rsa = PKey::public_key_from_pem(pair.public_key_pem.as_bytes())
            .expect("spki")
            .rsa()
            .expect("rsa");
        let pkcs1 = String::from_utf8(rsa.public_key_to_pem_pkcs1().expect("pkcs1")).expect("utf8");
        assert!(pkcs1.contains("BEGIN RSA PUBLIC KEY"));
        let cache = KeyCache::new(NonZeroUsize::new(2).expect("nonzero"));
        let parsed = cache.public_key(&pkcs1).expect("parse pkcs1");
        assert_eq!(parsed.bits(), 2048);
    }
}
