//! Spilling objects to any `object_store` URL as Arrow IPC stream files
//! (`<prefix>/<object id>.arrows`).
//!
//! The store decides *what* to spill; this module only moves bytes. Calls block the calling
//! (non-async) thread on the node's tokio runtime; deletes requested from inside an async
//! context go through an owned janitor task that shutdown drains.

use std::sync::Arc;

use arrow::buffer::Buffer;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use crate::core::ids::ObjectId;
use crate::core::object::{ObjectData, decode_ipc, encode_ipc};
use crate::error::{Error, Result};

/// Where a spilled object lives.
#[derive(Debug, Clone)]
pub(crate) struct SpillFile {
    pub(crate) path: Path,
    pub(crate) len: u64,
}

/// Writes, reads and deletes spill files.
pub(crate) struct Spiller {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// For `file://` URLs: the directory, so restores map the file instead of copying it.
    local_dir: Option<std::path::PathBuf>,
    rt: Handle,
    janitor_tx: Mutex<Option<mpsc::UnboundedSender<Path>>>,
    janitor: Mutex<Option<JoinHandle<()>>>,
}

struct BufferOwner(Buffer);

impl AsRef<[u8]> for BufferOwner {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Spiller {
    /// A spiller writing under `url` (any object_store URL; a plain path means a local dir).
    pub(crate) fn new(url: &str, rt: Handle) -> Result<Spiller> {
        let parsed = match Url::parse(url) {
            Ok(u) => u,
            Err(_) => Url::from_directory_path(url).map_err(|_| {
                Error::InvalidArgument(format!(
                    "spill_url {url:?} is neither a URL nor an absolute path"
                ))
            })?,
        };
        let mut local_dir = None;
        if parsed.scheme() == "file" {
            let dir = parsed.to_file_path().map_err(|_| {
                Error::InvalidArgument(format!("spill_url {url:?} is not a local path"))
            })?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating spill directory {}", dir.display()), e))?;
            local_dir = Some(dir);
        }
        let (store, prefix) = object_store::parse_url(&parsed)
            .map_err(|e| Error::InvalidArgument(format!("spill_url {url:?}: {e}")))?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        let (tx, mut rx) = mpsc::unbounded_channel::<Path>();
        let jstore = store.clone();
        let janitor = rt.spawn(async move {
            while let Some(path) = rx.recv().await {
                let _ = jstore.delete(&path).await;
            }
        });
        Ok(Spiller {
            store,
            prefix,
            url: url.to_string(),
            local_dir,
            rt,
            janitor_tx: Mutex::new(Some(tx)),
            janitor: Mutex::new(Some(janitor)),
        })
    }

    /// The spill URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn path_of(&self, id: ObjectId) -> Path {
        self.prefix.clone().join(format!("{id}.arrows"))
    }

    /// Writes `data` as `<id>.arrows`.
    pub(crate) fn write(&self, id: ObjectId, data: &ObjectData) -> Result<SpillFile> {
        let buffers = encode_ipc(data)?;
        let len: u64 = buffers.iter().map(|b| b.len() as u64).sum();
        let payload: PutPayload = buffers
            .into_iter()
            .map(|b| Bytes::from_owner(BufferOwner(b)))
            .collect();
        let path = self.path_of(id);
        self.block_on(self.store.put(&path, payload))
            .map_err(|e| Error::io(format!("spilling object {id} to {}/{path}", self.url), e))?;
        Ok(SpillFile { path, len })
    }

    /// Reads a spilled object back. A local spill file is mapped, not copied: the restored
    /// buffers are the file's pages.
    pub(crate) fn read(&self, id: ObjectId, file: &SpillFile) -> Result<ObjectData> {
        let ctx = || format!("restoring object {id} from {}/{}", self.url, file.path);
        // A spill file that is gone makes the object lost (its owner may rebuild it); other
        // failures are I/O errors.
        let gone = || Error::ObjectLost {
            object: id.to_string(),
            reason: format!("its spill file {}/{} is gone", self.url, file.path),
        };
        if let Some(dir) = &self.local_dir {
            let name = file.path.filename().unwrap_or_default();
            let map = crate::core::shm::map_file(&dir.join(name)).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    gone()
                } else {
                    Error::io(ctx(), e)
                }
            })?;
            return decode_ipc(crate::core::shm::mapping_buffer(&map));
        }
        let bytes = self
            .block_on(async { self.store.get(&file.path).await?.bytes().await })
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => gone(),
                e => Error::io(ctx(), e),
            })?;
        decode_ipc(Buffer::from(bytes))
    }

    /// Deletes a spill file: now when called from a plain thread, through the janitor when
    /// called from inside an async context.
    pub(crate) fn delete(&self, file: SpillFile) {
        if Handle::try_current().is_ok() {
            if let Some(tx) = self.janitor_tx.lock().as_ref() {
                let _ = tx.send(file.path);
            }
        } else {
            let _ = self.block_on(self.store.delete(&file.path));
        }
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Drains pending deletes and stops the janitor.
    pub(crate) fn shutdown(&self) {
        self.janitor_tx.lock().take();
        let janitor = self.janitor.lock().take();
        if let Some(j) = janitor {
            let _ = self.rt.block_on(j);
        }
    }
}

impl std::fmt::Debug for Spiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spiller").field("url", &self.url).finish()
    }
}
