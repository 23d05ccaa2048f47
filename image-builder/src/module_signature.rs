//! Removes the signature Debian appends to each kernel module, for recipes that trade it for boot time.
//!
//! The kernel checks an appended signature on every load even when it does not enforce signatures (it only
//! decides whether to taint), and hashing a module under QEMU's TCG is slow: ext4 alone takes ~130 ms more
//! signed. Without signatures the kernel logs "module verification failed … tainting kernel" once and sets taint
//! flag E; a kernel in lockdown (Secure Boot) refuses unsigned modules, so such images must keep them.

/// The trailer `scripts/sign-file` appends after the signature and its `struct module_signature`.
const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `struct module_signature`: algo, hash, id_type, signer_len, key_id_len (u8 each), 3 pad bytes, sig_len (be32).
const INFO_LEN: usize = 12;

/// A module whose trailer announces a signature longer than the module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the module signature trailer claims {signature_len} bytes, but the module has only {module_len}")]
pub struct ModuleSignatureError {
    pub signature_len: usize,
    pub module_len: usize,
}

/// Returns the module without its appended signature; an unsigned module comes back unchanged.
pub fn strip_signature(mut module: Vec<u8>) -> Result<Vec<u8>, ModuleSignatureError> {
    if !module.ends_with(MAGIC) || module.len() < MAGIC.len() + INFO_LEN {
        return Ok(module);
    }
    let info_start = module.len() - MAGIC.len() - INFO_LEN;
    let info = &module[info_start..info_start + INFO_LEN];
    let signature_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    let signed_len = signature_len + INFO_LEN + MAGIC.len();
    if signed_len > module.len() {
        return Err(ModuleSignatureError { signature_len, module_len: module.len() });
    }
    module.truncate(module.len() - signed_len);
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(code: &[u8], signature: &[u8]) -> Vec<u8> {
        let mut module = code.to_vec();
        module.extend_from_slice(signature);
        module.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        module.extend_from_slice(&(signature.len() as u32).to_be_bytes());
        module.extend_from_slice(MAGIC);
        module
    }

    #[test]
    fn strips_the_signature_and_trailer() {
        assert_eq!(strip_signature(signed(b"\x7fELF code", b"PKCS7 blob")), Ok(b"\x7fELF code".to_vec()));
    }

    #[test]
    fn leaves_unsigned_modules_alone() {
        assert_eq!(strip_signature(b"\x7fELF code".to_vec()), Ok(b"\x7fELF code".to_vec()));
    }

    #[test]
    fn rejects_a_trailer_longer_than_the_module() {
        let mut module = signed(b"x", b"sig");
        let len_at = module.len() - MAGIC.len() - 4;
        module[len_at..len_at + 4].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            strip_signature(module.clone()),
            Err(ModuleSignatureError { signature_len: 1000, module_len: module.len() })
        );
    }
}
