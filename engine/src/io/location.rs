//! Resolving user paths and URLs to an `object_store` and the files under them.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use url::Url;

use crate::error::{Error, Result};

/// A store and how to name things in it.
#[derive(Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// `scheme://authority` (or `file://`), to print full URLs.
    pub base: String,
    /// The local directory the store's paths are relative to, for `file://`.
    pub local: bool,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("base", &self.base)
            .finish()
    }
}

impl Location {
    /// The user-facing name of `path` in this store.
    pub fn display(&self, path: &Path) -> String {
        if self.local {
            format!("/{path}")
        } else {
            format!("{}/{path}", self.base)
        }
    }

    /// The local filesystem path of `path`, for `file://` stores.
    pub fn local_path(&self, path: &Path) -> Option<PathBuf> {
        self.local.then(|| PathBuf::from(format!("/{path}")))
    }
}

/// A file to read.
#[derive(Debug, Clone)]
pub struct FileRef {
    /// Its path in the store.
    pub path: Path,
    /// Its size in bytes.
    pub size: u64,
}

/// `memory://` stores live as long as the process, so a dataset written there can be read
/// back (one store per authority).
static MEMORY_STORES: LazyLock<Mutex<Vec<(String, Arc<dyn ObjectStore>)>>> =
    LazyLock::new(|| Mutex::new(Vec::new()));

/// Parses a path or URL into a location and a path in it.
pub fn parse(input: &str) -> Result<(Location, Path)> {
    let url = if input.contains("://") {
        Url::parse(input).map_err(|e| Error::InvalidArgument(format!("bad URL {input:?}: {e}")))?
    } else {
        let p = std::path::Path::new(input);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("reading the current directory", e))?
                .join(p)
        };
        Url::from_file_path(&abs)
            .map_err(|_| Error::InvalidArgument(format!("bad path {input:?}")))?
    };
    let base = format!("{}://{}", url.scheme(), url.authority());
    if url.scheme() == "memory" {
        let mut stores = MEMORY_STORES.lock();
        let store = match stores.iter().find(|(b, _)| *b == base) {
            Some((_, s)) => s.clone(),
            None => {
                let s: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
                stores.push((base.clone(), s.clone()));
                s
            }
        };
        let path = Path::from_url_path(url.path())
            .map_err(|e| Error::InvalidArgument(format!("bad path in {input:?}: {e}")))?;
        return Ok((
            Location {
                store,
                base,
                local: false,
            },
            path,
        ));
    }
    if let Some(store) = cloud_store(&url, input)? {
        let path = Path::from_url_path(url.path())
            .map_err(|e| Error::InvalidArgument(format!("bad path in {input:?}: {e}")))?;
        return Ok((
            Location {
                store,
                base,
                local: false,
            },
            path,
        ));
    }
    let (store, path) = object_store::parse_url(&url)
        .map_err(|e| Error::InvalidArgument(format!("cannot open {input:?}: {e}")))?;
    let local = url.scheme() == "file";
    Ok((
        Location {
            store: Arc::from(store),
            base,
            local,
        },
        path,
    ))
}

