//! `fork` for the sysfs-writer helper, and closing inherited descriptors in it: the only unsafe code outside
//! `shm`. Forking skips a second program start per hook call (see [`super::writer`]).
#![allow(unsafe_code)]
use std::os::fd::RawFd;

use nix::unistd::{ForkResult, Pid};

/// Forks; the child runs `child` and ends with `_exit` and its return value, the parent gets the child's pid.
///
/// Only for a process with a single thread (or a test that accepts the risk): after `fork` the child runs
/// ordinary code (allocation, `std::fs`), which is sound only when no other thread can have held a lock at
/// the moment of the fork.
pub(super) fn run_in_child(child: impl FnOnce() -> u8) -> nix::Result<Pid> {
    // SAFETY: see above; the caller checked that this process has one thread. The child never returns from
    // this function, so no destructor of the parent's stack runs twice.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            let code = child();
            // SAFETY: `_exit` ends the child without running at-exit code or flushing the copy of the
            // parent's stdio buffers the child holds.
            unsafe { nix::libc::_exit(i32::from(code)) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Closes every descriptor from 3 up except `keep`. Only in a forked child that never touches another Rust
/// handle on them again: it ends with `_exit`, so no destructor closes them a second time.
pub(super) fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.to_vec();
    keep.sort_unstable();
    let mut from: RawFd = 3;
    let mut ranges = Vec::new();
    for &k in &keep {
        if k >= from {
            ranges.push((from, k - 1));
            from = k + 1;
        }
    }
    ranges.push((from, RawFd::MAX));
    let mut supported = true;
    for &(low, high) in ranges.iter().filter(|(l, h)| l <= h) {
        // SAFETY: close_range(2) only closes descriptors; none in the range is used again (see above).
        let rc = unsafe {
            nix::libc::syscall(nix::libc::SYS_close_range, low as u32, high as u32, 0u32)
        };
        supported &= rc == 0;
    }
    if supported {
        return;
    }
    // Kernels before 5.9: close what /proc/self/fd lists (the listing's own descriptor fails harmlessly).
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open.into_iter().filter(|fd| *fd >= 3 && !keep.contains(fd)) {
        // SAFETY: as above.
        unsafe { nix::libc::close(fd) };
    }
}
