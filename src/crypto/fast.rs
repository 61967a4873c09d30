//! The signature operations of every token request, through `ring` instead of josekit's
//! OpenSSL: ES256 signing, and ES256, ES384, RS256/384/512 and EdDSA verification.
//!
//! Why: measured on the benchmark machine (BENCHMARKS.md), one flow's four operations (RS256
//! verify, ES256 sign, ES256 verify, ES256 sign) took 166 µs of CPU through josekit and
//! 127 µs through ring (josekit builds an OpenSSL signing or verification context per call,
//! and OpenSSL 3 looks up the algorithm's provider each time); lanyard's CPU per token
//! response fell from 289 µs to 237 µs under the same benchmark load.
//!
//! josekit still parses every key (so what is accepted or refused as a key is unchanged),
//! signs RS256 and EdDSA, and verifies what ring does not do here (ES512, PS256/384/512,
//! RSA moduli above 8192 bits, unusual exponents). An ES256 signing key is checked once at
//! load: a ring signature must verify under josekit, or josekit keeps signing with it.

use base64::Engine as _;
use ring::signature::{self, EcdsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

fn b64d(m: &Map<String, Value>, member: &str) -> Option<Vec<u8>> {
    let s = m.get(member)?.as_str()?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// The uncompressed SEC1 point `04 ‖ x ‖ y` of an EC JWK whose coordinates have `len` bytes.
fn ec_point(m: &Map<String, Value>, len: usize) -> Option<Vec<u8>> {
    let (x, y) = (b64d(m, "x")?, b64d(m, "y")?);
    if x.len() != len || y.len() != len {
        return None;
    }
    let mut p = Vec::with_capacity(1 + 2 * len);
    p.push(4);
    p.extend_from_slice(&x);
    p.extend_from_slice(&y);
    Some(p)
}

/// An ES256 private key held by ring.
pub(crate) struct FastSigner {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl FastSigner {
    /// From an EC P-256 private JWK (`d`, `x`, `y`).
    pub(crate) fn es256(private_jwk: &Map<String, Value>) -> Option<Self> {
        if private_jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
            return None;
        }
        let d = b64d(private_jwk, "d")?;
        let point = ec_point(private_jwk, 32)?;
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &d,
            &point,
            &rng,
        )
        .ok()?;
        Some(Self { key, rng })
    }

    /// `r ‖ s`, 64 bytes, as JWS wants it (RFC 7518 §3.4).
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        self.key
            .sign(&self.rng, message)
            .ok()
            .map(|s| s.as_ref().to_vec())
    }
}

/// A public key held by ring, bound to one algorithm.
pub(crate) enum FastVerifier {
    /// ECDSA (fixed-size `r ‖ s`) or Ed25519.
    Key(UnparsedPublicKey<Vec<u8>>),
    /// RSASSA-PKCS1-v1_5.
    Rsa(
        RsaPublicKeyComponents<Vec<u8>>,
        &'static signature::RsaParameters,
    ),
}