/// The store for an `s3://`, `gs://` or Azure URL, configured from the environment, or `None`
/// for other schemes.
///
/// - `s3://`, `s3a://`: the usual `AWS_*` variables (`AWS_ENDPOINT` and `AWS_ALLOW_HTTP` for
///   S3-compatible servers).
/// - `gs://`: the `GOOGLE_*` variables (`GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
///   `GOOGLE_APPLICATION_CREDENTIALS`; for emulators `GOOGLE_BASE_URL`, `GOOGLE_ALLOW_HTTP` and
///   a `GOOGLE_SERVICE_ACCOUNT_KEY` with `"disable_oauth": true`).
/// - `az://`, `abfs://`, `abfss://`, `azure://`, `adl://`: the `AZURE_*` variables
///   (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, ...; for Azurite,
///   `AZURE_STORAGE_USE_EMULATOR=true` and `AZURITE_BLOB_STORAGE_URL`).
///
/// All of them retry a few times within 20 s and give up connecting after 5 s, so an
/// unreachable endpoint fails within seconds, not minutes.
fn cloud_store(url: &Url, input: &str) -> Result<Option<Arc<dyn ObjectStore>>> {
    use object_store::ClientConfigKey::ConnectTimeout;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

    let retry = object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    };
    // The builders share no trait: one macro gives them all the same settings.
    macro_rules! open {
        ($builder:ident, $config_key:ident) => {
            Arc::new(
                $builder::from_env()
                    .with_url(url.as_str())
                    .with_retry(retry)
                    .with_config($config_key::Client(ConnectTimeout), "5s")
                    .build()
                    .map_err(|e| Error::InvalidArgument(format!("cannot open {input:?}: {e}")))?,
            )
        };
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => open!(AmazonS3Builder, AmazonS3ConfigKey),
        "gs" => open!(GoogleCloudStorageBuilder, GoogleConfigKey),
        "az" | "abfs" | "abfss" | "azure" | "adl" => open!(MicrosoftAzureBuilder, AzureConfigKey),
        _ => return Ok(None),
    };
    Ok(Some(store))
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches `name` against a glob with `*`, `?` and `[...]` (no `/` crossing for `*`).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name)
                || (!name.is_empty() && name[0] != b'/' && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => glob_match(&pattern[1..], &name[1..]),
        (Some(b'['), Some(c)) => match pattern.iter().position(|&b| b == b']') {
            Some(end) => {
                let set = &pattern[1..end];
                let hit = set
                    .windows(3)
                    .any(|w| w[1] == b'-' && w[0] <= *c && *c <= w[2])
                    || set.contains(c);
                hit && glob_match(&pattern[end + 1..], &name[1..])
            }
            None => false,
        },
        (Some(p), Some(c)) => p == c && glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn hidden(path: &Path) -> bool {
    path.filename()
        .is_some_and(|f| f.starts_with('.') || f.starts_with('_'))
}

/// Resolves paths (files, directories, globs, URLs; all in one store) to the files under
/// them, sorted by path. A path that matches nothing is a `NotFound` error naming it.
pub async fn resolve(inputs: &[String]) -> Result<(Location, Vec<FileRef>)> {
    if inputs.is_empty() {
        return Err(Error::InvalidArgument("no paths given".into()));
    }
    let mut location: Option<Location> = None;
    let mut files = Vec::new();
    for input in inputs {
        let (loc, path) = parse(input)?;
        if let Some(l) = &location
            && l.base != loc.base
        {
            return Err(Error::InvalidArgument(format!(
                "all paths must be in one store: {input:?} is not under {}",
                l.base
            )));
        }
        let store = loc.store.clone();
        let found = if is_glob(input) {
            let raw = path.to_string();
            let cut = raw.find(['*', '?', '[']).unwrap_or(raw.len());
            let prefix = raw[..cut].rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let listed: Vec<_> = store
                .list(Some(&Path::from(prefix)))
                .try_collect()
                .await
                .map_err(|e| Error::io(format!("listing {input}"), e))?;
            listed
                .into_iter()
                .filter(|m| glob_match(raw.as_bytes(), m.location.as_ref().as_bytes()))
                .map(|m| FileRef {
                    path: m.location,
                    size: m.size,
                })
                .collect::<Vec<_>>()
        } else {
            match store.head(&path).await {
                Ok(meta) => vec![FileRef {
                    path: meta.location,
                    size: meta.size,
                }],
                Err(object_store::Error::NotFound { .. }) => {
                    let listed: Vec<_> = store
                        .list(Some(&path))
                        .try_collect()
                        .await
                        .map_err(|e| Error::io(format!("listing {input}"), e))?;
                    listed
                        .into_iter()
                        .filter(|m| !hidden(&m.location))
                        .map(|m| FileRef {
                            path: m.location,
                            size: m.size,
                        })
                        .collect()
                }
                Err(e) => return Err(Error::io(format!("opening {input}"), e)),
            }
        };
        if found.is_empty() {
            return Err(Error::NotFound(format!("no files at {input}")));
        }
        files.extend(found);
        location.get_or_insert(loc);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    let location = location.ok_or_else(|| Error::InvalidArgument("no paths given".into()))?;
    Ok((location, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match(b"d/*.parquet", b"d/a.parquet"));
        assert!(!glob_match(b"d/*.parquet", b"d/sub/a.parquet"));
        assert!(glob_match(b"d/part-[0-9]?.csv", b"d/part-17.csv"));
        assert!(!glob_match(b"d/part-[0-9]?.csv", b"d/part-x7.csv"));
    }
}
