//! Which mounts the tick thread may stat itself instead of handing the call to a worker.
//!
//! The workers (statvfs.rs) exist for the mount that never answers: NFS with its server gone, a
//! stuck FUSE daemon. Handing a call over costs the worker's wake-up every tick, about 40 µs of
//! CPU on the project's VM (issue 20), for mounts that cannot hang at all. A statfs cannot wait
//! on anything when two things hold:
//! - the filesystem's own statfs reads counters kept in memory: ext2/3/4 and xfs (per-CPU
//!   block and inode counters), tmpfs, ramfs and devtmpfs; and
//! - the walk to its mount point crosses no mount whose lookups may wait: the directory a mount
//!   sits on is pinned in the dentry cache, so only a filesystem that revalidates cached entries
//!   (NFS, CIFS, FUSE, 9p, overlay through its layers) or mounts on lookup (autofs) can block
//!   there. The types above, zfs and btrfs do neither.
//!
//! Everything else, and every mount when the host's tree is reached through a container's own
//! mounts (`root_fs` other than `/`, which this table does not list), stays on the workers.

use std::path::{Path, PathBuf};

use super::filesystem::Mount;

/// Filesystems whose statfs reads in-memory counters only.
const STATFS_IN_MEMORY: [&str; 7] = ["ext2", "ext3", "ext4", "xfs", "tmpfs", "ramfs", "devtmpfs"];

/// Filesystems a path walk crosses without waiting, besides `STATFS_IN_MEMORY`.
const WALK_SAFE: [&str; 2] = ["zfs", "btrfs"];

/// The mount points of the whole table a path walk may wait in (see the module's comment);
/// taken before the filters drop mounts, since an unreported mount is still on the way.
pub fn walk_hazards(table: &[Mount]) -> Vec<PathBuf> {
    table
        .iter()
        .filter(|m| {
            !STATFS_IN_MEMORY.contains(&m.fstype.as_str())
                && !WALK_SAFE.contains(&m.fstype.as_str())
        })
        .map(|m| PathBuf::from(&m.mountpoint))
        .collect()
}

/// Whether `m` can be stat'ed on the tick thread: its statfs reads memory, no hazard lies on
/// the way to it or under it (a path mounted over keeps the mount below in the walk), and its
/// path is the host's own.
pub fn on_tick_thread(m: &Mount, hazards: &[PathBuf], root_fs: &Path) -> bool {
    root_fs == Path::new("/")
        && STATFS_IN_MEMORY.contains(&m.fstype.as_str())
        && !hazards
            .iter()
            .any(|h| Path::new(&m.mountpoint).starts_with(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::host::filesystem::parse_mountinfo;

    fn decide(text: &str, root_fs: &str) -> Vec<(String, bool)> {
        let (table, _) = parse_mountinfo(text, 100);
        let hazards = walk_hazards(&table);
        table
            .iter()
            .map(|m| {
                (
                    m.mountpoint.clone(),
                    on_tick_thread(m, &hazards, Path::new(root_fs)),
                )
            })
            .collect()
    }

    #[test]
    fn local_counters_on_a_local_walk_are_stated_inline() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 0:30 / /run rw - tmpfs tmpfs rw\n\
                    3 1 8:2 / /data rw - xfs /dev/sdb1 rw\n\
                    4 1 0:40 / /tank rw - zfs tank rw\n\
                    5 4 8:3 / /tank/scratch rw - ext4 /dev/sdc1 rw\n";
        assert_eq!(
            decide(text, "/"),
            vec![
                ("/".to_owned(), true),
                ("/run".to_owned(), true),
                ("/data".to_owned(), true),
                // zfs's statfs enters the dataset under its teardown lock (held through a rollback
                // or a receive): the worker's.
                ("/tank".to_owned(), false),
                // Below a zfs mount point: the walk waits on nothing.
                ("/tank/scratch".to_owned(), true),
            ]
        );
    }

    #[test]
    fn a_network_or_fuse_mount_on_the_way_sends_the_mounts_below_it_to_a_worker() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 0:50 / /srv/nfs rw - nfs4 server:/export rw\n\
                    3 2 0:30 / /srv/nfs/cache rw - tmpfs tmpfs rw\n\
                    4 1 0:51 / /home/me/drive rw - fuse.rclone drive: rw\n\
                    5 1 0:30 / /srv/nfsx rw - tmpfs tmpfs rw\n\
                    6 1 0:52 / /mnt/auto rw - autofs systemd-1 rw\n\
                    7 6 8:4 / /mnt/auto rw - ext4 /dev/sdd1 rw\n";
        assert_eq!(
            decide(text, "/"),
            vec![
                ("/".to_owned(), true),
                ("/srv/nfs".to_owned(), false),
                ("/srv/nfs/cache".to_owned(), false),
                ("/home/me/drive".to_owned(), false),
                // A prefix in text only, not a directory on the way.
                ("/srv/nfsx".to_owned(), true),
                ("/mnt/auto".to_owned(), false),
                // Mounted over an automount point: the walk still goes through autofs.
                ("/mnt/auto".to_owned(), false),
            ]
        );
    }

    #[test]
    fn the_host_tree_behind_a_container_root_is_always_a_workers() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:30 / /run rw - tmpfs tmpfs rw\n";
        assert!(decide(text, "/host").iter().all(|(_, inline)| !inline));
    }
}
