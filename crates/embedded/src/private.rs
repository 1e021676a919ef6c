//! Keeps the data directory private to its owner: a directory made earlier (by an older
//! version, a backup restore or a hand-made `mkdir`) is set back to owner-only on start.

use std::path::Path;

/// Sets `dir` to mode 0700 and each entry in it to 0600 (files) or 0700 (directories),
/// down the tree. Symbolic links are left alone: their targets are not ours to change.
#[cfg(unix)]
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
    if meta.permissions().mode() & 0o777 != wanted {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(wanted))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            make_private(&entry?.path())?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn make_private(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Creates `path` (which must not exist) readable and writable by its owner only, whatever
/// the umask: for copies of the database, which hold every customer's data and leave the
/// owner-only data directory.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_directory_and_its_files_become_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(dir.join("backups")).unwrap();
        std::fs::write(dir.join("orderflow.db"), b"x").unwrap();
        std::fs::write(dir.join("backups").join("b.db"), b"x").unwrap();
        for p in [&dir, &dir.join("backups")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in [dir.join("orderflow.db"), dir.join("backups").join("b.db")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        make_private(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("backups")), 0o700);
        assert_eq!(mode(&dir.join("orderflow.db")), 0o600);
        assert_eq!(mode(&dir.join("backups").join("b.db")), 0o600);
    }
}
