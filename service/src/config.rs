//! Loading a service's configuration: one TOML file whose relative paths (and `{ file = … }`
//! secrets) are taken relative to the file's own directory, validated before use.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::secrets::SecretSource;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("configuration: {0}")]
    Invalid(&'static str),
}

/// A service configuration file.
pub trait ConfigFile: DeserializeOwned {
    /// Rewrites every relative path the configuration names through `base`.
    fn resolve_paths(&mut self, base: &RelativeTo<'_>);
    /// Checks values that deserialising alone cannot.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Resolves paths relative to a configuration file's directory.
#[derive(Debug, Clone, Copy)]
pub struct RelativeTo<'a>(pub &'a Path);

impl RelativeTo<'_> {
    /// Joins a relative path onto the base; absolute paths stay as they are.
    pub fn path(&self, p: &mut PathBuf) {
        if p.is_relative() {
            *p = self.0.join(&*p);
        }
    }

    /// Like [`RelativeTo::path`], for an optional path.
    pub fn opt_path(&self, p: &mut Option<PathBuf>) {
        if let Some(p) = p {
            self.path(p);
        }
    }

    /// Resolves a file-backed secret; environment secrets are left alone.
    pub fn secret(&self, s: &mut SecretSource) {
        if let SecretSource::File(p) = s {
            self.path(p);
        }
    }
}

/// Parses TOML text; relative paths resolve against `base`.
pub fn parse<C: ConfigFile>(text: &str, base: &Path) -> Result<C, ConfigError> {
    let mut config: C = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: base.to_path_buf(),
        detail: e.message().to_owned(),
    })?;
    config.resolve_paths(&RelativeTo(base));
    config.validate()?;
    Ok(config)
}

/// Reads and parses a configuration file.
pub fn load<C: ConfigFile>(path: &Path) -> Result<C, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|e| match e {
        ConfigError::Parse { detail, .. } => ConfigError::Parse {
            path: path.to_path_buf(),
            detail,
        },
        other => other,
    })
}

/// Resolves when the process is asked to stop (Ctrl-C, or SIGTERM on Unix).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        file: PathBuf,
        secret: SecretSource,
        n: u32,
    }

    impl ConfigFile for Demo {
        fn resolve_paths(&mut self, base: &RelativeTo<'_>) {
            base.path(&mut self.file);
            base.secret(&mut self.secret);
        }
        fn validate(&self) -> Result<(), ConfigError> {
            if self.n == 0 {
                return Err(ConfigError::Invalid("n must be > 0"));
            }
            Ok(())
        }
    }

    #[test]
    fn relative_paths_resolve_and_validation_runs() {
        let c: Demo = parse(
            "file = \"a.pem\"\nsecret = { file = \"k\" }\nn = 1",
            Path::new("/etc/x"),
        )
        .unwrap();
        assert_eq!(c.file, PathBuf::from("/etc/x/a.pem"));
        assert!(matches!(c.secret, SecretSource::File(ref p) if p == Path::new("/etc/x/k")));
        let c: Demo = parse(
            "file = \"/abs\"\nsecret = { env = \"K\" }\nn = 1",
            Path::new("/etc/x"),
        )
        .unwrap();
        assert_eq!(c.file, PathBuf::from("/abs"));
        assert!(matches!(
            parse::<Demo>(
                "file = \"a\"\nsecret = { env = \"K\" }\nn = 0",
                Path::new(".")
            ),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            parse::<Demo>("nope = 1", Path::new(".")),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            load::<Demo>(Path::new("/nonexistent/c.toml")),
            Err(ConfigError::Io { .. })
        ));
    }
}
