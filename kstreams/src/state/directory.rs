//! The state directory: where a process keeps its persistent stores, one locked directory per
//! task, with a checkpoint file of changelog offsets beside the stores.
//!
//! ```text
//! <state-dir>/<application-id>/
//!     kafka-streams-process-metadata      this process's id (stable across restarts)
//!     <task-id>/                          e.g. 0_3: sub-topology 0, partition 3
//!         .lock                           held (flock) while a task of this process owns it
//!         .checkpoint                     changelog offsets the stores hold data up to
//!         rocksdb/<store>/                one RocksDB database per store
//! ```
//!
//! A checkpoint says "the stores hold every changelog record before these offsets", so
//! restoring resumes there instead of at the beginning. It is written after offsets are
//! committed and on clean close; under exactly-once it is written only on clean close and
//! removed while the task runs, so a crashed task has none and its state is rebuilt.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::processor::TaskId;

use super::StoreError;

const PROCESS_FILE: &str = "kafka-streams-process-metadata";
const CHECKPOINT_FILE: &str = ".checkpoint";
const CHECKPOINT_VERSION: &str = "0";

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Storage {
        store: path.display().to_string(),
        message: format!("{what}: {e}"),
    }
}

/// The directory of one application in the state directory.
#[derive(Debug, Clone)]
pub(crate) struct StateDirectory {
    app_dir: PathBuf,
}

/// Changelog offsets by (topic, partition).
pub(crate) type Checkpoint = BTreeMap<(String, i32), i64>;

impl StateDirectory {
    pub(crate) fn new(state_dir: &Path, application_id: &str) -> Result<Self, StoreError> {
        let app_dir = state_dir.join(application_id);
        std::fs::create_dir_all(&app_dir)
            .map_err(|e| io_error("cannot create the state directory", &app_dir, e))?;
        Ok(StateDirectory { app_dir })
    }

    /// This process's id: read from the state directory, or made and stored there, so a
    /// restarted process keeps it (and with it its transactional ids).
    pub(crate) fn process_id(&self) -> Result<String, StoreError> {
        let path = self.app_dir.join(PROCESS_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(id) = text
                .lines()
                .find_map(|l| l.strip_prefix("processId="))
                .map(str::trim)
                .filter(|id| !id.is_empty())
            {
                return Ok(id.to_string());
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        write_atomically(&path, format!("version=1\nprocessId={id}\n").as_bytes())?;
        Ok(id)
    }

    /// The directory of a task, locked for this process until the returned value is dropped.
    /// Fails with [`LockError::Locked`] while another owner holds it.
    pub(crate) fn lock_task(&self, task: TaskId) -> Result<TaskDirectory, LockError> {
        self.lock(&task.to_string())
    }

    /// The directory of the global stores, locked like a task's.
    pub(crate) fn lock_global(&self) -> Result<TaskDirectory, StoreError> {
        match self.lock("global") {
            Ok(d) => Ok(d),
            Err(LockError::Io(e)) => Err(e),
            Err(LockError::Locked(path)) => Err(StoreError::Storage {
                store: path.display().to_string(),
                message: "locked by another instance (instances must not share a state directory)"
                    .into(),
            }),
        }
    }

    fn lock(&self, name: &str) -> Result<TaskDirectory, LockError> {
        let path = self.app_dir.join(name);
        std::fs::create_dir_all(&path)
            .map_err(|e| LockError::Io(io_error("cannot create the task directory", &path, e)))?;
        let lock_path = path.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LockError::Io(io_error("cannot open the lock file", &lock_path, e)))?;
        match lock.try_lock() {
            Ok(()) => Ok(TaskDirectory { path, _lock: lock }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Locked(path)),
            Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(io_error(
                "cannot lock the task directory",
                &lock_path,
                e,
            ))),
        }
    }
}

/// Why a task directory could not be locked.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another task instance (in this or another process) holds it.
    Locked(PathBuf),
    Io(StoreError),
}

/// A locked task directory.
#[derive(Debug)]
pub(crate) struct TaskDirectory {
    path: PathBuf,
    _lock: File,
}

