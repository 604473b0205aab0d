//! The FUSE side: each kernel request is one call on the shared [`State`].
//!
//! What is deliberately absent: `getlk`/`setlk` (the kernel then handles
//! `flock`, `fcntl` and OFD locks itself, so sled's lock works), `lseek` and
//! `copy_file_range` (the kernel falls back to its generic code), and the
//! writeback cache (never requested: every write reaches [`State::write`]
//! before it returns). `sync_file_range` and `syncfs` reach no handler, and
//! `close` only `flush`, so none of them makes anything durable — the
//! point.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::Shared;
use crate::model::{self, Node, State, Synced};

/// How long the kernel may cache names and attributes. Only the kernel
/// changes this file system, so its caches stay true.
const TTL: Duration = Duration::from_secs(1);

const O_DSYNC: i32 = 0o10000;
const O_SYNC: i32 = 0o4010000;

pub(crate) struct Fs {
    pub(crate) shared: Arc<Shared>,
}

fn errno(e: model::Errno) -> Errno {
    Errno::from_i32(e)
}

fn attr(ino: u64, node: &Node) -> FileAttr {
    let size = node.size();
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: node.mtime,
        mtime: node.mtime,
        ctime: node.ctime,
        crtime: node.ctime,
        kind: if node.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: node.perm,
        nlink: if node.is_dir() { 2 } else { node.live_links },
        uid: node.uid,
        gid: node.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Fs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers a call that made or found `ino` with its entry.
    fn entry(&self, state: &mut State, ino: u64, reply: ReplyEntry) {
        match state.node(ino) {
            Ok(node) => {
                let a = attr(ino, node);
                state.looked_up(ino);
                reply.entry(&TTL, &a, Generation(0));
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn synced(&self, result: Result<Synced, model::Errno>, reply: ReplyEmpty) {
        match result {
            Ok(Synced::Done) => reply.ok(),
            Ok(Synced::Cut) => {
                self.shared.cut_happened.notify_all();
                reply.error(Errno::EIO);
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state();
        match state.lookup(parent.0, name) {
            Ok(ino) => self.entry(&mut state, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.state().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.state();
        match state.node(ino.0) {
            Ok(node) => reply.attr(&TTL, &attr(ino.0, node)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let ino = ino.0;
        let result = (|| {
            if let Some(size) = size {
                state.set_len(ino, size)?;
            }
            if let Some(mode) = mode {
                state.set_perm(ino, (mode & 0o7777) as u16)?;
            }
            if uid.is_some() || gid.is_some() {
                state.set_owner(ino, uid, gid)?;
            }
            if let Some(mtime) = mtime {
                let t = match mtime {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                state.set_mtime(ino, t)?;
            }
            state.node(ino).map(|n| attr(ino, n))
        })();
        match result {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Regular files only (sockets, pipes and devices have no use here).
        if mode & 0o170000 != 0o100000 {
            reply.error(Errno::EPERM);
            return;
        }
        let mut state = self.state();
        match state.make(
            parent.0,
            name,
            false,
            perm(mode, umask),
            req.uid(),
            req.gid(),
        ) {
            Ok(ino) => self.entry(&mut state, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        match state.make(
            parent.0,
            name,
            true,
            perm(mode, umask),
            req.uid(),
            req.gid(),
        ) {
            Ok(ino) => self.entry(&mut state, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().unlink(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().unlink(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        match self.state().rename(
            parent.0,
            name,
            newparent.0,
            newname,
            flags.contains(RenameFlags::RENAME_NOREPLACE),
            flags.contains(RenameFlags::RENAME_EXCHANGE),
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        match state.link(ino.0, newparent.0, newname) {
            Ok(()) => self.entry(&mut state, ino.0, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let sync = flags.0 & (O_SYNC | O_DSYNC) != 0;
        match self.state().open(ino.0, sync) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.state().read(ino.0, offset, size) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.state().write(ino.0, fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Called at every `close`: makes nothing durable.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.state().live() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.state().release(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.state().fsync(ino.0, datasync);
        self.synced(result, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.state().open(ino.0, false) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.state();
        let parent = match state.node(ino.0).map(|n| &n.content) {
            Ok(model::Content::Dir(d)) => d.parent,
            Ok(model::Content::File(_)) => {
                reply.error(Errno::ENOTDIR);
                return;
            }
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        let handle = match state.handle(fh.0) {
            Ok(h) => h,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        let dots = [
            (OsStr::new("."), ino.0, true),
            (OsStr::new(".."), parent, true),
        ];
        let entries = dots.into_iter().chain(
            handle
                .listing
                .iter()
                .map(|(name, child, dir)| (name.as_os_str(), *child, *dir)),
        );
        for (i, (name, child, dir)) in entries.enumerate().skip(offset as usize) {
            let kind = if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        match self.state().release(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.state().fsyncdir(ino.0);
        self.synced(result, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let state = self.state();
        if let Err(e) = state.live() {
            reply.error(errno(e));
            return;
        }
        let files = state.nodes.len() as u64;
        // Claims 64 GiB in 4 KiB blocks, mostly free.
        let blocks = 16 * 1024 * 1024;
        reply.statfs(
            blocks,
            blocks / 2,
            blocks / 2,
            files + 1_000_000,
            1_000_000,
            4096,
            model::NAME_MAX as u32,
            4096,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        match self.state().node(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let sync = flags & (O_SYNC | O_DSYNC) != 0;
        let made = state
            .make(
                parent.0,
                name,
                false,
                perm(mode, umask),
                req.uid(),
                req.gid(),
            )
            .and_then(|ino| Ok((ino, state.open(ino, sync)?)));
        match made {
            Ok((ino, fh)) => match state.node(ino) {
                Ok(node) => {
                    let a = attr(ino, node);
                    state.looked_up(ino);
                    reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty());
                }
                Err(e) => reply.error(errno(e)),
            },
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.state().fallocate(ino.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}
