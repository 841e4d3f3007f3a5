//! Persisted blocks: immutable, memory-mapped directories of chunks and a label index covering a
//! time range `[min_t, max_t)`. Written once by [`Writer`] (into a temporary directory, fsynced,
//! renamed into place), read by [`Block`]. Byte layouts are in `tsdb/docs/format.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pharos_model::{Labels, MatchOp, Matcher, Sample};
use serde::{Deserialize, Serialize};

use crate::chunk::{self, Encoding};
use crate::files;
use crate::head::{intersect, literal_alternatives, subtract, union};
use crate::iter::{ChunkBytes, ChunkRef};
use crate::mmap::{Mapped, MappedSlice};
use crate::varint::{put_uvarint, put_varint, uvarint, varint};
use crate::{Error, Result};

/// Samples per chunk written from samples (head cuts, re-encoded compactions): larger than the
/// head's [`chunk::SAMPLES_PER_CHUNK`] because per-chunk headers, framing and index entries then
/// weigh less. Measured on the 2,000-series x 24 h bench dataset (`--bench density`), bytes per
/// sample with framing: 120: 2.56, 480: 2.37, 1440: 2.33; 480 is a whole 2 h block at 15 s and
/// keeps decoding for short ranges cheap.
pub(crate) const BLOCK_CHUNK_SAMPLES: usize = 480;

/// Bytes of the index and chunk file headers (magic, version, 3 zero bytes).
const HEADER_LEN: usize = 8;
/// Bytes of the index trailer: six u64 offsets and a CRC32C.
const TRAILER_LEN: usize = 6 * 8 + 4;

/// A block's `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Meta {
    /// Format version (1).
    pub version: u32,
    /// Oldest sample time (ms), inclusive.
    pub min_time: i64,
    /// End of the covered range (ms), exclusive.
    pub max_time: i64,
    /// Counts.
    pub stats: MetaStats,
    /// Compaction history.
    pub compaction: MetaCompaction,
}

/// Counts of a block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetaStats {
    /// Samples.
    pub num_samples: u64,
    /// Series.
    pub num_series: u64,
    /// Chunks.
    pub num_chunks: u64,
    /// Bytes of the chunk file.
    pub chunk_bytes: u64,
    /// Bytes of the index file.
    pub index_bytes: u64,
}

/// How a block came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetaCompaction {
    /// 1 for a block cut from the head, one more than the highest source level after compaction.
    pub level: u32,
    /// Names of the level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Corruption(format!("{}: {what}", path.display()))
}

/// A chunk being copied or written: its encoding, bytes and time range.
#[derive(Debug, Clone)]
pub(crate) struct RawChunk<'a> {
    pub encoding: Encoding,
    pub bytes: &'a [u8],
    pub min_t: i64,
    pub max_t: i64,
    pub samples: u64,
}

struct ChunkMeta {
    min_t: i64,
    max_t: i64,
    offset: u64,
}

/// Writes one block; series must be added in label order.
pub(crate) struct Writer {
    parent: PathBuf,
    tmp: PathBuf,
    chunks: BufWriter<File>,
    chunks_len: u64,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    samples: u64,
    num_chunks: u64,
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a block in a temporary directory under `parent`.
    pub fn new(parent: &Path, min_t: i64, max_t: i64) -> Result<Writer> {
        let tmp = parent.join(format!(
            "{}{}",
            files::block_name(min_t, max_t),
            files::TMP_SUFFIX
        ));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .map_err(|e| Error::io(format!("removing {}", tmp.display()), e))?;
        }
        fs::create_dir_all(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let path = tmp.join(files::BLOCK_CHUNKS);
        let f = File::create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let mut chunks = BufWriter::with_capacity(1 << 20, f);
        chunks
            .write_all(&header(files::CHUNKS_MAGIC))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(Writer {
            parent: parent.to_path_buf(),
            tmp,
            chunks,
            chunks_len: HEADER_LEN as u64,
            series: Vec::new(),
            samples: 0,
            num_chunks: 0,
            buf: Vec::new(),
        })
    }

