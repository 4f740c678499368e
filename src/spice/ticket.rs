//! The SPICE ticket: the password encrypted with the server's RSA key (OAEP, SHA-1 for hash and MGF1, empty
//! label), through RustCrypto's `rsa` and `sha1`. No hand-written crypto.
use rsa::PublicKey;
use rsa::pkcs8::DecodePublicKey;

/// The protocol's password limit (`SPICE_MAX_PASSWORD_LENGTH`).
pub(crate) const MAX_PASSWORD_LEN: usize = 60;

/// Encrypts `password` for the server whose DER `SubjectPublicKeyInfo` is `pub_key`. The password is sent
/// with its trailing NUL, as the server compares C strings; an empty password (ticketing disabled) is one NUL.
pub(crate) fn encrypt(pub_key: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password is longer than SPICE's {MAX_PASSWORD_LEN} bytes"
        ));
    }
    if password.contains(&0) {
        return Err("the password contains a NUL byte".into());
    }
    let key = PublicKey::from_public_key_der(pub_key).map_err(|e| e.to_string())?;
    let mut plain = Vec::with_capacity(password.len() + 1);
    plain.extend_from_slice(password);
    plain.push(0);
    key.oaep_encrypt::<sha1::Sha1>(&plain)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_keys_are_errors() {
        assert!(encrypt(&[0u8; 162], b"x").is_err());
        assert!(encrypt(&[], b"x").is_err());
        assert!(encrypt(&[0x30; 162], &[b'a'; 61]).is_err());
    }
}
