//! The file system's state: what a process sees (the page cache) and what
//! would be on the disk after a power cut (the durable image), side by side.
//!
//! Every inode keeps its live content and its durable content, plus the
//! writes made since its last sync (so a sync replays them onto the durable
//! content instead of copying whole files, and a cut can let each one
//! survive with a probability). Every directory keeps its live entries and
//! its durable entries; which syncs copy one onto the other is the model's
//! [`DirSync`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use crate::{DirSync, Image, ImageKind, ImageNode, Model, SyncStats};

/// The root directory's inode number (FUSE's).
pub(crate) const ROOT: u64 = 1;

/// An error a file system call answers with.
pub(crate) type Errno = i32;

pub(crate) const EIO: Errno = 5;
pub(crate) const ENOENT: Errno = 2;
pub(crate) const EEXIST: Errno = 17;
pub(crate) const ENOTDIR: Errno = 20;
pub(crate) const EISDIR: Errno = 21;
pub(crate) const EINVAL: Errno = 22;
pub(crate) const EBADF: Errno = 9;
pub(crate) const ENOTEMPTY: Errno = 39;
pub(crate) const ENAMETOOLONG: Errno = 36;
pub(crate) const EOPNOTSUPP: Errno = 95;
pub(crate) const EFBIG: Errno = 27;

/// The longest name a directory entry may have.
pub(crate) const NAME_MAX: usize = 255;
/// The largest file (the image lives in memory).
const MAX_FILE: u64 = 1 << 32;

