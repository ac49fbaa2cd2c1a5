//! The signing key for the simulated Sign in with Apple providers. Offboard signs Apple's
//! client secret with the app's `.p8` key, so the offboard config the simulator writes needs
//! one: a P-256 key made when the simulator starts (no key is committed anywhere), written as
//! PKCS#8 PEM, as Apple issues it, into a folder of its own under the system's temporary
//! folder, readable by this user alone. The folder goes when the simulator's state does (the
//! runtime that serves it ends); a process killed outright leaves it behind.
//!
//! The simulator checks the secrets it is sent for their form only (`apple`), so the key is
//! not what it checks against: it is there for offboard to sign with.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// A freshly made `.p8` file, removed with its folder on drop.
pub(super) struct KeyFile {
    dir: PathBuf,
    path: PathBuf,
}

impl KeyFile {
    /// Makes a P-256 key and writes it as `apple.p8` in a new private folder.
    pub(super) fn create() -> std::io::Result<KeyFile> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| std::io::Error::other("cannot make a P-256 key"))?;
        let block = pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec());
        let pem = pem::encode_config(&block, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF));
        let dir = std::env::temp_dir().join(format!(
            "offboard-simulator-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut folder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
        folder.create(&dir)?;
        // From here on, a failure removes the folder again.
        let file = KeyFile {
            path: dir.join("apple.p8"),
            dir,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&file.path)?.write_all(pem.as_bytes())?;
        Ok(file)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile").field("path", &self.path).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_a_private_p8_that_goes_with_its_folder() {
        let file = KeyFile::create().unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n") && !text.contains('\r'));
        let block = pem::parse(&text).unwrap();
        assert_eq!(block.tag(), "PRIVATE KEY");
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, block.contents()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(file.path()), 0o600);
            assert_eq!(mode(file.path().parent().unwrap()), 0o700);
        }
        assert!(!format!("{file:?}").contains(&text[30..60]));
        let path = file.path().to_owned();
        drop(file);
        assert!(!path.exists() && !path.parent().unwrap().exists());
    }
}
