//! Hashes the demo users' passwords at build time, so the binary carries
//! argon2id PHC strings and never the clear passwords (the wire contract's
//! "Stored as argon2id PHC strings, never in clear").

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::{env, fs, path::Path};

/// The demo users of the FastAPI seed, with the passwords its tutorial uses
/// and the scopes of its scopes chapter ("me", "items").
const DEMO: [(&str, &str, &str, &str, bool, &str); 2] = [
    (
        "johndoe",
        "secret",
        "John Doe",
        "johndoe@example.com",
        false,
        r#"["me", "items"]"#,
    ),
    (
        "alice",
        "secret2",
        "Alice Wonderson",
        "alice@example.com",
        true,
        r#"["me"]"#,
    ),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // OWASP's argon2id minimum, which is also the crate's default for new hashes.
    let params = Params::new(19456, 2, 1, None).expect("constant argon2 parameters are valid");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut users = Vec::with_capacity(DEMO.len());
    for (username, password, full_name, email, disabled, scopes) in DEMO {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the OS random source is available at build time");
        let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
        let hash = argon2
            .hash_password(password.as_bytes(), &salt)
            .expect("hashing with valid parameters succeeds")
            .to_string();
        users.push(format!(
            "  \"{username}\": {{\"username\": \"{username}\", \"full_name\": \"{full_name}\", \
             \"email\": \"{email}\", \"hashed_password\": \"{hash}\", \"disabled\": {disabled}, \"scopes\": {scopes}}}"
        ));
    }
    let json = format!("{{\n{}\n}}\n", users.join(",\n"));
    let out =
        Path::new(&env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("demo_users.json");
    fs::write(out, json).expect("OUT_DIR is writable");
}
