//! Writing artifacts so a reader never sees a partial file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::IssuerError;

/// Writes `bytes` to `path` atomically: a temp file with a random name
/// created `O_EXCL` in the same directory (a planted file or symlink is never
/// opened), fsync, rename over the target, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IssuerError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("artifact");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    // The umask may have narrowed the mode; artifacts must be readable as asked.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| IssuerError::Io(e.error))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates a new file with 0600 permissions; refuses to overwrite.
pub fn write_private_new(path: &Path, bytes: &[u8]) -> Result<(), IssuerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