    fn write_chunk(&mut self, c: &RawChunk<'_>) -> Result<ChunkMeta> {
        let b = &mut self.buf;
        b.clear();
        put_uvarint(b, c.bytes.len() as u64);
        let crc_start = b.len();
        b.push(c.encoding as u8);
        b.extend_from_slice(c.bytes);
        let crc = crc32c::crc32c(&b[crc_start..]);
        b.extend_from_slice(&crc.to_le_bytes());
        self.chunks.write_all(b).map_err(|e| {
            Error::io(
                format!("writing {}", self.tmp.join(files::BLOCK_CHUNKS).display()),
                e,
            )
        })?;
        let offset = self.chunks_len;
        self.chunks_len += b.len() as u64;
        self.num_chunks += 1;
        self.samples += c.samples;
        Ok(ChunkMeta {
            min_t: c.min_t,
            max_t: c.max_t,
            offset,
        })
    }

    /// Adds a series with already encoded chunks (in time order, not overlapping).
    pub fn add_chunks(&mut self, labels: &Labels, chunks: &[RawChunk<'_>]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut metas = Vec::with_capacity(chunks.len());
        for c in chunks {
            metas.push(self.write_chunk(c)?);
        }
        self.series.push((labels.clone(), metas));
        Ok(())
    }

    /// Adds a series from its samples (time order), cut into chunks of [`BLOCK_CHUNK_SAMPLES`]
    /// encoded in whichever encoding is smallest.
    pub fn add_samples(&mut self, labels: &Labels, samples: &[Sample]) -> Result<()> {
        self.add_samples_hinted(labels, samples, false)
    }

    /// [`Writer::add_samples`], writing packed chunks without trying XOR if `packed_won` (see
    /// [`chunk::encode_likely`]).
    pub fn add_samples_hinted(
        &mut self,
        labels: &Labels,
        samples: &[Sample],
        packed_won: bool,
    ) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut metas = Vec::new();
        let mut enc_buf = Vec::new();
        for part in samples.chunks(BLOCK_CHUNK_SAMPLES) {
            enc_buf.clear();
            let encoding = chunk::encode_likely(part, &mut enc_buf, packed_won);
            let (Some(first), Some(last)) = (part.first(), part.last()) else {
                continue;
            };
            metas.push(self.write_chunk(&RawChunk {
                encoding,
                bytes: &enc_buf,
                min_t: first.t,
                max_t: last.t,
                samples: part.len() as u64,
            })?);
        }
        self.series.push((labels.clone(), metas));
        Ok(())
    }

    /// Number of series added so far.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Writes the index and meta.json, fsyncs everything and renames the block into place.
    /// Returns its directory, or `None` (and removes the temporary directory) if it is empty.
    pub fn finish(
        self,
        min_t: i64,
        max_t: i64,
        level: u32,
        sources: Vec<String>,
    ) -> Result<Option<PathBuf>> {
        if self.series.is_empty() {
            drop(self.chunks);
            fs::remove_dir_all(&self.tmp)
                .map_err(|e| Error::io(format!("removing {}", self.tmp.display()), e))?;
            return Ok(None);
        }
        let chunks_path = self.tmp.join(files::BLOCK_CHUNKS);
        let f = self
            .chunks
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", chunks_path.display()), e.into_error()))?;
        f.sync_all()
            .map_err(|e| Error::io(format!("fsyncing {}", chunks_path.display()), e))?;
        let index = encode_index(&self.series);
        let index_path = self.tmp.join(files::BLOCK_INDEX);
        write_synced(&index_path, &index)?;
        let name = files::block_name(min_t, max_t);
        let sources = if sources.is_empty() {
            vec![name.clone()]
        } else {
            sources
        };
        let meta = Meta {
            version: 1,
            min_time: min_t,
            max_time: max_t,
            stats: MetaStats {
                num_samples: self.samples,
                num_series: self.series.len() as u64,
                num_chunks: self.num_chunks,
                chunk_bytes: self.chunks_len,
                index_bytes: index.len() as u64,
            },
            compaction: MetaCompaction { level, sources },
        };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| Error::Corruption(format!("encoding meta.json: {e}")))?;
        write_synced(&self.tmp.join(files::BLOCK_META), &json)?;
        crate::wal::sync_dir(&self.tmp)?;
        let dest = self.parent.join(&name);
        // A block of the same name (a rewrite) steps aside whole first: a crash before the new
        // one is in place puts it back at open (see `Db::open`), never leaves it half deleted.
        let replaced = self
            .parent
            .join(format!("{name}{}", files::REPLACED_SUFFIX));
        let replacing = dest.exists();
        if replacing {
            if replaced.exists() {
                // Left by an earlier replace whose new block is in place.
                fs::remove_dir_all(&replaced)
                    .map_err(|e| Error::io(format!("deleting {}", replaced.display()), e))?;
            }
            fs::rename(&dest, &replaced)
                .map_err(|e| Error::io(format!("moving {} aside", dest.display()), e))?;
        }
        if let Err(e) = fs::rename(&self.tmp, &dest) {
            if replacing {
                let _ = fs::rename(&replaced, &dest);
            }
            return Err(Error::io(
                format!("renaming {} to {}", self.tmp.display(), dest.display()),
                e,
            ));
        }
        crate::wal::sync_dir(&self.parent)?;
        if replacing {
            delete_dir(&replaced)
                .map_err(|e| Error::io(format!("deleting {}", replaced.display()), e))?;
        }
        Ok(Some(dest))
    }
}

