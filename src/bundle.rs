//! Building the Lambda artefact: compile the transform in release mode without the AWS SDK,
//! check the glibc it needs against Lambda's provided.al2023, and write a reproducible zip
//! (fixed timestamps, fixed order, `bootstrap` mode 0755) whose base64 SHA-256 equals the
//! `CodeSha256` Lambda reports, so unchanged code never shows up in `plan`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Lambda's `provided.al2023` runtime ships glibc 2.34.
pub const LAMBDA_GLIBC: (u32, u32) = (2, 34);
pub const ZIP_NAME: &str = "transform.zip";
pub const TRANSFORM_BIN: &str = "pipectl-transform";
pub const PRODUCER_BIN: &str = "pipectl-producer";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("running `{command}` in {dir}")]
    Spawn {
        command: String,
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}")]
    Build { command: String, status: std::process::ExitStatus },
    #[error("the bootstrap needs GLIBC_{}.{}, newer than Lambda provided.al2023's {}.{}; install cargo-zigbuild and ziglang (pip) to build against an older glibc", .0.0, .0.1, LAMBDA_GLIBC.0, LAMBDA_GLIBC.1)]
    GlibcTooNew((u32, u32)),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the zip")]
    Zip(#[source] zip::result::ZipError),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BundleError + 'a {
    move |source| BundleError::Io { what, path: path.display().to_string(), source }
}

/// What `bundle` produced.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub zip: PathBuf,
    pub code_sha256: String,
    pub size: u64,
    pub glibc: Option<(u32, u32)>,
    pub builder: &'static str,
}

/// Where the pipectl sources are (to build the Lambda): `PIPECTL_SOURCE_DIR`, else the
/// directory this binary was built from.
pub fn source_dir() -> PathBuf {
    std::env::var_os("PIPECTL_SOURCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The default artefact directory: `dist/` in the sources.
pub fn default_out_dir() -> PathBuf {
    source_dir().join("dist")
}

/// The base64 SHA-256 of `bytes`, the form of Lambda's `CodeSha256`.
pub fn code_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// PATH with the project's `.venv/bin` first, where scripts/moto-venv.sh installs
/// cargo-zigbuild and zig (PyPI's ziglang), so a bundle uses them without activating the venv.
fn tool_path(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.join(".venv/bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

fn zigbuild_available(dir: &Path) -> bool {
    Command::new("cargo")
        .env("PATH", tool_path(dir))
        .args(["zigbuild", "--help"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn cargo(dir: &Path, args: &[&str]) -> Result<(), BundleError> {
    let command = format!("cargo {}", args.join(" "));
    let status =
        Command::new("cargo").env("PATH", tool_path(dir)).args(args).current_dir(dir).status().map_err(|source| {
            BundleError::Spawn { command: command.clone(), dir: dir.display().to_string(), source }
        })?;
    if !status.success() {
        return Err(BundleError::Build { command, status });
    }
    Ok(())
}

/// Builds the transform and writes `out/transform.zip`. With `producer`, also builds the
/// standalone producer binary into `out/`.
pub fn bundle(out: &Path, producer: bool) -> Result<Artifact, BundleError> {
    let dir = source_dir();
    // cargo-zigbuild links against glibc 2.17 (older than any Lambda runtime); a plain build
    // links against the host's glibc and is checked below.
    let (bin_dir, builder) = if zigbuild_available(&dir) {
        cargo(
            &dir,
            &[
                "zigbuild",
                "--release",
                "--no-default-features",
                "--features",
                "lambda",
                "--bin",
                TRANSFORM_BIN,
                "--target",
                "x86_64-unknown-linux-gnu.2.17",
            ],
        )?;
        (dir.join("target/x86_64-unknown-linux-gnu/release"), "cargo zigbuild (glibc 2.17)")
    } else {
        cargo(&dir, &["build", "--release", "--no-default-features", "--features", "lambda", "--bin", TRANSFORM_BIN])?;
        (dir.join("target/release"), "cargo build (host glibc)")
    };
    let bin = bin_dir.join(TRANSFORM_BIN);
    let exe = std::fs::read(&bin).map_err(io("reading", &bin))?;
    let glibc = newest_glibc(&exe);
    if let Some(v) = glibc {
        if v > LAMBDA_GLIBC {
            return Err(BundleError::GlibcTooNew(v));
        }
    }
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    let zip_bytes = zip_bootstrap(&exe)?;
    let zip = out.join(ZIP_NAME);
    write_atomic(&zip, &zip_bytes)?;
    if producer {
        cargo(&dir, &["build", "--release", "--bin", PRODUCER_BIN])?;
        let from = dir.join("target/release").join(PRODUCER_BIN);
        let to = out.join(PRODUCER_BIN);
        std::fs::copy(&from, &to).map_err(io("copying", &from))?;
    }
    Ok(Artifact { zip, code_sha256: code_sha256(&zip_bytes), size: zip_bytes.len() as u64, glibc, builder })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let tmp = path.with_extension("zip.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into", path))
}

/// A zip holding one file, `bootstrap` (mode 0755), with a fixed timestamp (1980-01-01, the
/// zip epoch) and fixed compression, so the same binary always gives the same bytes.
pub fn zip_bootstrap(exe: &[u8]) -> Result<Vec<u8>, BundleError> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    w.start_file("bootstrap", opts).map_err(BundleError::Zip)?;
    w.write_all(exe).map_err(|e| BundleError::Zip(e.into()))?;
    Ok(w.finish().map_err(BundleError::Zip)?.into_inner())
}

/// The newest `GLIBC_x.y` symbol version an ELF binary refers to. The version strings live in
/// the binary's `.gnu.version_r` string table; scanning for them needs no ELF parser and cannot
/// miss one (a false positive would only make the check stricter).
pub fn newest_glibc(exe: &[u8]) -> Option<(u32, u32)> {
    let pat = b"GLIBC_";
    let mut best = None;
    let mut i = 0;
    while let Some(off) = exe[i..].windows(pat.len()).position(|w| w == pat) {
        let start = i + off + pat.len();
        let end =
            exe[start..].iter().position(|b| !(b.is_ascii_digit() || *b == b'.')).map_or(exe.len(), |e| start + e);
        let text = std::str::from_utf8(&exe[start..end]).unwrap_or("");
        let mut parts = text.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            best = best.max(Some((major, minor)));
        }
        i = start;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_is_reproducible_and_hash_matches() {
        let a = zip_bootstrap(b"#!/bin/sh\necho hi\n").unwrap();
        let b = zip_bootstrap(b"#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, zip_bootstrap(b"#!/bin/sh\necho ho\n").unwrap());
        assert_eq!(code_sha256(&a), code_sha256(&b));
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(a)).unwrap();
        assert_eq!(z.len(), 1);
        let f = z.by_index(0).unwrap();
        assert_eq!(f.name(), "bootstrap");
        assert_eq!(f.unix_mode().unwrap() & 0o777, 0o755);
    }

    #[test]
    fn glibc_scan() {
        assert_eq!(newest_glibc(b"xxGLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0"), Some((2, 34)));
        assert_eq!(newest_glibc(b"nothing here"), None);
        assert_eq!(newest_glibc(b"GLIBC_PRIVATE\0GLIBC_2.9"), Some((2, 9)));
    }

    #[test]
    fn sha_is_base64_of_sha256() {
        assert_eq!(code_sha256(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }
}
