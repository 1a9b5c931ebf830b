//! `crypto-choice ED25519.der P256.der [ROUNDS]`: signs and verifies a
//! JWT-sized message with each key, ROUNDS times, and prints the median
//! microseconds of each operation over 11 batches. Built with
//! `--features ring`, `--features rustcrypto`, or neither (the baseline
//! whose size the others are compared to).


#[cfg(feature = "ring")]
mod imp {
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    pub struct Keys { ed: Ed25519KeyPair, es: EcdsaKeyPair, rng: SystemRandom }
    pub fn load(ed: &[u8], es: &[u8]) -> Keys {
        let rng = SystemRandom::new();
        Keys {
            ed: Ed25519KeyPair::from_pkcs8_maybe_unchecked(ed).unwrap(),
            es: EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, es, &rng).unwrap(),
            rng,
        }
    }
    pub fn sign_ed(k: &Keys, m: &[u8]) -> Vec<u8> { k.ed.sign(m).as_ref().to_vec() }
    pub fn verify_ed(k: &Keys, m: &[u8], s: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, k.ed.public_key().as_ref()).verify(m, s).is_ok()
    }
    pub fn sign_es(k: &Keys, m: &[u8]) -> Vec<u8> { k.es.sign(&k.rng, m).unwrap().as_ref().to_vec() }
    pub fn verify_es(k: &Keys, m: &[u8], s: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k.es.public_key().as_ref()).verify(m, s).is_ok()
    }
}

#[cfg(feature = "rustcrypto")]
mod imp {
    use ed25519_dalek::{Signer as _, Verifier as _};
    use p256::ecdsa::signature::Signer as _;
    pub struct Keys { ed: ed25519_dalek::SigningKey, es: p256::ecdsa::SigningKey }
    pub fn load(ed: &[u8], es: &[u8]) -> Keys {
        let seed: [u8; 32] = ed[16..48].try_into().unwrap();
        let at = es.windows(5).position(|w| w == [2, 1, 1, 4, 32]).unwrap() + 5;
        Keys {
            ed: ed25519_dalek::SigningKey::from_bytes(&seed),
            es: p256::ecdsa::SigningKey::from_slice(&es[at..at + 32]).unwrap(),
        }
    }
    pub fn sign_ed(k: &Keys, m: &[u8]) -> Vec<u8> { k.ed.sign(m).to_bytes().to_vec() }
    pub fn verify_ed(k: &Keys, m: &[u8], s: &[u8]) -> bool {
        let Ok(s) = ed25519_dalek::Signature::from_slice(s) else { return false };
        k.ed.verifying_key().verify(m, &s).is_ok()
    }
    pub fn sign_es(k: &Keys, m: &[u8]) -> Vec<u8> {
        let s: p256::ecdsa::Signature = k.es.sign(m);
        s.to_bytes().to_vec()
    }
    pub fn verify_es(k: &Keys, m: &[u8], s: &[u8]) -> bool {
        let Ok(s) = p256::ecdsa::Signature::from_slice(s) else { return false };
        k.es.verifying_key().verify(m, &s).is_ok()
    }
}

#[cfg(any(feature = "ring", feature = "rustcrypto"))]
fn run(ed: &[u8], es: &[u8], rounds: usize) {
    let keys = imp::load(ed, es);
    let msg = b"eyJhbGciOiJFZERTQSIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJqb2huZG9lIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDE4MDB9";
    use std::time::Instant;
    let time = |name: &str, f: &dyn Fn() -> bool| {
        let mut batches: Vec<f64> = (0..11)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..rounds { assert!(f()); }
                start.elapsed().as_secs_f64() * 1e6 / rounds as f64
            })
            .collect();
        batches.sort_by(f64::total_cmp);
        println!("{name}: {:.1} us", batches[5]);
    };
    let sig_ed = imp::sign_ed(&keys, msg);
    let sig_es = imp::sign_es(&keys, msg);
    time("Ed25519 sign", &|| !imp::sign_ed(&keys, msg).is_empty());
    time("Ed25519 verify", &|| imp::verify_ed(&keys, msg, &sig_ed));
    time("ES256 sign", &|| !imp::sign_es(&keys, msg).is_empty());
    time("ES256 verify", &|| imp::verify_es(&keys, msg, &sig_es));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ed = std::fs::read(&args[1]).unwrap();
    let es = std::fs::read(&args[2]).unwrap();
    let rounds = args.get(3).map_or(200, |r| r.parse().unwrap());
    // The baseline keeps what every variant does besides the crypto.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&ed);
    let text = serde_json::to_string(&base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest)).unwrap();
    println!("{text} {}", es.len());
    #[cfg(any(feature = "ring", feature = "rustcrypto"))]
    run(&ed, &es, rounds);
    let _ = rounds;
}