/// Deletes a block directory: renamed to `<name>.deleting.tmp` first, so a crash midway leaves
/// an unfinished directory that the next open deletes, not a block with files missing (which
/// would be quarantined as damaged).
pub(crate) fn delete_dir(dir: &Path) -> std::io::Result<()> {
    let Some(name) = dir.file_name() else {
        return fs::remove_dir_all(dir);
    };
    let doomed = dir.with_file_name(format!(
        "{}{}",
        name.to_string_lossy(),
        files::DELETING_SUFFIX
    ));
    if doomed.exists() {
        fs::remove_dir_all(&doomed)?;
    }
    fs::rename(dir, &doomed)?;
    fs::remove_dir_all(&doomed)
}

fn header(magic: u32) -> [u8; HEADER_LEN] {
    let m = magic.to_be_bytes();
    let version = if magic == files::CHUNKS_MAGIC {
        files::CHUNKS_FORMAT_VERSION
    } else {
        files::BLOCK_FORMAT_VERSION
    };
    [m[0], m[1], m[2], m[3], version, 0, 0, 0]
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f =
        File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Encodes the index of `series` (sorted by labels).
fn encode_index(series: &[(Labels, Vec<ChunkMeta>)]) -> Vec<u8> {
    // Hashed, then the distinct ones sorted: a block's series repeat most strings many times,
    // and ordered sets compared strings for every insert and lookup (a tenth of the CPU of
    // ingesting a day).
    let mut postings: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
    for (i, (labels, _)) in series.iter().enumerate() {
        for l in labels.iter() {
            postings
                .entry((l.name.as_str(), l.value.as_str()))
                .or_default()
                .push(i as u64);
        }
    }
    let mut symbols: Vec<&str> = postings.keys().flat_map(|&(n, v)| [n, v]).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let ids: HashMap<&str, u64> = symbols
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u64))
        .collect();
    let sym = |s: &str| ids.get(s).copied().unwrap_or(0);
    let mut postings: Vec<((&str, &str), Vec<u64>)> = postings.into_iter().collect();
    postings.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut b = header(files::INDEX_MAGIC).to_vec();
    let symbols_off = b.len() as u64;
    put_uvarint(&mut b, symbols.len() as u64);
    for s in &symbols {
        put_str(&mut b, s);
    }
    let series_off = b.len() as u64;
    let mut offsets = Vec::with_capacity(series.len());
    for (labels, chunks) in series {
        offsets.push(b.len() as u64);
        put_uvarint(&mut b, labels.len() as u64);
        for l in labels.iter() {
            put_uvarint(&mut b, sym(&l.name));
            put_uvarint(&mut b, sym(&l.value));
        }
        put_uvarint(&mut b, chunks.len() as u64);
        let (mut prev_max, mut prev_off) = (0i64, 0u64);
        for (j, c) in chunks.iter().enumerate() {
            if j == 0 {
                put_varint(&mut b, c.min_t);
                put_uvarint(&mut b, c.offset);
            } else {
                put_varint(&mut b, c.min_t.wrapping_sub(prev_max));
                put_uvarint(&mut b, c.offset.wrapping_sub(prev_off));
            }
            put_uvarint(&mut b, c.max_t.wrapping_sub(c.min_t) as u64);
            prev_max = c.max_t;
            prev_off = c.offset;
        }
    }
    let table_off = b.len() as u64;
    for o in &offsets {
        b.extend_from_slice(&o.to_le_bytes());
    }
    let postings_off = b.len() as u64;
    let mut entries = Vec::with_capacity(postings.len());
    for ((name, value), list) in &postings {
        entries.push((sym(name), sym(value), b.len() as u64));
        put_uvarint(&mut b, list.len() as u64);
        let mut prev = 0;
        for &r in list {
            put_uvarint(&mut b, r - prev);
            prev = r;
        }
    }
    let ptable_off = b.len() as u64;
    put_uvarint(&mut b, entries.len() as u64);
    for (n, v, o) in entries {
        put_uvarint(&mut b, n);
        put_uvarint(&mut b, v);
        put_uvarint(&mut b, o);
    }
    for x in [
        symbols_off,
        series_off,
        table_off,
        series.len() as u64,
        postings_off,
        ptable_off,
    ] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A persisted block, memory-mapped.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    meta: Meta,
    index: Arc<Mapped>,
    chunks: Arc<Mapped>,
    symbols: Vec<String>,
    /// name -> value -> offset of its postings list in the index.
    postings: BTreeMap<String, BTreeMap<String, usize>>,
    series_table: usize,
    num_series: usize,
}