impl FastVerifier {
    /// For `alg` and a public JWK already accepted by josekit; `None` where ring is not used.
    pub(crate) fn from_jwk(alg: &str, m: &Map<String, Value>) -> Option<Self> {
        let kty = m.get("kty").and_then(Value::as_str)?;
        let crv = m.get("crv").and_then(Value::as_str);
        match (alg, kty, crv) {
            ("ES256", "EC", Some("P-256")) => Some(Self::Key(UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                ec_point(m, 32)?,
            ))),
            ("ES384", "EC", Some("P-384")) => Some(Self::Key(UnparsedPublicKey::new(
                &signature::ECDSA_P384_SHA384_FIXED,
                ec_point(m, 48)?,
            ))),
            ("EdDSA" | "Ed25519", "OKP", Some("Ed25519")) => {
                let x = b64d(m, "x").filter(|x| x.len() == 32)?;
                Some(Self::Key(UnparsedPublicKey::new(&signature::ED25519, x)))
            }
            ("RS256" | "RS384" | "RS512", "RSA", _) => {
                let params: &'static signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA512,
                };
                let strip = |v: Vec<u8>| -> Vec<u8> {
                    let z = v.iter().take_while(|&&b| b == 0).count();
                    v[z..].to_vec()
                };
                let n = strip(b64d(m, "n")?);
                let e = strip(b64d(m, "e")?);
                // ring's bounds: a 2048–8192-bit modulus, an odd exponent of 3 up to 33 bits.
                let odd = e.last().is_some_and(|b| b & 1 == 1);
                let small = e.len() <= 4 || (e.len() == 5 && e.first() == Some(&1));
                let at_least_3 = e.len() > 1 || e.first().is_some_and(|&b| b >= 3);
                if !(256..=1024).contains(&n.len()) || !odd || !small || !at_least_3 {
                    return None;
                }
                Some(Self::Rsa(RsaPublicKeyComponents { n, e }, params))
            }
            _ => None,
        }
    }

    /// Whether `signature` over `message` verifies.
    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Key(k) => k.verify(message, sig).is_ok(),
            Self::Rsa(k, params) => k.verify(params, message, sig).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::KeyPair as _;
    use josekit::jwk::alg::ed::EdCurve;
    use josekit::jws::{ES256, ES384, ES512, EdDSA, JwsSigner, JwsVerifier, RS256, RS384, RS512};

    const MSG: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";

    fn map(j: josekit::jwk::Jwk) -> Map<String, Value> {
        j.into()
    }

    fn flip(sig: &[u8]) -> Vec<u8> {
        let mut s = sig.to_vec();
        if let Some(b) = s.last_mut() {
            *b ^= 1;
        }
        s
    }

    /// Each direction: ring's signature verifies under josekit, josekit's under ring, and a
    /// flipped bit fails under ring.
    #[test]
    fn es256_signatures_agree_with_josekit_both_ways() {
        let kp = ES256.generate_key_pair().expect("key");
        let fast = FastSigner::es256(&map(kp.to_jwk_key_pair())).expect("ring key");
        let public = kp.to_jwk_public_key();
        let jose_verifier = ES256.verifier_from_jwk(&public).expect("verifier");
        let ring_sig = fast.sign(MSG).expect("sign");
        assert_eq!(ring_sig.len(), 64);
        assert!(jose_verifier.verify(MSG, &ring_sig).is_ok());
        let v = FastVerifier::from_jwk("ES256", &map(public)).expect("fast verifier");
        let jose_sig = ES256
            .signer_from_jwk(&kp.to_jwk_key_pair())
            .expect("signer")
            .sign(MSG)
            .expect("sign");
        assert!(v.verify(MSG, &jose_sig));
        assert!(v.verify(MSG, &ring_sig));
        assert!(!v.verify(MSG, &flip(&jose_sig)));
        assert!(!v.verify(b"another message", &jose_sig));
    }

    #[test]
    fn es384_and_eddsa_verify_josekit_signatures() {
        let kp = ES384.generate_key_pair().expect("key");
        let sig = ES384
            .signer_from_jwk(&kp.to_jwk_key_pair())
            .expect("signer")
            .sign(MSG)
            .expect("sign");
        let v = FastVerifier::from_jwk("ES384", &map(kp.to_jwk_public_key())).expect("fast");
        assert!(v.verify(MSG, &sig) && !v.verify(MSG, &flip(&sig)));

        let kp = EdDSA.generate_key_pair(EdCurve::Ed25519).expect("key");
        let sig = EdDSA
            .signer_from_jwk(&kp.to_jwk_key_pair())
            .expect("signer")
            .sign(MSG)
            .expect("sign");
        for alg in ["EdDSA", "Ed25519"] {
            let v = FastVerifier::from_jwk(alg, &map(kp.to_jwk_public_key())).expect("fast");
            assert!(v.verify(MSG, &sig) && !v.verify(MSG, &flip(&sig)));
        }
    }

    #[test]
    fn rsa_pkcs1_verifies_josekit_signatures_of_each_hash() {
        let kp = RS256.generate_key_pair(2048).expect("key");
        let public = map(kp.to_jwk_public_key());
        // The same private key, without its `alg`, for each hash.
        let mut private = map(kp.to_jwk_key_pair());
        private.remove("alg");
        let jwk = josekit::jwk::Jwk::from_map(private).expect("jwk");
        let pairs: [(&str, Box<dyn JwsSigner>); 3] = [
            ("RS256", Box::new(RS256.signer_from_jwk(&jwk).expect("s"))),
            ("RS384", Box::new(RS384.signer_from_jwk(&jwk).expect("s"))),
            ("RS512", Box::new(RS512.signer_from_jwk(&jwk).expect("s"))),
        ];
        for (alg, signer) in pairs {
            let sig = signer.sign(MSG).expect("sign");
            let v = FastVerifier::from_jwk(alg, &public).expect("fast");
            assert!(v.verify(MSG, &sig), "{alg}");
            assert!(!v.verify(MSG, &flip(&sig)), "{alg} tampered");
            assert!(!v.verify(MSG, &sig[1..]), "{alg} short signature");
        }
        // A signature of one hash does not verify as another.
        let sig = RS256
            .signer_from_jwk(&jwk)
            .expect("s")
            .sign(MSG)
            .expect("sign");
        let v = FastVerifier::from_jwk("RS384", &public).expect("fast");
        assert!(!v.verify(MSG, &sig));
    }

    /// What ring does not do here stays with josekit.
    #[test]
    fn other_algorithms_and_keys_are_left_to_josekit() {
        let p521 = ES512.generate_key_pair().expect("key");
        assert!(FastVerifier::from_jwk("ES512", &map(p521.to_jwk_public_key())).is_none());
        let rsa = RS256.generate_key_pair(2048).expect("key");
        assert!(FastVerifier::from_jwk("PS256", &map(rsa.to_jwk_public_key())).is_none());
        let ec = ES256.generate_key_pair().expect("key");
        // An algorithm that does not match the key.
        assert!(FastVerifier::from_jwk("RS256", &map(ec.to_jwk_public_key())).is_none());
        assert!(FastVerifier::from_jwk("ES384", &map(ec.to_jwk_public_key())).is_none());
        // A coordinate of the wrong length.
        let mut short = map(ec.to_jwk_public_key());
        short.insert("x".into(), "AAAA".into());
        assert!(FastVerifier::from_jwk("ES256", &short).is_none());
        // An even RSA exponent.
        let mut even = map(rsa.to_jwk_public_key());
        even.insert("e".into(), "AQAC".into());
        assert!(FastVerifier::from_jwk("RS256", &even).is_none());
    }
}