/// `fallocate` modes understood (Linux's values).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// splitmix64: a small seeded generator, so a seed replays a cut.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// A change to a file's content not yet synced.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
    Zero { offset: u64, len: u64 },
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Op {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => {
                let start = to_usize(*offset);
                let end = start + data.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(data);
            }
            Op::SetLen(len) => content.resize(to_usize(*len), 0),
            Op::Zero { offset, len } => {
                let start = to_usize(*offset).min(content.len());
                let end = to_usize(offset + len).min(content.len());
                content[start..end].fill(0);
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct FileData {
    pub(crate) live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Op>,
}

impl FileData {
    fn change(&mut self, op: Op) {
        op.apply(&mut self.live);
        self.pending.push(op);
    }

    fn sync(&mut self) {
        for op in self.pending.drain(..) {
            op.apply(&mut self.durable);
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct DirData {
    pub(crate) live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
    /// The live parent, for `..`.
    pub(crate) parent: u64,
}

#[derive(Debug)]
pub(crate) enum Content {
    File(FileData),
    Dir(DirData),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) content: Content,
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: SystemTime,
    pub(crate) ctime: SystemTime,
    /// Live directory entries naming it.
    pub(crate) live_links: u32,
    /// Durable directory entries naming it (it must outlive them).
    durable_links: u32,
    /// Open handles.
    open: u32,
    /// The kernel's references (lookups not yet forgotten).
    lookups: u64,
}

impl Node {
    fn new(content: Content, perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Self {
            content,
            perm,
            uid,
            gid,
            mtime: now,
            ctime: now,
            live_links: 0,
            durable_links: 0,
            open: 0,
            lookups: 0,
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir(_))
    }

    pub(crate) fn size(&self) -> u64 {
        match &self.content {
            Content::File(f) => f.live.len() as u64,
            Content::Dir(d) => d.live.len() as u64,
        }
    }
}

/// An open file or directory.
#[derive(Debug)]
pub(crate) struct Handle {
    ino: u64,
    /// Opened with `O_SYNC` or `O_DSYNC`: each write is synced.
    sync: bool,
    /// A directory's entries as they were when it was opened.
    pub(crate) listing: Vec<(OsString, u64, bool)>,
}

/// The whole file system.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) nodes: HashMap<u64, Node>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Directories whose live entries differ from their durable ones.
    dirty: BTreeSet<u64>,
    model: Model,
    rng: Rng,
    /// The durable image taken at the cut; every call fails once it is set.
    pub(crate) cut: Option<Image>,
    /// Sync requests still allowed before the one that cuts.
    cut_after: Option<u64>,
    pub(crate) stats: SyncStats,
}

/// The outcome of a sync request.
pub(crate) enum Synced {
    Done,
    /// This request was the one armed to cut: the power is off.
    Cut,
}

impl State {
    /// A file system holding `image`, everything in it durable.
    pub(crate) fn new(image: &Image, model: Model, seed: u64) -> Self {
        let mut nodes = HashMap::new();
        let mut next_ino = ROOT + 1;
        for (&ino, node) in &image.nodes {
            next_ino = next_ino.max(ino + 1);
            let content = match &node.kind {
                ImageKind::File(data) => Content::File(FileData {
                    live: data.clone(),
                    durable: data.clone(),
                    pending: Vec::new(),
                }),
                ImageKind::Dir(entries) => Content::Dir(DirData {
                    live: entries.clone(),
                    durable: entries.clone(),
                    parent: ROOT,
                }),
            };
            let mut n = Node::new(content, node.perm, node.uid, node.gid);
            n.mtime = node.mtime;
            n.ctime = node.mtime;
            nodes.insert(ino, n);
        }
        // Links and parents from the entries.
        let mut links: Vec<(u64, u64)> = Vec::new();
        for (&ino, node) in &image.nodes {
            if let ImageKind::Dir(entries) = &node.kind {
                links.extend(entries.values().map(|&child| (ino, child)));
            }
        }
        for (parent, child) in links {
            if let Some(n) = nodes.get_mut(&child) {
                n.live_links += 1;
                n.durable_links += 1;
                if let Content::Dir(d) = &mut n.content {
                    d.parent = parent;
                }
            }
        }
        if let Some(root) = nodes.get_mut(&ROOT) {
            root.live_links += 1;
            root.durable_links += 1;
        }
        Self {
            nodes,
            next_ino,
            handles: HashMap::new(),
            next_fh: 1,
            dirty: BTreeSet::new(),
            model,
            rng: Rng::new(seed),
            cut: None,
            cut_after: None,
            stats: SyncStats::default(),
        }
    }

    /// Fails every call once the power is cut.
    pub(crate) fn live(&self) -> Result<(), Errno> {
        if self.cut.is_some() { Err(EIO) } else { Ok(()) }
    }

    pub(crate) fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.live()?;
        self.nodes.get(&ino).ok_or(ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.live()?;
        self.nodes.get_mut(&ino).ok_or(ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirData, Errno> {
        match &self.node(ino)?.content {
            Content::Dir(d) => Ok(d),
            Content::File(_) => Err(ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirData, Errno> {
        match &mut self.node_mut(ino)?.content {
            Content::Dir(d) => Ok(d),
            Content::File(_) => Err(ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match &mut self.node_mut(ino)?.content {
            Content::File(f) => Ok(f),
            Content::Dir(_) => Err(EISDIR),
        }
    }

    /// The kernel now holds one more reference to `ino`.
    pub(crate) fn looked_up(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups += 1;
        }
    }

    pub(crate) fn forget(&mut self, ino: u64, count: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups = n.lookups.saturating_sub(count);
        }
        self.collect(ino);
    }

    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?.live.get(name).copied().ok_or(ENOENT)
    }

    /// Creates a file or directory named `name` in `parent`.
    pub(crate) fn make(
        &mut self,
        parent: u64,
        name: &OsStr,
        dir: bool,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<u64, Errno> {
        check_name(name)?;
        if self.dir(parent)?.live.contains_key(name) {
            return Err(EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let content = if dir {
            Content::Dir(DirData {
                parent,
                ..DirData::default()
            })
        } else {
            Content::File(FileData::default())
        };
        let mut node = Node::new(content, perm, uid, gid);
        node.live_links = 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.live.insert(name.to_owned(), ino);
        self.touch_dir(parent);
        Ok(ino)
    }

    /// Adds a hard link `name` in `parent` to file `ino`.
    pub(crate) fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Result<(), Errno> {
        check_name(name)?;
        if self.node(ino)?.is_dir() {
            return Err(libc_eperm());
        }
        if self.dir(parent)?.live.contains_key(name) {
            return Err(EEXIST);
        }
        self.dir_mut(parent)?.live.insert(name.to_owned(), ino);
        self.node_mut(ino)?.live_links += 1;
        self.touch_dir(parent);
        Ok(())
    }

    pub(crate) fn unlink(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let node = self.node(ino)?;
        match (&node.content, dir) {
            (Content::Dir(d), true) if !d.live.is_empty() => return Err(ENOTEMPTY),
            (Content::Dir(_), true) | (Content::File(_), false) => {}
            (Content::Dir(_), false) => return Err(EISDIR),
            (Content::File(_), true) => return Err(ENOTDIR),
        }
        self.dir_mut(parent)?.live.remove(name);
        self.touch_dir(parent);
        let node = self.node_mut(ino)?;
        node.live_links = node.live_links.saturating_sub(1);
        node.ctime = SystemTime::now();
        self.collect(ino);
        Ok(())
    }

    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
        exchange: bool,
    ) -> Result<(), Errno> {
        check_name(new_name)?;
        let ino = self.lookup(parent, name)?;
        let target = self.dir(new_parent)?.live.get(new_name).copied();
        if exchange {
            let Some(target) = target else {
                return Err(ENOENT);
            };
            self.dir_mut(parent)?.live.insert(name.to_owned(), target);
            self.dir_mut(new_parent)?
                .live
                .insert(new_name.to_owned(), ino);
            self.set_parent(target, parent);
            self.set_parent(ino, new_parent);
            self.touch_dir(parent);
            self.touch_dir(new_parent);
            return Ok(());
        }
        if target == Some(ino) {
            return Ok(());
        }
        let moving_dir = self.node(ino)?.is_dir();
        if moving_dir && self.is_within(new_parent, ino) {
            return Err(EINVAL);
        }
        if let Some(target) = target {
            if no_replace {
                return Err(EEXIST);
            }
            match (&self.node(target)?.content, moving_dir) {
                (Content::Dir(d), true) if !d.live.is_empty() => return Err(ENOTEMPTY),
                (Content::Dir(_), false) => return Err(EISDIR),
                (Content::File(_), true) => return Err(ENOTDIR),
                _ => {}
            }
            let t = self.node_mut(target)?;
            t.live_links = t.live_links.saturating_sub(1);
        }
        self.dir_mut(parent)?.live.remove(name);
        self.dir_mut(new_parent)?
            .live
            .insert(new_name.to_owned(), ino);
        self.set_parent(ino, new_parent);
        self.touch_dir(parent);
        self.touch_dir(new_parent);
        if let Some(target) = target {
            self.collect(target);
        }
        Ok(())
    }

    /// Whether directory `ino` is `ancestor` or below it.
    fn is_within(&self, mut ino: u64, ancestor: u64) -> bool {
        for _ in 0..4096 {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino).map(|n| &n.content) {
                Some(Content::Dir(d)) if ino != ROOT => ino = d.parent,
                _ => return false,
            }
        }
        true
    }

    fn set_parent(&mut self, ino: u64, parent: u64) {
        if let Some(Node {
            content: Content::Dir(d),
            ..
        }) = self.nodes.get_mut(&ino)
        {
            d.parent = parent;
        }
    }

    fn touch_dir(&mut self, dir: u64) {
        self.dirty.insert(dir);
        if let Some(n) = self.nodes.get_mut(&dir) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    pub(crate) fn open(&mut self, ino: u64, sync: bool) -> Result<u64, Errno> {
        let listing = match &self.node(ino)?.content {
            Content::Dir(d) => d
                .live
                .iter()
                .map(|(name, &child)| {
                    let is_dir = self.nodes.get(&child).is_some_and(Node::is_dir);
                    (name.clone(), child, is_dir)
                })
                .collect(),
            Content::File(_) => Vec::new(),
        };
        self.node_mut(ino)?.open += 1;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino, sync, listing });
        Ok(fh)
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<&Handle, Errno> {
        self.live()?;
        self.handles.get(&fh).ok_or(EBADF)
    }

    pub(crate) fn release(&mut self, fh: u64) -> Result<(), Errno> {
        self.live()?;
        let handle = self.handles.remove(&fh).ok_or(EBADF)?;
        if let Some(n) = self.nodes.get_mut(&handle.ino) {
            n.open = n.open.saturating_sub(1);
        }
        self.collect(handle.ino);
        Ok(())
    }

    pub(crate) fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        match &self.node(ino)?.content {
            Content::File(f) => {
                let start = to_usize(offset).min(f.live.len());
                let end = start.saturating_add(size as usize).min(f.live.len());
                Ok(&f.live[start..end])
            }
            Content::Dir(_) => Err(EISDIR),
        }
    }

    pub(crate) fn write(
        &mut self,
        ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, Errno> {
        let sync = self.handle(fh).is_ok_and(|h| h.sync);
        if offset.saturating_add(data.len() as u64) > MAX_FILE {
            return Err(EFBIG);
        }
        let written = u32::try_from(data.len()).map_err(|_| EINVAL)?;
        self.file_mut(ino)?.change(Op::Write {
            offset,
            data: data.to_vec(),
        });
        self.stats.writes += 1;
        self.modified(ino);
        if sync {
            // O_SYNC / O_DSYNC: durable before the write returns.
            self.sync_file(ino)?;
        }
        Ok(written)
    }

    pub(crate) fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        if len > MAX_FILE {
            return Err(EFBIG);
        }
        self.file_mut(ino)?.change(Op::SetLen(len));
        self.modified(ino);
        Ok(())
    }

    pub(crate) fn fallocate(
        &mut self,
        ino: u64,
        offset: u64,
        len: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let end = offset.checked_add(len).ok_or(EFBIG)?;
        if end > MAX_FILE {
            return Err(EFBIG);
        }
        let file = self.file_mut(ino)?;
        let size = file.live.len() as u64;
        let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
        match mode & !FALLOC_FL_KEEP_SIZE {
            // Reserve: the file reads as zeros up to `end`.
            0 => {
                if !keep_size && end > size {
                    file.change(Op::SetLen(end));
                }
            }
            FALLOC_FL_PUNCH_HOLE if keep_size => file.change(Op::Zero { offset, len }),
            FALLOC_FL_ZERO_RANGE => {
                file.change(Op::Zero { offset, len });
                if !keep_size && end > size {
                    file.change(Op::SetLen(end));
                }
            }
            _ => return Err(EOPNOTSUPP),
        }
        self.stats.fallocates += 1;
        self.modified(ino);
        Ok(())
    }

    fn modified(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    pub(crate) fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Errno> {
        let n = self.node_mut(ino)?;
        n.perm = perm;
        n.ctime = SystemTime::now();
        Ok(())
    }

    pub(crate) fn set_owner(
        &mut self,
        ino: u64,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), Errno> {
        let n = self.node_mut(ino)?;
        n.uid = uid.unwrap_or(n.uid);
        n.gid = gid.unwrap_or(n.gid);
        Ok(())
    }

    pub(crate) fn set_mtime(&mut self, ino: u64, mtime: SystemTime) -> Result<(), Errno> {
        self.node_mut(ino)?.mtime = mtime;
        Ok(())
    }

    /// Counts a sync request; the armed one cuts instead.
    fn count_sync(&mut self) -> Synced {
        match self.cut_after {
            Some(0) => {
                self.cut_now();
                Synced::Cut
            }
            Some(n) => {
                self.cut_after = Some(n - 1);
                Synced::Done
            }
            None => Synced::Done,
        }
    }

    /// `fsync` / `fdatasync` of a file (a directory's comes as [`Self::fsyncdir`]).
    pub(crate) fn fsync(&mut self, ino: u64, datasync: bool) -> Result<Synced, Errno> {
        self.live()?;
        if datasync {
            self.stats.fdatasyncs += 1;
        } else {
            self.stats.fsyncs += 1;
        }
        if let Synced::Cut = self.count_sync() {
            return Ok(Synced::Cut);
        }
        if self.node(ino)?.is_dir() {
            self.commit_dir(ino);
        } else {
            self.sync_file(ino)?;
        }
        Ok(Synced::Done)
    }

    pub(crate) fn fsyncdir(&mut self, ino: u64) -> Result<Synced, Errno> {
        self.live()?;
        self.stats.fsyncdirs += 1;
        if let Synced::Cut = self.count_sync() {
            return Ok(Synced::Cut);
        }
        self.dir(ino)?;
        self.commit_dir(ino);
        Ok(Synced::Done)
    }

    fn sync_file(&mut self, ino: u64) -> Result<(), Errno> {
        self.file_mut(ino)?.sync();
        if self.model.dirs == DirSync::Ext4Like {
            self.commit_all_dirs();
        }
        Ok(())
    }

    /// Makes a directory's entries durable (and, ext4-like, every directory's).
    fn commit_dir(&mut self, dir: u64) {
        if self.model.dirs == DirSync::Ext4Like {
            self.commit_all_dirs();
            return;
        }
        self.commit_one(dir);
    }

    fn commit_all_dirs(&mut self) {
        for dir in std::mem::take(&mut self.dirty) {
            self.commit_one(dir);
        }
    }

    fn commit_one(&mut self, dir: u64) {
        self.dirty.remove(&dir);
        let Some(Node {
            content: Content::Dir(d),
            ..
        }) = self.nodes.get_mut(&dir)
        else {
            return;
        };
        let old = std::mem::replace(&mut d.durable, d.live.clone());
        let new: Vec<u64> = d.durable.values().copied().collect();
        for ino in new {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.durable_links += 1;
            }
        }
        for ino in old.into_values() {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.durable_links = n.durable_links.saturating_sub(1);
            }
            self.collect(ino);
        }
    }

    /// Frees an inode no one can reach any more, now or after a cut.
    fn collect(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        let Some(n) = self.nodes.get_mut(&ino) else {
            return;
        };
        if n.live_links > 0 || n.durable_links > 0 || n.open > 0 {
            return;
        }
        if n.lookups > 0 {
            // The kernel may still ask for its attributes: keep an empty shell.
            if let Content::File(f) = &mut n.content {
                *f = FileData::default();
            }
            return;
        }
        let Some(node) = self.nodes.remove(&ino) else {
            return;
        };
        self.dirty.remove(&ino);
        if let Content::Dir(d) = node.content {
            for child in d.durable.into_values() {
                if let Some(c) = self.nodes.get_mut(&child) {
                    c.durable_links = c.durable_links.saturating_sub(1);
                }
                self.collect(child);
            }
        }
    }

    /// The `n`-th sync request from now (1 = the next) cuts the power.
    pub(crate) fn arm(&mut self, n: u64) {
        self.cut_after = Some(n.saturating_sub(1));
    }

    /// Cuts the power: freezes the file system and keeps the durable image
    /// (each unsynced change surviving with the model's probability).
    pub(crate) fn cut_now(&mut self) -> Image {
        if let Some(image) = &self.cut {
            return image.clone();
        }
        let mut image = Image::default();
        let mut stack = vec![ROOT];
        let mut seen = BTreeSet::new();
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            let kind = match &node.content {
                Content::Dir(d) => {
                    let entries: BTreeMap<OsString, u64> = d
                        .durable
                        .iter()
                        .filter(|(_, child)| self.nodes.contains_key(child))
                        .map(|(name, &child)| (name.clone(), child))
                        .collect();
                    stack.extend(entries.values().copied());
                    ImageKind::Dir(entries)
                }
                Content::File(f) => {
                    let mut data = f.durable.clone();
                    for op in &f.pending {
                        if self.rng.chance(self.model.survival) {
                            op.apply(&mut data);
                            self.stats.survived += 1;
                        } else {
                            self.stats.dropped += 1;
                        }
                    }
                    ImageKind::File(data)
                }
            };
            image.nodes.insert(
                ino,
                ImageNode {
                    kind,
                    perm: node.perm,
                    uid: node.uid,
                    gid: node.gid,
                    mtime: node.mtime,
                },
            );
        }
        self.cut = Some(image.clone());
        image
    }
}

fn check_name(name: &OsStr) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    if name.is_empty() || name == "." || name == ".." {
        return Err(EINVAL);
    }
    Ok(())
}

fn libc_eperm() -> Errno {
    1
}