impl TaskDirectory {
    /// An unlocked directory (for the test driver, which owns its directory alone).
    pub(crate) fn unlocked(path: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&path)
            .map_err(|e| io_error("cannot create the task directory", &path, e))?;
        let lock_path = path.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error("cannot open the lock file", &lock_path, e))?;
        Ok(TaskDirectory { path, _lock: lock })
    }

    /// Where a persistent store keeps its files.
    pub(crate) fn store_path(&self, store: &str) -> PathBuf {
        self.path.join("rocksdb").join(store)
    }

    /// The checkpointed changelog offsets; empty when there is no checkpoint.
    pub(crate) fn read_checkpoint(&self) -> Result<Checkpoint, StoreError> {
        let path = self.path.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::new()),
            Err(e) => return Err(io_error("cannot read the checkpoint", &path, e)),
        };
        parse_checkpoint(&text).ok_or_else(|| StoreError::Storage {
            store: path.display().to_string(),
            message: "corrupt checkpoint file".into(),
        })
    }

    /// Replaces the checkpoint (write to a temporary file, then rename).
    pub(crate) fn write_checkpoint(&self, offsets: &Checkpoint) -> Result<(), StoreError> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", offsets.len());
        for ((topic, partition), offset) in offsets {
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        write_atomically(&self.path.join(CHECKPOINT_FILE), text.as_bytes())
    }

    /// Removes the checkpoint, so that a crash from now on leaves none.
    pub(crate) fn delete_checkpoint(&self) -> Result<(), StoreError> {
        let path = self.path.join(CHECKPOINT_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove the checkpoint", &path, e)),
        }
    }

    /// Deletes every persistent store of the task (and its checkpoint).
    pub(crate) fn wipe(&self) -> Result<(), StoreError> {
        self.delete_checkpoint()?;
        let stores = self.path.join("rocksdb");
        match std::fs::remove_dir_all(&stores) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot wipe the task's stores", &stores, e)),
        }
    }

    /// True when the task has persistent stores on disk.
    pub(crate) fn has_stores(&self) -> bool {
        self.path.join("rocksdb").exists()
    }
}

fn parse_checkpoint(text: &str) -> Option<Checkpoint> {
    let mut lines = text.lines();
    if lines.next()? != CHECKPOINT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut offsets = Checkpoint::new();
    for line in lines.filter(|l| !l.is_empty()) {
        // Topic names cannot hold spaces; split from the right anyway.
        let mut parts = line.rsplitn(3, ' ');
        let offset = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_string();
        offsets.insert((topic, partition), offset);
    }
    (offsets.len() == count).then_some(offsets)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| io_error("cannot write", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("cannot rename", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kstreams-directory-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn checkpoints_round_trip_and_are_replaced_atomically() {
        let root = temp_dir("checkpoint");
        let dir = StateDirectory::new(&root, "app").unwrap();
        let task = dir
            .lock_task(TaskId {
                subtopology: 0,
                partition: 3,
            })
            .unwrap();
        assert!(task.read_checkpoint().unwrap().is_empty());
        let mut offsets = Checkpoint::new();
        offsets.insert(("app-store-changelog".into(), 3), 42);
        offsets.insert(("app-other-changelog".into(), 3), 7);
        task.write_checkpoint(&offsets).unwrap();
        assert_eq!(task.read_checkpoint().unwrap(), offsets);
        task.delete_checkpoint().unwrap();
        assert!(task.read_checkpoint().unwrap().is_empty());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_task_directory_has_one_owner_at_a_time() {
        let root = temp_dir("lock");
        let dir = StateDirectory::new(&root, "app").unwrap();
        let id = TaskId {
            subtopology: 1,
            partition: 0,
        };
        let first = dir.lock_task(id).unwrap();
        assert!(matches!(dir.lock_task(id), Err(LockError::Locked(_))));
        drop(first);
        assert!(dir.lock_task(id).is_ok());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_process_id_survives_a_restart() {
        let root = temp_dir("process");
        let first = StateDirectory::new(&root, "app")
            .unwrap()
            .process_id()
            .unwrap();
        let again = StateDirectory::new(&root, "app")
            .unwrap()
            .process_id()
            .unwrap();
        assert_eq!(first, again);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn corrupt_checkpoints_are_reported() {
        assert!(parse_checkpoint("0\n2\nt 0 5\n").is_none());
        assert!(parse_checkpoint("9\n0\n").is_none());
        assert_eq!(parse_checkpoint("0\n1\nt 0 5\n").unwrap().len(), 1);
    }
}
