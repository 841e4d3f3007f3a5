//! Read-only memory maps of block files: the only module of the crate with `unsafe` code.
//!
//! A [`Mapped`] file is shared (`Arc`) by a block and every chunk handed out to queriers, so the
//! mapping lives until the last reader is done, even after the block's directory was deleted by
//! compaction or retention (Linux keeps the inode of a mapped file alive).
#![allow(unsafe_code)]

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::{Error, Result};

/// A whole file mapped read-only.
#[derive(Debug)]
pub(crate) struct Mapped {
    /// `None` for an empty file (which cannot be mapped).
    map: Option<memmap2::Mmap>,
}

impl Mapped {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> Result<Arc<Mapped>> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?
            .len();
        if len == 0 {
            return Ok(Arc::new(Mapped { map: None }));
        }
        // SAFETY: the mapping is read-only and block files are immutable: they are written
        // completely in a temporary directory, fsynced and renamed into place before anything
        // maps them, and nothing writes to them afterwards (blocks are only ever deleted as a
        // whole, which does not change a mapping already made). The one remaining hazard, another
        // process truncating the file while mapped (SIGBUS), is outside what the data directory's
        // lock file allows.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| Error::io(format!("memory-mapping {}", path.display()), e))?;
        Ok(Arc::new(Mapped { map: Some(map) }))
    }

    /// Drops the mapping's resident pages from this process (they stay in the page cache and are
    /// faulted back in on the next read). Called after verifying a whole file so that checking
    /// every CRC does not leave the entire block counted in the process' RSS. Best effort: an
    /// error only means the pages stay resident.
    pub fn release(&self) {
        if let Some(map) = &self.map {
            // SAFETY: MADV_DONTNEED on a read-only, shared, file-backed mapping only discards the
            // page-table entries; the next access re-reads the same bytes from the page cache or
            // the file, which is immutable (see `open`). No reference into the mapping can observe
            // a change, so the `&[u8]` slices handed out by `bytes` stay valid.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// A byte range of a mapped file, cheap to clone; what block chunks hand to decoders.
#[derive(Debug, Clone)]
pub(crate) struct MappedSlice {
    file: Arc<Mapped>,
    range: Range<usize>,
}

impl MappedSlice {
    /// `file[range]`; `None` if the range is not inside the file.
    pub fn new(file: Arc<Mapped>, range: Range<usize>) -> Option<Self> {
        file.bytes().get(range.clone())?;
        Some(Self { file, range })
    }
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        // The range was checked in `new` and the mapping never changes.
        self.file.bytes().get(self.range.clone()).unwrap_or(&[])
    }
}