fn read_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let (n, rest) = uvarint(b)?;
    let n = usize::try_from(n).ok()?;
    let s = rest.get(..n)?;
    Some((std::str::from_utf8(s).ok()?, &rest[n..]))
}

fn check_header(path: &Path, data: &[u8], magic: u32) -> Result<()> {
    let want = header(magic);
    // Chunk files of version 1 (before the frame-of-reference Packed modes) read unchanged.
    let older = magic == files::CHUNKS_MAGIC && {
        let mut v1 = want;
        v1[4] = 1;
        data.get(..HEADER_LEN) == Some(&v1[..])
    };
    match data.get(..HEADER_LEN) {
        Some(h) if h == want || older => Ok(()),
        Some(h) => Err(corrupt(
            path,
            format!("bad header {h:02x?}, want {want:02x?}"),
        )),
        None => Err(corrupt(
            path,
            format!("{} bytes, shorter than the header", data.len()),
        )),
    }
}

impl Block {
    /// Opens and verifies the block in `dir`: meta.json, the index (CRC of the whole file) and
    /// every chunk's CRC. Errors name the damaged file.
    pub fn open(dir: &Path) -> Result<Block> {
        let meta_path = dir.join(files::BLOCK_META);
        let json = fs::read(&meta_path)
            .map_err(|e| Error::io(format!("reading {}", meta_path.display()), e))?;
        let meta: Meta = serde_json::from_slice(&json)
            .map_err(|e| corrupt(&meta_path, format!("bad JSON: {e}")))?;
        if meta.version != 1 || meta.min_time >= meta.max_time {
            return Err(corrupt(
                &meta_path,
                format!(
                    "version {} or range [{}, {}) invalid",
                    meta.version, meta.min_time, meta.max_time
                ),
            ));
        }
        let chunks_path = dir.join(files::BLOCK_CHUNKS);
        let chunks = Mapped::open(&chunks_path)?;
        verify_chunks(&chunks_path, chunks.bytes())?;
        // Verification touched every page; queries fault back in only what they read.
        chunks.release();
        let index_path = dir.join(files::BLOCK_INDEX);
        let index = Mapped::open(&index_path)?;
        let mut block = Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            symbols: Vec::new(),
            postings: BTreeMap::new(),
            series_table: 0,
            num_series: 0,
        };
        block
            .load_index()
            .ok_or_else(|| corrupt(&index_path, "malformed index"))
            .and_then(|r| r.map_err(|what| corrupt(&index_path, what)))?;
        block.index.release();
        Ok(block)
    }

    /// Parses the index's symbols and postings table; `Some(Err)` for a described problem,
    /// `None` for a malformed number or string.
    fn load_index(&mut self) -> Option<std::result::Result<(), String>> {
        let data = self.index.bytes();
        if data.len() < HEADER_LEN + TRAILER_LEN {
            return Some(Err(format!("{} bytes: too short (truncated?)", data.len())));
        }
        if data[..HEADER_LEN] != header(files::INDEX_MAGIC) {
            return Some(Err(format!("bad header {:02x?}", &data[..HEADER_LEN])));
        }
        let (body, crc) = data.split_at(data.len() - 4);
        let crc = u32::from_le_bytes(crc.try_into().ok()?);
        let actual = crc32c::crc32c(body);
        if crc != actual {
            return Some(Err(format!(
                "CRC32C mismatch (stored {crc:08x}, computed {actual:08x}): damaged or truncated"
            )));
        }
        let toc = &body[body.len() - 48..];
        let at = |i: usize| -> Option<usize> {
            let b: [u8; 8] = toc.get(i * 8..i * 8 + 8)?.try_into().ok()?;
            usize::try_from(u64::from_le_bytes(b)).ok()
        };
        let (sym_off, _series_off, table_off, num_series, _postings_off, ptable_off) =
            (at(0)?, at(1)?, at(2)?, at(3)?, at(4)?, at(5)?);
        let mut b = body.get(sym_off..)?;
        let (n, rest) = uvarint(b)?;
        b = rest;
        let mut symbols = Vec::with_capacity(usize::try_from(n).ok()?.min(1 << 20));
        for _ in 0..n {
            let (s, rest) = read_str(b)?;
            symbols.push(s.to_string());
            b = rest;
        }
        if table_off.checked_add(num_series.checked_mul(8)?)? > body.len() - 48 {
            return Some(Err(format!(
                "series table of {num_series} entries outside the file"
            )));
        }
        let mut b = body.get(ptable_off..)?;
        let (n, rest) = uvarint(b)?;
        b = rest;
        let mut postings: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for _ in 0..n {
            let (name, rest) = uvarint(b)?;
            let (value, rest) = uvarint(rest)?;
            let (off, rest) = uvarint(rest)?;
            b = rest;
            let name = symbols.get(usize::try_from(name).ok()?)?;
            let value = symbols.get(usize::try_from(value).ok()?)?;
            postings
                .entry(name.clone())
                .or_default()
                .insert(value.clone(), usize::try_from(off).ok()?);
        }
        self.symbols = symbols;
        self.postings = postings;
        self.series_table = table_off;
        self.num_series = num_series;
        Some(Ok(()))
    }

    fn index_error(&self, what: impl std::fmt::Display) -> Error {
        corrupt(&self.dir.join(files::BLOCK_INDEX), what)
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The block's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Bytes on disk (chunks, index and meta.json).
    pub fn size(&self) -> u64 {
        (self.chunks.bytes().len() + self.index.bytes().len()) as u64 + 512
    }

    /// True if the block may hold samples in `[min_t, max_t]`.
    pub fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        self.meta.min_time <= max_t && min_t < self.meta.max_time
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.num_series
    }

    /// Every value of label `name` with the number of series carrying it (read from the
    /// postings lists' lengths, without decoding them), sorted by value. For `pharos tsdb
    /// inspect`: with `__name__`, the series count per metric name.
    pub fn series_per_value(&self, name: &str) -> Result<Vec<(String, u64)>> {
        let Some(values) = self.postings.get(name) else {
            return Ok(Vec::new());
        };
        values
            .iter()
            .map(|(v, &off)| {
                let n = self
                    .index
                    .bytes()
                    .get(off..)
                    .and_then(uvarint)
                    .map(|(n, _)| n)
                    .ok_or_else(|| {
                        self.index_error(format!("malformed postings list at offset {off}"))
                    })?;
                Ok((v.clone(), n))
            })
            .collect()
    }

    fn postings(&self, off: usize) -> Result<Vec<u64>> {
        let parse = || -> Option<Vec<u64>> {
            let (n, mut b) = uvarint(self.index.bytes().get(off..)?)?;
            let mut out = Vec::with_capacity(usize::try_from(n).ok()?.min(self.num_series));
            let mut prev = 0u64;
            for _ in 0..n {
                let (d, rest) = uvarint(b)?;
                prev = prev.checked_add(d)?;
                if prev >= self.num_series as u64 {
                    return None;
                }
                out.push(prev);
                b = rest;
            }
            Some(out)
        };
        parse().ok_or_else(|| self.index_error(format!("malformed postings list at offset {off}")))
    }

    fn lists(&self, m: &Matcher, accept: bool) -> Result<Vec<u64>> {
        let Some(values) = self.postings.get(&m.name) else {
            return Ok(Vec::new());
        };
        let literal = match (m.op, accept) {
            (MatchOp::Eq, true) | (MatchOp::Ne, false) => Some(vec![m.value.as_str()]),
            (MatchOp::Re, true) | (MatchOp::NotRe, false) => literal_alternatives(&m.value),
            _ => None,
        };
        let offsets: Vec<usize> = match literal {
            Some(alts) => alts
                .iter()
                .filter_map(|a| values.get(*a).copied())
                .collect(),
            None => values
                .iter()
                .filter(|(v, _)| m.matches(v) == accept)
                .map(|(_, o)| *o)
                .collect(),
        };
        let lists = offsets
            .into_iter()
            .map(|o| self.postings(o))
            .collect::<Result<Vec<_>>>()?;
        Ok(union(lists.iter().collect()))
    }

    /// Indices of the series all `matchers` accept, ascending (= sorted by labels).
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Result<Vec<u64>> {
        let mut positive = Vec::new();
        let mut negative = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                negative.push(self.lists(m, false)?);
            } else {
                positive.push(self.lists(m, true)?);
            }
        }
        positive.sort_by_key(Vec::len);
        let mut result = match positive.split_first() {
            None => (0..self.num_series as u64).collect(),
            Some((first, rest)) => rest.iter().fold(first.clone(), |acc, p| intersect(&acc, p)),
        };
        for n in &negative {
            result = subtract(&result, n);
        }
        Ok(result)
    }

    /// Labels and chunks of series `i`, keeping only the chunks overlapping `[min_t, max_t]`.
    pub(crate) fn series(&self, i: u64, min_t: i64, max_t: i64) -> Result<(Labels, Vec<ChunkRef>)> {
        let (labels, chunks) = self.series_chunks(i, min_t, max_t)?;
        Ok((labels, chunks.into_iter().map(|(_, c)| c).collect()))
    }

    /// Like [`Block::series`], with each chunk's `min_t`.
    fn series_chunks(
        &self,
        i: u64,
        min_t: i64,
        max_t: i64,
    ) -> Result<(Labels, Vec<(i64, ChunkRef)>)> {
        let data = self.index.bytes();
        type Parsed = (Labels, Vec<(i64, ChunkRef)>);
        let parse = || -> Option<std::result::Result<Parsed, String>> {
            let at = self
                .series_table
                .checked_add(usize::try_from(i).ok()?.checked_mul(8)?)?;
            let off = u64::from_le_bytes(data.get(at..at.checked_add(8)?)?.try_into().ok()?);
            let mut b = data.get(usize::try_from(off).ok()?..)?;
            let (n, rest) = uvarint(b)?;
            b = rest;
            let mut pairs = Vec::with_capacity(usize::try_from(n).ok()?.min(64));
            for _ in 0..n {
                let (name, rest) = uvarint(b)?;
                let (value, rest) = uvarint(rest)?;
                b = rest;
                pairs.push((
                    self.symbols.get(usize::try_from(name).ok()?)?.as_str(),
                    self.symbols.get(usize::try_from(value).ok()?)?.as_str(),
                ));
            }
            let (n, rest) = uvarint(b)?;
            b = rest;
            let mut chunks = Vec::new();
            let (mut prev_max, mut prev_off) = (0i64, 0u64);
            for j in 0..n {
                let (dt, rest) = varint(b)?;
                let (doff, rest) = uvarint(rest)?;
                let (span, rest) = uvarint(rest)?;
                b = rest;
                let (c_min, c_off) = if j == 0 {
                    (dt, doff)
                } else {
                    (prev_max.wrapping_add(dt), prev_off.wrapping_add(doff))
                };
                let c_max = c_min.wrapping_add(span as i64);
                prev_max = c_max;
                prev_off = c_off;
                if c_max < min_t || c_min > max_t {
                    continue;
                }
                match self.chunk(c_off) {
                    Ok((encoding, bytes)) => chunks.push((
                        c_min,
                        ChunkRef {
                            max_t: c_max,
                            encoding,
                            bytes,
                        },
                    )),
                    Err(e) => return Some(Err(e)),
                }
            }
            Some(Ok((Labels::from_pairs(&pairs), chunks)))
        };
        match parse() {
            Some(Ok(r)) => Ok(r),
            Some(Err(what)) => Err(corrupt(&self.dir.join(files::BLOCK_CHUNKS), what)),
            None => Err(self.index_error(format!("malformed series entry {i}"))),
        }
    }

    /// The chunk at `offset` of the chunk file (its CRC was checked at open).
    fn chunk(&self, offset: u64) -> std::result::Result<(Encoding, ChunkBytes), String> {
        let data = self.chunks.bytes();
        let bad = || format!("no valid chunk at offset {offset}");
        let start = usize::try_from(offset).map_err(|_| bad())?;
        let (len, rest) = uvarint(data.get(start..).ok_or_else(bad)?).ok_or_else(bad)?;
        let enc_at = data.len() - rest.len();
        let enc = Encoding::try_from(*rest.first().ok_or_else(bad)?).map_err(|e| e.to_string())?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        let begin = enc_at + 1;
        let slice = MappedSlice::new(
            self.chunks.clone(),
            begin..begin.checked_add(len).ok_or_else(bad)?,
        )
        .ok_or_else(bad)?;
        Ok((enc, ChunkBytes::Mapped(slice)))
    }

    /// Label names of the series the matchers select (all names without matchers), sorted.
    pub(crate) fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self.postings.keys().cloned().collect());
        }
        let mut names = BTreeSet::new();
        for i in self.select(matchers)? {
            let (labels, _) = self.series(i, i64::MAX, i64::MIN)?;
            names.extend(labels.iter().map(|l| l.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` in the series the matchers select, sorted.
    pub(crate) fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self
                .postings
                .get(name)
                .map(|v| v.keys().cloned().collect())
                .unwrap_or_default());
        }
        let mut values = BTreeSet::new();
        for i in self.select(matchers)? {
            let (labels, _) = self.series(i, i64::MAX, i64::MIN)?;
            if let Some(v) = labels.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}

/// Checks the chunk file's header and every chunk's CRC.
fn verify_chunks(path: &Path, data: &[u8]) -> Result<()> {
    check_header(path, data, files::CHUNKS_MAGIC)?;
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        let bad = |what: &str| corrupt(path, format!("chunk at offset {pos}: {what}"));
        let (len, rest) = uvarint(&data[pos..]).ok_or_else(|| bad("bad length"))?;
        let start = data.len() - rest.len();
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l)?.checked_add(1))
            .filter(|&e| e + 4 <= data.len())
            .ok_or_else(|| bad("runs past the end of the file (truncated?)"))?;
        let stored = u32::from_le_bytes([data[end], data[end + 1], data[end + 2], data[end + 3]]);
        let actual = crc32c::crc32c(&data[start..end]);
        if stored != actual {
            return Err(bad(&format!(
                "CRC32C mismatch (stored {stored:08x}, computed {actual:08x})"
            )));
        }
        Encoding::try_from(data[start]).map_err(|e| bad(&e.to_string()))?;
        pos = end + 4;
    }
    Ok(())
}

/// Merges `blocks` (sorted by time) into one block covering `[min_t, max_t)`; returns its
/// directory (`None` if they hold no series). Chunks are copied as they are when the sources do
/// not overlap in time; a series whose chunks would overlap is decoded, deduplicated and
/// re-encoded.
pub(crate) fn compact(
    parent: &Path,
    blocks: &[Arc<Block>],
    min_t: i64,
    max_t: i64,
) -> Result<Option<PathBuf>> {
    // Every series of every block, by labels: (block, series index).
    let mut all: BTreeMap<Labels, Vec<(usize, u64)>> = BTreeMap::new();
    for (bi, b) in blocks.iter().enumerate() {
        for i in 0..b.num_series as u64 {
            let (labels, _) = b.series_chunks(i, i64::MAX, i64::MIN)?;
            all.entry(labels).or_default().push((bi, i));
        }
    }
    let level = blocks
        .iter()
        .map(|b| b.meta.compaction.level)
        .max()
        .unwrap_or(1)
        + 1;
    let sources: BTreeSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta.compaction.sources.iter().cloned())
        .collect();
    let mut w = Writer::new(parent, min_t, max_t)?;
    for (labels, parts) in &all {
        let mut chunks = Vec::new();
        for &(bi, i) in parts {
            let b = &blocks[bi];
            let (_, refs) = b.series_chunks(i, i64::MIN, i64::MAX)?;
            for (c_min, c) in refs {
                chunks.push((b, c_min, c));
            }
        }
        let overlapping = chunks.windows(2).any(|p| p[1].1 <= p[0].2.max_t);
        if overlapping {
            let mut samples = Vec::new();
            for (b, _, c) in &chunks {
                chunk::decode_into(c.encoding, c.bytes.as_ref(), &mut samples)
                    .map_err(|e| corrupt(&b.dir.join(files::BLOCK_CHUNKS), e))?;
            }
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
            w.add_samples(labels, &samples)?;
            continue;
        }
        let mut raw = Vec::with_capacity(chunks.len());
        for (b, c_min, c) in &chunks {
            let samples = chunk::count(c.encoding, c.bytes.as_ref())
                .map_err(|e| corrupt(&b.dir.join(files::BLOCK_CHUNKS), e))?;
            raw.push(RawChunk {
                encoding: c.encoding,
                bytes: c.bytes.as_ref(),
                min_t: *c_min,
                max_t: c.max_t,
                samples,
            });
        }
        w.add_chunks(labels, &raw)?;
    }
    w.finish(min_t, max_t, level, sources.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_files_of_version_1_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0, 100_000).unwrap();
        let labels = Labels::from_pairs(&[("__name__", "c")]);
        // A counter: written with a frame-of-reference Packed mode.
        let samples: Vec<Sample> = (0..500)
            .map(|i| Sample {
                t: i * 100,
                v: (i * 1000 + (i * 7919) % 97) as f64,
            })
            .collect();
        w.add_samples(&labels, &samples).unwrap();
        let path = w.finish(0, 100_000, 1, Vec::new()).unwrap().unwrap();
        let chunks = path.join(files::BLOCK_CHUNKS);
        let data = fs::read(&chunks).unwrap();
        assert_eq!(data[4], files::CHUNKS_FORMAT_VERSION);
        #[track_caller]
        fn check(path: &Path, chunks: &Path, version: u8, want_ok: bool) {
            let mut data = fs::read(chunks).unwrap();
            data[4] = version;
            fs::write(chunks, &data).unwrap();
            match Block::open(path) {
                Ok(_) => assert!(want_ok, "version {version} opened"),
                Err(e) => {
                    assert!(!want_ok, "version {version}: {e}");
                    assert!(e.to_string().contains("bad header"), "{e}");
                }
            }
        }
        check(&path, &chunks, 1, true);
        check(&path, &chunks, 2, true);
        check(&path, &chunks, 3, false);
        check(&path, &chunks, 0, false);
    }
}
