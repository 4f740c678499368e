//! A mapped file that shrinks under us is a recoverable state, not a crash.
//!
//! When another process truncates the file (a host tool, a restarted VM's hook re-creating it in place), every
//! page of our `MAP_SHARED` mapping past the new end of file raises SIGBUS on access, and the default action
//! kills the viewer (exit 135, no message). The guest cannot do this (it cannot resize the region), but a host
//! process can, and the guest-shared memory rules say: no crash, whatever the bytes.
//!
//! So each [`ShmMap`](super::ShmMap) registers its address range here, and a process-wide SIGBUS handler does,
//! for a fault inside a registered range: map anonymous zero pages (`MAP_FIXED`) from the faulting page to the
//! end of that mapping, mark the mapping *faulted*, and return. The faulting copy is restarted by the CPU and
//! reads zeros (the protocol code treats zeros as "no host"), and the owner sees [`Guard::faulted`] and maps
//! the file anew. A fault anywhere else goes to the previous handler (Rust's stack-overflow handler, which
//! restores the default action so the fault kills the process as before).
//!
//! Why this is sound (the SAFETY argument the handler relies on):
//! - The handler touches only lock-free atomics in a fixed static table and calls `mmap`, a plain system call
//!   on Linux (no allocation, no lock; glibc's wrapper is the syscall plus errno), and `sigaction`, which POSIX
//!   lists as async-signal-safe. It allocates nothing and takes no lock, so it cannot deadlock with the
//!   interrupted thread.
//! - It replaces pages only inside a range that a live `ShmMap` owns: a range is registered after the mmap and
//!   unregistered before the munmap (field order in `ShmMap`), so the range cannot belong to anything else
//!   while it is in the table.
//! - Every access to those bytes goes through `ShmView` (atomics and raw copies, never references), so
//!   swapping the pages under a running copy changes only the values it reads, which are untrusted anyway.
//! - SIGBUS from a mapping is synchronous: it is delivered to the thread that faulted, on the faulting
//!   instruction, so `si_addr` names the address that thread was accessing.
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::libc;

/// Registered ranges at most; a mapping beyond this works but is not protected (logged).
const SLOTS: usize = 32;
/// A slot being filled in: not matched by the handler yet.
const CLAIMED: usize = usize::MAX;

struct Slot {
    /// Start address; 0 = free, [`CLAIMED`] = being registered.
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    }
}; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
/// The handler that was installed before ours (a `libc::sigaction` copied out at install time).
static PREVIOUS: std::sync::OnceLock<Previous> = std::sync::OnceLock::new();

struct Previous(libc::sigaction);
// SAFETY: a plain C struct of integers and function addresses, written once before the handler is installed
// and only read afterwards.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

/// The registration of one mapping; unregisters on drop.
pub(super) struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// Registers `start..start+len` (a live mapping the caller owns until this guard is dropped).
    pub(super) fn register(start: *mut u8, len: usize) -> Self {
        install();
        let start = start as usize;
        for (i, slot) in TABLE.iter().enumerate() {
            if slot
                .start
                .compare_exchange(0, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.len.store(len, Ordering::Release);
                slot.faulted.store(false, Ordering::Release);
                slot.start.store(start, Ordering::Release);
                return Self { slot: Some(i) };
            }
        }
        tracing::warn!(
            "more than {SLOTS} shared-memory mappings: a file shrinking under this one would end the process"
        );
        Self { slot: None }
    }

    /// Whether an access faulted (the file shrank): the mapping now shows zeros past that point and must be
    /// mapped anew.
    pub(super) fn faulted(&self) -> bool {
        self.slot
            .is_some_and(|i| TABLE[i].faulted.load(Ordering::Acquire))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            TABLE[i].start.store(0, Ordering::Release);
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Release);
        }
        // SAFETY: zeroed is a valid `sigaction` (no handler, empty mask, no flags); we fill it before use.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        // SAFETY: zeroed is a valid `sigaction` for the kernel to write the old action into.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `sa_mask` is a valid sigset_t we own. The old action is read (null new action) and stored
        // before ours is installed, so the handler never sees PREVIOUS unset.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old);
        }
        let _ = PREVIOUS.set(Previous(old));
        // SAFETY: `action` is fully initialised and `on_sigbus` has the SA_SIGINFO signature.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) };
        if rc != 0 {
            tracing::warn!(
                "cannot install the SIGBUS handler: a shared-memory file shrinking under the viewer would end it"
            );
        }
    });
}

/// The registered range holding `addr`: (slot, start, len).
fn find(addr: usize) -> Option<(&'static Slot, usize, usize)> {
    TABLE.iter().find_map(|slot| {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || start == CLAIMED {
            return None;
        }
        let len = slot.len.load(Ordering::Acquire);
        (addr >= start && addr - start < len).then_some((slot, start, len))
    })
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t; for SIGBUS si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some((slot, start, len)) = find(addr) {
        let page = PAGE.load(Ordering::Acquire);
        let from = addr & !(page - 1);
        let end = (start + len).next_multiple_of(page);
        // SAFETY: `from..end` lies inside a mapping a live ShmMap owns (module docs): replacing those pages with
        // private zero pages changes only the values later reads see. mmap allocates nothing in this process
        // and takes no lock.
        let p = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            slot.faulted.store(true, Ordering::Release);
            return;
        }
    }
    chain(sig, info, ctx);
}

/// Hands a fault that is not ours to the handler that was there before, or restores the default action (the
/// faulting instruction then runs again and the process ends with SIGBUS, as without us).
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = PREVIOUS.get().map(|p| p.0);
    match previous {
        Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature; we
                // pass it the arguments the kernel gave us.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a handler installed without SA_SIGINFO takes just the signal number.
                let f: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: zeroed = SIG_DFL with an empty mask; sigaction is async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::shm::{Region, ShmMap};

    #[test]
    fn test_shrunk_file_reads_zeros_and_marks_the_map_faulted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lg");
        let map = ShmMap::create(&path, 1 << 20).unwrap();
        map.view().fill(0, 1 << 20, 0xAB).unwrap();
        assert!(!map.faulted());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(8192)
            .unwrap();
        let mut buf = [0u8; 16];
        map.view().read_bytes(512 * 1024, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 16]);
        assert!(map.faulted());
        // The part still backed by the file is untouched.
        map.view().read_bytes(100, &mut buf).unwrap();
        assert_eq!(buf, [0xABu8; 16]);
    }
}
